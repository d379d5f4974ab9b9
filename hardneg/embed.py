"""Stage 1, `hardneg embed`: texts -> an embeddings artifact of Parquet shards (ids, texts, vectors).

The corpus streams through in shards of ``shard_size`` texts; each finished shard is written
atomically into ``<out>.partial/``, so a killed run resumes from the last complete shard. Texts
already embedded by the same model (same fingerprint) in a previous artifact at ``out`` are reused.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa

from hardneg.artifacts import (
    CORPUS_DIR,
    KIND_EMBEDDINGS,
    QRELS_FILE,
    QRELS_SCHEMA,
    QUERIES_DIR,
    artifact_kind,
    doc_text,
    docs_schema,
    fingerprint,
    is_blank,
    queries_schema,
    read_manifest,
    text_hash,
    write_manifest,
)
from hardneg.config import EmbedConfig, as_dict
from hardneg.encoders import Encoder, load_encoder, longest_first
from hardneg.errors import HardnegError, ModelError
from hardneg.inputs import Dataset, Document, Query
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.readers import bad_vectors, read_table, vectors_of
from hardneg.writes import (
    STATE_FILE,
    check_writable_parent,
    commit_dir,
    copy_file_atomic,
    list_shards,
    prepare_out,
    prepare_partial,
    shard_name,
    unit_selector,
    write_errors,
    write_table,
    writing,
)

T = TypeVar("T")
EMBED_VERSION = "embed-v1"


@dataclass
class EmbedResult:
    path: Path
    manifest: dict[str, Any]
    reused: bool
    """True when an up-to-date artifact was already at ``path`` and nothing was encoded."""
    complete: bool = True
    """False for a job that wrote its share of the shards (``shard``) and left the rest to others."""


def batched(items: Iterable[T], size: int) -> Iterator[list[T]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def _exact_hash(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def embeddings_fingerprint(encoder: Encoder, dataset: Dataset, config: EmbedConfig) -> str:
    """Identity of an embeddings artifact: what computes the vectors, the input, the sharding."""
    return fingerprint(EMBED_VERSION, encoder.fingerprint, dataset.fingerprint, config.shard_size)


PROGRESS_BATCHES = 2
"""Encoder batches per progress update (128 texts at the default batch size of 64): the texts are
length-sorted first, so slicing keeps sentence-transformers' padding savings."""


class _VectorCache:
    """Vectors of texts embedded before by the same model, keyed by the exact text's hash."""

    def __init__(self) -> None:
        self._vectors: dict[str, np.ndarray] = {}

    def load_previous(self, previous: Path, encoder_fingerprint: str) -> None:
        if artifact_kind(previous) != KIND_EMBEDDINGS:
            return
        manifest = read_manifest(previous, KIND_EMBEDDINGS)
        if manifest["model"]["fingerprint"] != encoder_fingerprint:
            return
        for sub, kind in ((CORPUS_DIR, "document"), (QUERIES_DIR, "query")):
            for shard in list_shards(previous / sub):
                table = read_table(shard)
                vectors = vectors_of(table)
                texts = (
                    [doc_text(t, x) for t, x in zip(table["title"].to_pylist(), table["text"].to_pylist())]
                    if kind == "document"
                    else table["text"].to_pylist()
                )
                for text, vector in zip(texts, vectors):
                    self._vectors[kind[0] + _exact_hash(text)] = vector

    def encode(
        self, encoder: Encoder, texts: list[str], kind: str, progress: Callable[[int], None] | None = None
    ) -> tuple[np.ndarray, int]:
        """Vectors for ``texts``; only texts not seen before (in the previous artifact or earlier in
        this batch) reach the encoder. Fresh vectors are not kept, so memory stays bounded by the
        shard. Returns (vectors, number encoded).

        The texts to encode go to the encoder longest first in slices of ``PROGRESS_BATCHES``
        batches (the order sentence-transformers would batch them in anyway), with or without
        ``progress`` (called after each slice, so a bar moves during a shard): every text is encoded
        in the same batch whether or not a bar is shown, and whatever the engine. In fp32 that is
        only tidy; in bf16 a vector depends at ~1e-3 on its batch's padding, so it is what keeps a
        quiet run, a run with a bar and a Ray run byte-identical."""
        keys = [kind[0] + _exact_hash(t) for t in texts]
        todo: dict[str, str] = {}
        for key, text in zip(keys, texts):
            if key not in self._vectors and key not in todo and not is_blank(text):
                todo[key] = text
        fresh: dict[str, np.ndarray] = {}
        if todo:
            batch = int(getattr(getattr(encoder, "config", None), "batch_size", 64) or 64)
            pending = list(todo)
            order = [pending[i] for i in longest_first(list(todo.values()))]
            step = batch * PROGRESS_BATCHES
            for start in range(0, len(order), step):
                part = order[start : start + step]
                fresh.update(zip(part, encoder.encode([todo[k] for k in part], kind)))  # type: ignore[arg-type]
                if progress is not None:
                    progress(len(part))
        out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
        for row, key in enumerate(keys):
            vector = fresh.get(key)
            if vector is None:
                vector = self._vectors.get(key)
            if vector is not None:
                out[row] = vector
        return out, len(todo)


def _check_encoded(vectors: np.ndarray, ids: list[str], texts: list[str], kind: str, encoder: Encoder) -> None:
    """Never write a vector that is not a finite unit vector (zeros for a blank text): fp16 on a GPU
    can overflow to inf/NaN, and a broken model can return zeros. Names the texts."""
    bad = np.flatnonzero(bad_vectors(vectors, [is_blank(t) for t in texts]))
    if not len(bad):
        return
    precision = getattr(encoder, "precision", "fp32")
    shown = ", ".join(repr(ids[i]) for i in bad[:5]) + (f" and {len(bad) - 5} more" if len(bad) > 5 else "")
    hint = (f"; in {precision} this is usually an overflow: re-run with --precision fp32" if precision != "fp32"
            else "; check the model (it should return finite, normalisable vectors)")
    raise ModelError(f"the model returned NaN, infinite or zero vectors for {kind} id(s) {shown}{hint}. Nothing was written.")


def _vector_array(vectors: np.ndarray) -> pa.FixedSizeListArray:
    dim = vectors.shape[1]
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), type=pa.float32()), dim)


def _write_docs_shard(path: Path, docs: list[Document], vectors: np.ndarray) -> None:
    table = pa.Table.from_arrays(
        [
            pa.array([d.doc_id for d in docs], pa.string()),
            pa.array([d.title for d in docs], pa.string()),
            pa.array([d.text for d in docs], pa.string()),
            pa.array([text_hash(doc_text(d.title, d.text)) for d in docs], pa.string()),
            _vector_array(vectors),
        ],
        schema=docs_schema(vectors.shape[1]),
    )
    write_table(path, table)


def _write_queries_shard(path: Path, queries: list[Query], vectors: np.ndarray) -> None:
    table = pa.Table.from_arrays(
        [
            pa.array([q.query_id for q in queries], pa.string()),
            pa.array([q.text for q in queries], pa.string()),
            pa.array([text_hash(q.text) for q in queries], pa.string()),
            _vector_array(vectors),
        ],
        schema=queries_schema(vectors.shape[1]),
    )
    write_table(path, table)


def embed(
    dataset: Dataset,
    out: str | Path,
    config: EmbedConfig,
    *,
    encoder: Encoder | None = None,
    force: bool = False,
    reuse: Sequence[Path] = (),
    corpus_from: Sequence[Path] = (),
    shared: bool = False,
    shard: tuple[int, int] | None = None,
    ray_address: str | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> EmbedResult:
    """Encode a dataset's corpus and queries into an embeddings artifact at ``out``.

    Args:
        dataset: a validated input (see ``hardneg.inputs.load_input``).
        out: the artifact directory to write.
        config: the embed configuration.
        encoder: an encoder to use instead of loading ``config``'s model (tests inject a fake).
        force: rebuild even when an up-to-date artifact is there, and replace a foreign one.
        reuse: other embeddings artifacts whose vectors may be reused when they were computed by
            the same model (same weights fingerprint) for the exact same text; others are ignored.
        corpus_from: more embeddings artifacts that may hold this artifact's corpus shards
            already (``reuse`` is searched first): the first one made by the same model from the
            same corpus (whatever its queries or split) with the same shard size lends its corpus
            files, which are then linked, not encoded (they are the files encoding would write).
            The others, and other artifacts, are ignored.
        shared: ``out`` is a cache entry other runs may be writing: wait for them (then reuse
            their work) instead of failing (see ``hardneg.writes.writing``).
        shard: ``(i, n)``: encode only every n-th shard starting at i and return without committing
            (``complete=False``), so n independent jobs (a Slurm array) share the work; a last call
            without ``shard`` finds every shard and commits. Jobs hold a shared lock on ``out``.
        ray_address: the Ray cluster for ``config.engine == "ray"`` (default: ``RAY_ADDRESS``, else
            a local cluster).
        reporter: progress and status sink.

    Returns:
        The artifact's path and manifest, and whether it was reused as it was.
    """
    out = Path(out)
    select = unit_selector(shard)
    if line := dataset.left_out_line():
        reporter.log(f"warning: {line}")
    own_encoder = encoder is None
    encoder = encoder or load_encoder(config)
    with writing(out, wait=shared, log=reporter.log, lock="shared" if shard else "exclusive") as out:
        try:
            fp = embeddings_fingerprint(encoder, dataset, config)
            identity = {"model_fingerprint": encoder.fingerprint, "input_fingerprint": dataset.fingerprint}
            existing = prepare_out(out, KIND_EMBEDDINGS, fp, force, what="embeddings artifact", changed="explain", identity=identity)
            if existing is not None:
                reporter.log(f"embeddings at {out} are up to date; reusing them")
                return EmbedResult(out, existing, reused=True)
            remote = None
            if config.engine == "ray":
                from hardneg.ray_engine import RayEncode

                remote = RayEncode(config, ray_address, reporter)
            with write_errors(out):
                return _embed(dataset, out, config, encoder, fp, identity, force, reuse, reporter, select, remote, config.engine,
                              [*reuse, *corpus_from])
        finally:
            if own_encoder:
                encoder.close()


def _borrow_corpus(
    partial: Path, dataset: Dataset, config: EmbedConfig, encoder_fingerprint: str, lenders: Sequence[Path], reporter: Reporter
) -> set[int]:
    """Link the corpus shards of the first of ``lenders`` made by the same model from the same
    corpus with the same shard size into ``partial``; returns the shard indices it lent. An
    embedding depends only on the model and its text, and a corpus shard only on the model, the
    corpus and the shard size, so the linked files are those encoding would write."""
    wanted = -(-dataset.num_docs // config.shard_size)
    for lender in lenders:
        try:
            manifest = read_manifest(lender, KIND_EMBEDDINGS)
            if (
                manifest["model"]["fingerprint"] != encoder_fingerprint
                or manifest.get("input", {}).get("corpus_fingerprint") != dataset.corpus_fingerprint
                or manifest.get("config", {}).get("shard_size") != config.shard_size
            ):
                continue
            sources = [lender / CORPUS_DIR / shard_name(i) for i in range(wanted)]
            if not all(source.is_file() for source in sources):
                continue
            lent = set()
            for index, source in enumerate(sources):
                target = partial / CORPUS_DIR / shard_name(index)
                if not target.is_file():
                    copy_file_atomic(source, target)
                    lent.add(index)
        except (HardnegError, OSError, KeyError, TypeError):
            continue  # a lender removed or damaged meanwhile: encode instead
        if lent:
            reporter.log(f"corpus vectors: {dataset.num_docs} documents from {lender} (same model, same corpus)")
        return lent
    return set()


@dataclass
class Unit:
    """One shard of work: ``items`` (documents or queries) to encode into ``<sub>/part-<index>``.
    ``number`` counts units over both subs, for splitting the work between jobs."""

    sub: str
    index: int
    number: int
    items: list[Any]


RemoteEncode = Callable[[Path, list[Unit]], dict[tuple[str, int], tuple[int, int]]]
"""An engine: encodes ``units`` into the work directory, returns (encoded, reused) per unit."""


def plan_units(dataset: Dataset, shard_size: int, only: str | None = None) -> Iterator[Unit]:
    """The shards an embeddings artifact is made of, in order: the corpus, then the queries. Every
    engine writes exactly these files, so the artifact does not depend on who encoded it."""
    number = 0
    for index, docs in enumerate(batched(dataset.iter_corpus(), shard_size) if only in (None, CORPUS_DIR) else ()):
        yield Unit(CORPUS_DIR, index, number, docs)
        number += 1
    if only == CORPUS_DIR:
        return
    if only == QUERIES_DIR:  # numbering continues after the corpus shards
        number = -(-dataset.num_docs // shard_size)
    for index, queries in enumerate(batched(dataset.queries, shard_size)):
        yield Unit(QUERIES_DIR, index, number, queries)
        number += 1


def encode_unit(
    unit: Unit, path: Path, encoder: Encoder, cache: _VectorCache | None = None, progress: Callable[[int], None] | None = None
) -> tuple[int, float]:
    """Encode one shard and write its Parquet file atomically; returns (texts encoded, seconds
    writing)."""
    cache = cache or _VectorCache()
    if unit.sub == CORPUS_DIR:
        texts = [doc_text(d.title, d.text) for d in unit.items]
        vectors, encoded = cache.encode(encoder, texts, "document", progress)
        _check_encoded(vectors, [d.doc_id for d in unit.items], texts, "document", encoder)
        t0 = time.perf_counter()
        _write_docs_shard(path, unit.items, vectors)
    else:
        texts = [q.text for q in unit.items]
        vectors, encoded = cache.encode(encoder, texts, "query", progress)
        _check_encoded(vectors, [q.query_id for q in unit.items], texts, "query", encoder)
        t0 = time.perf_counter()
        _write_queries_shard(path, unit.items, vectors)
    return encoded, time.perf_counter() - t0


def _embed(
    dataset: Dataset,
    out: Path,
    config: EmbedConfig,
    encoder: Encoder,
    fp: str,
    identity: dict[str, str],
    force: bool,
    reuse: Sequence[Path],
    reporter: Reporter,
    select: Callable[[int], bool] | None = None,
    remote: RemoteEncode | None = None,
    engine: str = "local",
    corpus_from: Sequence[Path] = (),
) -> EmbedResult:
    check_writable_parent(out)
    partial = out.with_name(out.name + ".partial")
    resumed = prepare_partial(partial, fp, [CORPUS_DIR, QUERIES_DIR], clean=select is None)
    lent = _borrow_corpus(partial, dataset, config, encoder.fingerprint, corpus_from, reporter)
    cache = _VectorCache()
    # Vectors are a pure function of (model fingerprint, exact text): even a forced rebuild may reuse them.
    for previous in [out, *reuse]:
        cache.load_previous(Path(previous), encoder.fingerprint)
    counts = {"docs": 0, "queries": 0, "encoded": 0, "reused": 0, "resumed_shards": 0, "left_to_others": 0}
    started = time.perf_counter()
    dim = encoder.dim  # loads the model (the manifest needs its dimension in any case)
    timings = {"load_model": time.perf_counter() - started, "encode": 0.0, "write": 0.0}
    if resumed:
        reporter.log(f"resuming from {partial}")

    # Only an engine needs the plan up front (to hand out the missing shards); a split job streams.
    units = list(plan_units(dataset, config.shard_size)) if remote is not None else None
    done_remotely: dict[tuple[str, int], tuple[int, int]] = {}
    if remote is not None and units is not None:
        # Another engine encodes the missing shards into the same work directory (same files, same
        # names); the loop below then finds them done, exactly as when resuming.
        todo = [u for u in units if not (partial / u.sub / shard_name(u.index)).is_file()]
        done_remotely = remote(partial, todo)

    for sub, total, label in ((CORPUS_DIR, dataset.num_docs, "Embedding corpus"), (QUERIES_DIR, len(dataset.queries), "Embedding queries")):
        reporter.progress(label, 0, total)
        stream = (u for u in units if u.sub == sub) if units is not None else plan_units(dataset, config.shard_size, only=sub)
        for unit in stream:
            path = partial / sub / shard_name(unit.index)
            counts["docs" if sub == CORPUS_DIR else "queries"] += len(unit.items)
            if (sub, unit.index) in done_remotely:
                encoded, reused = done_remotely[(sub, unit.index)]
                counts["encoded"] += encoded
                counts["reused"] += reused
            elif sub == CORPUS_DIR and unit.index in lent:
                counts["reused"] += len(unit.items)
            elif path.is_file():
                counts["resumed_shards"] += 1
            elif select is not None and not select(unit.number):
                counts["left_to_others"] += 1
            else:
                t0 = time.perf_counter()
                moved = [0]

                def advance(n: int, label: str = label, moved: list[int] = moved) -> None:
                    moved[0] += n
                    reporter.progress(label, n)

                encoded, wrote = encode_unit(unit, path, encoder, cache, advance)
                timings["encode"] += time.perf_counter() - t0 - wrote
                timings["write"] += wrote
                counts["encoded"] += encoded
                counts["reused"] += len(unit.items) - encoded
                reporter.progress(label, len(unit.items) - moved[0])  # reused and blank texts
                continue
            reporter.progress(label, len(unit.items))
    if select is not None:
        # A Slurm-array job (--shard-index/--num-shards): its shards are written; the last call
        # without those flags finds every shard and commits the artifact. A job never commits:
        # it holds a shared lock, and other jobs may still be writing.
        return EmbedResult(out, {"partial": str(partial), "counts": counts}, reused=False, complete=False)

    qrels = pa.Table.from_arrays(
        [
            pa.array([q for q, _, _ in dataset.qrels], pa.string()),
            pa.array([d for _, d, _ in dataset.qrels], pa.string()),
            pa.array([s for _, _, s in dataset.qrels], pa.float32()),
        ],
        schema=QRELS_SCHEMA,
    )
    write_table(partial / QRELS_FILE, qrels)
    spec = encoder.spec
    (partial / STATE_FILE).unlink()
    manifest = write_manifest(
        partial,
        KIND_EMBEDDINGS,
        fingerprint=fp,
        identity=identity,
        model={
            "name": spec.name,
            "path": spec.path,
            "fingerprint": encoder.fingerprint,
            "weights_sha256": getattr(encoder, "weights_sha256", None),
            "precision": getattr(encoder, "precision", "fp32"),
            "backend": getattr(encoder, "backend", "torch"),
            "onednn": getattr(encoder, "onednn", False),
            "query_prompt": spec.query_prompt,
            "corpus_prompt": spec.corpus_prompt,
            "prompts_source": spec.prompts_source,
            "max_length": getattr(encoder, "effective_max_length", encoder.max_length),
            "dim": dim,
            "normalized": True,
            "metric": "cosine",
        },
        input={"description": dataset.description, "fingerprint": dataset.fingerprint, "corpus_fingerprint": dataset.corpus_fingerprint,
               **({"left_out": dataset.left_out} if dataset.left_out else {})},
        counts={
            "docs": counts["docs"],
            "queries": counts["queries"],
            "qrels": len(dataset.qrels),
            "positives": sum(1 for _, _, s in dataset.qrels if s > 0),
            "encoded": counts["encoded"],
            "reused": counts["reused"],
            "resumed_shards": counts["resumed_shards"],
        },
        engine=engine,
        config=as_dict(config),
        timings={**{k: round(v, 3) for k, v in timings.items()}, "total": round(time.perf_counter() - started, 3)},
    )
    commit_dir(partial, out)
    return EmbedResult(out, manifest, reused=False)
