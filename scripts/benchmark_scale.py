"""Mining at scale from precomputed embeddings: peak memory, queries/s, HNSW recall vs exact.

Usage:
    python scripts/benchmark_scale.py --docs 1000000 --queries 100000 --dim 384 [--write docs/benchmarks.md]

Synthetic but meaningful data: documents and queries are drawn around shared cluster centres (so
neighbours are real neighbours, unlike uniform random vectors), with real string ids. Each query's
positive is a document of its own cluster. The vectors go through the real `embed` stage (a
lookup encoder stands in for the model), then `hardneg index` (exact, HNSW float32, HNSW e4m3) and
`hardneg mine` run as subprocesses whose own peak RSS and wall time are measured. HNSW recall@k
against exact search is measured by the index stage on a sample of queries.
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
)


def clustered(n: int, centres: np.ndarray, rng: np.random.Generator, noise: float) -> tuple[np.ndarray, np.ndarray]:
    assignment = rng.integers(0, len(centres), size=n)
    vectors = centres[assignment] + noise * rng.standard_normal((n, centres.shape[1]), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors.astype(np.float32), assignment


class LookupEncoder:
    """Stands in for a model: the text "<kind> <row>" maps to a precomputed row."""

    def __init__(self, docs: np.ndarray, queries: np.ndarray) -> None:
        from hardneg.encoders import ModelSpec

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
    parser.add_argument("--clusters", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.06, help="per-dimension noise around a centre")
    parser.add_argument("--recall-sample", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--backends", default="hnsw-float32,hnsw-e4m3,exact")
    parser.add_argument("--workdir", type=Path, help="keep artifacts here (default: a temporary directory)")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    from hardneg.config import EmbedConfig
    from hardneg.embed import embed
    from hardneg.inputs import load_input

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hardneg-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.clusters, args.dim), dtype=np.float32) / np.sqrt(args.dim)
    t0 = time.perf_counter()
    docs, doc_cluster = clustered(args.docs, centres, rng, args.noise)
    queries, query_cluster = clustered(args.queries, centres, rng, args.noise)
    members: dict[int, np.ndarray] = {}
    order = np.argsort(doc_cluster, kind="stable")
    bounds = np.searchsorted(doc_cluster[order], np.arange(args.clusters + 1))
    positives = np.empty(args.queries, dtype=np.int64)
    for i, c in enumerate(query_cluster):
        if c not in members:
            members[c] = order[bounds[c] : bounds[c + 1]]
        pool = members[c] if len(members[c]) else order
        positives[i] = pool[rng.integers(0, len(pool))]
    data = work / "data"
    if not (data / "corpus.jsonl").exists():
        write_beir(data, args.docs, positives)
    emb = work / "emb"
    embed(load_input(data), emb, EmbedConfig(shard_size=50_000), encoder=LookupEncoder(docs, queries))
    prep = time.perf_counter() - t0
    del docs, queries

    rows = []
    for backend in [b.strip() for b in args.backends.split(",") if b.strip()]:
        idx = work / f"idx-{backend}"
        cmd = [sys.executable, "-m", "hardneg", "index", str(emb), "--out", str(idx), "--json", "--quiet",
               "--threads", str(args.threads), "--recall-sample", str(args.recall_sample)]
        if backend == "exact":
            cmd.append("--exact")
        else:
            cmd += ["--hnsw", "--storage", backend.split("-", 1)[1]]
        i_wall, i_rss, i_out = measured(cmd)
        recall = json.loads(i_out)["manifest"].get("recall")
        m_wall, m_rss, m_out = measured(
            [sys.executable, "-m", "hardneg", "mine", str(idx), "--out", str(work / f"run-{backend}"), "--json",
             "--quiet", "--query-batch", "1024"]
        )
        stats = json.loads(m_out)["stats"]
        rows.append((backend, i_wall, i_rss, m_wall, m_rss, stats["queries_mined"] / m_wall, recall, stats["selected"]))
        print(rows[-1], flush=True)

    lines = [
        f"### Scale: {args.docs:,} documents x {args.queries:,} queries, dim {args.dim} (synthetic clustered vectors)",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}. Command: "
        f"`python scripts/benchmark_scale.py --docs {args.docs} --queries {args.queries} --dim {args.dim}`. "
        f"Data generation + embed stage (lookup encoder): {prep:.0f} s. Index threads: {args.threads}.",
        "",
        "| backend | index wall (s) | index peak RSS (MB) | mine wall (s) | mine peak RSS (MB) | queries/s (mine) | recall@k vs exact | negatives |",
        "|---|---:|---:|---:|---:|---:|---|---:|",
    ]
    for backend, i_wall, i_rss, m_wall, m_rss, qps, recall, selected in rows:
        rec = f"{recall['recall']:.4f} (k {recall['k']}, {recall['queries']} queries, ef {recall['query_ef']})" if recall else "exact"
        lines.append(f"| {backend} | {i_wall:.0f} | {i_rss:.0f} | {m_wall:.0f} | {m_rss:.0f} | {qps:.0f} | {rec} | {selected:,} |")
    emit(lines, args.write)


if __name__ == "__main__":
    main()
