"""Stage 4, `hardneg export`: a mining run -> the training files trainers read, from a format registry.

Formats:
- ``colbert``: ``triples.train.colbert.jsonl`` (``[qid, pid_pos, pid_neg, ...]`` integer lines),
  ``queries.train.colbert.tsv`` (``qid\\ttext``), ``corpus.train.colbert.tsv`` (``pid\\ttext``, pid =
  0-based line number), plus ``qid_map.tsv`` / ``pid_map.tsv`` back to the original ids. What
  RAGatouille and colbert-ai train from.
- ``triplets``: JSONL ``[query, positive, negative]`` texts (``--out -`` streams it to stdout).
- ``sentence-transformers``: Parquet with ``query, positive, negative_1..negative_N`` (sentence-
  transformers and PyLate contrastive training).

Pairing rule: with nway = 2, a query with P positives and N negatives gives max(P, N) rows, row i
pairing positive i mod P with negative i mod N, so every negative and every positive is used. With
nway > 2, each positive gets one row holding the first nway - 1 negatives; queries with fewer
negatives are dropped (counted), since these formats need a fixed row width.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hardneg.artifacts import (
    CANDIDATES_FILE,
    CORPUS_DIR,
    KIND_EMBEDDINGS,
    KIND_EXPORT,
    KIND_MINE,
    RUN_QUERIES_FILE,
    artifact_kind,
    atomic_dir,
    doc_text,
    iter_shard_tables,
    read_manifest,
    write_manifest,
    write_table,
)
from hardneg.config import ExportConfig, as_dict
from hardneg.errors import ArtifactError, ConfigError
from hardneg.progress import NULL_REPORTER, Reporter

COLBERT_TRIPLES = "triples.train.colbert.jsonl"
COLBERT_QUERIES = "queries.train.colbert.tsv"
COLBERT_CORPUS = "corpus.train.colbert.tsv"
QID_MAP = "qid_map.tsv"
PID_MAP = "pid_map.tsv"
TRIPLETS_FILE = "triplets.jsonl"
ST_FILE = "train.parquet"

_LINE_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def clean_tsv_text(text: str) -> str:
    """Text safe for a TSV line: tabs and every kind of line break become spaces."""
    return _LINE_BREAKS.sub(" ", text)


@dataclass
class RunQuery:
    query_id: str
    text: str
    positives: list[str]
    negatives: list[str]


@dataclass
class ExportStats:
    format: str
    nway: int
    queries: int = 0
    rows: int = 0
    queries_without_negatives: int = 0
    rows_dropped_short: int = 0
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class ExportResult:
    path: Path | None
    stats: ExportStats


# --------------------------------------------------------------------------- reading a run


def read_run(run: Path) -> tuple[dict[str, Any], list[RunQuery], Path]:
    """A mining run's manifest, its mined queries with selected negatives (rank order), and the
    embeddings artifact holding the texts."""
    manifest = read_manifest(run, KIND_MINE)
    emb_path = Path(manifest["embeddings"]["path"])
    if artifact_kind(emb_path) != KIND_EMBEDDINGS:
        raise ArtifactError(
            f"{run}: the embeddings it was mined from ({emb_path}) are gone; re-run `hardneg mine` to rebuild them"
        )
    emb = read_manifest(emb_path, KIND_EMBEDDINGS)
    if emb["fingerprint"] != manifest["embeddings"]["fingerprint"]:
        raise ArtifactError(f"{run}: the embeddings at {emb_path} changed since this run was mined; re-run `hardneg mine`")
    queries = pq.read_table(run / RUN_QUERIES_FILE)
    selected = pq.read_table(run / CANDIDATES_FILE, columns=["query_id", "doc_id", "rank", "selected"]).filter(
        pc.field("selected")
    )
    negatives: dict[str, list[tuple[int, str]]] = {}
    for qid, did, rank in zip(selected["query_id"].to_pylist(), selected["doc_id"].to_pylist(), selected["rank"].to_pylist()):
        negatives.setdefault(qid, []).append((rank, did))
    result = []
    for qid, text, pos, status in zip(
        queries["query_id"].to_pylist(),
        queries["text"].to_pylist(),
        queries["positive_ids"].to_pylist(),
        queries["status"].to_pylist(),
    ):
        if status != "mined":
            continue
        result.append(RunQuery(qid, text, pos, [d for _, d in sorted(negatives.get(qid, []))]))
    return manifest, result, emb_path


def iter_documents(emb_path: Path) -> Iterator[tuple[str, str]]:
    """(doc_id, exported text) for the whole corpus, in corpus order."""
    for table in iter_shard_tables(emb_path, CORPUS_DIR, ["doc_id", "title", "text"]):
        for did, title, text in zip(table["doc_id"].to_pylist(), table["title"].to_pylist(), table["text"].to_pylist()):
            yield did, doc_text(title, text)


def doc_texts(emb_path: Path, wanted: set[str]) -> dict[str, str]:
    return {did: text for did, text in iter_documents(emb_path) if did in wanted}


def pair_rows(query: RunQuery, nway: int) -> tuple[list[tuple[str, list[str]]], int]:
    """Rows of (positive, negatives) for one query under the pairing rule; and the rows dropped."""
    pos, neg = query.positives, query.negatives
    if not pos or not neg:
        return [], 0
    if nway == 2:
        return [(pos[i % len(pos)], [neg[i % len(neg)]]) for i in range(max(len(pos), len(neg)))], 0
    need = nway - 1
    if len(neg) < need:
        return [], len(pos)
    return [(p, neg[:need]) for p in pos], 0


def _shuffled(rows: list[Any], config: ExportConfig) -> list[Any]:
    if not config.shuffle:
        return rows
    order = np.random.default_rng(config.seed).permutation(len(rows))
    return [rows[i] for i in order]


# --------------------------------------------------------------------------- formats


def _rows(queries: list[RunQuery], nway: int, stats: ExportStats) -> list[tuple[RunQuery, str, list[str]]]:
    rows: list[tuple[RunQuery, str, list[str]]] = []
    for q in queries:
        if not q.negatives:
            stats.queries_without_negatives += 1
        pairs, dropped = pair_rows(q, nway)
        stats.rows_dropped_short += dropped
        rows += [(q, p, n) for p, n in pairs]
    stats.queries = len({q.query_id for q, _, _ in rows})
    stats.rows = len(rows)
    return rows


def export_colbert(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    rows = _rows(queries, stats.nway, stats)
    exported = list(dict.fromkeys(q.query_id for q, _, _ in rows))
    qid_of = {qid: i for i, qid in enumerate(exported)}
    by_id = {q.query_id: q for q in queries}
    pid_of: dict[str, int] = {}
    with open(out / COLBERT_CORPUS, "w", encoding="utf-8", newline="\n") as corpus, open(
        out / PID_MAP, "w", encoding="utf-8", newline="\n"
    ) as pid_map:
        pid_map.write("pid\tdoc_id\n")
        for pid, (did, text) in enumerate(iter_documents(emb_path)):
            corpus.write(f"{pid}\t{clean_tsv_text(text)}\n")
            pid_map.write(f"{pid}\t{did}\n")
            pid_of[did] = pid
    with open(out / COLBERT_QUERIES, "w", encoding="utf-8", newline="\n") as qf, open(
        out / QID_MAP, "w", encoding="utf-8", newline="\n"
    ) as qid_map:
        qid_map.write("qid\tquery_id\n")
        for qid in exported:
            qf.write(f"{qid_of[qid]}\t{clean_tsv_text(by_id[qid].text)}\n")
            qid_map.write(f"{qid_of[qid]}\t{qid}\n")
    with open(out / COLBERT_TRIPLES, "wb") as tf:
        for q, p, negs in _shuffled(rows, config):
            tf.write(orjson.dumps([qid_of[q.query_id], pid_of[p], *(pid_of[n] for n in negs)]) + b"\n")
    stats.files = [COLBERT_TRIPLES, COLBERT_QUERIES, COLBERT_CORPUS, QID_MAP, PID_MAP]
    validate_colbert(out, stats.nway)


def validate_colbert(directory: Path, nway: int) -> None:
    """Check the ColBERT invariants on written files; raises ArtifactError on the first violation."""

    def fail(file: str, line: int, what: str) -> None:
        raise ArtifactError(f"{directory / file}:{line}: {what}")

    num_docs = 0
    with open(directory / COLBERT_CORPUS, encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                fail(COLBERT_CORPUS, lineno, "line does not end with a newline")
            parts = line[:-1].split("\t")
            if len(parts) != 2:
                fail(COLBERT_CORPUS, lineno, f"expected 'pid<TAB>text', found {len(parts)} fields")
            if parts[0] != str(lineno - 1):
                fail(COLBERT_CORPUS, lineno, f"pid {parts[0]} is not the 0-based line number {lineno - 1}")
            if "\r" in parts[1]:
                fail(COLBERT_CORPUS, lineno, "text contains a carriage return")
            num_docs += 1
    qids: set[int] = set()
    with open(directory / COLBERT_QUERIES, encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[0].isdigit():
                fail(COLBERT_QUERIES, lineno, "expected 'qid<TAB>text' with an integer qid")
            qid = int(parts[0])
            if qid in qids:
                fail(COLBERT_QUERIES, lineno, f"duplicate qid {qid}")
            qids.add(qid)
    with open(directory / COLBERT_TRIPLES, "rb") as fh:
        for lineno, line in enumerate(fh, 1):
            row = orjson.loads(line)
            if not isinstance(row, list) or len(row) != nway + 1 or not all(type(x) is int for x in row):
                fail(COLBERT_TRIPLES, lineno, f"expected [qid, pid+, {nway - 1} x pid-] integers, found {line[:80]!r}")
            if row[0] not in qids:
                fail(COLBERT_TRIPLES, lineno, f"qid {row[0]} is not in {COLBERT_QUERIES}")
            if any(not 0 <= pid < num_docs for pid in row[1:]):
                fail(COLBERT_TRIPLES, lineno, f"a pid is outside the corpus (0..{num_docs - 1})")
            if row[1] in row[2:]:
                fail(COLBERT_TRIPLES, lineno, "the positive appears among the negatives")


def iter_triplets(queries: list[RunQuery], emb_path: Path, config: ExportConfig, stats: ExportStats) -> Iterator[bytes]:
    rows = _rows(queries, 2, stats)
    wanted = {p for _, p, _ in rows} | {n for _, _, ns in rows for n in ns}
    texts = doc_texts(emb_path, wanted)
    for q, p, negs in _shuffled(rows, config):
        if p == negs[0]:
            raise ArtifactError(f"query {q.query_id}: positive {p} selected as a negative (internal error)")
        yield orjson.dumps([q.text, texts[p], texts[negs[0]]]) + b"\n"


def export_triplets(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    with open(out / TRIPLETS_FILE, "wb") as fh:
        for line in iter_triplets(queries, emb_path, config, stats):
            fh.write(line)
    stats.files = [TRIPLETS_FILE]


def export_sentence_transformers(
    queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats
) -> None:
    rows = _rows(queries, stats.nway, stats)
    wanted = {p for _, p, _ in rows} | {n for _, _, ns in rows for n in ns}
    texts = doc_texts(emb_path, wanted)
    n = stats.nway - 1
    rows = _shuffled(rows, config)
    columns: dict[str, list[str]] = {"query": [q.text for q, _, _ in rows], "positive": [texts[p] for _, p, _ in rows]}
    for i in range(n):
        columns[f"negative_{i + 1}"] = [texts[negs[i]] for _, _, negs in rows]
    schema = pa.schema([(name, pa.string()) for name in columns])
    write_table(out / ST_FILE, pa.table(columns, schema=schema), row_group_size=8192)
    stats.files = [ST_FILE]
    table = pq.read_table(out / ST_FILE)
    expected = ["query", "positive"] + [f"negative_{i + 1}" for i in range(n)]
    if table.column_names != expected or table.num_rows != len(rows):
        raise ArtifactError(f"{out / ST_FILE}: columns {table.column_names} / {table.num_rows} rows do not match")


Exporter = Callable[[list[RunQuery], Path, Path, ExportConfig, ExportStats], None]
EXPORTERS: dict[str, Exporter] = {
    "colbert": export_colbert,
    "triplets": export_triplets,
    "sentence-transformers": export_sentence_transformers,
}


def resolve_nway(config: ExportConfig, run_manifest: dict[str, Any]) -> int:
    if config.format == "triplets":
        if config.nway not in (None, 2):
            raise ConfigError("the triplets format holds one negative per row; --nway must be 2 (or unset)")
        return 2
    if config.nway is not None:
        return config.nway
    if config.format == "sentence-transformers":
        return 1 + int(run_manifest["config"]["num_negatives"])
    return 2


def export(
    run: str | Path,
    out: str | Path | None,
    config: ExportConfig,
    *,
    stream: IO[bytes] | None = None,
    force: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> ExportResult:
    """Write training files for a mining run.

    Args:
        run: a mining-run artifact directory.
        out: the output directory (replaced atomically). None with ``stream`` for stdout streaming.
        config: format, nway, shuffling.
        stream: a binary stream to write JSONL triplets to instead of a directory (``--out -``).
        force: replace ``out`` even if it is not an earlier export.
        reporter: progress and status sink.

    Returns:
        The output path (None when streaming) and what was written.
    """
    run = Path(run)
    manifest, queries, emb_path = read_run(run)
    nway = resolve_nway(config, manifest)
    stats = ExportStats(format=config.format, nway=nway)
    if stream is not None:
        if config.format != "triplets":
            raise ConfigError(f"--out - streams JSONL triplets; use --format triplets (got {config.format})")
        for line in iter_triplets(queries, emb_path, config, stats):
            stream.write(line)
        stream.flush()
        return ExportResult(None, stats)
    assert out is not None
    out = Path(out)
    if out.exists() and artifact_kind(out) not in (KIND_EXPORT, None) and not force:
        raise ArtifactError(f"{out}: holds a '{artifact_kind(out)}' artifact; choose another --out or pass --force")
    if out.exists() and artifact_kind(out) is None and any(out.iterdir()) and not force:
        raise ArtifactError(f"{out}: exists and is not a hardneg export; choose another --out or pass --force")
    with atomic_dir(out) as tmp:
        EXPORTERS[config.format](queries, emb_path, tmp, config, stats)
        write_manifest(
            tmp,
            KIND_EXPORT,
            run={"path": str(run.resolve()), "fingerprint": manifest["fingerprint"]},
            model=manifest["model"],
            config=as_dict(config),
            stats=stats.to_dict(),
        )
    return ExportResult(out, stats)
