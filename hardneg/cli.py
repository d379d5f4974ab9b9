"""The `hardneg` command line: thin commands that build a stage config, call the library, print a summary."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from hardneg import __version__
from hardneg._options import (
    AbsoluteMarginOpt,
    Backend,
    BatchSizeOpt,
    CeMaxScoreOpt,
    CePseudoOpt,
    ConfigOpt,
    CorpusOpt,
    CorpusPromptOpt,
    CrossEncoderOpt,
    DedupThresholdOpt,
    DeviceOpt,
    EfConstructionOpt,
    EfSearchOpt,
    ForceOpt,
    Format,
    JsonOpt,
    LangOpt,
    MaxLengthOpt,
    MaxRankOpt,
    MaxScoreOpt,
    MinRankOpt,
    MinScoreOpt,
    ModelOpt,
    ModelSizeOpt,
    MOpt,
    NumNegativesOpt,
    QueryBatchOpt,
    QueryPromptOpt,
    QuietOpt,
    RecallSampleOpt,
    RelativeMarginOpt,
    RetrieverOpt,
    RrfKOpt,
    SamplingOpt,
    SeedOpt,
    ShardSizeOpt,
    SimansAOpt,
    SimansBOpt,
    SplitOpt,
    StorageOpt,
    ThreadsOpt,
    WorkdirOpt,
    WorkersOpt,
)
from hardneg.config import (
    EmbedConfig,
    ExportConfig,
    IndexConfig,
    MineConfig,
    build,
    load_config_file,
)
from hardneg.errors import ConfigError, HardnegError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="hardneg",
    help="Mine hard negatives for ColBERT and dense retrievers: embed -> index -> mine -> export.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)


def _value(option: Any) -> Any:
    return option.value if option is not None and hasattr(option, "value") else option


def _errors(fn: F) -> F:
    """Map library errors to one `Error: ...` line on stderr: exit 1 (2 for configuration/usage)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except HardnegError as exc:
            if os.environ.get("HARDNEG_DEBUG", "") not in ("", "0"):
                raise
            sys.stderr.write(f"Error: {exc}\n")
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None
        except KeyboardInterrupt:
            sys.stderr.write("Interrupted. Finished shards are kept; run the same command again to resume.\n")
            raise typer.Exit(130) from None
        except BrokenPipeError:
            # `hardneg export ... --out - | head`: the reader left; not an error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None

    return wrapper  # type: ignore[return-value]


def _stdout() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 110)


def _print_json(data: Any) -> None:
    import orjson

    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")


def _embed_config(files: dict[str, Any], **flags: Any) -> EmbedConfig:
    flags["model_size"] = _value(flags.get("model_size"))
    return build(EmbedConfig, files, "embed", **flags)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"hardneg {__version__}\n")
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")] = False,
) -> None:
    """Mine hard negatives for ColBERT and dense retrievers: embed -> index -> mine -> export."""


EMBED_EXAMPLES = """Examples:

\b
  hardneg embed data/scifact --model minilm --out runs/sf-emb
  hardneg embed pairs.jsonl --corpus corpus.jsonl --lang fr --out runs/fr-emb
"""


@app.command(epilog=EMBED_EXAMPLES)
@_errors
def embed(
    source: Annotated[str, typer.Argument(help="BEIR folder, pairs file (JSONL/Parquet), or - for JSONL pairs on stdin.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Embeddings artifact directory to write.")],
    model: ModelOpt = None,
    lang: LangOpt = None,
    model_size: ModelSizeOpt = None,
    query_prompt: QueryPromptOpt = None,
    corpus_prompt: CorpusPromptOpt = None,
    max_length: MaxLengthOpt = None,
    batch_size: BatchSizeOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    shard_size: ShardSizeOpt = None,
    split: SplitOpt = None,
    corpus: CorpusOpt = None,
    config: ConfigOpt = None,
    workdir: WorkdirOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Encode corpus and queries into an embeddings artifact (Parquet shards + manifest).

    A killed run resumes from its last complete shard; texts already embedded by the same model at
    --out are not encoded again.
    """
    from hardneg.embed import embed as run_embed
    from hardneg.encoders import load_encoder
    from hardneg.inputs import load_input
    from hardneg.pipeline import STDIN, default_workdir, spool_stdin
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    cfg = _embed_config(
        files, model=model, lang=lang, model_size=model_size, query_prompt=query_prompt, corpus_prompt=corpus_prompt,
        max_length=max_length, batch_size=batch_size, workers=workers, device=device, shard_size=shard_size, split=split,
    )
    display = None
    path = Path(source)
    if source == STDIN:
        path, display = spool_stdin(sys.stdin.buffer, workdir or default_workdir()), "<stdin>"
    encoder = load_encoder(cfg)  # first: a missing model fails before any input is read
    try:
        with cli_reporter(quiet or json) as reporter:
            dataset = load_input(path, cfg.split, corpus, display)
            result = run_embed(dataset, out, cfg, encoder=encoder, force=force, reporter=reporter)
    finally:
        encoder.close()
    if json:
        _print_json({"path": str(result.path), "reused": result.reused, "manifest": result.manifest})
    else:
        from hardneg._render import render_embed

        render_embed(_stdout(), result.manifest, str(result.path), result.reused)


INDEX_EXAMPLES = """Examples:

\b
  hardneg index runs/sf-emb --out runs/sf-index
  hardneg index runs/sf-emb --exact --out runs/sf-exact
  hardneg index runs/big-emb --storage e4m3 --m 16 --threads 2 --out runs/big-index
"""


@app.command(epilog=INDEX_EXAMPLES)
@_errors
def index(
    embeddings: Annotated[Path, typer.Argument(help="Embeddings artifact directory (from `hardneg embed`).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Index artifact directory to write.")],
    exact: Annotated[Optional[bool], typer.Option("--exact/--hnsw", help="Exact search (chunked matrix products) or a Voyager HNSW index [default: exact below 200,000 documents].")] = None,
    m: MOpt = None,
    ef_construction: EfConstructionOpt = None,
    ef_search: EfSearchOpt = None,
    storage: StorageOpt = None,
    threads: ThreadsOpt = None,
    recall_sample: RecallSampleOpt = None,
    config: ConfigOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Build a search index over an embeddings artifact, measuring HNSW recall against exact search."""
    from hardneg.index import build_index
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    backend = None if exact is None else ("exact" if exact else "hnsw")
    cfg = build(
        IndexConfig, files, "index", backend=backend, m=m, ef_construction=ef_construction, ef_search=ef_search,
        storage=_value(storage), threads=threads, recall_sample=recall_sample,
    )
    with cli_reporter(quiet or json) as reporter:
        result = build_index(embeddings, out, cfg, force=force, reporter=reporter)
    if json:
        _print_json({"path": str(result.path), "reused": result.reused, "manifest": result.manifest})
    else:
        from hardneg._render import render_index

        render_index(_stdout(), result.manifest, str(result.path), result.reused)


MINE_EXAMPLES = """Examples:

\b
  hardneg mine data/scifact --model minilm --min-rank 10 --max-rank 110 --out runs/sf
  hardneg mine data/piaf_fr --lang fr --min-rank 10 --max-rank 110 --out runs/fr
  cat pairs.jsonl | hardneg mine - --model minilm --out runs/pairs
  hardneg mine runs/sf-index --num-negatives 5 --sampling top --out runs/sf-top
  hardneg mine runs/sf-index --sampling top --relative-margin 0.05 --out runs/sf-nv   (NV-Retriever)
  hardneg mine runs/sf-index --sampling simans --out runs/sf-simans
  hardneg mine runs/sf-index --retriever hybrid --out runs/sf-hybrid
  hardneg mine runs/sf-index --cross-encoder ./my-reranker --ce-max-score 0.9 --out runs/sf-denoised
"""


@app.command(epilog=MINE_EXAMPLES)
@_errors
def mine(
    source: Annotated[str, typer.Argument(help="Index or embeddings artifact, BEIR folder, pairs file, or - for JSONL pairs on stdin.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Mining-run artifact directory to write.")],
    min_rank: MinRankOpt = None,
    max_rank: MaxRankOpt = None,
    num_negatives: NumNegativesOpt = None,
    sampling: SamplingOpt = None,
    seed: SeedOpt = None,
    query_batch: QueryBatchOpt = None,
    retriever: RetrieverOpt = None,
    rrf_k: RrfKOpt = None,
    relative_margin: RelativeMarginOpt = None,
    absolute_margin: AbsoluteMarginOpt = None,
    max_score: MaxScoreOpt = None,
    min_score: MinScoreOpt = None,
    dedup_threshold: DedupThresholdOpt = None,
    simans_a: SimansAOpt = None,
    simans_b: SimansBOpt = None,
    cross_encoder: CrossEncoderOpt = None,
    ce_max_score: CeMaxScoreOpt = None,
    ce_pseudo_positive_score: CePseudoOpt = None,
    model: ModelOpt = None,
    lang: LangOpt = None,
    model_size: ModelSizeOpt = None,
    query_prompt: QueryPromptOpt = None,
    corpus_prompt: CorpusPromptOpt = None,
    max_length: MaxLengthOpt = None,
    batch_size: BatchSizeOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    shard_size: ShardSizeOpt = None,
    split: SplitOpt = None,
    corpus: CorpusOpt = None,
    index: Annotated[Optional[Backend], typer.Option("--index", help="Search backend when an index is built [default: auto].", rich_help_panel="Index")] = None,
    m: MOpt = None,
    ef_construction: EfConstructionOpt = None,
    ef_search: EfSearchOpt = None,
    storage: StorageOpt = None,
    threads: ThreadsOpt = None,
    config: ConfigOpt = None,
    workdir: WorkdirOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Mine hard negatives: rank window [--min-rank, --max-rank), positives and duplicates removed, sampled.

    Ranks are 0-based positions in the query's ranking of the whole corpus, known positives included.
    Given raw input, runs embed and index first (cached under --workdir).
    """
    from hardneg.pipeline import run_mine
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    ecfg = _embed_config(
        files, model=model, lang=lang, model_size=model_size, query_prompt=query_prompt, corpus_prompt=corpus_prompt,
        max_length=max_length, batch_size=batch_size, workers=workers, device=device, shard_size=shard_size, split=split,
    )
    icfg = build(
        IndexConfig, files, "index", backend=_value(index), m=m, ef_construction=ef_construction, ef_search=ef_search,
        storage=_value(storage), threads=threads,
    )
    mcfg = build(
        MineConfig, files, "mine", min_rank=min_rank, max_rank=max_rank, num_negatives=num_negatives,
        sampling=_value(sampling), seed=seed, query_batch=query_batch, retriever=_value(retriever), rrf_k=rrf_k,
        relative_margin=relative_margin,
        absolute_margin=absolute_margin, max_score=max_score, min_score=min_score, dedup_threshold=dedup_threshold,
        simans_a=simans_a, simans_b=simans_b, cross_encoder=cross_encoder, ce_max_score=ce_max_score,
        ce_pseudo_positive_score=ce_pseudo_positive_score,
    )
    with cli_reporter(quiet or json) as reporter:
        result = run_mine(
            source, out, ecfg, icfg, mcfg, workdir=workdir, corpus=corpus,
            stdin=sys.stdin.buffer if source == "-" else None, force=force, reporter=reporter,
        )
    if json:
        _print_json({"path": str(result.path), "reused": result.reused, "stats": result.stats.to_dict()})
    else:
        from hardneg._render import render_mine

        render_mine(_stdout(), result.stats.to_dict(), str(result.path))


EXPORT_EXAMPLES = """Examples:

\b
  hardneg export runs/sf --format colbert --out runs/sf-colbert
  hardneg export runs/sf --format colbert --nway 4 --out runs/sf-colbert-4way
  hardneg export runs/sf --format sentence-transformers --out runs/sf-st
  hardneg export runs/sf --format triplets --out - | head
  hardneg export runs/sf-denoised --format colbert --scores --nway 16 --out runs/sf-kd
  hardneg export runs/sf --format pylate-kd --out runs/sf-pylate
  hardneg export runs/sf --format flagembedding --out runs/sf-flag
  hardneg export runs/sf --format tevatron --out runs/sf-tevatron
"""


@app.command(epilog=EXPORT_EXAMPLES)
@_errors
def export(
    run: Annotated[Path, typer.Argument(help="Mining-run artifact directory (from `hardneg mine`).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory, or - to stream JSONL triplets to stdout.")],
    format: Annotated[Optional[Format], typer.Option("--format", "-f", help="colbert, triplets, sentence-transformers, pylate-kd, flagembedding or tevatron [default: colbert].")] = None,
    scores: Annotated[Optional[bool], typer.Option("--scores/--no-scores", help="colbert: distillation lines [qid, [pid, score], ...], positive first [default: no].")] = None,
    nway: Annotated[Optional[int], typer.Option("--nway", help="1 positive + (nway - 1) negatives per row [default: 2; sentence-transformers: 1 + all].")] = None,
    shuffle: Annotated[Optional[bool], typer.Option("--shuffle/--no-shuffle", help="Shuffle rows (seeded) so a batch mixes queries [default: shuffle].")] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Write training files (ColBERT, triplets, sentence-transformers, PyLate KD, FlagEmbedding, Tevatron) from a mining run."""
    from hardneg.export import export as run_export
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    cfg = build(ExportConfig, files, "export", format=_value(format), nway=nway, scores=scores, shuffle=shuffle, seed=seed)
    with cli_reporter(quiet or json or out == "-") as reporter:
        if out == "-":
            result = run_export(run, None, cfg, stream=sys.stdout.buffer, reporter=reporter)
        else:
            result = run_export(run, Path(out), cfg, force=force, reporter=reporter)
    if out == "-":
        return
    if json:
        _print_json({"path": str(result.path), "stats": result.stats.to_dict()})
    else:
        from hardneg._render import render_export

        render_export(_stdout(), result.stats.to_dict(), str(result.path))


def main() -> None:
    """Console-script entry point."""
    app()
