"""What a mining run counted: `Tally` per chunk (saved beside it, so a resumed run rebuilds its
statistics without mining again), merged into the run's `MineStats` (summary, `--json`, manifest)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardneg.config import MineConfig
from hardneg.filters import FILTERS, MARGIN_FILTERS, active_filters

QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)
ELIGIBLE_SAMPLE = 16
"""Eligible candidates' scores kept per query for the summary (evenly spaced by rank)."""


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
    eligible_scores: dict[str, float] = field(default_factory=dict)
    """The candidates sampling chose from (after the filters): up to ``ELIGIBLE_SAMPLE`` per query, evenly spaced
    by rank. Against ``negative_scores`` it shows where a sampler concentrates."""
    positive_teacher_scores: dict[str, float] = field(default_factory=dict)
    negative_teacher_scores: dict[str, float] = field(default_factory=dict)
    score_gaps: dict[str, float] = field(default_factory=dict)
    """The query's lowest positive score minus each selected negative's score: how much harder the
    positive is to tell apart (near 0 or below: hard, or a false negative; large: easy)."""
    same_group_selected: int = 0
    """Negatives taken first because they share a positive's group (--same-group)."""
    fallback_queries: int = 0
    """Queries the margins left short that --fallback-min-rank filled (they would have lost rows)."""
    fallback_selected: int = 0
    """Negatives chosen by the fallback (counted in `selected`, not in `removed`)."""
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


def quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64)
    out = {f"p{int(q * 100)}": round(float(np.quantile(arr, q)), 4) for q in QUANTILES}
    out["mean"] = round(float(arr.mean()), 4)
    return out


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
    eligible_scores: list[float] = field(default_factory=list)
    negative_teacher: list[float] = field(default_factory=list)
    gaps: list[float] = field(default_factory=list)
    selected_ranks: list[int] = field(default_factory=list)
    confirmed_in_window: int = 0
    confirmed_selected: int = 0
    same_group_selected: int = 0
    fallback_queries: int = 0
    fallback_selected: int = 0
    llm_usage: dict[str, int] = field(default_factory=dict)
    """The LLM judge's requests, tokens, retries... spent on these queries (a resumed run adds
    the finished chunks' counts instead of losing them)."""

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
        self.eligible_scores += other.eligible_scores
        self.negative_teacher += other.negative_teacher
        self.gaps += other.gaps
        self.selected_ranks += other.selected_ranks
        self.confirmed_in_window += other.confirmed_in_window
        self.confirmed_selected += other.confirmed_selected
        self.same_group_selected += other.same_group_selected
        self.fallback_queries += other.fallback_queries
        self.fallback_selected += other.fallback_selected
        for name, count in other.llm_usage.items():
            self.llm_usage[name] = self.llm_usage.get(name, 0) + count

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


def finish_stats(stats: MineStats, tally: Tally, config: MineConfig, per_query: list[int], *, teacher: bool) -> None:
    """Fill ``stats`` from the merged tally: counts, score quantiles, rank histogram, hints.
    ``per_query``: the number of negatives each mined query got."""
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
    stats.positive_scores = quantiles([x for _, xs in sorted(tally.positive_scores.items()) for x in xs])
    stats.negative_scores = quantiles(tally.negative_scores)
    stats.eligible_scores = quantiles(tally.eligible_scores)
    stats.score_gaps = quantiles(tally.gaps)
    stats.same_group_selected = tally.same_group_selected
    stats.fallback_queries, stats.fallback_selected = tally.fallback_queries, tally.fallback_selected
    if teacher:
        stats.positive_teacher_scores = quantiles([x for _, xs in sorted(tally.positive_teacher.items()) for x in xs])
        stats.negative_teacher_scores = quantiles(tally.negative_teacher)
    lo, hi = stats.window or [config.min_rank, config.max_rank]  # clipped to the corpus
    width = max(1, (hi - lo + 9) // 10)
    buckets = Counter((r - lo) // width for r in tally.selected_ranks if r >= lo)
    above = sum(1 for r in tally.selected_ranks if r < lo)  # confirmed negatives only
    stats.rank_histogram = ([{"from": 0, "to": lo, "count": above}] if above else []) + [
        {"from": lo + b * width, "to": min(hi, lo + (b + 1) * width), "count": buckets[b]}
        for b in range((hi - lo + width - 1) // width)
    ]
    if stats.queries_short:
        share = stats.queries_short / max(1, stats.queries_mined)
        widen = ("the run file may rank too few documents for them: give a deeper run, or lower --min-rank or --num-negatives"
                 if config.run_file is not None else
                 "consider raising --max-rank or lowering --min-rank" if hi == config.max_rank else
                 f"the window already reaches the end of the corpus (rank {hi - 1}): lower --min-rank or --num-negatives")
        hint = f"{stats.queries_short} queries ({share:.1%}) got fewer than {config.num_negatives} negatives; {widen}"
        score_rules = [f for f in active_filters(config)[2:] if stats.removed.get(f)]
        if score_rules:
            flags = {f.name: f.flag for f in FILTERS}
            hint += ", or loosening " + ", ".join(
                f"{flags.get(f) or f} (it removed {stats.removed[f]:,} of {stats.candidates:,} candidates)" for f in score_rules)
        if config.fallback_min_rank is None and any(stats.removed.get(f) for f in MARGIN_FILTERS):
            hint += (f"; or keep the margin and fill the short queries from the candidates it removed with "
                     f"--fallback-min-rank {min(max(config.min_rank, 10), hi - 1)}")
        stats.hints.append(hint + ".")
    for status, count in stats.queries_skipped.items():
        why = ": the run file does not rank them" if status == "not-in-run" else ""
        stats.hints.append(f"{count} queries were not mined ({status}{why}); see queries.parquet for their ids.")
