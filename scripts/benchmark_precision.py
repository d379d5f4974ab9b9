"""Do reduced-precision embeddings (or another encoder runtime) change the negatives? fp32 vs bf16
(or fp16), torch vs OpenVINO, on one data set.

Usage:
    python scripts/benchmark_precision.py ../shared/data/scifact --model minilm --precisions fp32,bf16 [--write docs/benchmarks.md]
    python scripts/benchmark_precision.py ../shared/data/scifact --precisions fp32,fp32:openvino,bf16:openvino
    python scripts/benchmark_precision.py ../shared/data/scifact --precisions fp32:blas,fp32

Each entry is PRECISION or PRECISION:BACKEND (`--backend`, torch by default; `blas` is torch with
its default BLAS linear layers instead of oneDNN, i.e. `HARDNEG_ONEDNN=0`).

Mines the data set once per precision with the same window, sampling and seed (the window recipe:
random in [--min-rank, --max-rank), no margin, as the published numbers were measured), then
compares each run with the first: the share of each query's candidate window (the documents ranked
in [min-rank, max-rank)) and of its selected negatives that the two runs
share, averaged over queries, and the encoding time of each. The quality question (do the
negatives train as well?) is the quality benchmark's; this measures how much of the data changes.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).parent))
from _bench import emit  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--precisions", default="fp32,bf16")
    parser.add_argument("--min-rank", type=int, default=10)
    parser.add_argument("--max-rank", type=int, default=110)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    from hardneg.config import EmbedConfig, IndexConfig, MineConfig
    from hardneg.pipeline import run_mine

    work = args.workdir or Path(tempfile.mkdtemp(prefix="hardneg-precision-"))
    runs: dict[str, tuple[dict[str, set[str]], dict[str, set[str]], float]] = {}
    user_onednn = os.environ.get("HARDNEG_ONEDNN")
    for entry in [p.strip() for p in args.precisions.split(",") if p.strip()]:
        precision, _, backend = entry.partition(":")
        if backend == "blas":  # torch without the oneDNN linear layers
            os.environ["HARDNEG_ONEDNN"], backend = "0", "torch"
        elif user_onednn is None:
            os.environ.pop("HARDNEG_ONEDNN", None)
        else:  # the caller's own setting for every other entry
            os.environ["HARDNEG_ONEDNN"] = user_onednn
        out = work / f"run-{entry.replace(':', '-')}"
        t0 = time.perf_counter()
        result = run_mine(
            args.data, out, EmbedConfig(model=args.model, precision=precision, backend=backend or "torch"), IndexConfig(backend="exact"),
            # The window recipe the published overlap numbers were measured with (not the defaults).
            MineConfig(min_rank=args.min_rank, max_rank=args.max_rank, seed=args.seed, sampling="random", relative_margin=None),
            workdir=work / "cache",
        )
        wall = time.perf_counter() - t0
        rows = pq.read_table(out / "candidates.parquet", columns=["query_id", "doc_id", "selected"]).to_pylist()
        window: dict[str, set[str]] = {}
        selected: dict[str, set[str]] = {}
        for r in rows:
            window.setdefault(r["query_id"], set()).add(r["doc_id"])
            if r["selected"]:
                selected.setdefault(r["query_id"], set()).add(r["doc_id"])
        runs[entry] = (window, selected, wall)
        print(f"{entry}: {result.stats.selected} negatives, {wall:.0f} s", flush=True)

    names = list(runs)
    base = names[0]

    def overlap(a: dict[str, set[str]], b: dict[str, set[str]]) -> float:
        qids = sorted(set(a) | set(b))
        return float(np.mean([len(a.get(q, set()) & b.get(q, set())) / max(1, len(a.get(q, set()) | b.get(q, set()))) for q in qids]))

    lines = [
        f"### Precision: {base} vs {', '.join(names[1:])} on {args.data.name} ({args.model}, window [{args.min_rank}, {args.max_rank}), seed {args.seed})",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}. Command: "
        f"`python scripts/benchmark_precision.py {args.data} --model {args.model} --precisions {args.precisions}`. "
        "Overlap: per query, |A ∩ B| / |A ∪ B|, averaged over queries.",
        "",
        "| precision[:backend] | wall (s, embed + index + mine) | window overlap with " + base + " | selected-negative overlap with " + base + " |",
        "|---|---:|---:|---:|",
    ]
    for name in names:
        window, selected, wall = runs[name]
        lines.append(f"| {name} | {wall:.0f} ({wall / runs[base][2]:.2f}x) | {overlap(runs[base][0], window):.4f} | {overlap(runs[base][1], selected):.4f} |")
    emit(lines, args.write)


if __name__ == "__main__":
    main()
