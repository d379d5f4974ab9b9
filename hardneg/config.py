"""Typed, frozen, strict configuration for each stage (the choices each field takes are defined here,
once); loaded from TOML and merged with CLI flags in `config_file.py`.

Precedence: a flag the user passed > the ``--config`` file > the defaults below. The file has one
table per stage (``[embed]``, ``[index]``, ``[mine]``, ``[export]``) whose keys are the flag names
(``min-rank`` or ``min_rank``). ``configs/default.toml`` mirrors these defaults; a test keeps the two equal.
"""

from __future__ import annotations

from dataclasses import dataclass

from hardneg._checks import _at_least, _check, _check_numbers, _one_of
from hardneg.config_file import EXECUTION_FIELDS, OFF, apply_kd_depth, as_dict, build, identity, load_config_file  # noqa: F401 - re-exported

SAMPLING_STRATEGIES = ("random", "top", "simans", "stratified")
SCORE_SOURCES = ("retriever", "teacher")
RETRIEVERS = ("dense", "bm25", "hybrid", "run")
BACKENDS = ("auto", "exact", "hnsw")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
ENCODER_BACKENDS = ("torch", "openvino")
STORAGES = ("float32", "e4m3")
EXPORT_FORMATS = ("colbert", "triplets", "sentence-transformers", "pylate-kd", "flagembedding", "tevatron", "nemo", "msmarco-triples",
                  "labeled-pair", "labeled-list")
MODEL_SIZES = ("small", "base", "large")
TRIPLET_ROWS = ("objects", "arrays")
SCORE_TRANSFORMS = ("auto", "none", "minmax", "zscore")
JUDGES = ("llm",)
JUDGE_ACTIONS = ("drop", "promote")
ENGINES = ("local", "ray")
TRAIN_LOSSES = ("mnrl", "cached-mnrl", "distillation", "margin-mse", "bce")
ARCHITECTURES = ("biencoder", "colbert", "cross-encoder")
KD_NORMALIZATIONS = ("minmax", "none")
# Which losses each architecture trains with; the first is its default.
LOSSES_BY_ARCHITECTURE = {"biencoder": ("mnrl", "cached-mnrl", "distillation", "margin-mse"), "colbert": ("mnrl", "cached-mnrl", "distillation", "margin-mse"), "cross-encoder": ("bce",)}
SELECT_STRATEGIES = ("margin", "entropy")
LOOP_METRICS = ("ndcg@10", "mrr@10", "recall@10", "recall@k")
LOOP_STUDENTS = ("every", "final")
EVAL_ARCHITECTURES = ("auto", "biencoder", "colbert")
SAME_GROUPS = ("title",)


@dataclass(frozen=True)
class EmbedConfig:
    """How texts are encoded. Everything that changes the vectors is part of the artifact fingerprint."""

    model: str | None = None
    """Local path, model name, or `minilm`. None: chosen by `lang` (or `minilm` when no lang is set)."""
    lang: str | None = None
    model_size: str = "small"
    query_prompt: str | None = None
    corpus_prompt: str | None = None
    max_length: int | None = None
    batch_size: int = 64
    workers: int = 1
    device: str | None = None
    precision: str = "auto"
    """`auto` (fp16 on CUDA, bf16 on CPUs with AVX512-BF16/AMX, fp32 elsewhere; `hardneg eval`:
    fp32 on CPUs), `fp32`, `fp16` (CUDA) or `bf16` (CUDA, or CPUs with AVX512-BF16/AMX, where it
    encodes ~2x faster; vectors keep cosine >= 0.998 to fp32)."""
    backend: str = "torch"
    """`torch` (sentence-transformers as loaded) or `openvino`: the same transformer graph run by
    OpenVINO on the CPU (`pip install 'hardneg[openvino]'`; vectors within ~1e-6 of torch's, not
    bit-identical, so the backend is part of the fingerprint)."""
    shard_size: int = 2048
    split: str = "train"
    engine: str = "local"
    """`local` (this process) or `ray` (shards encoded by actors on a Ray cluster: `pip install
    'hardneg[ray]'`); the files are the same either way."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        _one_of(self, "precision", PRECISIONS)
        _one_of(self, "backend", ENCODER_BACKENDS)
        _one_of(self, "model_size", MODEL_SIZES)
        _at_least(self, "batch_size", 1)
        _at_least(self, "workers", 1)
        _at_least(self, "shard_size", 1)
        _one_of(self, "engine", ENGINES)
        _at_least(self, "max_length", 1, optional=True)


@dataclass(frozen=True)
class IndexConfig:
    """How the corpus vectors are searched."""

    backend: str = "auto"
    """`exact` (chunked matrix products), `hnsw` (Voyager) or `auto`: whichever a cost model measured
    on the reference machine expects to finish first for this many documents and queries
    (`hardneg.index.estimated_seconds`)."""
    m: int = 16
    ef_construction: int = 200
    ef_search: int | None = None
    """HNSW search depth (`query_ef`), never below k. None: tuned to `target_recall`."""
    target_recall: float | None = 0.95
    """With no `ef_search`: search depth 4 x k, deepened to 8 and 16 x k until recall@k against exact
    search on the recall sample reaches this. 0 or None (or a recall sample of 0): 4 x k, untuned."""
    storage: str = "float32"
    threads: int = 1
    """Insertion threads. 1 gives a byte-identical index for the same input; more is faster."""
    add_chunk: int = 100_000
    recall_sample: int = 200
    recall_k: int = 110
    seed: int = 1

    def __post_init__(self) -> None:
        _check_numbers(self)
        _one_of(self, "backend", BACKENDS)
        _one_of(self, "storage", STORAGES)
        _at_least(self, "m", 2)
        _at_least(self, "ef_construction", 1)
        _at_least(self, "threads", 1)
        _check(1 <= self.add_chunk <= 1_000_000, f"add-chunk must be in [1, 1000000], got {self.add_chunk}")
        _at_least(self, "recall_sample", 0)
        _at_least(self, "recall_k", 1)
        _check(
            self.target_recall is None or 0 <= self.target_recall <= 1,
            f"target-recall must be in [0, 1] (0: no tuning), got {self.target_recall}",
        )


@dataclass(frozen=True)
class MineConfig:
    """Which candidates become negatives. Ranks are 0-based positions in the query's ranking of the
    whole corpus, known positives included; the window is [min_rank, max_rank)."""

    min_rank: int = 0
    max_rank: int = 110
    num_negatives: int = 10
    sampling: str = "top"
    """`random` (uniform), `top` (best-ranked survivors) or `simans` (weights exp(-a (s_neg - s_pos - b)^2)).
    The default recipe (top, from rank 0, relative margin 0.05, fallback from rank 10) trained the best
    students on average over the benchmark's data sets: see the README's "Why these defaults"."""
    seed: int = 42
    query_batch: int = 256
    search_chunk: int = 65536
    chunk_queries: int = 4096
    """Queries per resumable chunk: a killed run resumes at the first unfinished chunk."""
    retriever: str = "dense"
    """Whose ranking defines the ranks: `dense` (the embeddings), `bm25` (bm25s over the texts),
    `hybrid` (reciprocal-rank fusion of both top-max_rank lists) or `run` (``run_file``'s)."""
    rrf_k: int = 60
    run_file: str | None = None
    """A ranking another retriever wrote (a TREC run, colbert-ai's ranking.tsv): ranks are positions
    in it, scores stay the embedding cosines. Giving it sets ``retriever`` to `run`."""
    relative_margin: float | None = 0.05
    """TopK-PercPos: drop candidates scoring above min_pos - |min_pos| x m (0.05 = 95% of the positive)."""
    absolute_margin: float | None = None
    """TopK-MarginPos: drop candidates scoring above min_pos - m."""
    fallback_min_rank: int | None = 10
    """A query the margins leave short of num_negatives is filled with candidates they removed, from
    this rank on, drawn at random (per-document draws, like `random` sampling), instead of losing its
    training rows. A margin relative to a low-scoring positive can remove every candidate of a hard
    query: on PIAF the 5% margin left 26% of the training pairs without a negative. Only the margins
    are overridden; positives, duplicates, near-duplicates, score bounds and teacher or LLM verdicts
    still hold. Without a margin, or at or past max_rank, it does nothing and is stored as None; under
    min_rank it starts at min_rank (a value given explicitly in a flag or a file is checked instead)."""
    max_score: float | None = None
    min_score: float | None = None
    dedup_threshold: float | None = 0.98
    """Drop candidates whose cosine to a positive is >= this (near-duplicates). None disables."""
    simans_a: float = 0.5
    simans_b: float = 0.0
    cross_encoder: str | None = None
    """The teacher (`--teacher`, alias `--cross-encoder`): a cross-encoder, bi-encoder or ColBERT
    checkpoint (local path or cached name) that scores the candidates the retriever found, and the
    positives. Its scores go into the run and the KD exports."""
    scores_from: str = "retriever"
    """Whose scores the score rules (margins, max/min score) and SimANS read: `retriever` (the
    embeddings; the teacher then scores only the survivors) or `teacher` (the teacher scores every
    candidate left after the positive and duplicate filters, and the rules use its scores)."""
    ce_max_score: float | None = None
    """Drop candidates the teacher scores at or above this (judged relevant)."""
    ce_pseudo_positive_score: float | None = None
    """Candidates the teacher scores at or above this become extra positives in exports."""
    kd_depth: int | None = None
    """Mine for distillation: the positive plus kd_depth - 1 scored candidates per query. Sets the
    window to start at rank 0, `top` sampling and num_negatives = kd_depth - 1; max_rank must be
    deeper than kd_depth (default: 2 x kd_depth)."""
    ce_batch_size: int = 32
    engine: str = "local"
    """`local` or `ray` (query chunks mined by actors on a Ray cluster; the same files)."""
    same_cluster: int | None = None
    """Like same_group, with groups = the positive's k-means cluster over the corpus embeddings (k =
    this; seeded by `seed`): same-topic negatives for corpora without titles."""
    same_group: str | None = None
    """`title`: survivors sharing a positive's title (the article, in BEIR corpora) are sampled
    first: same-topic negatives, which share vocabulary but differ in intent."""
    max_per_doc: int | None = None
    """A document is a negative of at most this many queries (hub documents otherwise dominate);
    deterministic whatever the order of the queries (see `mine_runner.cap_per_doc`)."""
    judge: str | None = None
    """`llm`: an LLM (any OpenAI-compatible endpoint) judges the best-ranked survivors of each query;
    the ones it finds relevant are dropped or promoted to positives (`judge_action`)."""
    llm_url: str | None = None
    """The endpoint, e.g. http://localhost:8000/v1 (default: $HARDNEG_LLM_URL). The API key comes from
    $HARDNEG_LLM_API_KEY or $OPENAI_API_KEY only."""
    llm_model: str | None = None
    judge_top: int = 10
    """Survivors judged per query, best-ranked first (the budget: calls = queries x judge_top)."""
    judge_sample: float = 1.0
    """Share of the queries judged (a fixed hash of seed and query picks them): a smaller budget."""
    judge_action: str = "drop"
    llm_concurrency: int = 8
    labels: str | None = None
    """Judgments artifact (`hardneg label import`): candidates judged relevant become positives;
    candidates judged not relevant are confirmed negatives, exempt from the score rules and sampled first."""
    qrels_negatives: bool = True
    """The input's own judgments of non-relevance (qrels rows scored 0 or below: TREC pools, graded
    qrels) are confirmed negatives too, as a `--labels` "not relevant" is. Off: they are ordinary
    candidates, as sentence-transformers and FlagEmbedding read such qrels. Either way they are never
    positives."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        _at_least(self, "min_rank", 0)
        _check(
            self.max_rank > self.min_rank,
            f"max-rank must be greater than min-rank, got min-rank {self.min_rank} and max-rank {self.max_rank}",
        )
        _at_least(self, "num_negatives", 1)
        _one_of(self, "sampling", SAMPLING_STRATEGIES)
        _at_least(self, "query_batch", 1)
        _at_least(self, "search_chunk", 1)
        _at_least(self, "chunk_queries", 1)
        _check(
            self.relative_margin is None or 0 <= self.relative_margin < 1,
            f"relative-margin must be in [0, 1), got {self.relative_margin}",
        )
        _at_least(self, "absolute_margin", 0, optional=True)
        if self.fallback_min_rank is not None:
            _at_least(self, "fallback_min_rank", 0)
            if (self.relative_margin is None and self.absolute_margin is None) or self.fallback_min_rank >= self.max_rank:
                object.__setattr__(self, "fallback_min_rank", None)  # nothing to fill: the run says so
            elif self.fallback_min_rank < self.min_rank:
                object.__setattr__(self, "fallback_min_rank", self.min_rank)
        _check(
            self.dedup_threshold is None or -1 <= self.dedup_threshold <= 1,
            f"dedup-threshold must be in [-1, 1], got {self.dedup_threshold}",
        )
        _check(
            self.min_score is None or self.max_score is None or self.min_score < self.max_score,
            f"min-score must be below max-score, got {self.min_score} and {self.max_score}",
        )
        _check(self.simans_a > 0, f"simans-a must be > 0, got {self.simans_a}")
        _one_of(self, "retriever", RETRIEVERS)
        if self.run_file is not None:
            _check(self.retriever in ("dense", "run"), f"--run FILE is the ranking: it replaces --retriever {self.retriever}, drop one")
            object.__setattr__(self, "retriever", "run")
        _check(self.retriever != "run" or self.run_file is not None, "--retriever run needs --run FILE (the ranking to read)")
        _at_least(self, "rrf_k", 1)
        _at_least(self, "ce_batch_size", 1)
        _one_of(self, "engine", ENGINES)
        _one_of(self, "judge", JUDGES, optional=True)
        _one_of(self, "judge_action", JUDGE_ACTIONS)
        _at_least(self, "judge_top", 1)
        _at_least(self, "max_per_doc", 1, optional=True)
        _check(0 < self.judge_sample <= 1, f"judge-sample must be in (0, 1], got {self.judge_sample}")
        _check(self.same_cluster is None or self.same_cluster >= 2, f"same-cluster must be >= 2 clusters, got {self.same_cluster}")
        _check(self.same_cluster is None or self.same_group is None, "same-group and same-cluster are two ways to group: choose one")
        _check(self.same_group in (None, "title"), f"same-group: only `title` is stored with the documents, got {self.same_group!r}")
        _at_least(self, "llm_concurrency", 1)
        _check(self.judge is None or bool(self.llm_model), "--judge llm needs --llm-model (the model name the endpoint serves)")
        _check(
            self.cross_encoder is not None or (self.ce_max_score is None and self.ce_pseudo_positive_score is None),
            "ce-max-score and ce-pseudo-positive-score need --teacher (--cross-encoder)",
        )
        _one_of(self, "scores_from", SCORE_SOURCES)
        _check(self.scores_from == "retriever" or self.cross_encoder is not None, "scores-from teacher needs --teacher MODEL")
        if self.kd_depth is not None:
            _check(self.kd_depth >= 2, f"kd-depth must be >= 2 (a positive and a candidate), got {self.kd_depth}")
            _check(
                self.min_rank == 0 and self.sampling == "top" and self.num_negatives == self.kd_depth - 1,
                f"kd-depth {self.kd_depth} mines the {self.kd_depth - 1} best-ranked candidates: it needs min-rank 0, sampling top "
                f"and num-negatives {self.kd_depth - 1} (leave them unset with --kd-depth)",
            )
            _check(self.max_rank >= self.kd_depth, f"max-rank must be >= kd-depth {self.kd_depth}, got {self.max_rank}")


@dataclass(frozen=True)
class ExportConfig:
    """Which training files are written from a mining run."""

    format: str = "colbert"
    nway: int | None = None
    """Rows of 1 positive + (nway - 1) negatives. None: 2 for colbert/triplets, 1 + all negatives for
    sentence-transformers."""
    scores: bool = False
    """colbert: write distillation lines [qid, [pid, score], ...] (teacher scores if mined with a
    cross-encoder); labeled-pair / labeled-list: a score column instead of the 0/1 labels."""
    shuffle: bool = True
    seed: int = 42
    triplet_rows: str = "objects"
    """triplets: JSONL rows as `objects` ({"query", "positive", "negative"}: datasets and
    sentence-transformers load them) or `arrays` ([query, positive, negative])."""
    score_transform: str = "auto"
    """Scores in the KD exports (pylate-kd, flagembedding, colbert --scores, tevatron), per query
    over its positives and negatives: `none` (raw), `minmax` (to [0, 1], as JaColBERTv2.5
    normalises its teacher's scores), `zscore` (mean 0, standard deviation 1); `auto`: `minmax` for
    pylate-kd (PyLate's `Distillation` min-max normalises the student's scores only, so the
    teacher's must arrive in [0, 1]: the ColBERT KD rows of the quality benchmark), `none` for the
    rest (colbert-ai and FlagEmbedding softmax raw student scores; keep the teacher's scale). See
    docs/trainers.md, "Teacher scores for distillation"."""
    synthetic: str | None = None
    """A `hardneg synth` artifact of this run: its kept negatives replace a share of each query's
    mined ones (`synthetic_ratio`). Text formats only (ids of generated passages are not in the corpus)."""
    synthetic_ratio: float = 0.25
    """With `synthetic`: the expected share of each query's negatives that are generated (dithered
    per query, deterministically). Mined negatives stay the majority by default: generated ones used
    alone or naively hurt (CausalNeg; the generative-discriminative gap)."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        _check(0 <= self.synthetic_ratio <= 1, f"synthetic-ratio must be in [0, 1], got {self.synthetic_ratio}")
        _one_of(self, "score_transform", SCORE_TRANSFORMS)
        _one_of(self, "triplet_rows", TRIPLET_ROWS)
        _one_of(self, "format", EXPORT_FORMATS)
        _at_least(self, "nway", 2, optional=True)
        # An option the format does not read is an error, not a silent no-op.
        _check(self.triplet_rows == "objects" or self.format == "triplets",
               f"triplet-rows {self.triplet_rows} shapes the triplets format's lines; --format {self.format} does not read it")
        _check(self.synthetic is not None or self.synthetic_ratio == 0.25,
               "synthetic-ratio is the share of generated negatives: it needs --synthetic SYNTH_DIR")

    @property
    def resolved_score_transform(self) -> str:
        """The transform `auto` stands for with this format (see ``score_transform``)."""
        if self.score_transform != "auto":
            return self.score_transform
        return "minmax" if self.format == "pylate-kd" else "none"


@dataclass(frozen=True)
class TrainConfig:
    """How `hardneg train` fine-tunes a bi-encoder, a ColBERT model or a cross-encoder on an export."""

    architecture: str = "biencoder"
    """`biencoder` (one vector per text), `colbert` (one vector per token, MaxSim; a 128-d head is
    added to a plain sentence-transformers model) or `cross-encoder` (a reranker/teacher scoring
    (query, document) pairs)."""
    loss: str | None = None
    """None: the architecture's default (`mnrl`; `bce` for cross-encoders). `mnrl`, `cached-mnrl`
    (GradCache), `distillation` (bi-encoder or ColBERT: KL divergence to teacher scores on a
    pylate-kd export), `margin-mse` (MarginMSE on the same), `bce` (cross-encoder: positives 1,
    negatives 0)."""
    epochs: int = 1
    batch_size: int = 32
    learning_rate: float = 2e-5
    warmup_ratio: float = 0.1
    negatives: int = 1
    """Negatives per row (the export's first columns negative_1..negative_N); 0 trains on in-batch
    negatives only. Distillation takes every candidate of a KD row instead."""
    max_length: int | None = None
    mini_batch_size: int = 32
    """cached-mnrl: texts per forward pass (memory), independent of the batch size (quality)."""
    kd_normalize: str = "minmax"
    """distillation: `minmax` scales the teacher's and the student's scores of each row to [0, 1]
    before the softmax (PyLate, JaColBERTv2.5); `none` uses them raw."""
    kd_temperature: float = 1.0
    seed: int = 42
    device: str | None = None
    gradient_checkpointing: bool | None = None
    """Recompute activations in the backward pass instead of keeping them: the same weights for a
    fraction of the memory (activations dominate: batch x texts x tokens x layers). Measured on the
    sample: 7.1 GB -> 2.0 GB peak RSS, 1.44x the time. None: on for CPU training (where a 22M-parameter
    model otherwise takes 7 GB), off on GPUs (where time matters more)."""
    checkpoint_minutes: float = 10.0
    """Save the training state (weights, optimizer, schedule, random state) in ``<out>.partial/``
    at most this often, so a killed `train` resumes from the last save instead of step 0. 0: never."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        _one_of(self, "architecture", ARCHITECTURES)
        _check(self.checkpoint_minutes >= 0, f"checkpoint-minutes must be >= 0, got {self.checkpoint_minutes}")
        allowed = LOSSES_BY_ARCHITECTURE.get(self.architecture, ())
        _check(
            self.loss is None or self.loss in allowed,
            f"loss {self.loss!r} does not train a {self.architecture}; use one of {', '.join(allowed)}",
        )
        _at_least(self, "epochs", 1)
        _check(self.batch_size >= 2, f"batch-size must be >= 2 (in-batch negatives need company), got {self.batch_size}")
        _check(self.learning_rate > 0, f"learning-rate must be > 0, got {self.learning_rate}")
        _check(0 <= self.warmup_ratio < 1, f"warmup-ratio must be in [0, 1), got {self.warmup_ratio}")
        _at_least(self, "negatives", 0)
        _at_least(self, "max_length", 1, optional=True)
        _at_least(self, "mini_batch_size", 1)
        _one_of(self, "kd_normalize", KD_NORMALIZATIONS)
        _check(0 < self.kd_temperature < float("inf"), f"kd-temperature must be > 0, got {self.kd_temperature}")

    @property
    def resolved_loss(self) -> str:
        return self.loss or LOSSES_BY_ARCHITECTURE[self.architecture][0]


@dataclass(frozen=True)
class EvalConfig:
    """What `hardneg eval` measures: nDCG@10, MRR@10, Recall@10 and Recall@k with exact search."""

    split: str = "test"
    k: int = 100
    architecture: str = "auto"
    """`auto` (read from the checkpoint: ColBERT checkpoints score with MaxSim), `biencoder`, or
    `colbert` (a plain sentence-transformers model gets a new, seeded projection head: a zero-shot
    ColBERT baseline)."""
    allow_seen_queries: bool = False
    """Score a split even when the model was trained on some of its queries (a hardneg checkpoint
    records them); off, that is refused: it is test leakage."""
    rerank: str | None = None
    """A teacher (cross-encoder, bi-encoder or ColBERT checkpoint) that re-scores each query's top
    `rerank_depth` retrieved documents: the metrics are then those of retrieve-then-rerank. The way
    to check that a teacher ranks better than the student before distilling from it."""
    rerank_depth: int = 100
    run_file: str | None = None
    """Score a ranking another retriever wrote (`--run FILE`, the formats `mine --run` reads) instead
    of a model's: is that ranking better than the model's before mining with it?"""

    def __post_init__(self) -> None:
        _check_numbers(self)
        _at_least(self, "k", 1)
        _at_least(self, "rerank_depth", 1)
        _one_of(self, "architecture", EVAL_ARCHITECTURES)


@dataclass(frozen=True)
class SelectConfig:
    """Which queries `hardneg select` sends to annotators."""

    budget: int = 50
    strategy: str = "margin"
    """`margin`: smallest (lowest positive score - best candidate score) first; `entropy`: highest
    entropy of the softmax over the positive and candidate scores first."""
    diversity: float = 0.0
    """Maximal marginal relevance: 0 ranks by uncertainty only; towards 1 favours queries unlike those already chosen."""
    candidates: int = 10
    """Candidates shown per query (best-ranked non-positives, whatever the score rules said)."""
    temperature: float = 0.05

    def __post_init__(self) -> None:
        _check_numbers(self)
        _at_least(self, "budget", 1)
        _one_of(self, "strategy", SELECT_STRATEGIES)
        _check(0 <= self.diversity < 1, f"diversity must be in [0, 1), got {self.diversity}")
        _at_least(self, "candidates", 1)
        _check(self.temperature > 0, f"temperature must be > 0, got {self.temperature}")


@dataclass(frozen=True)
class LoopConfig:
    """`hardneg loop`: train -> re-embed -> re-mine rounds, stopped early on a dev metric."""

    rounds: int = 3
    """Training rounds after round 0 (which mines with the base model)."""
    dev_split: str | None = None
    """Split evaluated after each round (early stopping); None evaluates nothing and never stops early."""
    metric: str = "ndcg@10"
    patience: int = 1
    """Stop after this many rounds without a better dev metric."""
    min_delta: float = 0.0
    warm_start: bool = True
    """Each round continues from the previous round's checkpoint (ANCE); false: from the base model."""
    students: str = "every"
    """With a ColBERT student ([train] architecture = "colbert"): `every` round trains one (early
    stopping follows the students' dev metric), or only the `final` one, after the rounds, on the
    negatives of the round whose bi-encoder miner scored best on the dev split (the last round without
    one): one ColBERT training instead of rounds + 1, when only the last student is wanted."""

    def __post_init__(self) -> None:
        _check_numbers(self)
        _at_least(self, "rounds", 1)
        _one_of(self, "metric", LOOP_METRICS)
        _one_of(self, "students", LOOP_STUDENTS)
        _at_least(self, "patience", 1)
        _at_least(self, "min_delta", 0)


@dataclass(frozen=True)
class SynthConfig:
    """`hardneg synth`: counterfactual negatives written by an LLM for a mining run's queries."""

    per_positive: int = 2
    """Negatives asked for per (query, positive) pair."""
    positives_per_query: int = 1
    """Positives of each query that get generated negatives (the first ones)."""
    queries: int | None = None
    """Generate for a seeded sample of this many mined queries (None: all): the budget."""
    seed: int = 42
    relative_margin: float = 0.05
    """Keep a generated passage only if its score is <= the positive's - |positive's| x margin (the
    NV-Retriever guard): a passage the retriever ranks with the positive may still answer the query."""
    dedup_threshold: float = 0.98
    """Drop a generated passage whose cosine to the positive is at least this (a paraphrase)."""
    llm_url: str | None = None
    llm_model: str | None = None
    llm_concurrency: int = 8
    max_tokens: int = 1024

    def __post_init__(self) -> None:
        _check_numbers(self)
        _at_least(self, "per_positive", 1)
        _at_least(self, "positives_per_query", 1)
        _at_least(self, "queries", 1, optional=True)
        _check(0 <= self.relative_margin < 1, f"relative-margin must be in [0, 1), got {self.relative_margin}")
        _check(0 < self.dedup_threshold <= 1, f"dedup-threshold must be in (0, 1], got {self.dedup_threshold}")
        _check(self.llm_concurrency >= 1 and self.max_tokens >= 16, "llm-concurrency must be >= 1 and max-tokens >= 16")


SECTIONS: dict[str, type] = {
    "embed": EmbedConfig,
    "index": IndexConfig,
    "mine": MineConfig,
    "export": ExportConfig,
    "train": TrainConfig,
    "eval": EvalConfig,
    "select": SelectConfig,
    "loop": LoopConfig,
    "synth": SynthConfig,
}
