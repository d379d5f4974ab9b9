"""Teachers that score (query, document) pairs for `mine --teacher`: cross-encoders, and bi-encoder
or ColBERT checkpoints through their vectors; `load_teacher` picks the right one for a checkpoint.
"""

from __future__ import annotations

import contextlib
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from hardneg.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Sequence


from hardneg.encoders import apply_onednn, default_device, quiet_transformers, tune_child_allocators, uses_onednn
from hardneg.models import require_training_sentence_transformers, resolve_path_or_hub, weights_fingerprint

# The vectors a bi-encoder or ColBERT teacher keeps between calls (see VectorScorer).
TEACHER_MEMO_BYTES = 1 << 30

# --------------------------------------------------------------------------- cross-encoders


class PairScorer(Protocol):
    """Scores (query, document) text pairs: a cross-encoder teacher, or a fake in tests."""

    name: str

    @property
    def fingerprint(self) -> str:
        """Identity of what the scorer computes (weights)."""
        ...

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        """One float per pair, higher = more relevant."""
        ...


class CrossEncoderScorer:
    """A sentence-transformers CrossEncoder (scores through its default activation, e.g. sigmoid)."""

    def __init__(self, name: str, path: Path, batch_size: int = 32, device: str | None = None) -> None:
        self.name = name
        self.path = path
        self.batch_size = batch_size
        self.device = device
        self._weights = weights_fingerprint(path)
        # Decided once: the fingerprint says how the scores were computed, the load does it.
        self.onednn = uses_onednn(device or default_device(), "fp32", "torch")
        self._model: Any = None

    @property
    def fingerprint(self) -> str:
        return self._weights + (":onednn" if self.onednn else "")

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        if self._model is None:
            quiet_transformers()
            tune_child_allocators()
            from sentence_transformers import CrossEncoder

            try:
                self._model = CrossEncoder(str(self.path), device=self.device or default_device(), local_files_only=True)
            except Exception as exc:
                raise ModelError(f"cannot load cross-encoder '{self.name}' from {self.path} ({exc.__class__.__name__}: {exc})") from None
            apply_onednn(self._model, self.onednn)
        scores = self._model.predict(
            [list(p) for p in pairs], batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs), -1)[:, 0]


def load_colbert(path: str, device: str | None = None) -> Any:
    """A ColBERT (multi-vector) model from a local directory: a ColBERT checkpoint as it is, a plain
    sentence-transformers model with a new 128-d projection head (seed torch first to fix it)."""
    require_training_sentence_transformers("a ColBERT model")
    from sentence_transformers.multi_vector_encoder import MultiVectorEncoder

    quiet_transformers()
    try:
        with quiet_conversion():
            return MultiVectorEncoder(path, device=device or default_device(), local_files_only=True)
    except Exception as exc:
        raise ModelError(f"cannot load '{path}' as a ColBERT model ({exc.__class__.__name__}: {exc})") from None


@contextlib.contextmanager
def quiet_conversion() -> Any:
    """sentence-transformers warns when it turns a plain checkpoint into a ColBERT or cross-encoder
    model; hardneg says so itself (the manifest and the train summary name the architecture)."""
    import logging

    logger = logging.getLogger("sentence_transformers.base.model")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


class VectorScorer:
    """A bi-encoder or ColBERT teacher scoring (query, document) pairs: cosine of normalised
    vectors, or MaxSim of token vectors. Vectors are memoised by text hash, so a document that is a
    candidate of many queries is usually encoded once; the memo keeps the most recently used
    vectors up to ``memo_bytes`` (a ColBERT document's token vectors take ~90 KB, so an unbounded
    memo over a million-document corpus would not fit in memory). Eviction follows the order of
    the calls, so the same inputs encode the same batches and give the same scores."""

    def __init__(
        self, name: str, path: Path, architecture: str, batch_size: int = 32, device: str | None = None,
        memo_bytes: int = TEACHER_MEMO_BYTES,
    ) -> None:
        self.name, self.path, self.architecture = name, path, architecture
        self.batch_size, self.device = batch_size, device
        self._weights = weights_fingerprint(path)
        self._model: Any = None
        self._memo: OrderedDict[tuple[str, str], np.ndarray] = OrderedDict()
        self.memo_bytes, self._memo_used = memo_bytes, 0
        self.onednn = uses_onednn(device or default_device(), "fp32", "torch")

    @property
    def fingerprint(self) -> str:
        return self._weights + (":onednn" if self.onednn else "")

    def _load(self) -> Any:
        if self._model is None:
            quiet_transformers()
            tune_child_allocators()
            device = self.device or default_device()
            try:
                if self.architecture == "colbert":
                    self._model = load_colbert(str(self.path), device)
                else:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
            except Exception as exc:
                raise ModelError(f"cannot load teacher '{self.name}' from {self.path} ({exc.__class__.__name__}: {exc})") from None
            apply_onednn(self._model, self.onednn)
        return self._model

    def _vectors(self, texts: Sequence[str], kind: str) -> list[Any]:
        from hardneg.artifacts import text_hash

        keys = [(kind, text_hash(t)) for t in texts]
        found: dict[tuple[str, str], np.ndarray] = {}
        for key in dict.fromkeys(keys):  # first-seen order: eviction must not depend on hashing
            if key in self._memo:
                found[key] = self._memo[key]
                self._memo.move_to_end(key)
        todo = list({k: t for k, t in zip(keys, texts) if k not in found}.items())
        if todo:
            model = self._load()
            encode = model.encode_query if kind == "query" else model.encode_document
            kwargs: dict[str, Any] = {"batch_size": self.batch_size, "convert_to_numpy": True, "show_progress_bar": False}
            if self.architecture != "colbert":
                kwargs["normalize_embeddings"] = True
            vectors = encode([t for _, t in todo], **kwargs)
            for (key, _), vector in zip(todo, vectors):
                found[key] = self._memo[key] = np.asarray(vector, dtype=np.float32)
                self._memo_used += found[key].nbytes
            while self._memo_used > self.memo_bytes and self._memo:
                self._memo_used -= self._memo.popitem(last=False)[1].nbytes
        return [found[k] for k in keys]

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        queries = self._vectors([q for q, _ in pairs], "query")
        docs = self._vectors([d for _, d in pairs], "document")
        if self.architecture != "colbert":
            return np.einsum("ij,ij->i", np.stack(queries), np.stack(docs)).astype(np.float32)
        return np.array([float((q @ d.T).max(axis=1).sum()) for q, d in zip(queries, docs)], dtype=np.float32)


def load_teacher(name: str, batch_size: int = 32, device: str | None = None) -> PairScorer:
    """The teacher scorer for a checkpoint: its architecture (cross-encoder, ColBERT or bi-encoder)
    is read from the checkpoint."""
    from hardneg.late_interaction import ARCH_CROSS_ENCODER, model_architecture

    path = resolve_path_or_hub(name)
    architecture = model_architecture(path)
    if architecture == ARCH_CROSS_ENCODER:
        return CrossEncoderScorer(name, path, batch_size, device)
    return VectorScorer(name, path, architecture, batch_size, device)
