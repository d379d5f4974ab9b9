"""The filters of `hardneg mine`, as data: each removes a candidate for one reason, in a fixed order,
and the first that applies names the candidate's `filter` in candidates.parquet (the names are part
of the disk contract). Adding a filter is one `Filter` entry here, its config field, and its rule.

Order (the first that applies wins):

1. `positive`: a known positive of the query.
2. `duplicate`: normalised text equal to a positive's, the query's, or a better-ranked candidate's;
   or the query itself under its own id behind a title (ArguAna's arguments carry topic tags as
   titles: the same id, and the text without the title is the query's).
3. `near-duplicate`: cosine to one of the positives >= dedup_threshold.
4. `max-score` / `min-score`: score above max_score / below min_score.
5. `absolute-margin`: score > min_pos - m (TopK-MarginPos), min_pos = the query's lowest positive score.
6. `relative-margin`: score > min_pos - |min_pos| x m (TopK-PercPos, sign-safe).
7. `pseudo-positive` / `cross-encoder`: the teacher's score >= ce_pseudo_positive_score (promoted to
   an extra positive in exports) / >= ce_max_score (judged relevant: dropped).
8. `llm-judge`: an LLM judged it relevant (`--judge llm`; with `--judge-action promote` it becomes a
   `pseudo-positive` instead).
9. `max-per-doc`: the document is already a negative of max_per_doc other queries (applied when the
   chunks are merged, over the whole run).

A human "not relevant" judgment overrides every filter after `duplicate` (they guess relevance; the
human knows it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hardneg.config import MineConfig


@dataclass(frozen=True)
class Filter:
    name: str
    """The value written to candidates.parquet's `filter` column."""
    option: str | None
    """The MineConfig field that switches it on (None: always on)."""
    flag: str
    """How a user loosens it (named in hints)."""
    overridable: bool
    """A human "not relevant" judgment lifts it."""


FILTERS: tuple[Filter, ...] = (
    Filter("positive", None, "", False),
    Filter("duplicate", None, "", False),
    Filter("near-duplicate", "dedup_threshold", "--dedup-threshold", True),
    Filter("max-score", "max_score", "--max-score", True),
    Filter("min-score", "min_score", "--min-score", True),
    Filter("absolute-margin", "absolute_margin", "--absolute-margin", True),
    Filter("relative-margin", "relative_margin", "--relative-margin", True),
    Filter("pseudo-positive", "ce_pseudo_positive_score", "--ce-pseudo-positive-score", True),
    Filter("cross-encoder", "ce_max_score", "--ce-max-score", True),
    Filter("llm-judge", "judge", "--judge", True),
    Filter("max-per-doc", "max_per_doc", "--max-per-doc", True),
)
BY_NAME = {f.name: f for f in FILTERS}
FILTER_ORDER = [f.name for f in FILTERS]
OVERRIDABLE = frozenset(f.name for f in FILTERS if f.overridable)
(FILTER_POSITIVE, FILTER_DUPLICATE, FILTER_NEAR_DUPLICATE, FILTER_MAX_SCORE, FILTER_MIN_SCORE, FILTER_ABSOLUTE_MARGIN,
 FILTER_RELATIVE_MARGIN, FILTER_PSEUDO_POSITIVE, FILTER_CROSS_ENCODER, FILTER_LLM, FILTER_MAX_PER_DOC) = FILTER_ORDER
MARGIN_FILTERS = frozenset({FILTER_ABSOLUTE_MARGIN, FILTER_RELATIVE_MARGIN})
"""The rules relative to the query's positive: what `fallback_min_rank` may override."""


@dataclass
class Candidate:
    """A document in a query's window: its rank, its row in the index, its score(s) and fate."""

    rank: int
    row: int
    score: float
    filter: str = ""
    teacher: float | None = None
    confirmed: bool = False
    fallback: str = ""
    """The margin a `fallback_min_rank` fill overrode to take this candidate back ("" if none)."""


def active_filters(config: MineConfig) -> list[str]:
    """The filters a config switches on, in the order they are applied."""
    names = [f.name for f in FILTERS if f.option is None or getattr(config, f.option) is not None]
    if config.judge and config.judge_action == "promote":  # the judge promotes instead of removing
        names = [n for n in names if n != FILTER_LLM]
        if FILTER_PSEUDO_POSITIVE not in names:
            names.insert(names.index(FILTER_CROSS_ENCODER) if FILTER_CROSS_ENCODER in names else len(names), FILTER_PSEUDO_POSITIVE)
    return names


def loosening_flags(removed: dict[str, int], config: MineConfig) -> list[str]:
    """The flags of the score and teacher rules that removed candidates (what to loosen)."""
    return [BY_NAME[n].flag for n in active_filters(config)[2:] if removed.get(n) and BY_NAME[n].flag]


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


def apply_score_rules(windows: Sequence[list[Candidate]], min_positives: Sequence[float], config: MineConfig, *, teacher: bool) -> None:
    """Rules 4-6 on each window's surviving candidates, on the retriever's or the teacher's scores."""
    for window, min_positive in zip(windows, min_positives):
        for cand in window:
            if cand.filter:
                continue
            value = cand.teacher if teacher else cand.score
            if value is not None:
                cand.filter = score_filter(value, min_positive, config)


def apply_teacher_rules(windows: Sequence[list[Candidate]], config: MineConfig) -> None:
    """Rule 7, on the candidates the teacher scored."""
    for window in windows:
        for cand in window:
            if cand.teacher is not None and not cand.filter:
                cand.filter = teacher_filter(cand.teacher, config)


def mark_duplicates(window: list[Candidate], positive_rows: Sequence[int], doc_hashes: np.ndarray, query_hash: int,
                    self_row: int | None = None) -> None:
    """Rules 1-2: `positive`, then `duplicate` (normalised text equal to a positive's, the query's
    or a better-ranked candidate's; or ``self_row``, the query itself under its own id and a title)."""
    positives = set(positive_rows)
    forbidden = {int(doc_hashes[p]) for p in positives}
    forbidden.add(query_hash)
    hashes = doc_hashes[[c.row for c in window]].tolist()
    for cand, h in zip(window, hashes):
        if cand.row in positives:
            cand.filter = FILTER_POSITIVE
        elif h in forbidden or cand.row == self_row:
            cand.filter = FILTER_DUPLICATE
            forbidden.add(h)  # a copy of the query's own document further down is a duplicate too
        else:
            forbidden.add(h)


def mark_near_duplicates(windows: Sequence[list[Candidate]], positive_rows_of: Sequence[Sequence[int]], searcher: object,
                         threshold: float) -> None:
    """Rule 3, `near-duplicate`: cosine to one of the query's positives >= threshold, for every
    candidate still in, in one ``score`` call for the batch: a row per (query, positive) pair,
    scoring that positive's vector against the query's surviving candidates."""
    from hardneg.readers import gather_rows

    alive = [[c for c in window if not c.filter] for window in windows]
    pairs = [(i, p) for i, rows in enumerate(positive_rows_of) if alive[i] for p in rows]
    if not pairs:
        return
    width = max(len(alive[i]) for i, _ in pairs)
    cand_rows = np.array([[c.row for c in alive[i]] + [alive[i][0].row] * (width - len(alive[i])) for i, _ in pairs], dtype=np.int64)
    pos_vectors = gather_rows(searcher.vectors, np.array([p for _, p in pairs], dtype=np.int64))  # type: ignore[attr-defined]
    sims = searcher.score(pos_vectors, cand_rows)  # type: ignore[attr-defined]
    start = 0
    for i, rows in enumerate(positive_rows_of):
        if not alive[i]:
            continue
        nearest = sims[start : start + len(rows), : len(alive[i])].max(axis=0)
        start += len(rows)
        for cand, sim in zip(alive[i], nearest.tolist()):
            if sim >= threshold:
                cand.filter = FILTER_NEAR_DUPLICATE


def apply_confirmed(window: list[Candidate], confirmed: set[int] | frozenset[int]) -> int:
    """Judged-not-relevant candidates are confirmed negatives: the guessing filters are lifted.
    Returns how many of the window's candidates are confirmed."""
    count = 0
    for cand in window:
        if cand.row in confirmed:
            cand.confirmed = True
            count += 1
            if cand.filter in OVERRIDABLE:
                cand.filter = ""
    return count
