"""Late interaction (ColBERT): which architecture a checkpoint is, and exact MaxSim search over a corpus.

`hardneg eval` scores a ColBERT checkpoint against every document of the corpus (no PLAID, no
candidate generation, so no approximation error in the number): the corpus is encoded in chunks of
``DOC_CHUNK`` texts, each chunk is scored against all queries with MaxSim (for every query token the
best document token, summed), and a running top-k per query is kept. Memory is bounded by one chunk
of token vectors and the (query batch x chunk) score block, never the whole corpus. Ties break by
corpus position, as everywhere in hardneg.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hardneg.progress import NULL_REPORTER, Reporter

DOC_CHUNK = 1024
QUERY_BLOCK = 32
DOC_BLOCK = 64

ARCH_BIENCODER = "biencoder"
ARCH_COLBERT = "colbert"
ARCH_CROSS_ENCODER = "cross-encoder"


def model_architecture(path: str | Path | None) -> str:
    """`colbert` for sentence-transformers multi-vector, PyLate and Stanford ColBERT checkpoints,
    `cross-encoder` for CrossEncoder checkpoints, else `biencoder`."""
    if path is None:
        return ARCH_BIENCODER
    root = Path(path)
    if (root / "artifact.metadata").is_file():  # Stanford colbert-ai checkpoints
        return ARCH_COLBERT
    try:
        model_type = json.loads((root / "config_sentence_transformers.json").read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError):
        model_type = None
    if model_type in ("MultiVectorEncoder", "ColBERT"):
        return ARCH_COLBERT
    if model_type == "CrossEncoder":
        return ARCH_CROSS_ENCODER
    return ARCH_BIENCODER


def _padded(vectors: Sequence[Any], torch: Any) -> tuple[Any, Any]:
    """(n, max_tokens, dim) float32 tensor and (n, max_tokens) bool mask from per-text token matrices."""
    width = max(int(v.shape[0]) for v in vectors)
    dim = int(vectors[0].shape[1])
    out = torch.zeros((len(vectors), width, dim), dtype=torch.float32)
    mask = torch.zeros((len(vectors), width), dtype=torch.bool)
    for i, v in enumerate(vectors):
        t = torch.as_tensor(np.asarray(v, dtype=np.float32))
        out[i, : t.shape[0]] = t
        mask[i, : t.shape[0]] = True
    return out, mask


def maxsim_scores(queries: Any, query_mask: Any, docs: Any, doc_mask: Any) -> Any:
    """(q, d) MaxSim scores of padded query and document token tensors."""
    import torch

    q, lq, dim = queries.shape
    d, ld, _ = docs.shape
    sims = queries.reshape(q * lq, dim) @ docs.reshape(d * ld, dim).T
    sims = sims.view(q, lq, d, ld).masked_fill(~doc_mask.view(1, 1, d, ld), float("-inf"))
    best = sims.max(dim=-1).values  # (q, lq, d)
    best = torch.where(query_mask.view(q, lq, 1), best, torch.zeros((), dtype=best.dtype))
    return best.sum(dim=1)


class TopK:
    """Running top-k per query over document chunks; ties break by corpus position (lower first)."""

    def __init__(self, queries: int, k: int) -> None:
        self.k = k
        self.scores = np.full((queries, 0), -np.inf, dtype=np.float32)
        self.labels = np.zeros((queries, 0), dtype=np.int64)

    def add(self, scores: np.ndarray, first_label: int) -> None:
        labels = np.broadcast_to(np.arange(first_label, first_label + scores.shape[1], dtype=np.int64), scores.shape)
        all_scores = np.concatenate([self.scores, scores.astype(np.float32)], axis=1)
        all_labels = np.concatenate([self.labels, labels], axis=1)
        order = np.lexsort((all_labels, -all_scores), axis=1)[:, : self.k]
        self.scores = np.take_along_axis(all_scores, order, axis=1)
        self.labels = np.take_along_axis(all_labels, order, axis=1)


def colbert_search(
    model: Any,
    queries: Sequence[str],
    documents: Iterable[str],
    num_documents: int,
    k: int,
    *,
    batch_size: int = 32,
    reporter: Reporter = NULL_REPORTER,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact MaxSim top-``k`` (labels = corpus positions, scores) of every query over the documents."""
    import torch

    # MaxSim runs where the model runs: on a GPU the (query block x document block) products are
    # the bulk of the work; only each block's scores come back to the CPU for the running top-k.
    device = getattr(model, "device", None) or "cpu"
    q_vectors = model.encode_query(list(queries), batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
    q_tensor, q_mask = (t.to(device) for t in _padded(q_vectors, torch))
    top = TopK(len(queries), k)
    label = "Scoring corpus (MaxSim)"
    reporter.progress(label, 0, num_documents)
    start = 0
    with torch.inference_mode():
        for chunk in _chunks(documents, DOC_CHUNK):
            d_vectors = model.encode_document(chunk, batch_size=batch_size, convert_to_numpy=True, show_progress_bar=False)
            block_scores = np.empty((len(queries), len(chunk)), dtype=np.float32)
            for d0 in range(0, len(chunk), DOC_BLOCK):
                d_tensor, d_mask = (t.to(device) for t in _padded(d_vectors[d0 : d0 + DOC_BLOCK], torch))
                for q0 in range(0, len(queries), QUERY_BLOCK):
                    scores = maxsim_scores(q_tensor[q0 : q0 + QUERY_BLOCK], q_mask[q0 : q0 + QUERY_BLOCK], d_tensor, d_mask)
                    block_scores[q0 : q0 + QUERY_BLOCK, d0 : d0 + DOC_BLOCK] = scores.cpu().numpy()
            top.add(block_scores, start)
            start += len(chunk)
            reporter.progress(label, len(chunk))
    return top.labels, top.scores


def _chunks(items: Iterable[str], size: int) -> Iterator[list[str]]:
    chunk: list[str] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk
