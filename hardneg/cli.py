"""The `hardneg` command line: thin commands that build stage configs, call the library, print a summary.

Each flag is written once, in `_options.py`, as a knob that names the config field(s) it sets; a
command lists its knob tables and receives them as one `Knobs` value. Error, signal and output
handling live in `_console.py`, human-readable summaries in `_render.py`.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
import time
from pathlib import Path
from typing import Annotated, Optional

import typer

from hardneg import __version__, _examples
from hardneg import _options as opt
from hardneg import _render as render
from hardneg._console import (
    envelope,
    errors,
    markdown_epilogs,
    on_sigterm,
    partial,
    print_json,
    restart_with_allocator_tunables,
    say,
    shard,
    stdin,
    summary,
)
from hardneg._groups import cache_app, label_app
from hardneg._options import Knobs, knobs
from hardneg.config import load_config_file
from hardneg.errors import ConfigError

__all__ = ["app", "main"]

app = typer.Typer(
    name="hardneg",
    help="Mine hard negatives for ColBERT and dense retrievers: embed -> index -> mine -> export.",
    epilog=(
        "Quick start (offline, bundled model):\n\n```\n"
        "hardneg mine examples/scifact-sample --model minilm --out run   # embed, index, mine\n"
        "hardneg export run --format colbert --out colbert   # or sentence-transformers, pylate-kd\n"
        "hardneg report run   # one HTML file: scores, ranks, filters\n```\n"
    ),
    no_args_is_help=True, pretty_exceptions_enable=False, rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]}, add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"hardneg {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Mine hard negatives for ColBERT and dense retrievers: embed -> index -> mine -> export."""


@app.command(epilog=_examples.EMBED_EXAMPLES)
@errors
@knobs(opt.EMBED_KNOBS, opt.ENGINE_KNOBS)
def embed(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="BEIR or MS MARCO folder, dataset file (.toml naming corpus, queries, qrels), pairs file (JSONL, JSON array, Parquet, Arrow, CSV, TSV; or a folder of its shards), or - for pairs on stdin (JSONL, JSON array, Parquet, CSV or TSV with a header row; gzip too).")],
    out: opt.OutOpt, knobs: Knobs,
    corpus: opt.CorpusOpt = None,
    ray_address: opt.RayAddressOpt = None, num_shards: opt.NumShardsOpt = None, shard_index: opt.ShardIndexOpt = None,
    config: opt.ConfigOpt = None, workdir: opt.WorkdirOpt = None, force: opt.ForceOpt = False, quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Encode corpus and queries into an embeddings artifact (Parquet shards + manifest).

    A killed run resumes from its last complete shard; texts already embedded by the same model at
    --out are not encoded again.
    """
    from hardneg.pipeline import run_embed
    from hardneg.progress import cli_reporter

    cfg = knobs.build(load_config_file(config), "embed")
    with cli_reporter(quiet or json) as reporter:
        result = run_embed(source, out, cfg, corpus=corpus, stdin=stdin() if source == "-" else None, workdir=workdir,
                           force=force, shard=shard(num_shards, shard_index), ray_address=ray_address, reporter=reporter)
    if not result.complete:
        return partial(result, json)
    summary(json, {"path": str(result.path), "reused": result.reused, "manifest": result.manifest},
            lambda c: render.render_embed(c, result.manifest, str(result.path), result.reused))


@app.command(epilog=_examples.INDEX_EXAMPLES)
@errors
@knobs(opt.INDEX_COMMAND_KNOBS)
def index(
    embeddings: Annotated[Path, typer.Argument(metavar="EMBEDDINGS", help="Embeddings artifact directory (from `hardneg embed`).")],
    out: opt.OutOpt, knobs: Knobs, config: opt.ConfigOpt = None, force: opt.ForceOpt = False, quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Build a search index over an embeddings artifact, measuring HNSW recall against exact search."""
    from hardneg.index import build_index
    from hardneg.progress import cli_reporter

    cfg = knobs.build(load_config_file(config), "index")
    with cli_reporter(quiet or json) as reporter:
        result = build_index(embeddings, out, cfg, force=force, reporter=reporter)
    summary(json, {"path": str(result.path), "reused": result.reused, "manifest": result.manifest},
            lambda c: render.render_index(c, result.manifest, str(result.path), result.reused))


@app.command(epilog=_examples.MINE_EXAMPLES)
@errors
@knobs(opt.MINE_KNOBS, opt.MINE_MORE_KNOBS, opt.EMBED_KNOBS, opt.INDEX_KNOBS, opt.ENGINE_KNOBS)
def mine(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="Index or embeddings artifact, BEIR or MS MARCO folder, dataset file (.toml), pairs file (or a folder of its shards), or - for pairs on stdin (JSONL, JSON array, Parquet, CSV or TSV with a header row; gzip too).")],
    out: opt.OutOpt, knobs: Knobs,
    corpus: opt.CorpusOpt = None,
    ray_address: opt.RayAddressOpt = None, num_shards: opt.NumShardsOpt = None, shard_index: opt.ShardIndexOpt = None,
    config: opt.ConfigOpt = None, workdir: opt.WorkdirOpt = None, force: opt.ForceOpt = False, allow_empty: opt.AllowEmptyOpt = False,
    quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Mine hard negatives: rank window [--min-rank, --max-rank), positives and duplicates removed, sampled.

    Ranks are 0-based positions in the query's ranking of the whole corpus, known positives included.
    By default: the best-ranked candidates under 95% of the lowest positive's score (--relative-margin
    0.05), and random ones from rank 10 on for a query the margin empties (--fallback-min-rank 10);
    --config configs/window.toml is the previous default. Given raw input, runs embed and index first
    (cached under --workdir).
    """
    from hardneg.pipeline import run_mine
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    configs = [knobs.build(files, section) for section in ("embed", "index", "mine")]
    started = time.perf_counter()
    with cli_reporter(quiet or json) as reporter:
        result = run_mine(source, out, *configs, workdir=workdir, corpus=corpus, stdin=stdin() if source == "-" else None,
                          force=force, allow_empty=allow_empty, shard=shard(num_shards, shard_index), ray_address=ray_address,
                          reporter=reporter)
    if not result.complete:
        return partial(result, json)
    stats = result.stats.to_dict()
    summary(json, {"path": str(result.path), "reused": result.reused, "stats": stats, "config": result.manifest.get("config"),
                   "timings": result.manifest.get("timings")}, lambda c: render.render_mine(c, stats, str(result.path), result.manifest, time.perf_counter() - started, result.reused))


@app.command(epilog=_examples.EXPORT_EXAMPLES)
@errors
@knobs(opt.EXPORT_KNOBS)
def export(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Mining-run artifact directory (from `hardneg mine`).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory, or - to stream triplets / msmarco-triples lines to stdout.")],
    knobs: Knobs, config: opt.ConfigOpt = None, force: opt.ForceOpt = False, allow_empty: opt.AllowEmptyOpt = False,
    quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Write training files (ColBERT, triplets, sentence-transformers, PyLate KD, FlagEmbedding, Tevatron, MS MARCO triples) from a mining run."""
    from hardneg.export import export as run_export
    from hardneg.progress import cli_reporter

    cfg = knobs.build(load_config_file(config), "export")
    streaming = out == "-"
    with cli_reporter(quiet or json or streaming) as reporter:
        result = run_export(run, None if streaming else Path(out), cfg, stream=sys.stdout.buffer if streaming else None,
                            force=force, allow_empty=allow_empty, reporter=reporter)
    stats = result.stats.to_dict()
    if streaming:  # stdout carries the rows: the summary goes to stderr
        if json:
            print_json(envelope({"path": None, "stats": stats, "config": dataclasses.asdict(cfg)}), stream=sys.stderr)
        return
    summary(json, {"path": str(result.path), "stats": stats, "config": dataclasses.asdict(cfg)},
            lambda c: render.render_export(c, stats, str(result.path)))


@app.command(epilog=_examples.TRAIN_EXAMPLES)
@errors
@knobs(opt.TRAIN_KNOBS, opt.MODEL_KNOBS)
def train(
    export_dir: Annotated[Path, typer.Argument(metavar="EXPORT", help="A sentence-transformers export (hardneg export --format sentence-transformers), or a pylate-kd export for --loss distillation/margin-mse.")],
    out: opt.OutOpt, knobs: Knobs, config: opt.ConfigOpt = None, force: opt.ForceOpt = False, quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Fine-tune a bi-encoder, a ColBERT model or a cross-encoder on mined negatives.

    Bi-encoders and ColBERT train contrastively (MultipleNegativesRankingLoss) on a sentence-transformers
    export; ColBERT also distils teacher scores from a pylate-kd export. The checkpoint loads with
    SentenceTransformer / MultiVectorEncoder / CrossEncoder(path) and as `--model path` (`--teacher
    path` for a cross-encoder); an up-to-date one is reused.
    """
    from hardneg.progress import cli_reporter
    from hardneg.train import train as run_train

    files = load_config_file(config)
    with cli_reporter(quiet or json) as reporter:
        result = run_train(export_dir, out, knobs.build(files, "train"), knobs.build(files, "embed"), force=force, reporter=reporter)
    summary(json, {"path": str(result.path), "reused": result.reused, "manifest": result.manifest},
            lambda c: render.render_train(c, result.manifest, str(result.path), result.reused))


@app.command("eval", epilog=_examples.EVAL_EXAMPLES)
@errors
@knobs(opt.EVAL_KNOBS, opt.EVAL_EMBED_KNOBS, opt.ENGINE_KNOBS)
def eval_(
    source: Annotated[Path, typer.Argument(metavar="DATA", help="BEIR or MS MARCO folder, dataset file (.toml) (or an embeddings artifact of the split to score).")],
    knobs: Knobs,
    per_query: Annotated[bool, typer.Option("--per-query", help="With --json: each query's metrics too (for paired significance tests).")] = False,
    config: opt.ConfigOpt = None, workdir: opt.WorkdirOpt = None, quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """nDCG@10, MRR@10, Recall@10 and Recall@k of a model on a BEIR split (exact search, embeddings cached)."""
    from hardneg.evaluate import evaluate
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    with cli_reporter(quiet or json) as reporter:
        result = evaluate(source, knobs.build(files, "embed"), knobs.build(files, "eval"), workdir=workdir, reporter=reporter)
    summary(json, result.to_dict(per_query=per_query), lambda c: render.render_eval(c, result, str(source)))


@app.command(epilog=_examples.LOOP_EXAMPLES)
@errors
@knobs(opt.LOOP_KNOBS, opt.MINE_KNOBS, opt.LOOP_EMBED_KNOBS, opt.ENGINE_KNOBS)
def loop(
    source: Annotated[Path, typer.Argument(metavar="DATA", help="BEIR or MS MARCO folder, dataset file (.toml) or pairs file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Loop directory (rounds/K/... inside); rerun the same command to resume.")],
    knobs: Knobs, config: opt.ConfigOpt = None, force: opt.ForceOpt = False, quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Active-learning rounds: train on the negatives, re-embed with the new checkpoint, re-mine, evaluate.

    Round 0 mines with the base model; each round lives in OUT/rounds/K; a killed loop resumes.
    """
    from hardneg.loop import run_loop
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    configs = [knobs.build(files, section) for section in ("embed", "index", "mine", "train", "loop", "eval")]
    with cli_reporter(quiet or json) as reporter:
        result = run_loop(source, out, *configs, force=force, reporter=reporter)
    summary(json, {"path": str(result.path), "best_round": result.best_round, "stopped_early": result.stopped_early, "rounds": result.rounds,
                   "student": result.student},
            lambda c: render.render_loop(c, result.rounds, result.best_round, result.stopped_early, str(result.path), result.student))


@app.command(epilog=_examples.SELECT_EXAMPLES)
@errors
@knobs(opt.SELECT_KNOBS)
def select(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Mining-run artifact directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for to_label.jsonl and to_label.csv.")],
    knobs: Knobs, config: opt.ConfigOpt = None, force: opt.ForceOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Pick the queries worth labelling (uncertainty sampling) and write a labelling file (JSONL + CSV)."""
    from hardneg.selection import select as run_select

    cfg = knobs.build(load_config_file(config), "select")
    result = run_select(run, out, cfg, force=force)
    summary(json, {"path": str(result.path), "manifest": result.manifest, "queries": [c["query_id"] for c in result.chosen]},
            lambda c: render.render_select(c, result.manifest, str(result.path), cfg.strategy, str(run)))


@app.command(epilog=_examples.SYNTH_EXAMPLES)
@errors
@knobs(opt.SYNTH_KNOBS)
def synth(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Mining run whose queries get generated negatives.")], knobs: Knobs,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Artifact directory to write (not needed with --dry-run).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count the LLM requests and estimate their tokens.")] = False,
    config: opt.ConfigOpt = None, force: opt.ForceOpt = False, quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Counterfactual negatives from an LLM (CausalNeg): passages on the positive's topic that break one requirement of the query, kept only below the positive's score; mix them in with `export --synthetic`."""
    from hardneg.progress import cli_reporter
    from hardneg.synth import synth as run_synth

    with cli_reporter(quiet or json) as reporter:
        result = run_synth(run, out, knobs.build(load_config_file(config), "synth"), force=force, dry_run=dry_run, reporter=reporter)
    data = {"plan": result.plan} if dry_run else {"path": str(result.path), "reused": result.reused, "stats": result.manifest["stats"]}
    summary(json, data, lambda c: render.render_synth(c, result))


@app.command(epilog=_examples.REPORT_EXAMPLES)
@errors
def report(
    path: Annotated[Path, typer.Argument(metavar="PATH", help="Mining run or loop directory.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report directory [default: PATH-report next to PATH].")] = None,
    sample: Annotated[int, typer.Option("--sample", help="Queries shown with their positives and negatives.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the query sample.")] = 0,
    json: opt.JsonOpt = False,
) -> None:
    """An HTML report (one self-contained file) and PNG plots: scores, ranks, filters, rounds."""
    from hardneg.report import report as run_report

    result = run_report(path, out or path.with_name(path.name + "-report"), sample=sample, seed=seed)
    summary(json, {"path": str(result.path), "files": result.files}, lambda c: say("\n".join(f"{result.path}/{n}" for n in result.files)))


@app.command(epilog=_examples.AUDIT_EXAMPLES)
@errors
def audit(
    run: Annotated[Path, typer.Argument(metavar="RUN", help="Mining run to audit.")],
    llm_url: opt.LlmUrlOpt = None, llm_model: opt.LlmModelOpt = None, llm_concurrency: opt.LlmConcurrencyOpt = None,
    sample: Annotated[int, typer.Option("--sample", help="Queries judged (seeded sample of the mined ones).")] = 200,
    bands: Annotated[int, typer.Option("--bands", help="Rank bands the window is split into.")] = 5,
    seed: opt.SeedOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Audit directory [default: RUN-audit next to RUN].")] = None,
    force: opt.ForceOpt = False, quiet: opt.QuietOpt = False, json: opt.JsonOpt = False,
) -> None:
    """Estimate a run's false-negative rate per rank band and per filter with an LLM judge (Wilson 95% intervals)."""
    from hardneg.audit import audit as run_audit
    from hardneg.llm import connect_judge
    from hardneg.progress import cli_reporter

    url = llm_url or os.environ.get("HARDNEG_LLM_URL")
    if not url or not llm_model:
        raise ConfigError("audit needs an LLM: --llm-url URL (or HARDNEG_LLM_URL) and --llm-model NAME")
    if llm_concurrency is not None and llm_concurrency < 1:
        raise ConfigError(f"--llm-concurrency must be >= 1, got {llm_concurrency}")
    judge = connect_judge(url, llm_model, llm_concurrency or 8)
    with cli_reporter(quiet or json) as reporter:
        result = run_audit(run, out or run.with_name(run.name + "-audit"), judge, sample=sample, seed=seed or 0, bands=bands,
                           force=force, reporter=reporter)
    summary(json, {"path": str(result.path), "queries": result.queries, "groups": result.groups, "usage": result.usage},
            lambda c: render.render_audit(c, result, llm_model))


app.add_typer(label_app, name="label")
app.add_typer(cache_app, name="cache")
markdown_epilogs(app, label_app, cache_app)


def main() -> None:
    """Console-script entry point."""
    restart_with_allocator_tunables()
    signal.signal(signal.SIGTERM, on_sigterm)
    if ("--help" in sys.argv or "-h" in sys.argv or len(sys.argv) < 2) and not sys.stdout.isatty() and not os.environ.get("TERMINAL_WIDTH"):
        import typer.rich_utils

        typer.rich_utils.MAX_WIDTH = _examples.HELP_WIDTH  # piped help: no example wrapped mid-command
    app()
