"""The active-learning loop on a BEIR dataset: per-round dev metrics and how the negatives changed.

Usage:
    python scripts/benchmark_loop.py ../shared/data/scifact --rounds 3 --dev-split test --write docs/benchmarks.md

Runs `hardneg loop` once, as a measured subprocess (wall time, peak RSS), with the packaged MiniLM
and hardneg's defaults (window [10, 110), 10 random negatives; MNRL, 1 epoch, batch 32, lr 2e-5, one
mined negative per row, warm start from the previous round), and writes the per-round table from
the loop's manifest. Patience defaults to the number of rounds, so every round is run and shown.
Extra arguments after `--` go to `hardneg loop` (e.g. `-- --from-base`).
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

from _bench import emit, measured  # scripts/_bench.py (scripts run as `python scripts/...`)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], epilog="More `hardneg loop` options go after --.")
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dev-split", default="test")
    parser.add_argument("--patience", type=int)
    parser.add_argument("--out", type=Path, help="loop directory to keep (default: a temporary one)")
    parser.add_argument("--write", type=Path)
    argv = sys.argv[1:]
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    args.extra = extra

    out = args.out or Path(tempfile.mkdtemp(prefix="hardneg-loop-")) / "loop"
    cmd = [
        sys.executable, "-m", "hardneg", "loop", str(args.data), "--model", args.model, "--rounds", str(args.rounds),
        "--dev-split", args.dev_split, "--patience", str(args.patience or args.rounds), "--out", str(out), "--json", "--quiet",
        *args.extra,
    ]
    wall, rss, stdout = measured(cmd)
    data = json.loads(stdout)
    rounds = data["rounds"]
    metric_k = next(k for k in rounds[0]["dev"]["metrics"] if k.startswith("recall@") and k != "recall@10")
    lines = [
        f"### Active-learning loop on {args.data.name}: {len(rounds) - 1} training round(s), dev split `{args.dev_split}`",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; {wall:.0f} s in all, "
        f"peak RSS {rss:.0f} MB. Command: `python scripts/benchmark_loop.py {args.data} --rounds {args.rounds} "
        f"--dev-split {args.dev_split}{' ' + ' '.join(args.extra) if args.extra else ''}` "
        f"(runs `hardneg loop ... --model {args.model}`).",
        "",
        f"| round | model | nDCG@10 | {metric_k} | MRR@10 | train rows | train loss | negatives | kept from previous round | negative score p25 / p50 / p75 | seconds |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for r in rounds:
        m = r["dev"]["metrics"]
        q = r["negative_scores"]
        overlap = "-" if r["overlap_with_previous"] is None else f"{r['overlap_with_previous']:.1%}"
        loss = "-" if r["train"] is None else f"{r['train']['training_loss']:.4f}"
        rows = "-" if r["train"] is None else f"{r['train']['rows']:,}"
        model = "base" if r["round"] == 0 else f"round {r['round']} checkpoint"
        lines.append(
            f"| {r['round']} | {model} | {m['ndcg@10']:.4f} | {m[metric_k]:.4f} | {m['mrr@10']:.4f} | {rows} | {loss} | "
            f"{r['negatives']:,} | {overlap} | {q['p25']:.3f} / {q['p50']:.3f} / {q['p75']:.3f} | {r['seconds']:.0f} |"
        )
    lines.append("")
    lines.append(f"Best round: {data['best_round']}; stopped early: {data['stopped_early']}.")
    emit(lines, args.write)


if __name__ == "__main__":
    main()
