"""Seeded k-means over unit vectors (spherical: cosine assignments), for `mine --same-cluster`.

Plain numpy, in blocks, so memory stays at one block of similarities: k-means++ seeding on a
seeded sample, then Lloyd iterations until no assignment changes (or 25 of them). Deterministic
for a given seed, vectors and k.
"""

from __future__ import annotations

import numpy as np

BLOCK = 65_536
SEED_SAMPLE = 20_000


def _assign(vectors: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    out = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), BLOCK):
        block = np.asarray(vectors[start : start + BLOCK], dtype=np.float32)
        out[start : start + len(block)] = np.argmax(block @ centroids.T, axis=1)
    return out


def kmeans(vectors: np.ndarray, k: int, seed: int, iterations: int = 25) -> np.ndarray:
    """Cluster id per row of ``vectors`` (n x d, unit rows), ``k`` clusters (at most n)."""
    n = len(vectors)
    k = max(1, min(k, n))
    rng = np.random.default_rng(seed)
    sample = np.asarray(vectors[np.sort(rng.choice(n, size=min(n, SEED_SAMPLE), replace=False))], dtype=np.float32)
    # k-means++ on the sample, with cosine distance 1 - s.
    centroids = [sample[rng.integers(len(sample))]]
    nearest = 1.0 - sample @ centroids[0]
    for _ in range(1, k):
        weights = np.clip(nearest, 0, None) ** 2
        total = weights.sum()
        pick = rng.choice(len(sample), p=weights / total) if total > 0 else rng.integers(len(sample))
        centroids.append(sample[pick])
        nearest = np.minimum(nearest, 1.0 - sample @ sample[pick])
    center = np.stack(centroids)
    labels = _assign(vectors, center)
    for _ in range(iterations):
        sums = np.zeros_like(center)
        for start in range(0, n, BLOCK):
            np.add.at(sums, labels[start : start + BLOCK], np.asarray(vectors[start : start + BLOCK], dtype=np.float32))
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        center = np.where(empty[:, None], center, sums / np.where(norms == 0, 1, norms))
        updated = _assign(vectors, center)
        if np.array_equal(updated, labels):
            break
        labels = updated
    return labels
