"""Stage 3, `hardneg mine`: an index artifact -> candidates and sampled negatives per query.

Rank semantics (documented, tested): a document's rank is its 0-based position in the query's
ranking of the whole corpus by score (ties: lower label first), known positives included, as
RAGatouille and FlagEmbedding count. The ranking is the retriever's: dense (embeddings), bm25, or
hybrid (reciprocal-rank fusion of the two top-max_rank lists). Candidates are the documents ranked in [min_rank, max_rank).
Inside that window each candidate is removed by the first filter that applies, in this order:

1. `positive`: a known positive of the query.
2. `duplicate`: normalised text equal to a positive's, the query's, or a better-ranked candidate's.
3. `near-duplicate`: cosine to one of the positives >= dedup_threshold.
4. `max-score` / `min-score`: score above max_score / below min_score.
5. `absolute-margin`: score > min_pos - m (TopK-MarginPos), min_pos = the query's lowest positive score.
6. `relative-margin`: score > min_pos - |min_pos| x m (TopK-PercPos, sign-safe).
7. `pseudo-positive` / `cross-encoder`: the teacher's score >= ce_pseudo_positive_score
   (promoted to an extra positive in exports) / >= ce_max_score (judged relevant: dropped).

A teacher (`cross_encoder`: a cross-encoder, bi-encoder or ColBERT checkpoint) scores the candidates
and the positives. With ``scores_from = "retriever"`` it scores what survives rules 1-6. With
``scores_from = "teacher"`` it scores everything that survives rules 1-3, and rules 4-7 and SimANS
read the teacher's scores (and the teacher's lowest positive score) instead of the retriever's.

Human judgments (`labels`, from `hardneg label import`) come first: a document judged relevant is a
positive like a qrels one; a candidate judged not relevant is a confirmed negative, exempt from
rules 3-7 and sampled before any other candidate.

Negatives are then sampled from what is left with a per-query seeded RNG: uniformly (`random`), the
best-ranked (`top`), or SimANS-weighted around the positive score (`simans`).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hardneg.artifacts import (
    CANDIDATES_FILE,
    CANDIDATES_SCHEMA,
    CORPUS_DIR,
    KIND_EMBEDDINGS,
    KIND_INDEX,
    KIND_MINE,
    RUN_QUERIES_FILE,
    RUN_QUERIES_SCHEMA,
    STATE_FILE,
    DocTextLookup,
    artifact_kind,
    check_writable_parent,
    commit_dir,
    fingerprint,
    gather_rows,
    input_ref,
    is_blank,
    iter_shard_tables,
    list_shards,
    prepare_partial,
    read_manifest,
    read_qrels,
    read_queries,
    read_table,
    refuse_foreign,
    resolve_ref,
    shard_name,
    text_hash,
    unit_selector,
    write_bytes_atomic,
    write_errors,
    write_manifest,
    write_table,
    writing,
)
from hardneg.config import MineConfig, as_dict, identity
from hardneg.encoders import PairScorer, load_teacher
from hardneg.errors import ArtifactError, ConfigError, HardnegError
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.search import LexicalSearcher, Searcher, fuse_rrf, load_doc_ids

MINE_VERSION = "mine-v3"  # v3: per-document sampling draws (doc_keys); v2 runs are re-mined, not reused
CHUNKS_DIR = "chunks"
FILTER_POSITIVE = "positive"
FILTER_DUPLICATE = "duplicate"
FILTER_NEAR_DUPLICATE = "near-duplicate"
FILTER_MAX_SCORE = "max-score"
FILTER_MIN_SCORE = "min-score"
FILTER_ABSOLUTE_MARGIN = "absolute-margin"
FILTER_RELATIVE_MARGIN = "relative-margin"
FILTER_PSEUDO_POSITIVE = "pseudo-positive"
FILTER_CROSS_ENCODER = "cross-encoder"
FILTER_LLM = "llm-judge"
FILTER_MAX_PER_DOC = "max-per-doc"
STATUS_MINED = "mined"
STATUS_EMPTY = "empty-text"
STATUS_NO_POSITIVE = "no-positive"
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class MineStats:
    """What a mining run did, for the summary table, `--json` and the manifest."""

    queries: int = 0
    queries_mined: int = 0
    queries_skipped: dict[str, int] = field(default_factory=dict)
    skipped_query_ids: dict[str, list[str]] = field(default_factory=dict)
    window: list[int] = field(default_factory=list)
    num_negatives: int = 0
    candidates: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    eligible: int = 0
    selected: int = 0
    negatives_per_query: dict[str, float] = field(default_factory=dict)
    queries_short: int = 0
    positives: int = 0
    positives_in_top: int = 0
    positive_scores: dict[str, float] = field(default_factory=dict)
    negative_scores: dict[str, float] = field(default_factory=dict)
    positive_teacher_scores: dict[str, float] = field(default_factory=dict)
    negative_teacher_scores: dict[str, float] = field(default_factory=dict)
    score_gaps: dict[str, float] = field(default_factory=dict)
    same_group_selected: int = 0
    """Negatives taken first because they share a positive's group (--same-group)."""
    """The query's lowest positive score minus each selected negative's score: how much harder the
    positive is to tell apart (near 0 or below: hard, or a false negative; large: easy)."""
    rank_histogram: list[dict[str, int]] = field(default_factory=list)
    labels: dict[str, int] = field(default_factory=dict)
    hints: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MineResult:
    path: Path
    manifest: dict[str, Any]
    stats: MineStats
    reused: bool
    complete: bool = True
    """False for a job that mined its share of the chunks (``shard``) and left the rest to others."""


def _hash64(hex_digest: str) -> int:
    return int(hex_digest[:16], 16)


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64)
    out = {f"p{int(q * 100)}": round(float(np.quantile(arr, q)), 4) for q in QUANTILES}
    out["mean"] = round(float(arr.mean()), 4)
    return out


@dataclass
class Candidate:
    rank: int
    label: int
    score: float
    filter: str = ""
    teacher: float | None = None
    confirmed: bool = False


@dataclass
class Tally:
    """What mining a set of queries produced, beyond the candidates themselves: saved beside each
    finished chunk so a resumed run rebuilds its statistics without mining the chunk again."""

    removed: dict[str, int] = field(default_factory=dict)
    candidates: int = 0
    eligible: int = 0
    positives: int = 0
    positives_in_top: int = 0
    per_query: dict[int, int] = field(default_factory=dict)
    positive_scores: dict[int, list[float]] = field(default_factory=dict)
    positive_teacher: dict[int, list[float]] = field(default_factory=dict)
    negative_scores: list[float] = field(default_factory=list)
    negative_teacher: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    selected_ranks: list[int] = field(default_factory=list)
    confirmed_in_window: int = 0
    confirmed_selected: int = 0
    same_group_selected: int = 0

    def merge(self, other: Tally) -> None:
        for name, count in other.removed.items():
            self.removed[name] = self.removed.get(name, 0) + count
        self.candidates += other.candidates
        self.eligible += other.eligible
        self.positives += other.positives
        self.positives_in_top += other.positives_in_top
        self.per_query.update(other.per_query)
        self.positive_scores.update(other.positive_scores)
        self.positive_teacher.update(other.positive_teacher)
        self.negative_scores += other.negative_scores
        self.negative_teacher += other.negative_teacher
        self.gaps += other.gaps
        self.selected_ranks += other.selected_ranks
        self.confirmed_in_window += other.confirmed_in_window
        self.confirmed_selected += other.confirmed_selected
        self.same_group_selected += other.same_group_selected

    def dumps(self) -> bytes:
        import orjson

        return orjson.dumps(self, option=orjson.OPT_NON_STR_KEYS)  # orjson serialises dataclasses itself

    @classmethod
    def loads(cls, data: bytes) -> Tally:
        import orjson

        raw = orjson.loads(data)
        for key in ("per_query", "positive_scores", "positive_teacher"):
            raw[key] = {int(k): v for k, v in raw[key].items()}
        return cls(**raw)


FILTER_ORDER = [FILTER_POSITIVE, FILTER_DUPLICATE, FILTER_NEAR_DUPLICATE, FILTER_MAX_SCORE, FILTER_MIN_SCORE,
                FILTER_ABSOLUTE_MARGIN, FILTER_RELATIVE_MARGIN, FILTER_PSEUDO_POSITIVE, FILTER_CROSS_ENCODER, FILTER_LLM,
                FILTER_MAX_PER_DOC]

# Filters after `positive` and `duplicate` (always on), in order, with the option that enables each.
_OPTIONAL_FILTERS = [
    (FILTER_NEAR_DUPLICATE, "dedup_threshold"),
    (FILTER_MAX_SCORE, "max_score"),
    (FILTER_MIN_SCORE, "min_score"),
    (FILTER_ABSOLUTE_MARGIN, "absolute_margin"),
    (FILTER_RELATIVE_MARGIN, "relative_margin"),
    (FILTER_PSEUDO_POSITIVE, "ce_pseudo_positive_score"),
    (FILTER_CROSS_ENCODER, "ce_max_score"),
    (FILTER_LLM, "judge"),
    (FILTER_MAX_PER_DOC, "max_per_doc"),
]


# What a human "not relevant" judgment overrides: the heuristics that guess relevance.
_OVERRIDABLE = {name for name, _ in _OPTIONAL_FILTERS}


def active_filters(config: MineConfig) -> list[str]:
    """The filters a config switches on, in the order they are applied."""
    names = [FILTER_POSITIVE, FILTER_DUPLICATE] + [
        name for name, option in _OPTIONAL_FILTERS if getattr(config, option) is not None
    ]
    if config.judge and config.judge_action == "promote":  # the judge promotes instead of removing
        names = [n for n in names if n != FILTER_LLM]
        if FILTER_PSEUDO_POSITIVE not in names:
            names.insert(names.index(FILTER_CROSS_ENCODER) if FILTER_CROSS_ENCODER in names else len(names), FILTER_PSEUDO_POSITIVE)
    return names


def score_filter(score: float, min_positive: float, config: MineConfig) -> str:
    """The score rule that removes a candidate, or "" (keyed on the query's lowest positive score)."""
    if config.max_score is not None and score > config.max_score:
        return FILTER_MAX_SCORE
    if config.min_score is not None and score < config.min_score:
        return FILTER_MIN_SCORE
    if config.absolute_margin is not None and score > min_positive - config.absolute_margin:
        return FILTER_ABSOLUTE_MARGIN
    if config.relative_margin is not None and score > min_positive - abs(min_positive) * config.relative_margin:
        return FILTER_RELATIVE_MARGIN
    return ""


def teacher_filter(teacher: float, config: MineConfig) -> str:
    if config.ce_pseudo_positive_score is not None and teacher >= config.ce_pseudo_positive_score:
        return FILTER_PSEUDO_POSITIVE
    if config.ce_max_score is not None and teacher >= config.ce_max_score:
        return FILTER_CROSS_ENCODER
    return ""


@dataclass
class SampleContext:
    """What a sampler sees for one query: the eligible candidates (positions into the window, in
    rank order) with their ranks and scores, the positive's score, the config, and one uniform draw
    in (0, 1) per candidate (``keys``).

    The draws are per document (a hash of seed, query and document id, see ``doc_keys``), not per
    position: a candidate keeps its draw when other candidates enter or leave the window, so a
    slightly different ranking (bf16 vs fp32 vectors, a new document in the corpus) changes the
    sample only where the candidates changed."""

    eligible: list[int]
    scores: list[float]
    ranks: list[int]
    positive_score: float
    config: MineConfig
    keys: np.ndarray
    n: int


def doc_keys(seed: int, query_id: str, doc_ids: Sequence[str]) -> np.ndarray:
    """One uniform draw in (0, 1) per document, fixed by (seed, query, document)."""
    out = np.empty(len(doc_ids), dtype=np.float64)
    for i, doc in enumerate(doc_ids):
        digest = hashlib.blake2b(f"{seed}\0{query_id}\0{doc}".encode(), digest_size=8).digest()
        out[i] = (int.from_bytes(digest, "little") + 0.5) / 2.0**64
    return out


def _sample_top(ctx: SampleContext) -> list[int]:
    return list(range(ctx.n))


def _sample_random(ctx: SampleContext) -> list[int]:
    # A uniform subset: the n smallest draws (stable order: ties by position).
    return np.argsort(ctx.keys, kind="stable")[: ctx.n].tolist()


def _sample_simans(ctx: SampleContext) -> list[int]:
    """SimANS: favour negatives scored close to the positive, weight exp(-a (z - b)^2) with
    z = (s_neg - s_pos) / the spread (standard deviation) of the query's eligible scores.

    SimANS was defined on raw inner products, whose gaps are several units; on cosines the gaps are
    ~0.1, so exp(-0.5 gap^2) was flat (weights 0.80-1.0: uniform sampling in practice). Measuring
    the gap in units of each query's spread restores the intended shape on any score scale.
    Weighted sampling without replacement by Efraimidis-Spirakis keys log(u) / w, the n largest."""
    config = ctx.config
    scores = np.asarray(ctx.scores, dtype=np.float64)
    spread = scores.std()
    if not spread > 0:
        return _sample_random(ctx)
    logits = -config.simans_a * ((scores - ctx.positive_score) / spread - config.simans_b) ** 2
    weights = np.maximum(np.exp(logits - logits.max()), 1e-12)
    return np.argsort(-(np.log(ctx.keys) / weights), kind="stable")[: ctx.n].tolist()


def _sample_stratified(ctx: SampleContext) -> list[int]:
    """One negative from each of n equal rank bands of the window [min_rank, max_rank), drawn
    uniformly within its band; bands left empty by the filters are made up from the other
    survivors at random. The negatives span easy to hard instead of clustering where the
    survivors are densest."""
    lo, hi = ctx.config.min_rank, ctx.config.max_rank
    width = (hi - lo) / ctx.n
    bands: list[list[int]] = [[] for _ in range(ctx.n)]
    for position, rank in enumerate(ctx.ranks):
        bands[min(ctx.n - 1, int((rank - lo) / width))].append(position)
    picked = [min(band, key=lambda p: (ctx.keys[p], p)) for band in bands if band]
    rest = sorted(set(range(len(ctx.eligible))) - set(picked), key=lambda p: (ctx.keys[p], p))
    return picked + rest[: ctx.n - len(picked)]


SAMPLERS: dict[str, Callable[[SampleContext], list[int]]] = {
    "random": _sample_random,
    "top": _sample_top,
    "simans": _sample_simans,
    "stratified": _sample_stratified,
}
"""Sampling strategies by name (the names are `config.SAMPLING_STRATEGIES`): each returns ``n``
distinct positions into ``ctx.eligible``. Adding one is a function here and its name there."""


def sample_negatives(
    eligible: list[int],
    scores: list[float],
    positive_score: float,
    config: MineConfig,
    rng: np.random.Generator | None = None,
    limit: int | None = None,
    ranks: list[int] | None = None,
    keys: np.ndarray | None = None,
) -> list[int]:
    """Pick up to ``limit`` (default ``num_negatives``) of ``eligible`` (positions, in rank order)
    with the configured sampler; result in rank order.

    ``scores`` are the eligible candidates' scores; ``positive_score`` anchors SimANS; ``ranks``
    (the candidates' ranks) place them in stratified sampling's bands; ``keys`` are the candidates'
    uniform draws (``doc_keys``; mining passes them), else they come from ``rng``.
    """
    n = min(config.num_negatives if limit is None else limit, len(eligible))
    if n == 0:
        return []
    if keys is None:
        keys = (rng or np.random.default_rng()).random(len(eligible))
    ctx = SampleContext(eligible, scores, ranks if ranks is not None else list(range(len(eligible))), positive_score, config,
                        np.asarray(keys, dtype=np.float64), n)
    return [eligible[i] for i in sorted(SAMPLERS[config.sampling](ctx))]


def _apply_changes(table: pa.Table, changes: dict[tuple[str, str], tuple[bool, str]]) -> pa.Table:
    """``table`` with the (query, document) rows in ``changes`` given their new selected flag and filter."""
    selected, filters = table["selected"].to_pylist(), table["filter"].to_pylist()
    for i, key in enumerate(zip(table["query_id"].to_pylist(), table["doc_id"].to_pylist())):
        if key in changes:
            selected[i], filters[i] = changes[key]
    table = table.set_column(table.schema.get_field_index("selected"), "selected", pa.array(selected, pa.bool_()))
    return table.set_column(table.schema.get_field_index("filter"), "filter", pa.array(filters, pa.string()))


def mine_fingerprint(
    index_manifest: dict[str, Any], config: MineConfig, scorer: PairScorer | None = None, labels: str | None = None
) -> str:
    # What the run computes: execution knobs (batch sizes, chunking) are left out, so changing them
    # reuses the run (the output does not depend on them; see config.EXECUTION_FIELDS).
    # ``labels`` is the judgments' content fingerprint: new judgments at the same path re-mine.
    return fingerprint(
        MINE_VERSION, index_manifest["fingerprint"], identity(config), scorer.fingerprint if scorer else None, labels
    )


def _check_out(out: Path, fp: str, force: bool) -> dict[str, Any] | None:
    """An up-to-date run at ``out`` to reuse, or None. A mining run may be overwritten (tuning a
    threshold re-runs into the same directory), anything else only with ``force``."""
    if not out.exists():
        return None
    kind = artifact_kind(out)
    if kind == KIND_MINE:
        manifest = read_manifest(out, KIND_MINE)
        return manifest if manifest.get("fingerprint") == fp and not force else None
    refuse_foreign(out, "mining run")
    if kind is None:
        return None  # an empty directory
    if not force:
        what = f"a '{kind}' artifact" if kind else "not a hardneg mining run"
        raise ArtifactError(f"{out}: exists and is {what}; choose another --out or pass --force")
    return None


def mine(
    index: str | Path,
    out: str | Path,
    config: MineConfig,
    *,
    scorer: PairScorer | None = None,
    force: bool = False,
    allow_empty: bool = False,
    shard: tuple[int, int] | None = None,
    ray_address: str | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> MineResult:
    """Mine hard negatives for every query of the index's embeddings artifact.

    Args:
        index: an index artifact directory (its manifest names the embeddings it was built from).
        out: the mining-run artifact directory to write.
        config: rank window, filters, number of negatives, sampling, seed.
        scorer: the cross-encoder to use instead of loading ``config.cross_encoder`` (tests inject one).
        force: replace ``out`` even if it is not a mining run; recompute even if up to date.
        allow_empty: write the run even when no query can be mined or no negative is selected
            (otherwise an error: a CI job should not go on to train on nothing).
        shard: ``(i, n)``: mine only every n-th chunk starting at i and return without committing
            (``complete=False``); a last call without it merges and commits (Slurm arrays).
        ray_address: the Ray cluster for ``config.engine == "ray"`` (default ``RAY_ADDRESS``, else local).
        reporter: progress and status sink.

    Returns:
        The run's path, manifest and statistics.
    """
    index = Path(index).resolve()
    out = Path(out)
    idx = read_manifest(index, KIND_INDEX)
    emb_path = resolve_ref(index, idx, "embeddings", KIND_EMBEDDINGS, "rebuild the index (hardneg index EMBEDDINGS --force)")
    emb = read_manifest(emb_path, KIND_EMBEDDINGS)
    if emb["fingerprint"] != idx["embeddings"]["fingerprint"]:
        raise ArtifactError(
            f"{index}: built from embeddings {idx['embeddings']['fingerprint'][:12]}, but {emb_path} now holds "
            f"{emb['fingerprint'][:12]}; rebuild the index (hardneg index ... --force)"
        )
    if scorer is None and config.cross_encoder:
        scorer = load_teacher(config.cross_encoder, config.ce_batch_size)
    judgments: dict[str, dict[str, str]] = {}
    labels_fp = None
    if config.labels:
        from hardneg.label import read_judgments

        judgments, labels_fp = read_judgments(config.labels)
    fp = mine_fingerprint(idx, config, scorer, labels_fp)
    judge = None
    if config.judge == "llm":
        import os

        from hardneg.llm import Judge
        from hardneg.pipeline import default_workdir

        url = config.llm_url or os.environ.get("HARDNEG_LLM_URL")
        if not url:
            raise ConfigError("--judge llm needs the endpoint: --llm-url URL or HARDNEG_LLM_URL (any OpenAI-compatible server)")
        if config.engine == "ray":
            raise ConfigError("--judge llm runs with the local engine (the endpoint is the parallel part): drop --engine ray")
        backoff = float(os.environ.get("HARDNEG_LLM_BACKOFF", "1.0"))  # seconds before the first retry
        judge = Judge(url, str(config.llm_model), default_workdir() / "llm", concurrency=config.llm_concurrency, backoff=backoff)
        fp = fingerprint(fp, judge.fingerprint)  # the prompt's version is part of what a verdict means
    select = unit_selector(shard)
    if config.engine == "ray" and idx.get("backend") == "hnsw":
        raise ConfigError("--engine ray searches exactly (an HNSW index is one node's): mine from an exact index (--index exact)")
    with writing(out, [index, emb_path], lock="shared" if shard else "exclusive") as out:
        existing = _check_out(out, fp, force)
        if existing is not None:
            reporter.log(f"mining run at {out} is up to date; reusing it")
            return MineResult(out, existing, MineStats(**existing["stats"]), reused=True)
        check_writable_parent(out)  # before any work
        remote = None
        if config.engine == "ray":
            from hardneg.ray_engine import mine_chunks

            args = {"index": index, "idx": idx, "emb_path": emb_path, "emb": emb, "config": config, "scorer": None,
                    "reporter": NULL_REPORTER, "judgments": judgments}
            remote = lambda partial, numbers: mine_chunks(args, partial, numbers, ray_address, reporter)  # noqa: E731
        miner = _Miner(index, idx, emb_path, emb, config, scorer, reporter, judgments, allow_empty, select, remote, judge)
        return miner.run(out, fp)


class _Miner:
    """One mining run: loads what it needs once, then mines query chunks into ``<out>.partial/``.

    Each finished chunk (candidates Parquet + its Tally) is written atomically, so a killed run
    resumes at the first unfinished chunk; the chunks are merged into candidates.parquet at the end.
    """

    def __init__(
        self,
        index: Path,
        idx: dict[str, Any],
        emb_path: Path,
        emb: dict[str, Any],
        config: MineConfig,
        scorer: PairScorer | None,
        reporter: Reporter,
        judgments: dict[str, dict[str, str]] | None = None,
        allow_empty: bool = False,
        select: Callable[[int], bool] | None = None,
        remote: Callable[[Path, list[int]], None] | None = None,
        judge: Any = None,
    ) -> None:
        self.allow_empty, self.select, self.remote, self.judge = allow_empty, select, remote, judge
        self.index, self.idx, self.emb_path, self.emb = index, idx, emb_path, emb
        self.config, self.scorer, self.reporter = config, scorer, reporter
        self.searcher = Searcher(index, chunk=config.search_chunk)
        self.doc_ids, self.doc_hashes = load_doc_ids(index)
        self.texts = DocTextLookup(emb_path) if scorer is not None or judge is not None else None
        self.lexical = None
        if config.retriever != "dense":
            lookup = self.texts or DocTextLookup(emb_path)
            self.lexical = LexicalSearcher(lookup.get(list(range(lookup.size))))
        self.query_ids, self.query_texts, self.query_vectors = read_queries(emb_path)
        self.positives: dict[str, list[str]] = {}
        for qid, did, score in read_qrels(emb_path):
            if score > 0 and did not in self.positives.setdefault(qid, []):
                self.positives[qid].append(did)
        confirmed = self._apply_judgments(judgments or {})
        wanted = {d for ds in self.positives.values() for d in ds} | {d for ds in confirmed.values() for d in ds}
        self.label_of = {d: label for label, d in enumerate(self.doc_ids) if d in wanted}
        self.confirmed = {q: {self.label_of[d] for d in ds if d in self.label_of} for q, ds in confirmed.items()}
        self.stats = MineStats(
            queries=len(self.query_ids), window=[config.min_rank, config.max_rank], num_negatives=config.num_negatives
        )
        if judgments:
            self.stats.labels = dict(self.label_counts)
        self.tally = Tally()
        self.positive_labels: dict[int, list[int]] = {}
        self.groups: list[str] | None = None
        if config.same_group:
            # Only the title is stored with each document; it is what BEIR corpora group by.
            self.groups = [t or "" for table in iter_shard_tables(emb_path, CORPUS_DIR, ["title"]) for t in table["title"].to_pylist()]
        self.timings = {"search": 0.0, "filter": 0.0, "write": 0.0}

    def _apply_judgments(self, judgments: dict[str, dict[str, str]]) -> dict[str, set[str]]:
        """Judged-relevant documents join the positives; returns the judged-not-relevant ones per query."""
        from hardneg.label import NOT_RELEVANT, RELEVANT

        known_queries, known_docs = set(self.query_ids), set(self.doc_ids)
        confirmed: dict[str, set[str]] = {}
        counts = {"judgments": 0, "positives_added": 0, "judged_not_relevant": 0, "unmatched": 0}
        for qid, docs in judgments.items():
            for did, label in docs.items():
                counts["judgments"] += 1
                if qid not in known_queries or did not in known_docs:
                    counts["unmatched"] += 1
                elif label == RELEVANT:
                    if did not in self.positives.setdefault(qid, []):
                        self.positives[qid].append(did)
                        counts["positives_added"] += 1
                elif label == NOT_RELEVANT:
                    confirmed.setdefault(qid, set()).add(did)
                    counts["judged_not_relevant"] += 1
        self.label_counts = counts
        return confirmed

    def _status(self, qid: str, text: str) -> str:
        if is_blank(text):
            return STATUS_EMPTY
        if not any(d in self.label_of for d in self.positives.get(qid, [])):
            return STATUS_NO_POSITIVE
        return STATUS_MINED

    def run(self, out: Path, fp: str) -> MineResult:
        with write_errors(out):
            return self._run(out, fp)

    def plan(self) -> list[int]:
        """Each query's status (counted in the stats); the indices of the queries to mine."""
        stats = self.stats
        self.statuses = [self._status(q, t) for q, t in zip(self.query_ids, self.query_texts)]
        stats.queries_skipped, stats.skipped_query_ids = {}, {}
        for qid, status in zip(self.query_ids, self.statuses):
            if status != STATUS_MINED:
                stats.queries_skipped[status] = stats.queries_skipped.get(status, 0) + 1
                ids = stats.skipped_query_ids.setdefault(status, [])
                if len(ids) < 20:
                    ids.append(qid)
        todo = [i for i, s in enumerate(self.statuses) if s == STATUS_MINED]
        stats.queries_mined = len(todo)
        return todo

    def chunk_files(self, partial: Path, number: int) -> tuple[Path, Path]:
        return partial / CHUNKS_DIR / shard_name(number), partial / CHUNKS_DIR / f"tally-{number:05d}.json"

    def mine_chunk(self, partial: Path, number: int, todo: list[int]) -> Tally:
        """Mine chunk ``number`` (queries ``todo[number * chunk_queries : ...]``) and write its
        candidates and tally atomically: the unit every engine runs."""
        size = self.config.chunk_queries
        chunk = todo[number * size : (number + 1) * size]
        tally = Tally()
        tables = []
        for batch_start in range(0, len(chunk), self.config.query_batch):
            batch = chunk[batch_start : batch_start + self.config.query_batch]
            tables.append(self._mine_batch(batch, tally))
            self.reporter.progress("Mining", len(batch))
        t0 = time.perf_counter()
        part, side = self.chunk_files(partial, number)
        write_table(part, pa.concat_tables(tables) if tables else CANDIDATES_SCHEMA.empty_table())
        write_bytes_atomic(side, tally.dumps())
        self.timings["write"] += time.perf_counter() - t0
        return tally

    def _run(self, out: Path, fp: str) -> MineResult:
        config, stats = self.config, self.stats
        todo = self.plan()
        statuses = self.statuses
        if not todo and not self.allow_empty:
            why = "; ".join(
                f"{n} with {status} (e.g. {', '.join(stats.skipped_query_ids.get(status, [])[:3])})"
                for status, n in sorted(stats.queries_skipped.items())
            ) or "the input has no queries"
            raise HardnegError(
                f"no query can be mined from {self.emb_path}: {len(self.query_ids)} queries, {why}. "
                "Check the qrels and the split, or pass --allow-empty to write an empty run."
            )
        partial = out.with_name(out.name + ".partial")
        # Resumed chunks are numbered by chunk_queries: the work directory is tied to it too.
        if prepare_partial(partial, fingerprint(fp, config.chunk_queries), [CHUNKS_DIR], clean=self.select is None):
            self.reporter.log(f"resuming from {partial}")
        numbers = list(range(-(-len(todo) // config.chunk_queries)))
        if self.remote is not None:
            missing = [n for n in numbers if not all(f.is_file() for f in self.chunk_files(partial, n))]
            self.remote(partial, missing)
        label = "Mining"
        self.reporter.progress(label, 0, len(todo))
        left = 0
        for number in numbers:
            part, side = self.chunk_files(partial, number)
            size = len(todo[number * config.chunk_queries : (number + 1) * config.chunk_queries])
            if part.is_file() and side.is_file():
                self.tally.merge(Tally.loads(side.read_bytes()))
                self.reporter.progress(label, size)
            elif self.select is not None and not self.select(number):
                left += 1
            else:
                self.tally.merge(self.mine_chunk(partial, number, todo))
        if self.select is not None:
            # A job of a split (--shard-index): its chunks are written; the call without the flags
            # commits (a job holds a shared lock, and other jobs may still be writing).
            return MineResult(out, {"partial": str(partial), "chunks_left_to_others": left}, stats, reused=False, complete=False)

        t0 = time.perf_counter()
        changes = self._cap_per_doc(partial) if config.max_per_doc is not None else {}
        merged = partial / f"{CANDIDATES_FILE}.tmp-{uuid.uuid4().hex[:8]}"
        with pq.ParquetWriter(merged, CANDIDATES_SCHEMA, compression="zstd") as writer:
            written = 0
            for part in list_shards(partial / CHUNKS_DIR):  # one chunk in memory at a time
                table = read_table(part, schema=CANDIDATES_SCHEMA)
                if changes:
                    table = _apply_changes(table, changes)
                if table.num_rows:  # no empty row groups (datasets' Parquet reader rejects them)
                    writer.write_table(table)
                    written += table.num_rows
            if not written:
                writer.write_table(CANDIDATES_SCHEMA.empty_table())
        os.replace(merged, partial / CANDIDATES_FILE)  # never a half-merged file under the final name
        n = len(self.query_ids)
        write_table(
            partial / RUN_QUERIES_FILE,
            pa.Table.from_arrays(
                [
                    pa.array(self.query_ids, pa.string()),
                    pa.array(self.query_texts, pa.string()),
                    pa.array([self.positives.get(q, []) for q in self.query_ids], pa.list_(pa.string())),
                    pa.array([self.tally.positive_scores.get(i, []) for i in range(n)], pa.list_(pa.float32())),
                    pa.array([self.tally.positive_teacher.get(i, []) for i in range(n)], pa.list_(pa.float32())),
                    pa.array(statuses, pa.string()),
                    pa.array([self.tally.per_query.get(i, 0) for i in range(n)], pa.int32()),
                ],
                schema=RUN_QUERIES_SCHEMA,
            ),
        )
        self.timings["write"] += time.perf_counter() - t0
        self._finish_stats([self.tally.per_query.get(i, 0) for i in todo])
        if stats.selected == 0 and todo and not self.allow_empty:
            shutil.rmtree(partial, ignore_errors=True)  # nothing worth resuming
            advice = " ".join(stats.hints) or "Widen the window (--min-rank/--max-rank) or relax the score rules."
            raise HardnegError(
                f"0 negatives selected for {len(todo)} queries (window [{config.min_rank}, {config.max_rank}), "
                f"{stats.candidates} candidates in it, {stats.eligible} left after the filters). {advice} "
                "Pass --allow-empty to write the empty run anyway."
            )
        manifest = write_manifest(
            partial,
            KIND_MINE,
            fingerprint=fp,
            index={
                **input_ref(self.index, out),
                "fingerprint": self.idx["fingerprint"],
                "backend": self.idx["backend"],
                "recall": self.idx.get("recall"),
                # Queries of this invocation answered exactly because HNSW returned fewer than k.
                "exact_fallback_queries": self.searcher.fallbacks,
            },
            embeddings=input_ref(self.emb_path, out, fingerprint=self.emb["fingerprint"]),
            model=self.emb["model"],
            input=self.emb["input"],
            cross_encoder=(
                {"name": self.scorer.name, "fingerprint": self.scorer.fingerprint} if self.scorer is not None else None
            ),
            # The judge: model, prompt version, calls and tokens (never the endpoint's address or key).
            llm=(
                {"model": self.judge.model, "prompt": self.judge.fingerprint, "usage": self.judge.usage.to_dict()}
                if self.judge is not None else None
            ),
            # The endpoint's address is an execution setting and may carry credentials: not recorded.
            config={**as_dict(config), "llm_url": None},
            rank_semantics="0-based rank in the full-corpus ranking, known positives included; window [min_rank, max_rank)",
            stats=stats.to_dict(),
            timings={k: round(v, 3) for k, v in self.timings.items()},
        )
        shutil.rmtree(partial / CHUNKS_DIR)
        (partial / STATE_FILE).unlink()
        commit_dir(partial, out)
        return MineResult(out, manifest, stats, reused=False)

    def _cap_per_doc(self, partial: Path) -> dict[tuple[str, str], tuple[bool, str]]:
        """``max_per_doc``: a document is a negative of at most N queries. Over-used documents stay
        with the N queries whose hash of (seed, document, query) is lowest, the others lose them
        (filter ``max-per-doc``); each query then refills from its eligible, unselected candidates
        in rank order, in query-id order, while documents have room. Depends only on the ids and
        the seed, never on the order of the queries or the chunking. Returns the changed
        (query, document) -> (selected, filter), and updates the tally to the final selection."""
        config, tally = self.config, self.tally
        cap = int(config.max_per_doc)  # type: ignore[arg-type]
        columns = ["query_id", "doc_id", "rank", "score", "selected", "filter"]
        rows = [r for part in list_shards(partial / CHUNKS_DIR) for r in read_table(part, columns=columns).to_pylist()]
        users: dict[str, list[str]] = {}
        for r in rows:
            if r["selected"]:
                users.setdefault(r["doc_id"], []).append(r["query_id"])

        def priority(doc: str, query: str) -> str:
            return hashlib.blake2b(f"{config.seed}\0{doc}\0{query}".encode(), digest_size=8).hexdigest()

        changes: dict[tuple[str, str], tuple[bool, str]] = {}
        count: dict[str, int] = {}
        for doc, queries in users.items():
            ranked = sorted(queries, key=lambda q: (priority(doc, q), q))
            count[doc] = min(cap, len(ranked))
            for query in ranked[cap:]:
                changes[(query, doc)] = (False, FILTER_MAX_PER_DOC)
        lost: dict[str, int] = {}
        for query, _ in changes:
            lost[query] = lost.get(query, 0) + 1
        by_query: dict[str, list[dict[str, Any]]] = {}
        for r in rows:
            if r["query_id"] in lost and not r["selected"] and not r["filter"]:
                by_query.setdefault(r["query_id"], []).append(r)
        for query in sorted(lost):
            need = lost[query]
            for r in sorted(by_query.get(query, []), key=lambda r: r["rank"]):
                if need == 0:
                    break
                if count.get(r["doc_id"], 0) < cap:
                    changes[(query, r["doc_id"])] = (True, "")
                    count[r["doc_id"]] = count.get(r["doc_id"], 0) + 1
                    need -= 1
        # The statistics describe the final selection.
        index_of = {q: i for i, q in enumerate(self.query_ids)}
        final = [r for r in rows if changes.get((r["query_id"], r["doc_id"]), (r["selected"], ""))[0]]
        tally.per_query = {}
        for r in final:
            qi = index_of[r["query_id"]]
            tally.per_query[qi] = tally.per_query.get(qi, 0) + 1
        tally.negative_scores = [r["score"] for r in final]
        tally.selected_ranks = [r["rank"] for r in final]
        tally.gaps = [min(tally.positive_scores[index_of[r["query_id"]]]) - r["score"] for r in final
                      if tally.positive_scores.get(index_of[r["query_id"]])]
        tally.removed[FILTER_MAX_PER_DOC] = sum(1 for selected, _ in changes.values() if not selected)
        return changes

    def _mine_batch(self, batch: list[int], tally: Tally) -> pa.Table:
        config, searcher = self.config, self.searcher
        t0 = time.perf_counter()
        depth = min(config.max_rank, searcher.size)
        labels, scores = searcher.search(self.query_vectors[batch], depth)
        if self.lexical is not None:
            # Ranks come from the lexical (or fused) ranking; scores stay the embedding cosines, so
            # the margins, near-duplicate filter and SimANS work the same for every retriever.
            lexical = self.lexical.search([self.query_texts[qi] for qi in batch], depth)
            labels = lexical if config.retriever == "bm25" else fuse_rrf(labels, lexical, config.rrf_k, depth)
            scores = searcher.score(self.query_vectors[batch], labels)
        t1 = time.perf_counter()
        self.timings["search"] += t1 - t0
        pos_labels_of = [[self.label_of[d] for d in self.positives[self.query_ids[qi]] if d in self.label_of] for qi in batch]
        self.positive_labels.update(zip(batch, pos_labels_of))
        pos_scores_of = self._positive_scores(batch, pos_labels_of)
        windows: list[list[Candidate]] = []
        for row, qi in enumerate(batch):
            qid = self.query_ids[qi]
            pos_labels, pos_scores = pos_labels_of[row], pos_scores_of[row]
            tally.positives += len(pos_labels)
            tally.positives_in_top += int(np.isin(labels[row], pos_labels).sum())
            tally.positive_scores[qi] = pos_scores
            # Judged-not-relevant documents ranked above the window join it: min_rank only exists
            # to keep unverified near-top documents (likely unlabelled positives) out.
            confirmed = self.confirmed.get(qid, ())
            window = [
                Candidate(rank, label, score)
                for rank, (label, score) in enumerate(zip(labels[row].tolist(), scores[row].tolist()))
                if rank >= config.min_rank or label in confirmed
            ]
            self._mark_duplicates(window, qi, pos_labels)
            windows.append(window)
        if config.dedup_threshold is not None:
            self._mark_near_duplicates(windows, pos_labels_of)
        if config.scores_from == "teacher":
            # The teacher scores every candidate still in (and the positives) first; the score
            # rules then read its scores and its lowest positive score (NV-Retriever's recipe).
            self._teacher_scores(batch, windows, pos_labels_of, tally)
            for qi, window in zip(batch, windows):
                min_positive = min(tally.positive_teacher[qi])
                for cand in window:
                    if cand.teacher is not None and not cand.filter:
                        cand.filter = score_filter(cand.teacher, min_positive, config)
        else:
            for window, pos_scores in zip(windows, pos_scores_of):
                min_positive = min(pos_scores)
                for cand in window:
                    if not cand.filter:
                        cand.filter = score_filter(cand.score, min_positive, config)
            if self.scorer is not None:
                self._teacher_scores(batch, windows, pos_labels_of, tally)
        if self.scorer is not None:  # the teacher's own thresholds, after the score rules either way
            for window in windows:
                for cand in window:
                    if cand.teacher is not None and not cand.filter:
                        cand.filter = teacher_filter(cand.teacher, config)
        for qi, window in zip(batch, windows):
            confirmed = self.confirmed.get(self.query_ids[qi])
            if confirmed:
                for cand in window:
                    if cand.label in confirmed:
                        cand.confirmed = True
                        tally.confirmed_in_window += 1
                        if cand.filter in _OVERRIDABLE:
                            cand.filter = ""
        if self.judge is not None:
            self._llm_judge(batch, windows, pos_labels_of)
        table = self._select(batch, windows, tally)
        self.timings["filter"] += time.perf_counter() - t1
        return table

    def _llm_judge(self, batch: list[int], windows: list[list[Candidate]], pos_labels_of: list[list[int]]) -> None:
        """The LLM judges each query's best-ranked survivors (not human-confirmed ones): relevant ones
        are removed (`llm-judge`) or promoted (`pseudo-positive`); unjudged ones are left as they are."""
        assert self.judge is not None and self.texts is not None
        config = self.config
        todo = [(qi, cand, pos) for qi, window, pos in zip(batch, windows, pos_labels_of)
                for cand in [c for c in window if not c.filter and not c.confirmed][: config.judge_top]]
        labels = sorted({c.label for _, c, _ in todo} | {p for _, _, pos in todo for p in pos})
        text_of = dict(zip(labels, self.texts.get(labels)))
        verdicts = self.judge.judge([(self.query_texts[qi], [text_of[p] for p in pos], text_of[c.label]) for qi, c, pos in todo])
        action = FILTER_PSEUDO_POSITIVE if config.judge_action == "promote" else FILTER_LLM
        for (_, cand, _), verdict in zip(todo, verdicts):
            if verdict.relevant:
                cand.filter = action

    def _positive_scores(self, batch: list[int], pos_labels_of: list[list[int]]) -> list[list[float]]:
        """Each query's scores for its positives, from one ``score`` call for the whole batch
        (rows padded with the row's first positive; the padding is cut off again)."""
        width = max(len(p) for p in pos_labels_of)
        padded = np.array([p + [p[0]] * (width - len(p)) for p in pos_labels_of], dtype=np.int64)
        scores = self.searcher.score(self.query_vectors[batch], padded)
        return [row[: len(p)] for row, p in zip(scores.tolist(), pos_labels_of)]

    def _mark_duplicates(self, window: list[Candidate], qi: int, pos_labels: list[int]) -> None:
        """`positive`, then `duplicate`: normalised text equal to a positive's, the query's or a
        better-ranked candidate's."""
        pos_set = set(pos_labels)
        forbidden = {int(self.doc_hashes[p]) for p in pos_set}
        forbidden.add(_hash64(text_hash(self.query_texts[qi])))
        hashes = self.doc_hashes[[c.label for c in window]].tolist()
        for cand, h in zip(window, hashes):
            if cand.label in pos_set:
                cand.filter = FILTER_POSITIVE
            elif h in forbidden:
                cand.filter = FILTER_DUPLICATE
            else:
                forbidden.add(h)

    def _mark_near_duplicates(self, windows: list[list[Candidate]], pos_labels_of: list[list[int]]) -> None:
        """`near-duplicate`: cosine to one of the query's positives >= dedup_threshold, for every
        candidate still in, in one ``score`` call for the batch: a row per (query, positive) pair,
        scoring that positive's vector against the query's surviving candidates."""
        alive = [[c for c in window if not c.filter] for window in windows]
        pairs = [(row, p) for row, pos_labels in enumerate(pos_labels_of) if alive[row] for p in pos_labels]
        if not pairs:
            return
        width = max(len(alive[row]) for row, _ in pairs)
        cand_labels = np.array(
            [[c.label for c in alive[row]] + [alive[row][0].label] * (width - len(alive[row])) for row, _ in pairs],
            dtype=np.int64,
        )
        pos_vectors = gather_rows(self.searcher.vectors, np.array([p for _, p in pairs], dtype=np.int64))
        sims = self.searcher.score(pos_vectors, cand_labels)
        start = 0
        for row, pos_labels in enumerate(pos_labels_of):
            if not alive[row]:
                continue
            nearest = sims[start : start + len(pos_labels), : len(alive[row])].max(axis=0)
            start += len(pos_labels)
            for cand, sim in zip(alive[row], nearest.tolist()):
                if sim >= self.config.dedup_threshold:
                    cand.filter = FILTER_NEAR_DUPLICATE

    def _teacher_scores(
        self, batch: list[int], windows: list[list[Candidate]], pos_labels_of: list[list[int]], tally: Tally
    ) -> None:
        """The teacher's scores of the surviving candidates and the positives, in one call per batch
        (recorded only; the caller applies the rules that read them)."""
        assert self.scorer is not None and self.texts is not None
        pairs: list[tuple[str, str]] = []
        targets: list[tuple[int, Candidate | None]] = []
        for qi, window, pos_labels in zip(batch, windows, pos_labels_of):
            query = self.query_texts[qi]
            alive = [c for c in window if not c.filter]
            docs = self.texts.get([c.label for c in alive] + pos_labels)
            pairs += [(query, d) for d in docs]
            targets += [(qi, c) for c in alive] + [(qi, None)] * len(pos_labels)
        values = self.scorer.score(pairs)
        for qi in batch:
            tally.positive_teacher[qi] = []
        for (qi, cand), value in zip(targets, values.tolist()):
            if cand is None:
                tally.positive_teacher[qi].append(value)
            else:
                cand.teacher = value

    def _select(self, batch: list[int], windows: list[list[Candidate]], tally: Tally) -> pa.Table:
        columns: dict[str, list[Any]] = {name: [] for name in CANDIDATES_SCHEMA.names}
        for qi, window in zip(batch, windows):
            qid = self.query_ids[qi]
            eligible = [i for i, c in enumerate(window) if not c.filter]
            # Confirmed negatives (judged not relevant) first, in rank order; the rest as configured.
            chosen = set([i for i in eligible if window[i].confirmed][: self.config.num_negatives])
            tally.confirmed_selected += len(chosen)
            rest = [i for i in eligible if not window[i].confirmed]
            if self.groups is not None:
                # Same-topic negatives (--same-group): the survivors that share a positive's group
                # (e.g. the article's title) are sampled first, then the others fill the rest.
                mine_groups = {self.groups[p] for p in self.positive_labels.get(qi, ()) if self.groups[p]}
                same = [i for i in rest if self.groups[window[i].label] in mine_groups]
                if same:
                    picked = sample_negatives(
                        same, [window[i].score for i in same], min(tally.positive_scores[qi]), self.config,
                        limit=self.config.num_negatives - len(chosen), ranks=[window[i].rank for i in same],
                        keys=doc_keys(self.config.seed, qid, [self.doc_ids[window[i].label] for i in same]),
                    )
                    chosen.update(picked)
                    tally.same_group_selected += len(picked)
                    rest = [i for i in rest if i not in chosen]
            by_teacher = self.config.scores_from == "teacher"
            chosen.update(
                sample_negatives(
                    rest,
                    [window[i].teacher if by_teacher else window[i].score for i in rest],  # type: ignore[misc]
                    min(tally.positive_teacher[qi] if by_teacher else tally.positive_scores[qi]),
                    self.config,
                    limit=self.config.num_negatives - len(chosen),
                    ranks=[window[i].rank for i in rest],
                    keys=doc_keys(self.config.seed, qid, [self.doc_ids[window[i].label] for i in rest]),
                )
            )
            tally.candidates += len(window)
            tally.eligible += len(eligible)
            for cand in window:
                if cand.filter:
                    tally.removed[cand.filter] = tally.removed.get(cand.filter, 0) + 1
            tally.per_query[qi] = len(chosen)
            columns["query_id"] += [qid] * len(window)
            columns["doc_id"] += [self.doc_ids[c.label] for c in window]
            columns["rank"] += [c.rank for c in window]
            columns["score"] += [c.score for c in window]
            columns["teacher_score"] += [c.teacher for c in window]
            columns["selected"] += [i in chosen for i in range(len(window))]
            columns["filter"] += [c.filter for c in window]
            columns["confirmed"] += [c.confirmed for c in window]
            lowest_positive = min(tally.positive_scores.get(qi) or [float("nan")])
            for i in sorted(chosen):
                cand = window[i]
                tally.negative_scores.append(cand.score)
                if lowest_positive == lowest_positive:  # not NaN
                    tally.gaps.append(lowest_positive - cand.score)
                tally.selected_ranks.append(cand.rank)
                if cand.teacher is not None:
                    tally.negative_teacher.append(cand.teacher)
        return pa.table(columns, schema=CANDIDATES_SCHEMA)

    def _finish_stats(self, per_query: list[int]) -> None:
        stats, config, tally = self.stats, self.config, self.tally
        stats.candidates, stats.eligible = tally.candidates, tally.eligible
        stats.positives, stats.positives_in_top = tally.positives, tally.positives_in_top
        stats.removed = {name: tally.removed.get(name, 0) for name in active_filters(config)}
        stats.selected = len(tally.negative_scores)
        if per_query:
            stats.negatives_per_query = {
                "min": int(min(per_query)),
                "median": float(np.median(per_query)),
                "max": int(max(per_query)),
                "mean": round(float(np.mean(per_query)), 3),
            }
        stats.queries_short = sum(1 for n in per_query if n < config.num_negatives)
        if stats.labels:
            stats.labels["confirmed_in_window"] = tally.confirmed_in_window
            stats.labels["confirmed_selected"] = tally.confirmed_selected
        stats.positive_scores = _quantiles([x for _, xs in sorted(tally.positive_scores.items()) for x in xs])
        stats.negative_scores = _quantiles(tally.negative_scores)
        stats.score_gaps = _quantiles(tally.gaps)
        stats.same_group_selected = tally.same_group_selected
        if self.scorer is not None:
            stats.positive_teacher_scores = _quantiles([x for _, xs in sorted(tally.positive_teacher.items()) for x in xs])
            stats.negative_teacher_scores = _quantiles(tally.negative_teacher)
        width = max(1, (config.max_rank - config.min_rank + 9) // 10)
        buckets = Counter((r - config.min_rank) // width for r in tally.selected_ranks if r >= config.min_rank)
        above = sum(1 for r in tally.selected_ranks if r < config.min_rank)  # confirmed negatives only
        stats.rank_histogram = ([{"from": 0, "to": config.min_rank, "count": above}] if above else []) + [
            {"from": config.min_rank + b * width, "to": min(config.max_rank, config.min_rank + (b + 1) * width), "count": buckets[b]}
            for b in range((config.max_rank - config.min_rank + width - 1) // width)
        ]
        if stats.queries_short:
            share = stats.queries_short / max(1, stats.queries_mined)
            hint = (
                f"{stats.queries_short} queries ({share:.1%}) got fewer than {config.num_negatives} negatives; "
                "consider raising --max-rank or lowering --min-rank (a small corpus also limits the window)"
            )
            score_rules = [f for f in active_filters(config)[2:] if stats.removed.get(f)]
            if score_rules:
                hint += f", or loosening {', '.join('--' + f if 'margin' in f or 'score' in f else f for f in score_rules)}"
            stats.hints.append(hint + ".")
        for status, count in stats.queries_skipped.items():
            stats.hints.append(f"{count} queries were not mined ({status}); see queries.parquet for their ids.")
