"""Wall time and peak memory of hardneg vs sentence-transformers' mine_hard_negatives, side by side.

Usage:
    python scripts/benchmark_speed.py ../shared/data/scifact --model minilm [--write docs/benchmarks.md]

Each contender runs in its own subprocess (so peak RSS is its own), on the same BEIR split, model,
corpus and window: hardneg `mine` (one-liner from raw data, cold cache) + `export colbert`, and
`mine_hard_negatives(range_min, range_max, num_negatives, sampling_strategy="random")` whose output
is saved as Parquet. A bare `model.encode` pass over the same texts gives the encoding floor.
The sentence-transformers side needs `datasets` (installed with sentence-transformers[train]).

`--sweep 10` adds the parameter-sweep row: ten mining settings (windows, margins, score bounds,
counts, sampling) over the same corpus, run as ten `hardneg mine` calls on one work directory (the
first encodes, the other nine reuse its embeddings and index), against ten `mine_hard_negatives`
calls in one process (the model loaded once) with its default (no cache: each call encodes) and
with its `cache_folder` (the first call encodes). `--sweep-skip-uncached` leaves out the anchor's
uncached ten calls (on SciFact they take about ten times one run).
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

from _bench import (  # scripts/_bench.py (scripts run as `python scripts/...`)
    emit,
    measured,
)

# The (query, positive) pairs of a BEIR split as mine_hard_negatives takes them (`data`, `split` set before).
ST_PAIRS = r"""
corpus = {}
for line in open(Path(data) / "corpus.jsonl", encoding="utf-8"):
    d = json.loads(line)
    corpus[d["_id"]] = (d.get("title", "") + " " + d["text"]).strip()
queries = {q["_id"]: q["text"] for q in map(json.loads, open(Path(data) / "queries.jsonl", encoding="utf-8"))}
pairs = {"query": [], "positive": []}
for line in list(open(Path(data) / "qrels" / f"{split}.tsv", encoding="utf-8"))[1:]:
    qid, did, score = line.rstrip("\r\n").split("\t")
    if float(score) > 0:
        pairs["query"].append(queries[qid]); pairs["positive"].append(corpus[did])
"""

ST_SCRIPT = r"""
import json, sys, time
from pathlib import Path
data, model_path, split, lo, hi, n, out = sys.argv[1:8]
t0 = time.perf_counter()
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives
""" + ST_PAIRS + r"""model = SentenceTransformer(model_path)
result = mine_hard_negatives(
    Dataset.from_dict(pairs), model, corpus=list(corpus.values()), range_min=int(lo), range_max=int(hi),
    num_negatives=int(n), sampling_strategy="random", batch_size=64, output_format="n-tuple", verbose=False,
)
result.to_parquet(out)
print(json.dumps({"rows": len(result), "seconds": time.perf_counter() - t0}))
"""

SWEEP_ST_SCRIPT = r"""
import json, sys, time
from pathlib import Path
data, model_path, split, configs, cache = sys.argv[1:6]
from datasets import Dataset
from sentence_transformers import SentenceTransformer
from sentence_transformers.util import mine_hard_negatives
""" + ST_PAIRS + r"""model = SentenceTransformer(model_path)
dataset, texts, calls = Dataset.from_dict(pairs), list(corpus.values()), []
for config in json.loads(configs):
    t0 = time.perf_counter()
    result = mine_hard_negatives(dataset, model, corpus=texts, batch_size=64, output_format="n-tuple", verbose=False,
                                 cache_folder=cache or None, **config)
    calls.append({"seconds": time.perf_counter() - t0, "rows": len(result)})
print(json.dumps({"calls": calls}))
"""

# Ten settings a user tries over one corpus: (hardneg flags, the same in mine_hard_negatives' arguments).
SWEEP = [
    ({"min-rank": 10, "max-rank": 110, "num-negatives": 10, "sampling": "random"},
     {"range_min": 10, "range_max": 110, "num_negatives": 10, "sampling_strategy": "random"}),
    ({"min-rank": 0, "max-rank": 100, "num-negatives": 10, "sampling": "top", "relative-margin": 0.05},
     {"range_min": 0, "range_max": 100, "num_negatives": 10, "sampling_strategy": "top", "relative_margin": 0.05}),
    ({"min-rank": 0, "max-rank": 50, "num-negatives": 5, "sampling": "top"},
     {"range_min": 0, "range_max": 50, "num_negatives": 5, "sampling_strategy": "top"}),
    ({"min-rank": 20, "max-rank": 120, "num-negatives": 10, "sampling": "random"},
     {"range_min": 20, "range_max": 120, "num_negatives": 10, "sampling_strategy": "random"}),
    ({"min-rank": 10, "max-rank": 110, "num-negatives": 10, "sampling": "random", "max-score": 0.8},
     {"range_min": 10, "range_max": 110, "num_negatives": 10, "sampling_strategy": "random", "max_score": 0.8}),
    ({"min-rank": 10, "max-rank": 110, "num-negatives": 10, "sampling": "random", "absolute-margin": 0.1},
     {"range_min": 10, "range_max": 110, "num_negatives": 10, "sampling_strategy": "random", "absolute_margin": 0.1}),
    ({"min-rank": 30, "max-rank": 200, "num-negatives": 20, "sampling": "random"},
     {"range_min": 30, "range_max": 200, "num_negatives": 20, "sampling_strategy": "random"}),
    ({"min-rank": 0, "max-rank": 200, "num-negatives": 3, "sampling": "top", "relative-margin": 0.1},
     {"range_min": 0, "range_max": 200, "num_negatives": 3, "sampling_strategy": "top", "relative_margin": 0.1}),
    ({"min-rank": 5, "max-rank": 55, "num-negatives": 1, "sampling": "random"},
     {"range_min": 5, "range_max": 55, "num_negatives": 1, "sampling_strategy": "random"}),
    ({"min-rank": 50, "max-rank": 150, "num-negatives": 10, "sampling": "random", "min-score": 0.2},
     {"range_min": 50, "range_max": 150, "num_negatives": 10, "sampling_strategy": "random", "min_score": 0.2}),
]


def run_sweep(args: argparse.Namespace, model_path: str, env: dict[str, str], work: Path) -> list[str]:
    """The --sweep rows: hardneg's N calls on one cache vs mine_hard_negatives' N calls, with and without its cache."""
    configs = SWEEP[: args.sweep]
    hn_calls = []
    for i, (flags, _) in enumerate(configs):
        cmd = [sys.executable, "-m", "hardneg", "mine", str(args.data), "--model", args.model, "--split", args.split,
               "--workdir", str(work / "sweep-cache"), "--out", str(work / f"sweep-run-{i}"), "--json", "--quiet", "--allow-empty"]
        # The anchor's call, said in full: no margin unless the setting has one, and a query a margin
        # empties dropped as mine_hard_negatives drops it (hardneg's defaults would fill it).
        for key, value in {"relative-margin": "off", "fallback-min-rank": "off", **flags}.items():
            cmd += [f"--{key}", str(value)]
        wall, rss, out = measured(cmd, env)
        hn_calls.append((wall, rss, json.loads(out)["stats"]["selected"]))
    anchor = {}
    for label, cache in (("cache_folder", str(work / "st-cache")), ("no cache (its default)", "")):
        if not cache and args.sweep_skip_uncached:
            continue
        wall, rss, out = measured([sys.executable, "-c", SWEEP_ST_SCRIPT, str(args.data), str(model_path), args.split,
                                   json.dumps([c for _, c in configs]), cache], env)
        anchor[label] = (wall, rss, json.loads(out.strip().splitlines()[-1])["calls"])
    first, total = hn_calls[0][0], sum(c[0] for c in hn_calls)
    lines = [
        f"#### Parameter sweep: {len(configs)} mining settings over {args.data.name} ({args.split})",
        "",
        f"Command: `python scripts/benchmark_speed.py {args.data} --model {args.model} --sweep {args.sweep}"
        f"{' --sweep-skip-uncached' if args.sweep_skip_uncached else ''}{' --skip-main' if args.skip_main else ''}`. "
        "hardneg: one process per setting, one work directory. sentence-transformers: the settings as calls in one process "
        "(model loaded once); its wall time includes that process's start and model load.",
        "",
        "| contender | first call (s) | the other calls (s, total) | all calls (s) | all / one run | peak RSS (MB) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| hardneg mine (embeddings and index reused after the first) | {first:.1f} | {total - first:.1f} | {total:.1f} | "
        f"{total / first:.2f} | {max(c[1] for c in hn_calls):.0f} |",
    ]
    for label, (wall, rss, calls) in anchor.items():
        one = calls[0]["seconds"] + (wall - sum(c["seconds"] for c in calls))  # start-up + load counted with the first call
        lines.append(f"| mine_hard_negatives, {label} | {one:.1f} | {wall - one:.1f} | {wall:.1f} | {wall / one:.2f} | {rss:.0f} |")
    lines += ["", "Settings (hardneg flags; selected negatives per call):", ""]
    lines += [f"{i + 1}. `{' '.join(f'--{k} {v}' for k, v in flags.items())}`: {hn_calls[i][2]:,}" for i, (flags, _) in enumerate(configs)]
    return [*lines, ""]


ENCODE_SCRIPT = r"""
import json, sys, time
from pathlib import Path
data, model_path, split = sys.argv[1:4]
from sentence_transformers import SentenceTransformer
texts = []
for line in open(Path(data) / "corpus.jsonl", encoding="utf-8"):
    d = json.loads(line)
    texts.append((d.get("title", "") + " " + d["text"]).strip())
wanted = {line.split("\t")[0] for line in list(open(Path(data) / "qrels" / f"{split}.tsv", encoding="utf-8"))[1:]}
queries = [q["text"] for q in map(json.loads, open(Path(data) / "queries.jsonl", encoding="utf-8")) if q["_id"] in wanted]
model = SentenceTransformer(model_path)
t0 = time.perf_counter()
model.encode(texts, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
model.encode(queries, batch_size=64, normalize_embeddings=True, convert_to_numpy=True)
print(json.dumps({"docs": len(texts), "queries": len(queries), "seconds": time.perf_counter() - t0}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path, help="BEIR folder")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--split", default="train")
    parser.add_argument("--min-rank", type=int, default=10)
    parser.add_argument("--max-rank", type=int, default=110)
    parser.add_argument("--num-negatives", type=int, default=10)
    parser.add_argument("--precision", default="auto", help="hardneg runs, one per PRECISION[:BACKEND], e.g. auto,fp32,fp32:openvino "
                        "(the first is the headline; auto, hardneg's default, is shown with what it resolved to)")
    parser.add_argument("--skip-encode-floor", action="store_true")
    parser.add_argument("--skip-anchor", action="store_true", help="do not run mine_hard_negatives")
    parser.add_argument("--workers", default="", help="also time `hardneg embed` with these worker counts, e.g. 1,2")
    parser.add_argument("--sweep", type=int, default=0, help=f"also time a parameter sweep of this many settings (at most {len(SWEEP)})")
    parser.add_argument("--sweep-skip-uncached", action="store_true", help="leave out mine_hard_negatives' uncached sweep")
    parser.add_argument("--skip-main", action="store_true", help="only the sweep (with --sweep)")
    parser.add_argument("--write", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()

    from hardneg.config import EmbedConfig
    from hardneg.models import resolve_model

    model_path = resolve_model(EmbedConfig(model=args.model)).path
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HARDNEG_DISABLE_PROGRESS": "1", "TOKENIZERS_PARALLELISM": "false"}
    # Big outputs go to a temporary directory; the (pipe-buffered) stdout of each child is small.
    if args.sweep > len(SWEEP):
        parser.error(f"--sweep: at most {len(SWEEP)} settings")
    if args.skip_main:
        if not args.sweep:
            parser.error("--skip-main needs --sweep N")
        with tempfile.TemporaryDirectory(prefix="hardneg-bench-") as tmp:
            emit(run_sweep(args, str(model_path), env, Path(tmp)), args.write)
        return
    with tempfile.TemporaryDirectory(prefix="hardneg-bench-") as tmp:
        work = Path(tmp)
        sweep_lines = run_sweep(args, str(model_path), env, work) if args.sweep else []
        precisions = [p.strip() for p in args.precision.split(",") if p.strip()]
        extra = []
        for i, entry in enumerate(precisions):
            precision, _, backend = entry.partition(":")
            tag = "" if i == 0 else f"-{entry.replace(':', '-')}"
            hn_cmd = [
                sys.executable, "-m", "hardneg", "mine", str(args.data), "--model", args.model, "--split", args.split,
                "--min-rank", str(args.min_rank), "--max-rank", str(args.max_rank), "--num-negatives", str(args.num_negatives),
                "--sampling", "random", "--relative-margin", "off",  # the anchor's call: random in the window, no margin
                "--precision", precision, "--backend", backend or "torch", "--workdir", str(work / f"cache{tag}"), "--out", str(work / f"run{tag}"), "--json", "--quiet",
            ]
            wall, rss, out = measured(hn_cmd, env)
            emb_manifest = json.loads(next((work / f"cache{tag}" / "embeddings").glob("*/manifest.json")).read_text())
            # `auto` is shown with what it resolved to on this machine.
            used = f" = {emb_manifest['model']['precision']}" if precision == "auto" else ""
            label = f"{precision}{used}" + (f":{backend}" if backend else "")
            flags = f"--precision {precision}" + (f" ({used.strip()})" if used else "") + (f" --backend {backend}" if backend else "")
            if i == 0:
                hn_wall, hn_rss, hn_out = wall, rss, out
                emb_timings = emb_manifest["timings"]
                headline = label
            else:
                extra.append((label, flags, wall, rss, emb_manifest["timings"]["encode"]))
        stats = json.loads(hn_out)["stats"]
        manifest = json.loads((work / "run" / "manifest.json").read_text())
        idx_timings = json.loads(next((work / "cache" / "index").glob("*/manifest.json")).read_text())["timings"]
        mine_timings = manifest["timings"]
        ex_wall, ex_rss, _ = measured(
            [sys.executable, "-m", "hardneg", "export", str(work / "run"), "--out", str(work / "colbert"), "--quiet"], env
        )
        st_wall = st_rss = st_rows = None
        if not args.skip_anchor:
            st_wall, st_rss, st_out = measured(
                [sys.executable, "-c", ST_SCRIPT, str(args.data), str(model_path), args.split, str(args.min_rank),
                 str(args.max_rank), str(args.num_negatives), str(work / "st.parquet")],
                env,
            )
            st_rows = json.loads(st_out.strip().splitlines()[-1])["rows"]
        sweep = []
        for workers in [int(w) for w in args.workers.split(",") if w.strip()]:
            w_wall, w_rss, w_out = measured(
                [sys.executable, "-m", "hardneg", "embed", str(args.data), "--model", args.model, "--split", args.split,
                 "--workers", str(workers), "--out", str(work / f"emb-w{workers}"), "--json", "--quiet"],
                env,
            )
            counts = json.loads(w_out)["manifest"]["counts"]
            sweep.append((workers, w_wall, w_rss, counts["docs"] + counts["queries"]))
        floor = None
        if not args.skip_encode_floor:
            fl_wall, _, fl_out = measured([sys.executable, "-c", ENCODE_SCRIPT, str(args.data), str(model_path), args.split], env)
            floor = json.loads(fl_out.strip().splitlines()[-1])

    hn_total = hn_wall + ex_wall
    lines = [
        f"### Speed and memory: {args.data.name} ({args.split}), model {args.model}, window [{args.min_rank}, {args.max_rank}), "
        f"{args.num_negatives} negatives",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{time.strftime('%Y-%m-%d')}. Command: `python scripts/benchmark_speed.py {args.data} --model {args.model} --precision {args.precision}`",
        "",
        "| run | wall (s) | peak RSS (MB) | output |",
        "|---|---:|---:|---|",
        f"| hardneg mine (embed + index + mine, cold cache, {headline}) | {hn_wall:.1f} | {hn_rss:.0f} | {stats['selected']} negatives for {stats['queries_mined']} queries |",
        f"| hardneg export colbert | {ex_wall:.1f} | {ex_rss:.0f} | triples + queries + corpus TSV |",
        f"| **hardneg total** | **{hn_total:.1f}** | **{max(hn_rss, ex_rss):.0f}** | index: {manifest['index']['backend']} |",
    ]
    if st_wall is not None and st_rss is not None:
        lines += [
            f"| sentence-transformers mine_hard_negatives | {st_wall:.1f} | {st_rss:.0f} | {st_rows} n-tuple rows |",
            f"| ratio hardneg / sentence-transformers | {hn_total / st_wall:.2f} | {max(hn_rss, ex_rss) / st_rss:.2f} | |",
        ]
    for label, flags, wall, rss, encode in extra:
        lines.append(f"| hardneg mine, `{flags}` (embed + index + mine, cold cache) | {wall:.1f} | {rss:.0f} | encode stage {encode:.1f} s |")
        if st_wall is not None and st_rss is not None:
            lines.append(f"| ratio hardneg {label} / sentence-transformers (fp32) | {wall / st_wall:.2f} | {rss / st_rss:.2f} | |")
    for workers, w_wall, w_rss, texts in sweep:
        lines.append(
            f"| hardneg embed --workers {workers} | {w_wall:.1f} | {w_rss:.0f} | {texts} texts, {texts / w_wall:.1f} texts/s (incl. start-up) |"
        )
    if floor:
        lines.append(
            f"| bare `model.encode` of the same texts, fp32 (floor) | {floor['seconds']:.1f} | | {floor['docs']} docs + "
            f"{floor['queries']} queries; hardneg's {headline} encode stage: {emb_timings['encode']:.1f} s = "
            f"{floor['seconds'] / emb_timings['encode']:.0%} of the floor's throughput |"
        )
    rest = idx_timings["total"] + sum(mine_timings.values()) + ex_wall
    lines += [
        "",
        "Stage split of the hardneg run (seconds, from the artifacts' manifests; export is its wall time):",
        "",
        "| load model | encode | write shards | index | search | filter + sample | write candidates | export | (index + mine + export) / encode |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        f"| {emb_timings['load_model']:.1f} | {emb_timings['encode']:.1f} | {emb_timings['write']:.1f} | {idx_timings['total']:.1f} | {mine_timings['search']:.2f} | "
        f"{mine_timings['filter']:.2f} | {mine_timings['write']:.2f} | {ex_wall:.1f} | {rest / emb_timings['encode']:.1%} |",
        "",
    ]
    emit(lines + sweep_lines, args.write)


if __name__ == "__main__":
    main()
