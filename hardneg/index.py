"""Stage 2, `hardneg index`: an embeddings artifact -> a searchable index artifact.

The index holds the corpus vectors as one float32 ``vectors.npy`` (memory-mapped by search and used
for exact scores), the label -> doc_id map as Parquet, and for HNSW a Voyager index whose labels are
the row numbers. HNSW recall@k against exact search is measured on a sample of queries and stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hardneg.artifacts import (
    CORPUS_DIR,
    DOC_IDS_FILE,
    DOC_IDS_SCHEMA,
    HNSW_FILE,
    KIND_EMBEDDINGS,
    KIND_INDEX,
    VECTORS_FILE,
    fingerprint,
    input_ref,
    read_manifest,
    write_manifest,
)
from hardneg.config import IndexConfig, as_dict
from hardneg.errors import ArtifactError
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.readers import (
    check_vectors,
    iter_shard_batches,
    load_vectors,
    read_queries,
    release_pages,
    vectors_of,
)
from hardneg.search import TUNED_EF_FACTORS, Searcher, exact_topk, search_ef
from hardneg.writes import atomic_dir, prepare_out, write_table, writing

INDEX_VERSION = "index-v1"


@dataclass
class IndexResult:
    path: Path
    manifest: dict[str, Any]
    reused: bool


# Rates measured on the 2-core reference machine by scripts/benchmark_scale.py at 1M documents x 100k
# queries, dim 384 (docs/benchmarks.md). Only their ratios decide `auto`, and those move much less
# between CPUs than the rates themselves.
EXACT_PAIRS_PER_SECOND = 4.5e7
"""Query x document scores per second of exact search (chunked float32 matrix products + top-k,
exact rescoring): 4.35e7 at 100k documents, 4.7e7 at 1M."""
HNSW_INSERTS_PER_THREAD_SECOND = 311.0
"""Vectors added per second and per build thread, at M 16 and ef_construction 200, float32 storage:
311 at 1M documents (611 at 100k: the rate falls as the graph outgrows the caches; e4m3 storage
builds slower, 181 at 1M)."""
HNSW_QUERIES_PER_SECOND = 85.0
"""Top-110 queries per second, exact rescoring and filtering included, at 1M documents and the
search depth the default --target-recall 0.95 needs there (16 x k; recall@110 0.96). Smaller
corpora reach the target at 4 x k and run about 5x faster (424/s at 100k), but there exact search
wins anyway, so the rate that matters for the crossover is the 1M one."""
HNSW_E4M3_BUILD_FACTOR = 1.7
"""e4m3 storage builds this much slower than float32 (311 / 181 inserts/s per thread at 1M, 611 / 391 at
100k): every distance computation decodes the 8-bit floats first."""
REFERENCE_DIM = 384


def estimated_seconds(backend: str, num_docs: int, num_queries: int, config: IndexConfig, dim: int = REFERENCE_DIM) -> float:
    """Expected search cost of mining ``num_queries`` against ``num_docs``: exact search pays per
    query-document pair; HNSW pays a build (scaled by ef_construction and M) plus a cheaper query."""
    scale = dim / REFERENCE_DIM
    if backend == "exact":
        return num_docs * num_queries * scale / EXACT_PAIRS_PER_SECOND
    build_cost = (config.ef_construction / 200) * (config.m / 16) * scale
    if config.storage == "e4m3":
        build_cost *= HNSW_E4M3_BUILD_FACTOR
    return num_docs * build_cost / (HNSW_INSERTS_PER_THREAD_SECOND * config.threads) + num_queries * scale / HNSW_QUERIES_PER_SECOND


def choose_backend(config: IndexConfig, num_docs: int, num_queries: int, dim: int = REFERENCE_DIM) -> str:
    """`auto` picks whichever backend `estimated_seconds` expects to finish first (exact on a tie:
    it needs no build and no extra memory, and its rankings are exact)."""
    if config.backend != "auto":
        return config.backend
    exact = estimated_seconds("exact", num_docs, num_queries, config, dim)
    return "exact" if exact <= estimated_seconds("hnsw", num_docs, num_queries, config, dim) else "hnsw"


def index_fingerprint(embeddings_manifest: dict[str, Any], backend: str, config: IndexConfig) -> str:
    params: dict[str, Any] = {"backend": backend}
    if backend == "hnsw":
        params.update(m=config.m, ef_construction=config.ef_construction, storage=config.storage, seed=config.seed)
    return fingerprint(INDEX_VERSION, embeddings_manifest["fingerprint"], params)


def build_index(
    embeddings: str | Path,
    out: str | Path,
    config: IndexConfig,
    *,
    force: bool = False,
    shared: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> IndexResult:
    """Build an index artifact at ``out`` from the embeddings artifact at ``embeddings``.

    Args:
        embeddings: an embeddings artifact directory.
        out: the index artifact directory to write.
        config: backend (exact / hnsw / auto) and HNSW parameters.
        force: rebuild even when an up-to-date index is there.
        shared: ``out`` is a cache entry other runs may be writing: wait for them instead of failing.
        reporter: progress and status sink.

    Returns:
        The artifact's path and manifest (with the measured recall for HNSW), and whether it was reused.
    """
    embeddings = Path(embeddings).resolve()
    out = Path(out)
    emb = read_manifest(embeddings, KIND_EMBEDDINGS)
    num_docs, dim = int(emb["counts"]["docs"]), int(emb["model"]["dim"])
    num_queries = int(emb["counts"].get("queries", 0))
    backend = choose_backend(config, num_docs, num_queries, dim)
    fp = index_fingerprint(emb, backend, config)
    identity = {"embeddings_fingerprint": emb["fingerprint"], "backend": backend}
    with writing(out, [embeddings], wait=shared, log=reporter.log) as out:
        existing = prepare_out(out, KIND_INDEX, fp, force, what="index", changed="explain", identity=identity)
        if existing is not None:
            reporter.log(f"index at {out} is up to date; reusing it")
            return IndexResult(out, existing, reused=True)

        started = time.perf_counter()
        timings: dict[str, float] = {}
        with atomic_dir(out) as tmp:
            vectors = np.lib.format.open_memmap(tmp / VECTORS_FILE, mode="w+", dtype=np.float32, shape=(num_docs, dim))
            ids: list[str] = []
            hashes: list[str] = []
            row = 0
            label = "Loading vectors"
            reporter.progress(label, 0, num_docs)
            for shard, start, table in iter_shard_batches(embeddings, CORPUS_DIR, ["doc_id", "text_hash", "embedding"]):
                block = vectors_of(table)
                names = table["doc_id"]
                check_vectors(block, lambda r, shard=shard, start=start, names=names: f"{shard}: row {start + r} (document {names[r].as_py()!r})")  # type: ignore[misc]
                vectors[row : row + len(block)] = block
                row += len(block)
                ids += table["doc_id"].to_pylist()
                hashes += table["text_hash"].to_pylist()
                reporter.progress(label, len(block))
                release_pages(vectors)  # written pages go to the file; they need not stay resident
            vectors.flush()
            if row != num_docs:
                raise ArtifactError(f"{embeddings}: manifest says {num_docs} documents but the shards hold {row}")
            write_table(
                tmp / DOC_IDS_FILE,
                pa.Table.from_arrays(
                    [pa.array(np.arange(num_docs, dtype=np.int64)), pa.array(ids, pa.string()), pa.array(hashes, pa.string())],
                    schema=DOC_IDS_SCHEMA,
                ),
            )
            del ids, hashes
            timings["load"] = time.perf_counter() - started
            params: dict[str, Any] = {"backend": backend}
            if config.backend == "auto":
                params["auto"] = {
                    b: round(estimated_seconds(b, num_docs, num_queries, config, dim), 1) for b in ("exact", "hnsw")
                }
                reporter.log(
                    f"index auto: {backend} (estimated search cost for {num_docs:,} documents x {num_queries:,} queries: "
                    f"exact {params['auto']['exact']:,.0f} s, HNSW {params['auto']['hnsw']:,.0f} s)"
                )
            recall: dict[str, Any] | None = None
            if backend == "hnsw":
                _build_hnsw(vectors, tmp / HNSW_FILE, config, reporter)
                params.update(
                    m=config.m,
                    ef_construction=config.ef_construction,
                    storage=config.storage,
                    seed=config.seed,
                    ef_search=config.ef_search,
                    threads=config.threads,
                )
                del vectors
                timings["build"] = time.perf_counter() - started - timings["load"]
                recall = tune_search_depth(tmp, embeddings, config, params, reporter)
                timings["recall"] = time.perf_counter() - started - timings["load"] - timings["build"]
            else:
                del vectors
            manifest = write_manifest(
                tmp,
                KIND_INDEX,
                fingerprint=fp,
                identity=identity,
                backend=backend,
                params=params,
                recall=recall,
                embeddings=input_ref(embeddings, out, fingerprint=emb["fingerprint"]),
                model=emb["model"],
                counts={"docs": num_docs},
                config=as_dict(config),
                timings={**{k: round(v, 3) for k, v in timings.items()}, "total": round(time.perf_counter() - started, 3)},
            )
        return IndexResult(out, manifest, reused=False)


def _build_hnsw(vectors: np.ndarray, path: Path, config: IndexConfig, reporter: Reporter) -> None:
    import voyager

    storage = voyager.StorageDataType.E4M3 if config.storage == "e4m3" else voyager.StorageDataType.Float32
    index = voyager.Index(
        voyager.Space.Cosine,
        num_dimensions=int(vectors.shape[1]),
        M=config.m,
        ef_construction=config.ef_construction,
        random_seed=config.seed,
        max_elements=int(vectors.shape[0]),
        storage_data_type=storage,
    )
    label = "Building HNSW"
    reporter.progress(label, 0, int(vectors.shape[0]))
    # Never more than 1M vectors per add_items call: larger calls corrupted indexes (spotify/voyager#48).
    for start in range(0, vectors.shape[0], config.add_chunk):
        block = np.ascontiguousarray(vectors[start : start + config.add_chunk], dtype=np.float32)
        release_pages(vectors)
        index.add_items(block, ids=list(range(start, start + len(block))), num_threads=config.threads)
        reporter.progress(label, len(block))
    index.save(str(path))


def tune_search_depth(
    index_dir: Path, embeddings: Path, config: IndexConfig, params: dict[str, Any], reporter: Reporter
) -> dict[str, Any] | None:
    """Measure recall@k on the sample and, unless the depth is fixed (``ef_search``), pick the
    shallowest of 4, 8, 16 x k that reaches ``target_recall`` (else the deepest), stored as
    ``params["ef_factor"]`` for search. Returns the manifest's ``recall`` record."""
    tune = config.ef_search is None and bool(config.target_recall)
    depths = [f * config.recall_k for f in TUNED_EF_FACTORS] if tune else None
    found = recall_by_depth(index_dir, embeddings, config, depths, stop_at=config.target_recall if tune else None)
    if not found:
        return None
    for row in found:
        row.pop("seconds")
    chosen = found[-1]
    recall = dict(chosen)
    if tune:
        params["ef_factor"] = TUNED_EF_FACTORS[len(found) - 1]
        recall["target"] = config.target_recall
        recall["by_depth"] = [{"query_ef": r["query_ef"], "recall": r["recall"]} for r in found]
    reporter.log(
        f"HNSW recall@{chosen['k']} vs exact on {chosen['queries']} queries: {chosen['recall']:.4f} "
        f"(query_ef {chosen['query_ef']})"
    )
    if tune and chosen["recall"] < config.target_recall:
        reporter.log(
            f"HNSW recall stays below the target {config.target_recall} at the deepest search tried "
            f"(query_ef {chosen['query_ef']}); a larger --m, or exact search (--exact), gets closer"
        )
    return recall


def recall_by_depth(
    index_dir: Path,
    embeddings: Path,
    config: IndexConfig,
    depths: list[int] | None = None,
    threads: int = -1,
    stop_at: float | None = None,
) -> list[dict[str, Any]]:
    """Recall@k against exact search, and the HNSW query time, at each search depth (default: the
    configured one) on a seeded sample of ``config.recall_sample`` queries; the exact answer is
    computed once. Depths below k are skipped; with ``stop_at``, none deeper than the first whose
    recall reaches it."""
    if config.recall_sample == 0:
        return []
    _, _, queries = read_queries(embeddings)
    if len(queries) == 0:
        return []
    rng = np.random.default_rng(config.seed)
    take = min(config.recall_sample, len(queries))
    sample = queries[np.sort(rng.choice(len(queries), size=take, replace=False))]
    searcher = _RawSearcher(index_dir, config)
    k = min(config.recall_k, searcher.size)
    exact, _ = exact_topk(searcher.vectors, sample, k)
    found = []
    for ef in depths or [search_ef(k, config.ef_search)]:
        if ef < k:
            continue
        start = time.perf_counter()
        approx = searcher.hnsw.query(sample, k=k, query_ef=ef, num_threads=threads)[0].astype(np.int64)
        seconds = time.perf_counter() - start
        hits = sum(len(set(a.tolist()) & set(e.tolist())) for a, e in zip(approx, exact))
        found.append({"k": k, "queries": take, "query_ef": ef, "recall": round(hits / (take * k), 6), "seconds": seconds})
        if stop_at is not None and found[-1]["recall"] >= stop_at:
            break
    return found


class _RawSearcher:
    """The pieces of an index directory before its manifest exists."""

    def __init__(self, index_dir: Path, config: IndexConfig) -> None:
        import voyager

        self.vectors = load_vectors(index_dir / VECTORS_FILE)
        self.hnsw = voyager.Index.load(str(index_dir / HNSW_FILE))
        self.size = int(self.vectors.shape[0])


__all__ = ["IndexResult", "Searcher", "build_index", "choose_backend", "estimated_seconds", "recall_by_depth", "tune_search_depth"]
