"""Every command-line flag, written once: Annotated option types and the knob tables that map each
flag to the config field(s) it sets. Flag defaults are None (a flag overrides the config file,
which overrides the dataclass default); the `[default: X]` in help comes from the dataclass."""

from __future__ import annotations

import copy
import difflib
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import typer

from hardneg.config import (
    ARCHITECTURES,
    BACKENDS,
    ENCODER_BACKENDS,
    ENGINES,
    EVAL_ARCHITECTURES,
    EXPORT_FORMATS,
    JUDGE_ACTIONS,
    JUDGES,
    KD_NORMALIZATIONS,
    LOOP_METRICS,
    LOOP_STUDENTS,
    MODEL_SIZES,
    OFF,
    RETRIEVERS,
    SAME_GROUPS,
    SAMPLING_STRATEGIES,
    SCORE_SOURCES,
    SCORE_TRANSFORMS,
    SECTIONS,
    SELECT_STRATEGIES,
    STORAGES,
    TRAIN_LOSSES,
    TRIPLET_ROWS,
    build,
)

F = TypeVar("F", bound=Callable[..., Any])


def or_off(kind: type) -> dict[str, Any]:
    """typer.Option arguments for a number that may be switched off: `off` (any case) reaches the
    config as the string "off", which `config_file.build` turns into None (the rule's off state),
    so a default or a config file's value can be switched off from the command line."""
    name = "FLOAT" if kind is float else "INTEGER"

    def parse(value: Any) -> Any:
        if str(value).strip().lower() == OFF:
            return OFF
        try:
            return kind(value)
        except ValueError:
            raise typer.BadParameter(f"{value!r} is not a {'number' if kind is float else 'whole number'} or 'off'") from None

    return {"parser": parse, "metavar": f"{name}|off"}


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

OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Artifact directory to write.")]
AllowEmptyOpt = Annotated[bool, typer.Option("--allow-empty", help="Write the artifact even when it has no query or row (an error otherwise).", rich_help_panel=RUN)]
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
BatchSizeOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Texts per encoder batch.", rich_help_panel=EMBED)]
WorkersOpt = Annotated[Optional[int], typer.Option("--workers", help="Encoding processes: on CUDA spread over the GPUs (cuda:0, cuda:1, ..., round robin), else CPU processes.", rich_help_panel=EMBED)]
PrecisionOpt = Annotated[Optional[str], typer.Option("--precision", help="auto (fp16 on CUDA, bf16 on CPUs with native bf16, else fp32; evaluation: fp32 on CPUs), fp32, fp16 or bf16.", rich_help_panel=EMBED)]
EncoderBackendOpt = Annotated[Optional[str], typer.Option("--backend", **choice(ENCODER_BACKENDS), help="Encoder runtime: torch, or openvino (the same graph run by OpenVINO on the CPU, ~2x faster here; pip install 'hardneg[openvino]').", rich_help_panel=EMBED)]
DeviceOpt = Annotated[Optional[str], typer.Option("--device", help="cpu, cuda, cuda:1, mps [default: cuda when present].", rich_help_panel=EMBED)]
ShardSizeOpt = Annotated[Optional[int], typer.Option("--shard-size", help="Texts per shard; a killed run resumes from the last complete shard.", rich_help_panel=EMBED)]
SplitOpt = Annotated[Optional[str], typer.Option("--split", help="qrels split to mine for (BEIR, MS MARCO); a folder of pairs shards: the split's shards.", rich_help_panel=EMBED)]
CorpusOpt = Annotated[
    Optional[Path], typer.Option("--corpus", help="Extra corpus for a pairs file (any pairs format, a folder of shards or collection.tsv; text, optional id and title).", rich_help_panel=EMBED)
]

MOpt = Annotated[Optional[int], typer.Option("--m", help="HNSW links per node.", rich_help_panel=INDEX)]
EfConstructionOpt = Annotated[Optional[int], typer.Option("--ef-construction", help="HNSW build depth.", rich_help_panel=INDEX)]
EfSearchOpt = Annotated[Optional[int], typer.Option("--ef-search", help="HNSW search depth, at least k [default: 4 x k].", rich_help_panel=INDEX)]
StorageOpt = Annotated[Optional[str], typer.Option("--storage", **choice(STORAGES), help="HNSW vector storage.", rich_help_panel=INDEX)]
ThreadsOpt = Annotated[Optional[int], typer.Option("--threads", help="HNSW insertion threads; 1 gives a byte-identical index.", rich_help_panel=INDEX)]
TargetRecallOpt = Annotated[Optional[float], typer.Option("--target-recall", help="Without --ef-search, HNSW search deepens (4, 8, 16 x k) until recall@k vs exact on the sample reaches this; 0: no tuning.", rich_help_panel=INDEX)]
RecallSampleOpt = Annotated[Optional[int], typer.Option("--recall-sample", help="Queries used to measure HNSW recall vs exact.", rich_help_panel=INDEX)]

MinRankOpt = Annotated[Optional[int], typer.Option("--min-rank", help="First rank of the window, 0-based, positives counted.", rich_help_panel=MINE)]
MaxRankOpt = Annotated[Optional[int], typer.Option("--max-rank", help="End of the window, exclusive.", rich_help_panel=MINE)]
NumNegativesOpt = Annotated[Optional[int], typer.Option("--num-negatives", "-n", help="Negatives per query.", rich_help_panel=MINE)]
SamplingOpt = Annotated[Optional[str], typer.Option("--sampling", **choice(SAMPLING_STRATEGIES), help="random: uniform in the window; top: best-ranked survivors; simans: weighted towards the positive's score; stratified: one per equal rank band of the window.", rich_help_panel=MINE)]
FILTERS = "Filters (false-negative control)"
RelativeMarginOpt = Annotated[Optional[float], typer.Option("--relative-margin", **or_off(float), help="TopK-PercPos: drop candidates above min_pos - |min_pos| x M (0.05 = 95 percent of the lowest positive score).", rich_help_panel=FILTERS)]
FallbackMinRankOpt = Annotated[Optional[int], typer.Option("--fallback-min-rank", **or_off(int), help="A query the margins leave short of --num-negatives is filled with candidates they removed, from this rank on, drawn at random, instead of losing its training rows (needs a margin).", rich_help_panel=FILTERS)]
AbsoluteMarginOpt = Annotated[Optional[float], typer.Option("--absolute-margin", **or_off(float), help="TopK-MarginPos: drop candidates above min_pos - M.", rich_help_panel=FILTERS)]
MaxScoreOpt = Annotated[Optional[float], typer.Option("--max-score", **or_off(float), help="Drop candidates scoring above this.", rich_help_panel=FILTERS)]
MinScoreOpt = Annotated[Optional[float], typer.Option("--min-score", **or_off(float), help="Drop candidates scoring below this.", rich_help_panel=FILTERS)]
DedupThresholdOpt = Annotated[Optional[float], typer.Option("--dedup-threshold", **or_off(float), help="Drop candidates whose cosine to a positive is at least this.", rich_help_panel=FILTERS)]
SimansAOpt = Annotated[Optional[float], typer.Option("--simans-a", help="SimANS sharpness a.", rich_help_panel=FILTERS)]
SimansBOpt = Annotated[Optional[float], typer.Option("--simans-b", help="SimANS offset b.", rich_help_panel=FILTERS)]
CrossEncoderOpt = Annotated[Optional[str], typer.Option("--teacher", "--cross-encoder", help="Teacher (local path or cached name): a cross-encoder, bi-encoder or ColBERT checkpoint that scores the retrieved candidates and the positives; its scores are kept and exported for distillation.", rich_help_panel=FILTERS)]
ScoresFromOpt = Annotated[Optional[str], typer.Option("--scores-from", **choice(SCORE_SOURCES), help="Whose scores the margins, score bounds and SimANS read: retriever, or teacher (it then scores every candidate left after the positive and duplicate filters).", rich_help_panel=FILTERS)]
KdDepthOpt = Annotated[Optional[int], typer.Option("--kd-depth", help="Mine for distillation: the positive + KD_DEPTH - 1 best-ranked candidates per query (window from rank 0, top sampling, max-rank 2 x KD_DEPTH unless set); exports of the run default to that fixed width.", rich_help_panel=MINE)]
CeMaxScoreOpt = Annotated[Optional[float], typer.Option("--ce-max-score", help="Drop candidates the teacher scores at or above this (judged relevant).", rich_help_panel=FILTERS)]
CePseudoOpt = Annotated[Optional[float], typer.Option("--ce-pseudo-positive-score", help="Candidates the teacher scores at or above this become extra positives in exports.", rich_help_panel=FILTERS)]
SeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed; each query's RNG derives from it and the query id.", rich_help_panel=MINE)]
QueryBatchOpt = Annotated[Optional[int], typer.Option("--query-batch", help="Queries per search call.", rich_help_panel=MINE)]
RetrieverOpt = Annotated[Optional[str], typer.Option("--retriever", **choice(RETRIEVERS), help="Whose ranking defines ranks: dense, bm25 (bm25s), hybrid (reciprocal-rank fusion), or run (--run FILE's).", rich_help_panel=MINE)]
RunFileOpt = Annotated[Optional[Path], typer.Option("--run", help="Ranks from a ranking another retriever wrote (TREC run: qid Q0 docid rank score tag; colbert-ai's ranking.tsv; MS MARCO's qid, pid, rank): Pyserini's BM25, a GPU reranker's run. Scores stay the embedding cosines.", rich_help_panel=MINE)]
RrfKOpt = Annotated[Optional[int], typer.Option("--rrf-k", help="Reciprocal-rank fusion constant for --retriever hybrid.", rich_help_panel=MINE)]
QrelsNegativesOpt = Annotated[Optional[bool], typer.Option("--qrels-negatives/--no-qrels-negatives", help="Qrels rows scored 0 or below (judged not relevant) are confirmed negatives: eligible above --min-rank, exempt from the score rules, sampled first [default: on].", rich_help_panel=FILTERS)]
LabelsOpt = Annotated[Optional[Path], typer.Option("--labels", help="Judgments from `hardneg label import`: judged-relevant documents become positives, judged-not-relevant ones are sampled first.", rich_help_panel=FILTERS)]


TRAIN = "Training"
LossOpt = Annotated[Optional[str], typer.Option("--loss", **choice(TRAIN_LOSSES), help="mnrl (MultipleNegativesRankingLoss), cached-mnrl (GradCache: big batches, small memory); biencoder and colbert also: distillation (KL to teacher scores) or margin-mse, on a pylate-kd export; cross-encoder: bce [default: mnrl; bce for cross-encoder].", rich_help_panel=TRAIN)]
ArchitectureOpt = Annotated[Optional[str], typer.Option("--architecture", **choice(ARCHITECTURES), help="biencoder (one vector per text), colbert (one vector per token, MaxSim; a 128-d head is added to a plain model) or cross-encoder (a reranker, for --cross-encoder).", rich_help_panel=TRAIN)]
KdNormalizeOpt = Annotated[Optional[str], typer.Option("--kd-normalize", **choice(KD_NORMALIZATIONS), help="distillation: minmax scales the teacher's and the student's scores of each row to [0, 1] (PyLate), none keeps them raw.", rich_help_panel=TRAIN)]
KdTemperatureOpt = Annotated[Optional[float], typer.Option("--kd-temperature", help="distillation: softmax temperature of both score rows.", rich_help_panel=TRAIN)]
EpochsOpt = Annotated[Optional[int], typer.Option("--epochs", help="Training epochs.", rich_help_panel=TRAIN)]
LearningRateOpt = Annotated[Optional[float], typer.Option("--learning-rate", "--lr", help="Peak learning rate.", rich_help_panel=TRAIN)]
TrainNegativesOpt = Annotated[Optional[int], typer.Option("--negatives-per-row", help="Mined negatives per training row; 0 = in-batch negatives only.", rich_help_panel=TRAIN)]
TrainSeedOpt = Annotated[Optional[int], typer.Option("--train-seed", help="Training seed.", rich_help_panel=TRAIN)]

SCALE = "Scale-out"
EngineOpt = Annotated[Optional[str], typer.Option("--engine", **choice(ENGINES), help="local, or ray: units (embed shards, mine chunks) run by actors on a Ray cluster, the same files (pip install 'hardneg[ray]').", rich_help_panel=SCALE)]
RayAddressOpt = Annotated[Optional[str], typer.Option("--ray-address", help="Ray cluster to join with --engine ray [default: $RAY_ADDRESS, else a local cluster].", rich_help_panel=SCALE)]
NumShardsOpt = Annotated[Optional[int], typer.Option("--num-shards", help="Split the work between N independent jobs (a Slurm array); with --shard-index.", rich_help_panel=SCALE)]
ShardIndexOpt = Annotated[Optional[int], typer.Option("--shard-index", help="This job's part, 0..N-1: it writes its units and exits; the same command without the two flags commits.", rich_help_panel=SCALE)]

LLM = "LLM judge"
JudgeOpt = Annotated[Optional[str], typer.Option("--judge", **choice(JUDGES), help="llm: an LLM judges each query's best-ranked survivors; relevant ones are dropped or promoted (--judge-action).", rich_help_panel=LLM)]
LlmUrlOpt = Annotated[Optional[str], typer.Option("--llm-url", help="OpenAI-compatible endpoint, e.g. http://localhost:8000/v1 [default: $HARDNEG_LLM_URL]; key from $HARDNEG_LLM_API_KEY or $OPENAI_API_KEY.", rich_help_panel=LLM)]
LlmModelOpt = Annotated[Optional[str], typer.Option("--llm-model", help="Model name the endpoint serves.", rich_help_panel=LLM)]
JudgeTopOpt = Annotated[Optional[int], typer.Option("--judge-top", help="Survivors judged per query, best-ranked first (calls = queries x this).", rich_help_panel=LLM)]
JudgeSampleOpt = Annotated[Optional[float], typer.Option("--judge-sample", help="Share of the queries judged (picked by a hash of seed and query): a smaller budget.", rich_help_panel=LLM)]
JudgeActionOpt = Annotated[Optional[str], typer.Option("--judge-action", **choice(JUDGE_ACTIONS), help="drop: judged-relevant candidates are removed; promote: exported as extra positives.", rich_help_panel=LLM)]
MaxPerDocOpt = Annotated[Optional[int], typer.Option("--max-per-doc", help="A document is a negative of at most N queries (hub documents otherwise dominate); over-used ones are re-drawn, deterministically.", rich_help_panel=FILTERS)]
SameClusterOpt = Annotated[Optional[int], typer.Option("--same-cluster", help="Sample first the survivors in the positive's k-means cluster (K clusters over the corpus embeddings, seeded): same-topic negatives without titles.", rich_help_panel=FILTERS)]
SameGroupOpt = Annotated[Optional[str], typer.Option("--same-group", **choice(SAME_GROUPS), help="Sample first the survivors that share a positive's title (same-article, same-topic negatives).", rich_help_panel=FILTERS)]

INDEX_BACKEND_OPT = Annotated[Optional[str], typer.Option("--index", **choice(BACKENDS), help="Search backend when an index is built.", rich_help_panel=INDEX)]
ExactOpt = Annotated[Optional[bool], typer.Option("--exact/--hnsw", help="Exact search (chunked matrix products) or a Voyager HNSW index; neither: auto, whichever a cost model expects to finish first.", rich_help_panel=INDEX)]
EXPORT = "Export"
FormatOpt = Annotated[Optional[str], typer.Option("--format", "-f", **choice(EXPORT_FORMATS), help="colbert, triplets, sentence-transformers, pylate-kd, flagembedding, tevatron, nemo, msmarco-triples, labeled-pair or labeled-list.", rich_help_panel=EXPORT)]
ScoresOpt = Annotated[Optional[bool], typer.Option("--scores/--no-scores", help="colbert: distillation lines [qid, [pid, score], ...], positive first; labeled-pair, labeled-list: scores instead of 0/1 labels.", rich_help_panel=EXPORT)]
NwayOpt = Annotated[Optional[int], typer.Option("--nway", help="1 positive + (nway - 1) negatives per row [default: 2; sentence-transformers and KD formats: 1 + all, fixed width].", rich_help_panel=EXPORT)]
ShuffleOpt = Annotated[Optional[bool], typer.Option("--shuffle/--no-shuffle", help="Shuffle rows (seeded) so a batch mixes queries.", rich_help_panel=EXPORT)]
ExportSeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of the shuffle and of row sampling.", rich_help_panel=EXPORT)]
ScoreTransformOpt = Annotated[Optional[str], typer.Option("--score-transform", **choice(SCORE_TRANSFORMS), help="KD formats: scores per query as they are (none), scaled to [0, 1] (minmax) or standardised (zscore); auto: minmax for pylate-kd (PyLate normalises only the student), none for the others.", rich_help_panel=EXPORT)]
TripletRowsOpt = Annotated[Optional[str], typer.Option("--triplet-rows", **choice(TRIPLET_ROWS), help="triplets: JSONL objects {query, positive, negative} or arrays [query, positive, negative].", rich_help_panel=EXPORT)]
TrainBatchOpt = Annotated[Optional[int], typer.Option("--batch-size", help="Training batch size: in-batch negatives per query.", rich_help_panel=TRAIN)]
LoopTrainBatchOpt = Annotated[Optional[int], typer.Option("--train-batch-size", help="Training batch size (--batch-size is the encoder's).", rich_help_panel=TRAIN)]
GradientCheckpointingOpt = Annotated[Optional[bool], typer.Option("--gradient-checkpointing/--no-gradient-checkpointing", help="Recompute activations in the backward pass: the same weights in a fraction of the memory (7.1 -> 2.0 GB for MiniLM, batch 32), ~1.4x the time [default: on for CPU, off on GPUs].", rich_help_panel=TRAIN)]
CheckpointMinutesOpt = Annotated[Optional[float], typer.Option("--checkpoint-minutes", help="Save the training state in OUT.partial/ at most this often; a killed train resumes from it (0: never) [default: 10].", rich_help_panel=TRAIN)]
MiniBatchOpt = Annotated[Optional[int], typer.Option("--mini-batch-size", help="cached-mnrl: texts per forward pass.", rich_help_panel=TRAIN)]
WarmupOpt = Annotated[Optional[float], typer.Option("--warmup-ratio", help="Share of the steps with a rising learning rate.", rich_help_panel=TRAIN)]
TrainSeedHereOpt = Annotated[Optional[int], typer.Option("--seed", help="Training seed.", rich_help_panel=TRAIN)]
LoopArchitectureOpt = Annotated[Optional[str], typer.Option("--architecture", **choice(("biencoder", "colbert")), help="biencoder, or colbert: mining stays with the bi-encoder, and each round (see --students) also trains a ColBERT student on its negatives (early stopping then follows the student).", rich_help_panel=TRAIN)]
EVAL = "Evaluation"
EvalSplitOpt = Annotated[Optional[str], typer.Option("--split", help="qrels split to evaluate: test, dev, ...", rich_help_panel=EVAL)]
EvalKOpt = Annotated[Optional[int], typer.Option("--k", help="Recall@k depth.", rich_help_panel=EVAL)]
EvalArchitectureOpt = Annotated[Optional[str], typer.Option("--architecture", **choice(EVAL_ARCHITECTURES), help="auto (from the checkpoint), biencoder, or colbert (exact MaxSim; a plain model gets a seeded 128-d head).", rich_help_panel=EVAL)]
AllowSeenOpt = Annotated[Optional[bool], typer.Option("--allow-seen-queries", help="Score a split even when the checkpoint trained on some of its queries (refused by default: test leakage).", rich_help_panel=EVAL)]
EvalRunOpt = Annotated[Optional[Path], typer.Option("--run", help="Score a ranking another retriever wrote (TREC run, colbert-ai's ranking.tsv, MS MARCO's qid/pid/rank) instead of a model: the one to compare before `mine --run`.", rich_help_panel=EVAL)]
RerankOpt = Annotated[Optional[str], typer.Option("--rerank", metavar="TEACHER", help="A cross-encoder, bi-encoder or ColBERT checkpoint that re-scores each query's top --rerank-depth: retrieve-then-rerank metrics (is a teacher better than the student?).", rich_help_panel=EVAL)]
RerankDepthOpt = Annotated[Optional[int], typer.Option("--rerank-depth", help="Retrieved documents per query the --rerank teacher re-scores.", rich_help_panel=EVAL)]
LOOP = "Loop"
RoundsOpt = Annotated[Optional[int], typer.Option("--rounds", help="Training rounds after round 0 (the base model).", rich_help_panel=LOOP)]
DevSplitOpt = Annotated[Optional[str], typer.Option("--dev-split", help="Split evaluated after each round; enables early stopping [default: none].", rich_help_panel=LOOP)]
MetricOpt = Annotated[Optional[str], typer.Option("--metric", **choice(LOOP_METRICS), help="Early-stopping metric.", rich_help_panel=LOOP)]
PatienceOpt = Annotated[Optional[int], typer.Option("--patience", help="Stop after this many rounds without improvement.", rich_help_panel=LOOP)]
MinDeltaOpt = Annotated[Optional[float], typer.Option("--min-delta", help="Smallest dev-metric gain that counts as an improvement.", rich_help_panel=LOOP)]
StudentsOpt = Annotated[Optional[str], typer.Option("--students", **choice(LOOP_STUDENTS), help="With --architecture colbert: train a ColBERT student every round, or only the final one (on the best miner's negatives; one ColBERT training).", rich_help_panel=LOOP)]
WarmStartOpt = Annotated[Optional[bool], typer.Option("--warm-start/--from-base", help="Train each round from the previous checkpoint (ANCE) or from the base model.", rich_help_panel=LOOP)]
SELECT = "Selection"
BudgetOpt = Annotated[Optional[int], typer.Option("--budget", help="Queries to send for labelling.", rich_help_panel=SELECT)]
StrategyOpt = Annotated[Optional[str], typer.Option("--strategy", **choice(SELECT_STRATEGIES), help="margin: smallest (positive - best candidate) first; entropy: most uncertain softmax first.", rich_help_panel=SELECT)]
DiversityOpt = Annotated[Optional[float], typer.Option("--diversity", help="0 = uncertainty only; up to <1 favours queries unlike those already picked (MMR).", rich_help_panel=SELECT)]
CandidatesOpt = Annotated[Optional[int], typer.Option("--candidates", help="Candidates shown per query.", rich_help_panel=SELECT)]
TemperatureOpt = Annotated[Optional[float], typer.Option("--temperature", help="Softmax temperature for --strategy entropy.", rich_help_panel=SELECT)]
SyntheticOpt = Annotated[Optional[Path], typer.Option("--synthetic", help="A `hardneg synth` artifact of this run: its kept generated negatives replace a share of the mined ones (text formats).", rich_help_panel=EXPORT)]
SyntheticRatioOpt = Annotated[Optional[float], typer.Option("--synthetic-ratio", help="With --synthetic: expected share of each query's negatives that are generated (mined ones stay the majority by default).", rich_help_panel=EXPORT)]
SYNTH = "Generation"
PerPositiveOpt = Annotated[Optional[int], typer.Option("--per-positive", help="Passages asked for per (query, positive).", rich_help_panel=SYNTH)]
SynthPositivesOpt = Annotated[Optional[int], typer.Option("--positives-per-query", help="Positives of each query that get generated negatives (the first ones).", rich_help_panel=SYNTH)]
SynthQueriesOpt = Annotated[Optional[int], typer.Option("--queries", help="Generate for a seeded sample of this many mined queries [default: all]: the budget.", rich_help_panel=SYNTH)]
SynthSeedOpt = Annotated[Optional[int], typer.Option("--seed", help="Seed of the query sample.", rich_help_panel=SYNTH)]
SynthMarginOpt = Annotated[Optional[float], typer.Option("--relative-margin", help="Keep a passage only if it scores <= the positive - |positive| x M (the NV-Retriever guard).", rich_help_panel=SYNTH)]
SynthDedupOpt = Annotated[Optional[float], typer.Option("--dedup-threshold", help="Drop a passage whose cosine to the positive is at least this (a paraphrase).", rich_help_panel=SYNTH)]
MaxTokensOpt = Annotated[Optional[int], typer.Option("--max-tokens", help="Longest answer asked of the LLM.", rich_help_panel=LLM)]
CeBatchOpt = Annotated[Optional[int], typer.Option("--ce-batch-size", help="Pairs per teacher forward pass.", rich_help_panel=FILTERS)]
LlmConcurrencyOpt = Annotated[Optional[int], typer.Option("--llm-concurrency", help="Requests in flight to the LLM endpoint.", rich_help_panel=LLM)]


# --------------------------------------------------------------------------- knobs: each flag once


@dataclass(frozen=True)
class Knob:
    """One command-line flag and the config field(s) it sets ("section.field"): a flag given on the
    command line overrides the config file, which overrides the dataclass default shown in help."""

    option: Any
    targets: tuple[str, ...]
    convert: Callable[[Any], Any] | None = None


def K(option: Any, *targets: str, convert: Callable[[Any], Any] | None = None) -> Knob:  # noqa: N802 - a table constructor
    return Knob(option, targets, convert)


def _default_of(target: str) -> Any:
    section, name = target.split(".")
    return {f.name: f.default for f in fields(SECTIONS[section])}[name]


def _with_default(option: Any, knob: Knob) -> Any:
    """The option with `[default: X]` appended from the dataclass (never copied by hand)."""
    default = _default_of(knob.targets[0])
    info = copy.copy(option.__metadata__[0])
    if default is not None and "[default:" not in (info.help or "") and not isinstance(default, bool) and knob.convert is None:
        info.help = f"{info.help} [default: {default:g}]" if isinstance(default, float) else f"{info.help} [default: {default}]"
    return Annotated[option.__origin__, info]


class Knobs:
    """The knob values one command received, turned into stage configs (file < flags)."""

    def __init__(self, table: dict[str, Knob], values: dict[str, Any]) -> None:
        self.table, self.values = table, values

    def flags(self, section: str) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for param, knob in self.table.items():
            value = self.values.get(param)
            for target in knob.targets:
                if target.startswith(section + ".") and value is not None:
                    out[target.split(".", 1)[1]] = knob.convert(value) if knob.convert else value
        return out

    def build(self, files: dict[str, dict[str, Any]], section: str, **extra: Any) -> Any:
        return build(SECTIONS[section], files, section, **self.flags(section), **extra)


def knobs(*tables: dict[str, Knob]) -> Callable[[F], F]:
    """Give a command the flags of these knob tables: the command declares a `knobs: Knobs`
    parameter instead of one parameter per flag (typer sees the generated signature)."""
    table = {name: knob for t in tables for name, knob in t.items()}

    def decorate(fn: F) -> F:
        signature = inspect.signature(fn, eval_str=True)
        own = [p.replace(kind=inspect.Parameter.KEYWORD_ONLY) for p in signature.parameters.values() if p.name != "knobs"]
        clash = {p.name for p in own} & set(table)
        assert not clash, f"{fn.__name__}: {clash} both a knob and a parameter"
        generated = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=_with_default(knob.option, knob))
            for name, knob in table.items()
        ]

        @functools.wraps(fn)
        def command(**kwargs: Any) -> Any:
            values = {name: kwargs.pop(name, None) for name in table}
            return fn(knobs=Knobs(table, values), **kwargs)

        params = own[:2] + generated + own[2:]  # the input and --out first, then the knobs, then run options
        command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in params} | {"return": signature.return_annotation}
        command.knob_table = table  # type: ignore[attr-defined]  # for tests: which flags a command has
        return command  # type: ignore[return-value]

    return decorate


def _path_text(value: Any) -> str:
    return str(value)


EMBED_KNOBS = {
    "model": K(ModelOpt, "embed.model"), "lang": K(LangOpt, "embed.lang"), "model_size": K(ModelSizeOpt, "embed.model_size"),
    "query_prompt": K(QueryPromptOpt, "embed.query_prompt"), "corpus_prompt": K(CorpusPromptOpt, "embed.corpus_prompt"),
    "max_length": K(MaxLengthOpt, "embed.max_length", "train.max_length"), "batch_size": K(BatchSizeOpt, "embed.batch_size"),
    "workers": K(WorkersOpt, "embed.workers"), "device": K(DeviceOpt, "embed.device", "train.device"),
    "precision": K(PrecisionOpt, "embed.precision"), "backend": K(EncoderBackendOpt, "embed.backend"), "shard_size": K(ShardSizeOpt, "embed.shard_size"),
    "split": K(SplitOpt, "embed.split"),
}
MODEL_KNOBS = {k: EMBED_KNOBS[k] for k in ("model", "lang", "model_size")}
EVAL_EMBED_KNOBS = {k: v for k, v in EMBED_KNOBS.items() if k not in ("workers", "shard_size", "split")}
LOOP_EMBED_KNOBS = {k: v for k, v in EMBED_KNOBS.items() if k not in ("query_prompt", "corpus_prompt", "workers", "shard_size")}
ENGINE_KNOBS = {"engine": K(EngineOpt, "embed.engine", "mine.engine")}
INDEX_KNOBS = {
    "m": K(MOpt, "index.m"), "ef_construction": K(EfConstructionOpt, "index.ef_construction"),
    "ef_search": K(EfSearchOpt, "index.ef_search"), "target_recall": K(TargetRecallOpt, "index.target_recall"),
    "storage": K(StorageOpt, "index.storage"), "threads": K(ThreadsOpt, "index.threads"),
}
MINE_KNOBS = {
    "min_rank": K(MinRankOpt, "mine.min_rank"), "max_rank": K(MaxRankOpt, "mine.max_rank"),
    "num_negatives": K(NumNegativesOpt, "mine.num_negatives"), "sampling": K(SamplingOpt, "mine.sampling"),
    "seed": K(SeedOpt, "mine.seed"), "relative_margin": K(RelativeMarginOpt, "mine.relative_margin"),
    "labels": K(LabelsOpt, "mine.labels", convert=_path_text),
}
MINE_MORE_KNOBS = {
    "query_batch": K(QueryBatchOpt, "mine.query_batch"), "retriever": K(RetrieverOpt, "mine.retriever"),
    "run_file": K(RunFileOpt, "mine.run_file", convert=_path_text),
    "rrf_k": K(RrfKOpt, "mine.rrf_k"), "absolute_margin": K(AbsoluteMarginOpt, "mine.absolute_margin"),
    "fallback_min_rank": K(FallbackMinRankOpt, "mine.fallback_min_rank"),
    "max_score": K(MaxScoreOpt, "mine.max_score"), "min_score": K(MinScoreOpt, "mine.min_score"),
    "dedup_threshold": K(DedupThresholdOpt, "mine.dedup_threshold"), "simans_a": K(SimansAOpt, "mine.simans_a"),
    "simans_b": K(SimansBOpt, "mine.simans_b"), "cross_encoder": K(CrossEncoderOpt, "mine.cross_encoder"),
    "scores_from": K(ScoresFromOpt, "mine.scores_from"), "ce_max_score": K(CeMaxScoreOpt, "mine.ce_max_score"),
    "ce_pseudo_positive_score": K(CePseudoOpt, "mine.ce_pseudo_positive_score"), "ce_batch_size": K(CeBatchOpt, "mine.ce_batch_size"),
    "kd_depth": K(KdDepthOpt, "mine.kd_depth"), "same_group": K(SameGroupOpt, "mine.same_group"),
    "same_cluster": K(SameClusterOpt, "mine.same_cluster"),
    "max_per_doc": K(MaxPerDocOpt, "mine.max_per_doc"), "qrels_negatives": K(QrelsNegativesOpt, "mine.qrels_negatives"),
    "judge": K(JudgeOpt, "mine.judge"), "llm_url": K(LlmUrlOpt, "mine.llm_url"),
    "llm_model": K(LlmModelOpt, "mine.llm_model"), "judge_top": K(JudgeTopOpt, "mine.judge_top"), "judge_sample": K(JudgeSampleOpt, "mine.judge_sample"),
    "judge_action": K(JudgeActionOpt, "mine.judge_action"), "llm_concurrency": K(LlmConcurrencyOpt, "mine.llm_concurrency"),
    "index": K(INDEX_BACKEND_OPT, "index.backend"),
}
EXPORT_KNOBS = {
    "format": K(FormatOpt, "export.format"), "scores": K(ScoresOpt, "export.scores"), "nway": K(NwayOpt, "export.nway"),
    "shuffle": K(ShuffleOpt, "export.shuffle"), "seed": K(ExportSeedOpt, "export.seed"),
    "score_transform": K(ScoreTransformOpt, "export.score_transform"), "triplet_rows": K(TripletRowsOpt, "export.triplet_rows"),
    "synthetic": K(SyntheticOpt, "export.synthetic", convert=_path_text), "synthetic_ratio": K(SyntheticRatioOpt, "export.synthetic_ratio"),
}
SYNTH_KNOBS = {
    "per_positive": K(PerPositiveOpt, "synth.per_positive"), "positives_per_query": K(SynthPositivesOpt, "synth.positives_per_query"),
    "queries": K(SynthQueriesOpt, "synth.queries"), "seed": K(SynthSeedOpt, "synth.seed"),
    "relative_margin": K(SynthMarginOpt, "synth.relative_margin"), "dedup_threshold": K(SynthDedupOpt, "synth.dedup_threshold"),
    "llm_url": K(LlmUrlOpt, "synth.llm_url"), "llm_model": K(LlmModelOpt, "synth.llm_model"),
    "llm_concurrency": K(LlmConcurrencyOpt, "synth.llm_concurrency"), "max_tokens": K(MaxTokensOpt, "synth.max_tokens"),
}
_TRAIN_COMMON = {
    "loss": K(LossOpt, "train.loss"), "epochs": K(EpochsOpt, "train.epochs"), "learning_rate": K(LearningRateOpt, "train.learning_rate"),
    "negatives_per_row": K(TrainNegativesOpt, "train.negatives"), "warmup_ratio": K(WarmupOpt, "train.warmup_ratio"),
}
TRAIN_KNOBS = _TRAIN_COMMON | {
    "architecture": K(ArchitectureOpt, "train.architecture"), "kd_normalize": K(KdNormalizeOpt, "train.kd_normalize"),
    "kd_temperature": K(KdTemperatureOpt, "train.kd_temperature"), "batch_size": K(TrainBatchOpt, "train.batch_size"),
    "mini_batch_size": K(MiniBatchOpt, "train.mini_batch_size"), "gradient_checkpointing": K(GradientCheckpointingOpt, "train.gradient_checkpointing"), "seed": K(TrainSeedHereOpt, "train.seed"),
    "checkpoint_minutes": K(CheckpointMinutesOpt, "train.checkpoint_minutes"),
    "max_length": K(MaxLengthOpt, "train.max_length"), "device": K(DeviceOpt, "train.device"),
}
LOOP_KNOBS = _TRAIN_COMMON | {
    "rounds": K(RoundsOpt, "loop.rounds"), "dev_split": K(DevSplitOpt, "loop.dev_split"), "metric": K(MetricOpt, "loop.metric"),
    "patience": K(PatienceOpt, "loop.patience"), "min_delta": K(MinDeltaOpt, "loop.min_delta"),
    "warm_start": K(WarmStartOpt, "loop.warm_start"), "students": K(StudentsOpt, "loop.students"), "architecture": K(LoopArchitectureOpt, "train.architecture"),
    "train_batch_size": K(LoopTrainBatchOpt, "train.batch_size"), "train_seed": K(TrainSeedOpt, "train.seed"),
}
EVAL_KNOBS = {
    "split": K(EvalSplitOpt, "eval.split"), "k": K(EvalKOpt, "eval.k"), "architecture": K(EvalArchitectureOpt, "eval.architecture"),
    "allow_seen_queries": K(AllowSeenOpt, "eval.allow_seen_queries"), "rerank": K(RerankOpt, "eval.rerank"),
    "rerank_depth": K(RerankDepthOpt, "eval.rerank_depth"), "run_file": K(EvalRunOpt, "eval.run_file", convert=_path_text),
}
SELECT_KNOBS = {
    "budget": K(BudgetOpt, "select.budget"), "strategy": K(StrategyOpt, "select.strategy"), "diversity": K(DiversityOpt, "select.diversity"),
    "candidates": K(CandidatesOpt, "select.candidates"), "temperature": K(TemperatureOpt, "select.temperature"),
}
INDEX_COMMAND_KNOBS = INDEX_KNOBS | {
    "exact": K(ExactOpt, "index.backend", convert=lambda v: "exact" if v else "hnsw"),
    "recall_sample": K(RecallSampleOpt, "index.recall_sample"),
}
