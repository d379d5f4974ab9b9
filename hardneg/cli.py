"""The `hardneg` command line: thin commands that build a stage config, call the library, print a summary."""

from __future__ import annotations

import functools
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from hardneg import __version__
from hardneg._options import (
    AbsoluteMarginOpt,
    ArchitectureOpt,
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
    EngineOpt,
    EpochsOpt,
    ForceOpt,
    JsonOpt,
    JudgeActionOpt,
    JudgeOpt,
    JudgeTopOpt,
    KdDepthOpt,
    KdNormalizeOpt,
    KdTemperatureOpt,
    LabelsOpt,
    LangOpt,
    LearningRateOpt,
    LlmModelOpt,
    LlmUrlOpt,
    LossOpt,
    MaxLengthOpt,
    MaxPerDocOpt,
    MaxRankOpt,
    MaxScoreOpt,
    MinRankOpt,
    MinScoreOpt,
    ModelOpt,
    ModelSizeOpt,
    MOpt,
    NumNegativesOpt,
    NumShardsOpt,
    PrecisionOpt,
    QueryBatchOpt,
    QueryPromptOpt,
    QuietOpt,
    RayAddressOpt,
    RecallSampleOpt,
    RelativeMarginOpt,
    RetrieverOpt,
    RrfKOpt,
    SameGroupOpt,
    SamplingOpt,
    ScoresFromOpt,
    SeedOpt,
    ShardIndexOpt,
    ShardSizeOpt,
    SimansAOpt,
    SimansBOpt,
    SplitOpt,
    StorageOpt,
    TargetRecallOpt,
    ThreadsOpt,
    TrainNegativesOpt,
    TrainSeedOpt,
    WorkdirOpt,
    WorkersOpt,
    choice,
)
from hardneg.config import (
    BACKENDS,
    EXPORT_FORMATS,
    SCORE_TRANSFORMS,
    SELECT_STRATEGIES,
    TRIPLET_ROWS,
    EmbedConfig,
    EvalConfig,
    ExportConfig,
    IndexConfig,
    LoopConfig,
    MineConfig,
    SelectConfig,
    TrainConfig,
    build,
    load_config_file,
)
from hardneg.errors import ConfigError, HardnegError

F = TypeVar("F", bound=Callable[..., Any])

app = typer.Typer(
    name="hardneg",
    help="Mine hard negatives for ColBERT and dense retrievers: embed -> index -> mine -> export.",
    epilog=(
        "Quick start (offline, bundled model):\n\n```\n"
        "hardneg mine examples/scifact-sample --model minilm --out run     # embed + index + mine\n"
        "hardneg export run --format colbert --out colbert                 # or sentence-transformers, pylate-kd, ...\n"
        "hardneg report run                                                # HTML: scores, ranks, filters\n```\n"
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)


def _value(option: Any) -> Any:
    return option.value if option is not None and hasattr(option, "value") else option


def _errors(fn: F) -> F:
    """Map library errors to one `Error: ...` line on stderr: exit 1 (2 for configuration/usage)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if sys.stdout is None:  # started with stdout closed (`>&-`): results go nowhere, as with EPIPE
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        try:
            return fn(*args, **kwargs)
        except HardnegError as exc:
            if os.environ.get("HARDNEG_DEBUG", "") not in ("", "0"):
                raise
            sys.stderr.write("Error: " + " ".join(str(exc).split("\n")) + "\n")  # always one line
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, Terminated)
            sys.stderr.write(
                f"{'Terminated' if terminated else 'Interrupted'}. Finished shards are kept; "
                "run the same command again to resume.\n"
            )
            raise typer.Exit(143 if terminated else 130) from None
        except BrokenPipeError:
            # `hardneg export ... --out - | head`: the reader left; not an error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: still one line, with the way to the traceback
            if os.environ.get("HARDNEG_DEBUG", "") not in ("", "0"):
                raise
            message = " ".join(str(exc).split("\n"))[:500]
            sys.stderr.write(
                f"Error: unexpected {exc.__class__.__name__}: {message} (a bug in hardneg: please report it; "
                "set HARDNEG_DEBUG=1 for a traceback)\n"
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def _shard(num_shards: int | None, shard_index: int | None) -> tuple[int, int] | None:
    """--num-shards/--shard-index as (index, count); both or neither."""
    if num_shards is None and shard_index is None:
        return None
    if num_shards is None or shard_index is None:
        raise ConfigError("--num-shards and --shard-index go together (e.g. --num-shards 8 --shard-index $SLURM_ARRAY_TASK_ID)")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConfigError(f"--shard-index must be in [0, --num-shards), got {shard_index} of {num_shards}")
    return shard_index, num_shards


def _print_partial(result: Any, json: bool) -> None:
    """A job of a split wrote its share: say how the artifact gets finished."""
    if json:
        _print_json({"path": str(result.path), "complete": False, "manifest": result.manifest})
        return
    _stdout().print(
        f"wrote this job's share into {result.manifest['partial']}; when every job is done, run the same "
        "command without --num-shards/--shard-index to finish and commit it", markup=False, highlight=False,
    )


def _stdin() -> Any:
    """Standard input as bytes; an error when the process was started with it closed (`<&-`)."""
    from hardneg.errors import InputError

    if sys.stdin is None:
        raise InputError("'-' reads JSONL pairs from standard input, but standard input is closed", "<stdin>")
    return sys.stdin.buffer


def _stdout() -> Any:
    """The console results are printed to. A reader that leaves early (`hardneg mine ... | head -1`)
    is a normal end, exit 0, for every command (rich's default would exit 1)."""
    from rich.console import Console

    class _Stdout(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(0)

    return _Stdout(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 240)  # pipes and logs: no wrapped tables or commands


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
    precision: PrecisionOpt = None,
    shard_size: ShardSizeOpt = None,
    split: SplitOpt = None,
    corpus: CorpusOpt = None,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    num_shards: NumShardsOpt = None,
    shard_index: ShardIndexOpt = None,
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
        max_length=max_length, batch_size=batch_size, workers=workers, device=device, precision=precision, shard_size=shard_size, split=split,
        engine=_value(engine),
    )
    shard = _shard(num_shards, shard_index)
    display = None
    path = Path(source)
    if source == STDIN:
        path, display = spool_stdin(_stdin(), workdir or default_workdir()), "<stdin>"
    encoder = load_encoder(cfg)  # first: a missing model fails before any input is read
    try:
        with cli_reporter(quiet or json) as reporter:
            dataset = load_input(path, cfg.split, corpus, display)
            result = run_embed(dataset, out, cfg, encoder=encoder, force=force, shard=shard, ray_address=ray_address, reporter=reporter)
    finally:
        encoder.close()
    if not result.complete:
        _print_partial(result, json)
        return
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
    exact: Annotated[Optional[bool], typer.Option("--exact/--hnsw", help="Exact search (chunked matrix products) or a Voyager HNSW index [default: auto, whichever a cost model expects to finish first].")] = None,
    m: MOpt = None,
    ef_construction: EfConstructionOpt = None,
    ef_search: EfSearchOpt = None,
    target_recall: TargetRecallOpt = None,
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
        target_recall=target_recall, storage=_value(storage), threads=threads, recall_sample=recall_sample,
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
  hardneg mine runs/sf-index --teacher ./my-reranker --ce-max-score 0.9 --out runs/sf-denoised
  hardneg mine runs/sf-index --teacher ./my-reranker --scores-from teacher --relative-margin 0.05 --sampling top --min-rank 0 --out runs/sf-nv
  hardneg mine runs/sf-index --teacher ./my-reranker --kd-depth 32 --out runs/sf-kd   (then export --format pylate-kd)
  hardneg mine runs/sf-index --labels runs/sf-labels --out runs/sf-labelled   (after `hardneg label import`)
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
    scores_from: ScoresFromOpt = None,
    ce_max_score: CeMaxScoreOpt = None,
    ce_pseudo_positive_score: CePseudoOpt = None,
    kd_depth: KdDepthOpt = None,
    labels: LabelsOpt = None,
    model: ModelOpt = None,
    lang: LangOpt = None,
    model_size: ModelSizeOpt = None,
    query_prompt: QueryPromptOpt = None,
    corpus_prompt: CorpusPromptOpt = None,
    max_length: MaxLengthOpt = None,
    batch_size: BatchSizeOpt = None,
    workers: WorkersOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    shard_size: ShardSizeOpt = None,
    split: SplitOpt = None,
    corpus: CorpusOpt = None,
    index: Annotated[Optional[str], typer.Option("--index", **choice(BACKENDS), help="Search backend when an index is built [default: auto].", rich_help_panel="Index")] = None,
    m: MOpt = None,
    ef_construction: EfConstructionOpt = None,
    ef_search: EfSearchOpt = None,
    target_recall: TargetRecallOpt = None,
    storage: StorageOpt = None,
    threads: ThreadsOpt = None,
    same_group: SameGroupOpt = None,
    max_per_doc: MaxPerDocOpt = None,
    judge: JudgeOpt = None,
    llm_url: LlmUrlOpt = None,
    llm_model: LlmModelOpt = None,
    judge_top: JudgeTopOpt = None,
    judge_action: JudgeActionOpt = None,
    engine: EngineOpt = None,
    ray_address: RayAddressOpt = None,
    num_shards: NumShardsOpt = None,
    shard_index: ShardIndexOpt = None,
    config: ConfigOpt = None,
    workdir: WorkdirOpt = None,
    force: ForceOpt = False,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Write the run even when no query can be mined or no negative is selected (an error otherwise).")] = False,
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
        max_length=max_length, batch_size=batch_size, workers=workers, device=device, precision=precision, shard_size=shard_size, split=split,
        engine=_value(engine),
    )
    icfg = build(
        IndexConfig, files, "index", backend=_value(index), m=m, ef_construction=ef_construction, ef_search=ef_search,
        target_recall=target_recall, storage=_value(storage), threads=threads,
    )
    mcfg = build(
        MineConfig, files, "mine", min_rank=min_rank, max_rank=max_rank, num_negatives=num_negatives,
        sampling=_value(sampling), seed=seed, query_batch=query_batch, retriever=_value(retriever), rrf_k=rrf_k,
        relative_margin=relative_margin,
        absolute_margin=absolute_margin, max_score=max_score, min_score=min_score, dedup_threshold=dedup_threshold,
        simans_a=simans_a, simans_b=simans_b, cross_encoder=cross_encoder, ce_max_score=ce_max_score,
        ce_pseudo_positive_score=ce_pseudo_positive_score, labels=str(labels) if labels else None,
        scores_from=_value(scores_from), kd_depth=kd_depth, engine=_value(engine), judge=judge, llm_url=llm_url,
        llm_model=llm_model, judge_top=judge_top, judge_action=judge_action, max_per_doc=max_per_doc,
        same_group=same_group,
    )
    with cli_reporter(quiet or json) as reporter:
        result = run_mine(
            source, out, ecfg, icfg, mcfg, workdir=workdir, corpus=corpus,
            stdin=_stdin() if source == "-" else None, force=force, allow_empty=allow_empty,
            shard=_shard(num_shards, shard_index), ray_address=ray_address, reporter=reporter,
        )
    if not result.complete:
        _print_partial(result, json)
        return
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
  hardneg export runs/sf --format msmarco-triples --out runs/sf-tsv
  hardneg export runs/sf-denoised --format colbert --scores --nway 16 --out runs/sf-kd
  hardneg export runs/sf --format pylate-kd --out runs/sf-pylate
  hardneg export runs/sf --format flagembedding --out runs/sf-flag
  hardneg export runs/sf --format tevatron --out runs/sf-tevatron
"""


@app.command(epilog=EXPORT_EXAMPLES)
@_errors
def export(
    run: Annotated[Path, typer.Argument(help="Mining-run artifact directory (from `hardneg mine`).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Output directory, or - to stream triplets / msmarco-triples lines to stdout.")],
    format: Annotated[Optional[str], typer.Option("--format", "-f", **choice(EXPORT_FORMATS), help="colbert, triplets, sentence-transformers, pylate-kd, flagembedding, tevatron or msmarco-triples [default: colbert].")] = None,
    scores: Annotated[Optional[bool], typer.Option("--scores/--no-scores", help="colbert: distillation lines [qid, [pid, score], ...], positive first [default: no].")] = None,
    nway: Annotated[Optional[int], typer.Option("--nway", help="1 positive + (nway - 1) negatives per row [default: 2; sentence-transformers: 1 + all].")] = None,
    shuffle: Annotated[Optional[bool], typer.Option("--shuffle/--no-shuffle", help="Shuffle rows (seeded) so a batch mixes queries [default: shuffle].")] = None,
    seed: SeedOpt = None,
    score_transform: Annotated[Optional[str], typer.Option("--score-transform", **choice(SCORE_TRANSFORMS), help="KD formats: scores per query as they are (none), scaled to [0, 1] (minmax) or standardised (zscore) [default: none].")] = None,
    triplet_rows: Annotated[Optional[str], typer.Option("--triplet-rows", **choice(TRIPLET_ROWS), help="triplets: JSONL objects {query, positive, negative} or arrays [query, positive, negative] [default: objects].")] = None,
    config: ConfigOpt = None,
    force: ForceOpt = False,
    allow_empty: Annotated[bool, typer.Option("--allow-empty", help="Write the export even when it has no training row (an error otherwise).")] = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Write training files (ColBERT, triplets, sentence-transformers, PyLate KD, FlagEmbedding, Tevatron, MS MARCO triples) from a mining run."""
    from hardneg.export import export as run_export
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    cfg = build(ExportConfig, files, "export", format=_value(format), nway=nway, scores=scores, shuffle=shuffle, seed=seed,
                triplet_rows=_value(triplet_rows), score_transform=score_transform)
    with cli_reporter(quiet or json or out == "-") as reporter:
        if out == "-":
            result = run_export(run, None, cfg, stream=sys.stdout.buffer, allow_empty=allow_empty, reporter=reporter)
        else:
            result = run_export(run, Path(out), cfg, force=force, allow_empty=allow_empty, reporter=reporter)
    if out == "-":
        return
    if json:
        _print_json({"path": str(result.path), "stats": result.stats.to_dict()})
    else:
        from hardneg._render import render_export

        render_export(_stdout(), result.stats.to_dict(), str(result.path))



TRAIN_EXAMPLES = """Examples:

\b
  hardneg export runs/sf --format sentence-transformers --out runs/sf-st
  hardneg train runs/sf-st --model minilm --out models/sf-r1
  hardneg train runs/sf-st --model minilm --loss cached-mnrl --batch-size 256 --epochs 2 --out models/sf-big
  hardneg train runs/sf-st --model minilm --architecture colbert --out models/sf-colbert
  hardneg train runs/sf-kd --model minilm --architecture colbert --loss distillation --out models/sf-colbert-kd
  hardneg train runs/sf-st --model minilm --architecture cross-encoder --negatives-per-row 5 --out models/sf-ce
"""


@app.command(epilog=TRAIN_EXAMPLES)
@_errors
def train(
    export_dir: Annotated[Path, typer.Argument(metavar="EXPORT", help="A sentence-transformers export (hardneg export --format sentence-transformers), or a pylate-kd export for --loss distillation/margin-mse.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Checkpoint directory to write.")],
    model: ModelOpt = None,
    lang: LangOpt = None,
    model_size: ModelSizeOpt = None,
    architecture: ArchitectureOpt = None,
    loss: LossOpt = None,
    kd_normalize: KdNormalizeOpt = None,
    kd_temperature: KdTemperatureOpt = None,
    epochs: EpochsOpt = None,
    batch_size: Annotated[Optional[int], typer.Option("--batch-size", help="Training batch size: in-batch negatives per query [default: 32].", rich_help_panel="Training")] = None,
    learning_rate: LearningRateOpt = None,
    negatives_per_row: TrainNegativesOpt = None,
    max_length: MaxLengthOpt = None,
    mini_batch_size: Annotated[Optional[int], typer.Option("--mini-batch-size", help="cached-mnrl: texts per forward pass [default: 32].", rich_help_panel="Training")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="Training seed [default: 42].", rich_help_panel="Training")] = None,
    device: DeviceOpt = None,
    config: ConfigOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Fine-tune a bi-encoder, a ColBERT model or a cross-encoder on mined negatives.

    Bi-encoders and ColBERT train contrastively (MultipleNegativesRankingLoss) on a sentence-transformers
    export; ColBERT also distils teacher scores from a pylate-kd export. The checkpoint loads with
    SentenceTransformer / MultiVectorEncoder / CrossEncoder(path) and as `--model path` (`--cross-encoder
    path` for a cross-encoder); an up-to-date one is reused.
    """
    from hardneg.progress import cli_reporter
    from hardneg.train import train as run_train

    files = load_config_file(config)
    ecfg = _embed_config(files, model=model, lang=lang, model_size=model_size)
    tcfg = build(
        TrainConfig, files, "train", architecture=_value(architecture), loss=_value(loss),
        kd_normalize=_value(kd_normalize), kd_temperature=kd_temperature, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
        negatives=negatives_per_row, max_length=max_length, mini_batch_size=mini_batch_size, seed=seed, device=device,
    )
    with cli_reporter(quiet or json) as reporter:
        result = run_train(export_dir, out, tcfg, ecfg, force=force, reporter=reporter)
    if json:
        _print_json({"path": str(result.path), "reused": result.reused, "manifest": result.manifest})
    else:
        t = result.manifest["training"]
        _stdout().print(
            f"checkpoint: {result.path}{' (up to date, reused)' if result.reused else ''}\n"
            f"  {result.manifest.get('architecture', 'biencoder')} ({result.manifest.get('loss', '?')}) "
            f"from {result.manifest['base_model']['name']}; {t['rows']:,} rows, {t['steps']:,} steps, "
            f"training loss {t['training_loss']:.4f}, {t['seconds']:.0f} s on {t['device']}",
            markup=False, highlight=False,
        )


EVAL_EXAMPLES = """Examples:

\b
  hardneg eval data/scifact --model minilm --split test
  hardneg eval data/scifact --model models/sf-r1 --split test --json
  hardneg eval data/scifact --model models/sf-colbert --split test        # ColBERT: exact MaxSim
  hardneg eval data/scifact --model minilm --architecture colbert          # zero-shot ColBERT baseline
"""


@app.command("eval", epilog=EVAL_EXAMPLES)
@_errors
def eval_(
    source: Annotated[Path, typer.Argument(help="BEIR folder (or an embeddings artifact of the split to score).")],
    split: Annotated[Optional[str], typer.Option("--split", help="qrels split to evaluate: test, dev, ... [default: test].")] = None,
    k: Annotated[Optional[int], typer.Option("--k", help="Recall@k depth [default: 100].")] = None,
    architecture: Annotated[Optional[str], typer.Option("--architecture", help="auto (from the checkpoint), biencoder, or colbert (exact MaxSim; a plain model gets a seeded 128-d head) [default: auto].")] = None,
    per_query: Annotated[bool, typer.Option("--per-query", help="With --json: each query's metrics too (for paired significance tests).")] = False,
    allow_seen_queries: Annotated[Optional[bool], typer.Option("--allow-seen-queries", help="Score a split even when the checkpoint trained on some of its queries (refused by default: test leakage).")] = None,
    model: ModelOpt = None,
    lang: LangOpt = None,
    model_size: ModelSizeOpt = None,
    query_prompt: QueryPromptOpt = None,
    corpus_prompt: CorpusPromptOpt = None,
    max_length: MaxLengthOpt = None,
    batch_size: BatchSizeOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    config: ConfigOpt = None,
    engine: EngineOpt = None,
    workdir: WorkdirOpt = None,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """nDCG@10, MRR@10, Recall@10 and Recall@k of a model on a BEIR split (exact search, embeddings cached)."""
    from hardneg.evaluate import evaluate
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    ecfg = _embed_config(
        files, model=model, lang=lang, model_size=model_size, query_prompt=query_prompt, corpus_prompt=corpus_prompt,
        max_length=max_length, batch_size=batch_size, device=device, precision=precision, engine=_value(engine),
    )
    cfg = build(EvalConfig, files, "eval", split=split, k=k, architecture=architecture, allow_seen_queries=allow_seen_queries)
    with cli_reporter(quiet or json) as reporter:
        result = evaluate(source, ecfg, cfg, workdir=workdir, reporter=reporter)
    if json:
        _print_json(result.to_dict(per_query=per_query))
        return
    from rich.table import Table

    table = Table(title=f"{result.model['name']} on {source} [{result.split}]: {result.queries:,} queries", title_justify="left")
    for name in result.metrics:
        table.add_column(name, justify="right")
    table.add_row(*(f"{v:.4f}" for v in result.metrics.values()))
    console = _stdout()
    console.print(table)
    if result.skipped:
        console.print(f"{result.skipped} queries without a relevant document were left out", markup=False, highlight=False)


LOOP_EXAMPLES = """Examples:

\b
  hardneg loop data/scifact --rounds 3 --dev-split test --out runs/sf-loop
  hardneg loop data/scifact --rounds 5 --dev-split dev --patience 2 --labels runs/sf-labels --out runs/sf-loop
  hardneg loop data/scifact --rounds 2 --dev-split test --architecture colbert --out runs/sf-loop-colbert
"""


@app.command(epilog=LOOP_EXAMPLES)
@_errors
def loop(
    source: Annotated[Path, typer.Argument(help="BEIR folder or pairs file.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Loop directory (rounds/K/... inside); rerun the same command to resume.")],
    rounds: Annotated[Optional[int], typer.Option("--rounds", help="Training rounds after round 0 (the base model) [default: 3].")] = None,
    dev_split: Annotated[Optional[str], typer.Option("--dev-split", help="Split evaluated after each round; enables early stopping [default: none].")] = None,
    metric: Annotated[Optional[str], typer.Option("--metric", help="Early-stopping metric: ndcg@10, mrr@10, recall@10, recall@k [default: ndcg@10].")] = None,
    patience: Annotated[Optional[int], typer.Option("--patience", help="Stop after this many rounds without improvement [default: 1].")] = None,
    warm_start: Annotated[Optional[bool], typer.Option("--warm-start/--from-base", help="Train each round from the previous checkpoint (ANCE) or from the base model [default: warm start].")] = None,
    min_rank: MinRankOpt = None,
    max_rank: MaxRankOpt = None,
    num_negatives: NumNegativesOpt = None,
    sampling: SamplingOpt = None,
    seed: SeedOpt = None,
    relative_margin: RelativeMarginOpt = None,
    labels: LabelsOpt = None,
    architecture: Annotated[Optional[str], typer.Option("--architecture", help="biencoder, or colbert: mining stays with the bi-encoder, and each round also trains a ColBERT student on its negatives (early stopping follows the student) [default: biencoder].", rich_help_panel="Training")] = None,
    loss: LossOpt = None,
    epochs: EpochsOpt = None,
    train_batch_size: Annotated[Optional[int], typer.Option("--train-batch-size", help="Training batch size [default: 32].", rich_help_panel="Training")] = None,
    learning_rate: LearningRateOpt = None,
    negatives_per_row: TrainNegativesOpt = None,
    train_seed: TrainSeedOpt = None,
    model: ModelOpt = None,
    lang: LangOpt = None,
    model_size: ModelSizeOpt = None,
    max_length: MaxLengthOpt = None,
    batch_size: BatchSizeOpt = None,
    device: DeviceOpt = None,
    precision: PrecisionOpt = None,
    split: SplitOpt = None,
    engine: EngineOpt = None,
    config: ConfigOpt = None,
    force: ForceOpt = False,
    quiet: QuietOpt = False,
    json: JsonOpt = False,
) -> None:
    """Active-learning rounds: train on the negatives, re-embed with the new checkpoint, re-mine, evaluate.

    Round 0 mines with the base model; each round lives in OUT/rounds/K; a killed loop resumes.
    """
    from hardneg.loop import run_loop
    from hardneg.progress import cli_reporter

    files = load_config_file(config)
    ecfg = _embed_config(
        files, model=model, lang=lang, model_size=model_size, max_length=max_length, batch_size=batch_size,
        device=device, precision=precision, split=split, engine=_value(engine),
    )
    icfg = build(IndexConfig, files, "index")
    mcfg = build(
        MineConfig, files, "mine", min_rank=min_rank, max_rank=max_rank, num_negatives=num_negatives,
        sampling=_value(sampling), seed=seed, relative_margin=relative_margin, labels=str(labels) if labels else None,
        engine=_value(engine),
    )
    tcfg = build(
        TrainConfig, files, "train", architecture=architecture, loss=_value(loss), epochs=epochs, batch_size=train_batch_size,
        learning_rate=learning_rate, negatives=negatives_per_row, seed=train_seed, device=device,
    )
    lcfg = build(LoopConfig, files, "loop", rounds=rounds, dev_split=dev_split, metric=metric, patience=patience, warm_start=warm_start)
    ecfg_eval = build(EvalConfig, files, "eval")
    with cli_reporter(quiet or json) as reporter:
        result = run_loop(source, out, ecfg, icfg, mcfg, tcfg, lcfg, ecfg_eval, force=force, reporter=reporter)
    if json:
        _print_json({"path": str(result.path), "best_round": result.best_round, "stopped_early": result.stopped_early, "rounds": result.rounds})
    else:
        from hardneg._render import render_loop

        render_loop(_stdout(), result.rounds, result.best_round, result.stopped_early, str(result.path))


SELECT_EXAMPLES = """Examples:

\b
  hardneg select runs/sf --budget 50 --out runs/sf-select
  hardneg select runs/sf --budget 100 --strategy entropy --diversity 0.3 --out runs/sf-select
"""


@app.command(epilog=SELECT_EXAMPLES)
@_errors
def select(
    run: Annotated[Path, typer.Argument(help="Mining-run artifact directory.")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Directory for to_label.jsonl and to_label.csv.")],
    budget: Annotated[Optional[int], typer.Option("--budget", help="Queries to send for labelling [default: 50].")] = None,
    strategy: Annotated[Optional[str], typer.Option("--strategy", **choice(SELECT_STRATEGIES), help="margin: smallest (positive - best candidate) first; entropy: most uncertain softmax first [default: margin].")] = None,
    diversity: Annotated[Optional[float], typer.Option("--diversity", help="0 = uncertainty only; up to <1 favours queries unlike those already picked (MMR) [default: 0].")] = None,
    candidates: Annotated[Optional[int], typer.Option("--candidates", help="Candidates shown per query [default: 10].")] = None,
    temperature: Annotated[Optional[float], typer.Option("--temperature", help="Softmax temperature for --strategy entropy [default: 0.05].")] = None,
    config: ConfigOpt = None,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Pick the queries worth labelling (uncertainty sampling) and write a labelling file (JSONL + CSV)."""
    from hardneg.selection import select as run_select

    files = load_config_file(config)
    cfg = build(
        SelectConfig, files, "select", budget=budget, strategy=_value(strategy), diversity=diversity,
        candidates=candidates, temperature=temperature,
    )
    result = run_select(run, out, cfg, force=force)
    if json:
        _print_json({"path": str(result.path), "manifest": result.manifest, "queries": [c["query_id"] for c in result.chosen]})
        return
    counts = result.manifest["counts"]
    _stdout().print(
        f"selected {counts['queries_chosen']} of {counts['queries_considered']} queries "
        f"({counts['candidates']} candidates to judge, strategy {cfg.strategy})\n"
        f"  {result.path}/to_label.jsonl\n  {result.path}/to_label.csv\n"
        "Fill each `label` with relevant / not_relevant / skip, then: "
        f"hardneg label import {result.path}/to_label.csv --run {run}",
        markup=False, highlight=False,
    )


label_app = typer.Typer(help="Human judgments: import labelled candidates back into mining.", no_args_is_help=True)
app.add_typer(label_app, name="label")


@label_app.command("import")
@_errors
def label_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Labelled to_label.jsonl / to_label.csv (or JSONL rows query_id, doc_id, label).")],
    run: Annotated[Path, typer.Option("--run", help="The mining run the selection came from (its queries and corpus are the valid ids).")],
    into: Annotated[Optional[Path], typer.Option("--into", help="Labels artifact to create or extend [default: RUN-labels next to the run].")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip malformed or unknown rows (reported) instead of refusing the import.")] = False,
    json: JsonOpt = False,
) -> None:
    """Merge judgments: relevant -> positive (never a negative again); not_relevant -> confirmed negative.

    Use the result with `hardneg mine ... --labels DIR` (or `hardneg loop --labels DIR`).
    """
    from hardneg.label import import_labels

    into = into or run.with_name(run.name + "-labels")
    result = import_labels(file, run, into, skip_invalid=skip_invalid)
    s = result.stats
    if json:
        _print_json({"path": str(result.path), "stats": s.to_dict(), "counts": result.manifest["counts"]})
        return
    lines = [
        f"imported {s.relevant} relevant and {s.not_relevant} not-relevant judgments ({s.skipped} skipped, "
        f"{s.replaced} replaced earlier ones); {s.total_judgments} judgments in {result.path}"
    ]
    if s.invalid:
        lines.append(f"{s.invalid} invalid row(s) skipped:")
        lines += [f"  {p}" for p in s.problems]
    lines.append(f"next: hardneg mine <index or data> --labels {result.path} --out <new run>")
    _stdout().print("\n".join(lines), markup=False, highlight=False)


@app.command(epilog="Examples:\n\n\b\n  hardneg report runs/sf --out runs/sf-report\n  hardneg report runs/sf-loop --out runs/sf-loop-report\n")
@_errors
def report(
    path: Annotated[Path, typer.Argument(help="Mining run or loop directory.")],
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Report directory [default: PATH-report next to PATH].")] = None,
    sample: Annotated[int, typer.Option("--sample", help="Queries shown with their positives and negatives.")] = 10,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the query sample.")] = 0,
    json: JsonOpt = False,
) -> None:
    """An HTML report (one self-contained file) and PNG plots: scores, ranks, filters, rounds."""
    from hardneg.report import report as run_report

    out = out or path.with_name(path.name + "-report")
    result = run_report(path, out, sample=sample, seed=seed)
    if json:
        _print_json({"path": str(result.path), "files": result.files})
        return
    _stdout().print("\n".join(f"{result.path}/{name}" for name in result.files), markup=False, highlight=False)


@app.command(epilog="Examples:\n\n\b\n  hardneg audit runs/sf --llm-url http://localhost:8000/v1 --llm-model Qwen/Qwen2.5-7B-Instruct --sample 200\n")
@_errors
def audit(
    run: Annotated[Path, typer.Argument(help="Mining run to audit.")],
    llm_url: LlmUrlOpt = None,
    llm_model: LlmModelOpt = None,
    sample: Annotated[int, typer.Option("--sample", help="Queries judged (seeded sample of the mined ones).")] = 200,
    bands: Annotated[int, typer.Option("--bands", help="Rank bands the window is split into.")] = 5,
    seed: SeedOpt = None,
    out: Annotated[Optional[Path], typer.Option("--out", "-o", help="Audit directory [default: RUN-audit next to RUN].")] = None,
    force: ForceOpt = False,
    json: JsonOpt = False,
) -> None:
    """Estimate a run's false-negative rate per rank band and per filter with an LLM judge (Wilson 95% intervals)."""
    from hardneg.audit import audit as run_audit
    from hardneg.llm import Judge
    from hardneg.pipeline import default_workdir

    url = llm_url or os.environ.get("HARDNEG_LLM_URL")
    if not url or not llm_model:
        raise ConfigError("audit needs an LLM: --llm-url URL (or HARDNEG_LLM_URL) and --llm-model NAME")
    judge = Judge(url, llm_model, default_workdir() / "llm", backoff=float(os.environ.get("HARDNEG_LLM_BACKOFF", "1.0")))
    result = run_audit(run, out or run.with_name(run.name + "-audit"), judge, sample=sample, seed=seed or 0, bands=bands, force=force)
    if json:
        _print_json({"path": str(result.path), "queries": result.queries, "groups": result.groups, "usage": result.usage})
        return
    from rich.table import Table

    table = Table(title=f"False negatives judged by {llm_model} on {result.queries} queries", title_justify="left")
    for column in ("group", "judged", "judged relevant", "rate", "95% CI", "unjudged"):
        table.add_column(column, justify="left" if column == "group" else "right")
    for g in result.groups:
        rate = "-" if g["false_negative_rate"] is None else f"{g['false_negative_rate']:.1%}"
        ci = "-" if g["ci95"] is None else f"[{g['ci95'][0]:.1%}, {g['ci95'][1]:.1%}]"
        table.add_row(g["group"], str(g["judged"]), str(g["judged_relevant"]), rate, ci, str(g["unjudged"]))
    console = _stdout()
    console.print(table)
    console.print(f"{result.path}/audit.json  ({result.usage.get('requests', 0)} requests, {result.usage.get('cached', 0)} cached)",
                  markup=False, highlight=False)


cache_app = typer.Typer(help="The workdir cache the one-liner keeps (embeddings, indexes, piped input): list and prune it.", no_args_is_help=True)
app.add_typer(cache_app, name="cache")


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024:
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _print_entries(entries: list[Any], title: str) -> None:
    import time as _time

    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for column in ("entry", "kind", "size", "last used", "what"):
        table.add_column(column, justify="right" if column == "size" else "left")
    for e in entries:
        table.add_row(str(e.path), e.kind, _size(e.bytes), _time.strftime("%Y-%m-%d %H:%M", _time.localtime(e.last_used)), e.describes)
    _stdout().print(table)


@cache_app.command("list")
@_errors
def cache_list(workdir: WorkdirOpt = None, json: JsonOpt = False) -> None:
    """List the cache entries, least recently used first, with their size."""
    from hardneg.cache import list_entries
    from hardneg.pipeline import default_workdir

    root = workdir or default_workdir()
    entries = list_entries(root)
    if json:
        _print_json({"workdir": str(root), "bytes": sum(e.bytes for e in entries),
                     "entries": [{"path": str(e.path), "kind": e.kind, "bytes": e.bytes, "last_used": e.last_used, "what": e.describes} for e in entries]})
        return
    _print_entries(entries, f"{root}: {len(entries)} entries, {_size(sum(e.bytes for e in entries))}")


@cache_app.command("prune")
@_errors
def cache_prune(
    older_than: Annotated[Optional[str], typer.Option("--older-than", help="Remove entries last used longer ago than this (e.g. 7d, 12h).")] = None,
    max_size: Annotated[Optional[str], typer.Option("--max-size", help="Then remove the least recently used entries until the cache is at most this (e.g. 10G).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    workdir: WorkdirOpt = None,
    json: JsonOpt = False,
) -> None:
    """Remove old or excess cache entries (never one a running hardneg is writing). Removed entries are recomputed when needed."""
    from hardneg.cache import parse_age, parse_size, prune
    from hardneg.pipeline import default_workdir

    if older_than is None and max_size is None:
        raise ConfigError("give --older-than AGE and/or --max-size SIZE (see hardneg cache list)")
    root = workdir or default_workdir()
    removed, busy = prune(root, older_than=parse_age(older_than) if older_than else None,
                          max_bytes=parse_size(max_size) if max_size else None, dry_run=dry_run)
    freed = sum(e.bytes for e in removed)
    if json:
        _print_json({"dry_run": dry_run, "removed": [str(e.path) for e in removed], "bytes": freed, "busy": [str(e.path) for e in busy]})
        return
    verb = "would remove" if dry_run else "removed"
    lines = [f"{verb} {len(removed)} entries ({_size(freed)}) from {root}"] + [f"  {e.path}" for e in removed]
    if busy:
        lines.append(f"kept {len(busy)} entries a running hardneg is writing: " + ", ".join(str(e.path) for e in busy))
    _stdout().print("\n".join(lines), markup=False, highlight=False)


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is so that cleanup runs: temporary directories are removed and
    resumable work is kept, as for Ctrl-C. (The default SIGTERM action kills the process without
    running any ``finally``, leaving ``*.tmp-*`` directories behind.)"""


def _on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


MODEL_COMMANDS = frozenset({"embed", "mine", "train", "eval", "loop", "select"})


def _restart_with_allocator_tunables() -> None:
    """Commands that run a model re-execute this process once with `encoders.ALLOCATOR_TUNABLES`
    in the environment: glibc reads them only at start, and they cut the encoder's peak memory by a
    quarter at no cost in speed. Same PID, same arguments; skipped where they do not apply."""
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if command not in MODEL_COMMANDS:
        return
    from hardneg.encoders import allocator_tunables

    value = allocator_tunables()
    if value is None:
        return
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "GLIBC_TUNABLES": value})
    except OSError:  # pragma: no cover - carry on with the default allocator
        pass


def _markdown_epilogs(*apps: typer.Typer) -> None:
    """Help is rendered as Markdown (for the option panels); click's ``\\b`` verbatim blocks of
    examples become fenced code so each example stays on its own line."""
    for group in apps:
        for info in group.registered_commands:
            if info.epilog and "\b\n" in info.epilog:
                head, body = info.epilog.split("\b\n", 1)
                lines = "\n".join(line.strip() for line in body.strip("\n").splitlines())
                info.epilog = f"{head}```\n{lines}\n```\n"


_markdown_epilogs(app, label_app, cache_app)


def main() -> None:
    """Console-script entry point."""
    _restart_with_allocator_tunables()
    signal.signal(signal.SIGTERM, _on_sigterm)
    app()
