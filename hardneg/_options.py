"""Shared CLI options as Annotated aliases. Defaults are None where a flag overrides the config file."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from hardneg.config import (
    ARCHITECTURES,
    ENGINES,
    JUDGE_ACTIONS,
    JUDGES,
    KD_NORMALIZATIONS,
    MODEL_SIZES,
    RETRIEVERS,
    SAMPLING_STRATEGIES,
    SCORE_SOURCES,
    STORAGES,
    TRAIN_LOSSES,
)


def choice(values: tuple[str, ...]) -> dict[str, Any]:
    """typer.Option arguments for a choice from a tuple `config.py` defines and validates (defined
    once): the metavar lists the choices; a wrong value is a plain message naming the closest one."""

    def parse(value: str) -> str:
        if value in values:
            return value
        close = difflib.get_close_matches(str(value), list(values), n=1, cutoff=0.5)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise typer.BadParameter(f"{value!r} is not one of {', '.join(repr(v) for v in values)}.{hint}")

    return {"parser": parse, "metavar": "[" + "|".join(values) + "]"}




EMBED = "Model and encoding"
INDEX = "Index"
MINE = "Mining"
RUN = "Run"

ConfigOpt = Annotated[
    Optional[Path], typer.Option("--config", "-c", help="TOML file with [embed]/[index]/[mine]/[export] tables; flags override it.", rich_help_panel=RUN)
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars or status messages.", rich_help_panel=RUN)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.", rich_help_panel=RUN)]
ForceOpt = Annotated[bool, typer.Option("--force", help="Rebuild even if up to date; replace a foreign directory at --out.", rich_help_panel=RUN)]
WorkdirOpt = Annotated[
    Optional[Path],
    typer.Option("--workdir", help="Cache for embeddings and indexes built on the way [default: $HARDNEG_HOME or ~/.cache/hardneg].", rich_help_panel=RUN),
]

ModelOpt = Annotated[
    Optional[str],
    typer.Option("--model", "-m", help="Local model directory, model name, `minilm` (bundled, offline) or `hashing[:DIM]`. Default: chosen by --lang, else minilm.", rich_help_panel=EMBED),
]
LangOpt = Annotated[
    Optional[str], typer.Option("--lang", help="Pick the model for a language as RAGatouille does: en, zh, fr, other -> multilingual-e5.", rich_help_panel=EMBED)
]
ModelSizeOpt = Annotated[Optional[str], typer.Option("--model-size", **choice(MODEL_SIZES), help="Size of the language's model.", rich_help_panel=EMBED)]
QueryPromptOpt = Annotated[Optional[str], typer.Option("--query-prompt", help="Text put before each query (overrides the model's).", rich_help_panel=EMBED)]
CorpusPromptOpt = Annotated[Optional[str], typer.Option("--corpus-prompt", help="Text put before each document (overrides the model's).", rich_help_panel=EMBED)]
MaxLengthOpt = Annotated[Optional[int], typer.Option("--max-length", help="Truncate texts to this many tokens [default: the model's].", rich_help_panel=EMBED)]
BatchSizeOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Texts per encoder batch [default: 64].", rich_help_panel=EMBED)]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help="Encoding processes (one per GPU, or CPU processes) [default: 1].", rich_help_panel=EMBED)]
PrecisionOpt = Annotated[Optional[str], typer.Option("--precision", help="auto, fp32, fp16 or bf16 [default: auto = fp16 on CUDA, fp32 on CPU].", rich_help_panel=EMBED)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1, mps [default: cuda when present].", rich_help_panel=EMBED)]
ShardSizeOpt = Annotated[Optional[int], typer.Option("--shard-size", help="Texts per shard; a killed run resumes from the last complete shard [default: 2048].", rich_help_panel=EMBED)]
SplitOpt = Annotated[Optional[str], typer.Option("--split", help="BEIR qrels split to mine for [default: train].", rich_help_panel=EMBED)]
CorpusOpt = Annotated[
    Optional[Path], typer.Option("--corpus", help="Extra corpus for a pairs file (JSONL/Parquet with id and text).", rich_help_panel=EMBED)
]

MOpt = Annotated[Optional[int], typer.Option("--m", help="HNSW links per node [default: 16].", rich_help_panel=INDEX)]
EfConstructionOpt = Annotated[Optional[int], typer.Option("--ef-construction", help="HNSW build depth [default: 200].", rich_help_panel=INDEX)]
EfSearchOpt = Annotated[Optional[int], typer.Option("--ef-search", help="HNSW search depth, at least k [default: 4 x k].", rich_help_panel=INDEX)]
StorageOpt = Annotated[Optional[str], typer.Option("--storage", **choice(STORAGES), help="HNSW vector storage [default: float32].", rich_help_panel=INDEX)]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="HNSW insertion threads; 1 gives a byte-identical index [default: 1].", rich_help_panel=INDEX)]
TargetRecallOpt = Annotated[Optional[float], typer.Option("--target-recall", help="Without --ef-search, HNSW search deepens (4, 8, 16 x k) until recall@k vs exact on the sample reaches this; 0: no tuning [default: 0.95].", rich_help_panel=INDEX)]
RecallSampleOpt = Annotated[Optional[int], typer.Option("--recall-sample", help="Queries used to measure HNSW recall vs exact [default: 200].", rich_help_panel=INDEX)]

MinRankOpt = Annotated[Optional[int], typer.Option("--min-rank", help="First rank of the window, 0-based, positives counted [default: 10].", rich_help_panel=MINE)]
MaxRankOpt = Annotated[Optional[int], typer.Option("--max-rank", help="End of the window, exclusive [default: 110].", rich_help_panel=MINE)]
NumNegativesOpt = Annotated[Optional[int], typer.Option("--num-negatives", "-n", help="Negatives per query [default: 10].", rich_help_panel=MINE)]
SamplingOpt = Annotated[Optional[str], typer.Option("--sampling", **choice(SAMPLING_STRATEGIES), help="random: uniform in the window; top: best-ranked survivors; simans: weighted towards the positive's score; stratified: one per equal rank band of the window [default: random].", rich_help_panel=MINE)]
FILTERS = "Filters (false-negative control)"
RelativeMarginOpt = Annotated[Optional[float], typer.Option("--relative-margin", help="TopK-PercPos: drop candidates above min_pos - |min_pos| x M (0.05 = 95 percent of the lowest positive score).", rich_help_panel=FILTERS)]
AbsoluteMarginOpt = Annotated[Optional[float], typer.Option("--absolute-margin", help="TopK-MarginPos: drop candidates above min_pos - M.", rich_help_panel=FILTERS)]
MaxScoreOpt = Annotated[Optional[float], typer.Option("--max-score", help="Drop candidates scoring above this.", rich_help_panel=FILTERS)]
MinScoreOpt = Annotated[Optional[float], typer.Option("--min-score", help="Drop candidates scoring below this.", rich_help_panel=FILTERS)]
DedupThresholdOpt = Annotated[Optional[float], typer.Option("--dedup-threshold", help="Drop candidates whose cosine to a positive is at least this [default: 0.98].", rich_help_panel=FILTERS)]
SimansAOpt = Annotated[Optional[float], typer.Option("--simans-a", help="SimANS sharpness a [default: 0.5].", rich_help_panel=FILTERS)]
SimansBOpt = Annotated[Optional[float], typer.Option("--simans-b", help="SimANS offset b [default: 0].", rich_help_panel=FILTERS)]
CrossEncoderOpt = Annotated[Optional[str], typer.Option("--teacher", "--cross-encoder", help="Teacher (local path or cached name): a cross-encoder, bi-encoder or ColBERT checkpoint that scores the retrieved candidates and the positives; its scores are kept and exported for distillation.", rich_help_panel=FILTERS)]
ScoresFromOpt = Annotated[Optional[str], typer.Option("--scores-from", **choice(SCORE_SOURCES), help="Whose scores the margins, score bounds and SimANS read: retriever, or teacher (it then scores every candidate left after the positive and duplicate filters) [default: retriever].", rich_help_panel=FILTERS)]
KdDepthOpt = Annotated[Optional[int], typer.Option("--kd-depth", help="Mine for distillation: the positive + KD_DEPTH - 1 best-ranked candidates per query (window from rank 0, top sampling, max-rank 2 x KD_DEPTH unless set); exports of the run default to that fixed width.", rich_help_panel=MINE)]
CeMaxScoreOpt = Annotated[Optional[float], typer.Option("--ce-max-score", help="Drop candidates the teacher scores at or above this (judged relevant).", rich_help_panel=FILTERS)]
CePseudoOpt = Annotated[Optional[float], typer.Option("--ce-pseudo-positive-score", help="Candidates the teacher scores at or above this become extra positives in exports.", rich_help_panel=FILTERS)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed; each query's RNG derives from it and the query id [default: 42].", rich_help_panel=MINE)]
QueryBatchOpt = Annotated[Optional[int], typer.Option("--query-batch", help="Queries per search call [default: 256].", rich_help_panel=MINE)]
RetrieverOpt = Annotated[Optional[str], typer.Option("--retriever", **choice(RETRIEVERS), help="Whose ranking defines ranks: dense, bm25 (bm25s), or hybrid (reciprocal-rank fusion) [default: dense].", rich_help_panel=MINE)]
RrfKOpt = Annotated[Optional[int], typer.Option("--rrf-k", help="Reciprocal-rank fusion constant for --retriever hybrid [default: 60].", rich_help_panel=MINE)]
LabelsOpt = Annotated[Optional[Path], typer.Option("--labels", help="Judgments from `hardneg label import`: judged-relevant documents become positives, judged-not-relevant ones are sampled first.", rich_help_panel=FILTERS)]


TRAIN = "Training"
LossOpt = Annotated[Optional[str], typer.Option("--loss", **choice(TRAIN_LOSSES), help="mnrl (MultipleNegativesRankingLoss), cached-mnrl (GradCache: big batches, small memory); colbert also: distillation (KL to teacher scores) or margin-mse, on a pylate-kd export; cross-encoder: bce [default: mnrl; bce for cross-encoder].", rich_help_panel=TRAIN)]
ArchitectureOpt = Annotated[Optional[str], typer.Option("--architecture", **choice(ARCHITECTURES), help="biencoder (one vector per text), colbert (one vector per token, MaxSim; a 128-d head is added to a plain model) or cross-encoder (a reranker, for --cross-encoder) [default: biencoder].", rich_help_panel=TRAIN)]
KdNormalizeOpt = Annotated[Optional[str], typer.Option("--kd-normalize", **choice(KD_NORMALIZATIONS), help="distillation: minmax scales the teacher's and the student's scores of each row to [0, 1] (PyLate), none keeps them raw [default: minmax].", rich_help_panel=TRAIN)]
KdTemperatureOpt = Annotated[Optional[float], typer.Option("--kd-temperature", help="distillation: softmax temperature of both score rows [default: 1.0].", rich_help_panel=TRAIN)]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Training epochs [default: 1].", rich_help_panel=TRAIN)]
LearningRateOpt = Annotated[Optional[float], typer.Option("--learning-rate", "--lr", help="Peak learning rate [default: 2e-5].", rich_help_panel=TRAIN)]
TrainNegativesOpt = Annotated[Optional[int], typer.Option("--negatives-per-row", help="Mined negatives per training row; 0 = in-batch negatives only [default: 1].", rich_help_panel=TRAIN)]
TrainSeedOpt = Annotated[Optional[int], typer.Option("--train-seed", help="Training seed [default: 42].", rich_help_panel=TRAIN)]

SCALE = "Scale-out"
EngineOpt = Annotated[Optional[str], typer.Option("--engine", **choice(ENGINES), help="local, or ray: units (embed shards, mine chunks) run by actors on a Ray cluster, the same files (pip install 'hardneg[ray]') [default: local].", rich_help_panel=SCALE)]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join with --engine ray [default: $RAY_ADDRESS, else a local cluster].", rich_help_panel=SCALE)]
NumShardsOpt = Annotated[Optional[int], typer.Option("--num-shards", help="Split the work between N independent jobs (a Slurm array); with --shard-index.", rich_help_panel=SCALE)]
ShardIndexOpt = Annotated[Optional[int], typer.Option("--shard-index", help="This job's part, 0..N-1: it writes its units and exits; the same command without the two flags commits.", rich_help_panel=SCALE)]

LLM = "LLM judge"
JudgeOpt = Annotated[Optional[str], typer.Option("--judge", **choice(JUDGES), help="llm: an LLM judges each query's best-ranked survivors; relevant ones are dropped or promoted (--judge-action).", rich_help_panel=LLM)]
LlmUrlOpt = Annotated[Optional[str], typer.Option("--llm-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 [default: $HARDNEG_LLM_URL]; key from $HARDNEG_LLM_API_KEY or $OPENAI_API_KEY.", rich_help_panel=LLM)]
LlmModelOpt = Annotated[Optional[str], typer.Option("--llm-model", help="Model name the endpoint serves.", rich_help_panel=LLM)]
JudgeTopOpt = Annotated[Optional[int], typer.Option("--judge-top", help="Survivors judged per query, best-ranked first (calls = queries x this) [default: 10].", rich_help_panel=LLM)]
JudgeActionOpt = Annotated[Optional[str], typer.Option("--judge-action", **choice(JUDGE_ACTIONS), help="drop: judged-relevant candidates are removed; promote: exported as extra positives [default: drop].", rich_help_panel=LLM)]
MaxPerDocOpt = Annotated[Optional[int], typer.Option("--max-per-doc", help="A document is a negative of at most N queries (hub documents otherwise dominate); over-used ones are re-drawn, deterministically.", rich_help_panel=FILTERS)]
SameGroupOpt = Annotated[Optional[str], typer.Option("--same-group", **choice(("title",)), help="Sample first the survivors that share a positive's title (same-article, same-topic negatives).", rich_help_panel=FILTERS)]
