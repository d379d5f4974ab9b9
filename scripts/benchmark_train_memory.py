"""Peak memory and time of `hardneg train`, with and without --gradient-checkpointing, side by side.

Usage:
    python scripts/benchmark_train_memory.py EXPORT --rows 128 --repeats 2 [--write docs/benchmarks.md]

EXPORT is a sentence-transformers export (e.g. of the bundled sample). The first --rows rows are
trained (1 epoch, batch 32, MiniLM) in fresh processes, alternating the two settings so both see the
same machine load; peak RSS and wall time come from /usr/bin/time. The time ratio is the number to
read on a shared machine, not the absolute seconds.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path


def run(export: Path, out: Path, extra: list[str]) -> tuple[float, float]:
    cmd = ["/usr/bin/time", "-f", "%M %e", sys.executable, "-m", "hardneg", "train", str(export), "--model", "minilm",
           "--out", str(out), "--quiet", "--force", *extra]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr[-2000:])
    kb, seconds = proc.stderr.strip().splitlines()[-1].split()
    shutil.rmtree(out, ignore_errors=True)
    return int(kb) / 1024, float(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("export", type=Path)
    parser.add_argument("--rows", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()
    import pyarrow.parquet as pq

    from hardneg.artifacts import KIND_EXPORT, write_manifest

    with tempfile.TemporaryDirectory() as tmp:
        small = Path(tmp) / "export"
        small.mkdir()
        table = pq.read_table(args.export / "train.parquet").slice(0, args.rows)
        pq.write_table(table, small / "train.parquet")
        write_manifest(small, KIND_EXPORT, config={"format": "sentence-transformers"}, stats={"rows": table.num_rows})
        results: dict[str, list[tuple[float, float]]] = {"default": [], "--gradient-checkpointing": []}
        for _ in range(args.repeats):
            for name in results:
                results[name].append(run(small, Path(tmp) / "model", [] if name == "default" else [name]))
    base_time = min(t for _, t in results["default"])
    lines = [f"`python scripts/benchmark_train_memory.py {args.export} --rows {args.rows} --repeats {args.repeats}` "
             f"({table.num_rows} rows, {table.num_columns - 1} texts per row after the query, batch 32, MiniLM, CPU)", "",
             "| setting | peak RSS (MB) | wall (s), best of runs | time vs default |", "|---|---:|---:|---:|"]
    for name, runs in results.items():
        peak = max(m for m, _ in runs)
        best = min(t for _, t in runs)
        lines.append(f"| {name} | {peak:,.0f} | {best:.0f} | {best / base_time:.2f}x |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
