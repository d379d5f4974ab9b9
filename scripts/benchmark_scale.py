"""Mining at scale from precomputed embeddings: peak memory, queries/s, HNSW recall vs exact.

Usage:
    python scripts/benchmark_scale.py --docs 1000000 --queries 100000 --dim 384 [--write docs/benchmarks.md]

Synthetic vectors shaped like real sentence embeddings. Isotropic clusters are the wrong model: in
384 dimensions their neighbours are nearly random, which makes HNSW look far worse than it is on
real data (recall@110 0.74 at ef 220 on them). Instead the generator copies what we measured on
all-MiniLM-L6-v2's SciFact corpus vectors (`hardneg index` of `../shared/data/scifact`):

- the covariance spectrum: eigenvalues fall as i^-0.89 (fitted on eigenvalues 4-200), total
  variance 0.87, in a random rotation, around a common mean direction of norm 0.30;
- the neighbour profile, from nested topics: every vector is the mean plus one centre from each of
  three levels (groups of about 1,000, 100 and 10 documents, 10%, 30% and 30% of the variance) plus
  its own noise (the other 30%). On 5,183 documents this gives mean cosine to the 1st / 10th /
  110th neighbour and median cosine of 0.62 / 0.52 / 0.39 / 0.12, against 0.68 / 0.53 / 0.39 / 0.13
  for the real vectors.

A query copies a random document's topics and draws its own noise; that document is its positive.
Ids are real strings. The vectors go through the real `embed` stage (a lookup encoder stands in for
the model), then `hardneg index` (exact, HNSW float32, HNSW e4m3) and `hardneg mine` run as
subprocesses whose own peak RSS and wall time are measured. HNSW recall@110 against exact search
is measured on a sample of queries at several search depths (ef).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from _bench import (  # scripts/_bench.py (scripts run as `python scripts/...`)
    emit,
    measured,
    measured_tree,
)

SPECTRUM_ALPHA = 0.89
TOTAL_VARIANCE = 0.87
MEAN_NORM = 0.30
LEVELS = ((1000, 0.1), (100, 0.3), (10, 0.3))  # (documents per centre, share of the variance)


def synthetic(n_docs: int, n_queries: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Document vectors, query vectors and each query's positive document row (see the docstring)."""
    rng = np.random.default_rng(seed)
    lam = np.arange(1, dim + 1, dtype=np.float64) ** -SPECTRUM_ALPHA
    lam *= TOTAL_VARIANCE / lam.sum()
    rotation, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    rotation = rotation.astype(np.float32)
    mean = rng.standard_normal(dim)
    mean = (mean * MEAN_NORM / np.linalg.norm(mean)).astype(np.float32)
    centres = [
        ((rng.standard_normal((max(1, n_docs // size), dim)) * np.sqrt(lam * share)) @ rotation.T).astype(np.float32)
        for size, share in LEVELS
    ]
    noise_scale = np.sqrt(lam * (1 - sum(share for _, share in LEVELS))).astype(np.float32)
    doc_topics = [rng.integers(0, len(c), size=n_docs).astype(np.int32) for c in centres]
    positives = rng.integers(0, n_docs, size=n_queries)
    query_topics = [t[positives] for t in doc_topics]

    def draw(topics: list[np.ndarray], n: int) -> np.ndarray:
        out = np.empty((n, dim), dtype=np.float32)
        for start in range(0, n, 65536):
            stop = min(n, start + 65536)
            x = (rng.standard_normal((stop - start, dim), dtype=np.float32) * noise_scale) @ rotation.T
            x += mean
            for level, t in zip(centres, topics):
                x += level[t[start:stop]]
            out[start:stop] = x / np.linalg.norm(x, axis=1, keepdims=True)
        return out

    return draw(doc_topics, n_docs), draw(query_topics, n_queries), positives


class LookupEncoder:
    """Stands in for a model: the text "<kind> <row>" maps to a precomputed row."""

    def __init__(self, docs: np.ndarray, queries: np.ndarray) -> None:
        from hardneg.models import ModelSpec

        self.docs, self.queries = docs, queries
        self.dim = docs.shape[1]
        self.max_length = None
        self.spec = ModelSpec("synthetic", None, "", "", "none")

    @property
    def fingerprint(self) -> str:
        return f"synthetic-{len(self.docs)}-{len(self.queries)}-{self.dim}"

    def encode(self, texts, kind):
        table = self.queries if kind == "query" else self.docs
        return table[[int(t.rsplit(" ", 1)[1]) for t in texts]]

    def close(self) -> None:
        return None


def write_beir(root: Path, n_docs: int, queries_positive: np.ndarray) -> None:
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as fh:
        for i in range(n_docs):
            fh.write(f'{{"_id": "doc-{i:08d}", "title": "", "text": "document {i}"}}\n')
    with open(root / "queries.jsonl", "w") as fh:
        for i in range(len(queries_positive)):
            fh.write(f'{{"_id": "query-{i:07d}", "text": "query {i}"}}\n')
    with open(root / "qrels" / "train.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n")
        for i, d in enumerate(queries_positive):
            fh.write(f"query-{i:07d}\tdoc-{int(d):08d}\t1\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--recall-sample", type=int, default=1000)
    parser.add_argument("--ef-sweep", default="110,220,440,880", help="HNSW search depths for the recall table")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--backends", default="hnsw-float32,hnsw-e4m3,exact")
    parser.add_argument("--m", type=int, default=16, help="HNSW links per node")
    parser.add_argument("--ef-construction", type=int, default=200, help="HNSW build depth")
    parser.add_argument("--workdir", type=Path, help="keep artifacts here (default: a temporary directory)")
    parser.add_argument("--engines", default="local", help="mining engines for the exact backend, e.g. local,ray (side by side)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    from hardneg.config import EmbedConfig
    from hardneg.embed import embed
    from hardneg.inputs import load_input

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hardneg-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    docs, queries, positives = synthetic(args.docs, args.queries, args.dim, seed=0)
    data = work / "data"
    if not (data / "corpus.jsonl").exists():
        write_beir(data, args.docs, positives)
    emb = work / "emb"
    embed(load_input(data), emb, EmbedConfig(shard_size=50_000), encoder=LookupEncoder(docs, queries))
    prep = time.perf_counter() - t0
    del docs, queries

    efs = [int(e) for e in args.ef_sweep.split(",") if e.strip()]
    rows, sweep = [], []
    rates: dict[str, float] = {}
    workers: dict[str, dict[str, float]] = {}
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        label = backend if backend == "exact" else f"{backend} M {args.m}, efC {args.ef_construction}"
        tag = backend if backend == "exact" else f"{backend}-m{args.m}-efc{args.ef_construction}"
        idx = work / f"idx-{tag}"
        cmd = [sys.executable, "-m", "hardneg", "index", str(emb), "--out", str(idx), "--json", "--quiet",
               "--threads", str(args.threads), "--recall-sample", str(args.recall_sample)]
        if backend == "exact":
            cmd.append("--exact")
        else:
            cmd += ["--hnsw", "--storage", backend.split("-", 1)[1], "--m", str(args.m),
                    "--ef-construction", str(args.ef_construction)]
        i_wall, i_rss, i_out = measured(cmd)
        recall = json.loads(i_out)["manifest"].get("recall")
        engines = [e.strip() for e in args.engines.split(",") if e.strip()] if backend == "exact" else ["local"]
        for engine in engines:
            run_dir = work / f"run-{tag}" if engine == "local" else work / f"run-{tag}-{engine}"
            m_wall, m_rss, m_out, tree = measured_tree(
                [sys.executable, "-m", "hardneg", "mine", str(idx), "--out", str(run_dir), "--json",
                 "--quiet", "--query-batch", "1024", "--engine", engine,
                 # the recipe the published scale numbers were measured with (the defaults changed since)
                 "--min-rank", "10", "--sampling", "random", "--relative-margin", "off"], descendants=engine != "local",
                # Ray starts its workers at niceness 15; side by side, both engines run at the same priority.
                env={**os.environ, "HARDNEG_DISABLE_PROGRESS": "1", "RAY_worker_niceness": "0"},
            )
            if tree:
                workers[engine] = tree
                print(f"engine {engine}: peak RSS per process title (MB): {json.dumps(tree, sort_keys=True)}", flush=True)
            stats = json.loads(m_out)["stats"]
            i_timings = json.loads(i_out)["manifest"]["timings"]
            m_timings = json.loads((run_dir / "manifest.json").read_text())["timings"]
            if engine != "local":
                same = (run_dir / "candidates.parquet").read_bytes() == (work / f"run-{tag}" / "candidates.parquet").read_bytes()
                print(f"engine {engine}: candidates.parquet byte-identical to the local engine's: {same}", flush=True)
            elif backend == "exact":
                rates["exact pairs/s"] = args.docs * stats["queries_mined"] / m_timings["search"]
            else:
                rates[f"{label} inserts/s/thread"] = args.docs / i_timings["build"] / args.threads
                rates[f"{label} queries/s (search + exact rescoring)"] = stats["queries_mined"] / m_timings["search"]
            shown = label if engine == "local" else f"{label}, --engine {engine}"
            rows.append((shown, i_wall, i_rss, m_wall, m_rss, stats["queries_mined"] / m_wall, recall, stats["selected"]))
            print(rows[-1], flush=True)
        if backend != "exact":
            for ef, rec, qps in recall_sweep(idx, emb, args.recall_sample, efs, args.threads):
                sweep.append((label, ef, rec, qps))
                print(sweep[-1], flush=True)

    command = " ".join(
        f"--{name.replace('_', '-')} {value}" for name, value in vars(args).items()
        if name not in ("write", "workdir") and value != parser.get_default(name) or name in ("docs", "queries", "dim")
    )
    lines = [
        f"### Scale: {args.docs:,} documents x {args.queries:,} queries, dim {args.dim} (synthetic vectors shaped like MiniLM's)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}. Command: "
        f"`python scripts/benchmark_scale.py {command}`. "
        f"Data generation + embed stage (lookup encoder): {prep:.0f} s. Index threads: {args.threads}.",
        "",
        "| backend | index wall (s) | index peak RSS (MB) | mine wall (s) | mine peak RSS (MB) | queries/s (mine) | recall@k vs exact | negatives |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for backend, i_wall, i_rss, m_wall, m_rss, qps, recall, selected in rows:
        rec = f"{recall['recall']:.4f} (k {recall['k']}, {recall['queries']} queries, ef {recall['query_ef']})" if recall else "exact"
        lines.append(f"| {backend} | {i_wall:.0f} | {i_rss:.0f} | {m_wall:.0f} | {m_rss:.0f} | {qps:.0f} | {rec} | {selected:,} |")
    for engine, tree in workers.items():
        shown = "; ".join(f"{title} {mb:,.0f}" for title, mb in sorted(tree.items(), key=lambda kv: -kv[1]) if mb >= 50)
        lines += ["", f"`--engine {engine}`: peak RSS of the driver's descendant processes, MB, the largest per process "
                  f"title (polled every 0.5 s; processes under 50 MB left out): {shown}."]
    if rates:
        lines += ["", "Rates for the `--index auto` cost model (hardneg/index.py), from the manifests' stage timings: "
                  + "; ".join(f"{name} {value:,.0f}" for name, value in rates.items()) + "."]
    if sweep:
        lines += [
            "",
            f"HNSW recall@110 against exact search on {args.recall_sample:,} sampled queries, by search depth "
            f"(`query_ef`); queries/s of the bare Voyager query on {args.threads} threads:",
            "",
            "| backend | ef | recall@110 | queries/s |",
            "|---|---:|---:|---:|",
        ]
        lines += [f"| {backend} | {ef} | {rec:.4f} | {qps:.0f} |" for backend, ef, rec, qps in sweep]
    emit(lines, args.write)


def recall_sweep(idx: Path, emb: Path, sample: int, efs: list[int], threads: int, k: int = 110):
    """(ef, recall@k vs exact, queries/s) for each search depth, on a seeded sample of queries."""
    from hardneg.config import IndexConfig
    from hardneg.index import recall_by_depth

    config = IndexConfig(recall_sample=sample, recall_k=k, seed=0)
    return [(r["query_ef"], r["recall"], r["queries"] / r["seconds"]) for r in recall_by_depth(idx, emb, config, efs, threads)]


if __name__ == "__main__":
    main()
