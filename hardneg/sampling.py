"""Sampling negatives from a query's eligible candidates: one registry of samplers, each given one
`SampleContext`. Adding a strategy is a function here, its name in `SAMPLERS` and in
`config.SAMPLING_STRATEGIES`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from hardneg.config import MineConfig


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


def smallest_draws(keys: np.ndarray, n: int) -> list[int]:
    """A uniform subset of n positions: those with the n smallest draws (stable: ties by position).
    `random` sampling, and the margin fallback of `mine`, which must pick what `random` would."""
    return np.argsort(keys, kind="stable")[:n].tolist()


def _sample_random(ctx: SampleContext) -> list[int]:
    return smallest_draws(ctx.keys, ctx.n)


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
