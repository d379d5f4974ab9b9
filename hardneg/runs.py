"""A mining run read back for export: one `RunQuery` per query (positives, selected negatives and
their scores, teacher scores when there are any), and the documents' texts streamed in passes so
memory stays bounded however large the corpus.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pyarrow.compute as pc

from hardneg.artifacts import (
    CANDIDATES_FILE,
    CORPUS_DIR,
    KIND_EMBEDDINGS,
    KIND_MINE,
    RUN_QUERIES_FILE,
    Artifact,
    doc_text,
    open_artifact,
    upstream,
)
from hardneg.errors import ArtifactError
from hardneg.readers import iter_shard_tables, read_table


@dataclass
class RunQuery:
    query_id: str
    text: str
    positives: list[str]
    negatives: list[str]
    positive_scores: list[float] = field(default_factory=list)
    negative_scores: list[float] = field(default_factory=list)


# --------------------------------------------------------------------------- reading a run


@dataclass(frozen=True)
class Run:
    """A mining run read back: its artifact (path, manifest), its mined queries, and the embeddings
    artifact it was mined from (checked unchanged: it holds the texts)."""

    artifact: Artifact
    queries: list[RunQuery]
    embeddings: Artifact

    @property
    def manifest(self) -> dict[str, Any]:
        return self.artifact.manifest

    @property
    def emb_path(self) -> Path:
        return self.embeddings.path


def read_run(run: Path) -> Run:
    """A mining run: its mined queries with selected negatives (rank order) and its embeddings.

    Scores are the teacher's (cross-encoder) when the run has them, else the embedding scores.
    Pseudo-positives found by the cross-encoder follow the labelled positives.
    """
    artifact = open_artifact(run, KIND_MINE)
    manifest = artifact.manifest
    embeddings = upstream(artifact, "embeddings", KIND_EMBEDDINGS, "re-run `hardneg mine` (the embeddings changed since this run was mined)")
    teacher = manifest.get("cross_encoder") is not None
    score_column = "teacher_score" if teacher else "score"
    queries = read_table(run / RUN_QUERIES_FILE)
    candidates = read_table(run / CANDIDATES_FILE, columns=["query_id", "doc_id", "rank", score_column, "selected", "filter"])
    wanted = candidates.filter(pc.field("selected") | (pc.field("filter") == "pseudo-positive"))
    negatives: dict[str, list[tuple[int, str, float]]] = {}
    pseudo: dict[str, list[tuple[int, str, float]]] = {}
    for qid, did, rank, score, selected in zip(
        wanted["query_id"].to_pylist(),
        wanted["doc_id"].to_pylist(),
        wanted["rank"].to_pylist(),
        wanted[score_column].to_pylist(),
        wanted["selected"].to_pylist(),
    ):
        if score is None or not math.isfinite(score):
            raise ArtifactError(
                f"{run / CANDIDATES_FILE}: query {qid!r}, document {did!r}: field {score_column!r} is {score!r}, not a "
                "finite number; the run is damaged: mine it again"
            )
        (negatives if selected else pseudo).setdefault(qid, []).append((rank, did, score))
    positive_score_column = "positive_teacher_scores" if teacher else "positive_scores"
    result = []
    for qid, text, pos, pos_scores, status in zip(
        queries["query_id"].to_pylist(),
        queries["text"].to_pylist(),
        queries["positive_ids"].to_pylist(),
        queries[positive_score_column].to_pylist(),
        queries["status"].to_pylist(),
    ):
        if status != "mined":
            continue
        if any(s is None or not math.isfinite(s) for s in pos_scores):
            raise ArtifactError(
                f"{run / RUN_QUERIES_FILE}: query {qid!r}: field {positive_score_column!r} holds a non-finite score; "
                "the run is damaged: mine it again"
            )
        negs = sorted(negatives.get(qid, []))
        extra = sorted(pseudo.get(qid, []))
        result.append(
            RunQuery(
                qid,
                text,
                pos + [d for _, d, _ in extra],
                [d for _, d, _ in negs],
                list(pos_scores) + [s for _, _, s in extra],
                [s for _, _, s in negs],
            )
        )
    return Run(artifact, result, embeddings)


def _iter_records(emb_path: Path) -> Iterator[tuple[str, str, str]]:
    """(doc_id, title, text) for the whole corpus, in corpus order."""
    for table in iter_shard_tables(emb_path, CORPUS_DIR, ["doc_id", "title", "text"]):
        yield from zip(table["doc_id"].to_pylist(), table["title"].to_pylist(), table["text"].to_pylist())


def iter_documents(emb_path: Path) -> Iterator[tuple[str, str]]:
    """(doc_id, exported text) for the whole corpus, in corpus order."""
    for did, title, text in _iter_records(emb_path):
        yield did, doc_text(title, text)


EXTRA_TEXTS: ContextVar[dict[str, str] | None] = ContextVar("EXTRA_TEXTS", default=None)
"""Texts of documents that are not in the corpus (generated negatives, `export --synthetic`),
set for the duration of one export with `extra_texts`."""


@contextlib.contextmanager
def extra_texts(texts: dict[str, str]) -> Iterator[None]:
    token = EXTRA_TEXTS.set(texts)
    try:
        yield
    finally:
        EXTRA_TEXTS.reset(token)


def doc_texts(emb_path: Path, wanted: set[str]) -> dict[str, str]:
    extra = EXTRA_TEXTS.get() or {}
    out = {did: text for did, text in iter_documents(emb_path) if did in wanted}
    return out | {did: extra[did] for did in wanted if did in extra}


def doc_records(emb_path: Path, wanted: set[str]) -> dict[str, tuple[str, str]]:
    """doc_id -> (title, text) for the wanted documents (formats that keep the title apart)."""
    extra = EXTRA_TEXTS.get() or {}
    out = {did: (title, text) for did, title, text in _iter_records(emb_path) if did in wanted}
    return out | {did: ("", extra[did]) for did in wanted if did in extra}


T = TypeVar("T")
# Documents whose texts are held at once while writing; the corpus is streamed once per this many.
TEXTS_PER_PASS = 200_000


def text_passes(
    items: list[T], ids_of: Callable[[T], Iterable[str]], emb_path: Path, records: bool = False
) -> Iterator[tuple[list[T], dict[str, Any]]]:
    """Cut ``items`` (in order) into batches that reference at most TEXTS_PER_PASS distinct
    documents, and give each batch those documents' texts (``records``: (title, text)), read by one
    streaming pass over the corpus. Memory holds one batch's texts, never the corpus."""
    fetch = doc_records if records else doc_texts
    batch: list[T] = []
    wanted: set[str] = set()
    for item in items:
        ids = set(ids_of(item))
        if batch and len(wanted) + len(ids - wanted) > TEXTS_PER_PASS:
            yield batch, fetch(emb_path, wanted)
            batch, wanted = [], set()
        batch.append(item)
        wanted |= ids
    if batch:
        yield batch, fetch(emb_path, wanted)
