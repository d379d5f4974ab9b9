"""One client for any OpenAI-compatible chat endpoint (vLLM, llama.cpp's server, Ollama, TGI, OpenAI),
and the relevance judge built on it (`hardneg mine --judge llm`).

- The API key is read from an environment variable only (``HARDNEG_LLM_API_KEY``, else
  ``OPENAI_API_KEY``) and never written to a manifest or a log.
- Requests run concurrently (``concurrency``), with timeouts and retries with exponential backoff
  on connection errors, 429 and 5xx (``Retry-After`` honoured).
- Every answer is cached on disk (SQLite) under a key of (model, prompt template and its version,
  inputs): a re-run or a resumed run never pays twice for the same judgment.
- The answer is parsed and validated; a malformed answer is asked again once, then recorded as
  unjudged: never guessed.

The standard library does the HTTP (no new dependency): a chat completion is one POST of JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from hardneg.errors import HardnegError

JUDGE_PROMPT = "judge_v1.txt"
API_KEY_VARIABLES = ("HARDNEG_LLM_API_KEY", "OPENAI_API_KEY")
RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class LLMError(HardnegError):
    """The endpoint could not be used (down, refusing, out of retries)."""


@dataclass(frozen=True)
class Verdict:
    relevant: bool | None
    """None: unjudged (the model's answer could not be read twice)."""
    score: float | None
    """The model's graded relevance in [0, 1], when it gave one."""


@dataclass
class Usage:
    requests: int = 0
    cached: int = 0
    retries: int = 0
    malformed: int = 0
    unjudged: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, **counts: int) -> None:
        with self.lock:
            for name, value in counts.items():
                setattr(self, name, getattr(self, name) + value)

    def to_dict(self) -> dict[str, int]:
        return {k: v for k, v in self.__dict__.items() if k != "lock"}


def prompt_template(name: str = JUDGE_PROMPT) -> str:
    return resources.files("hardneg.prompts").joinpath(name).read_text(encoding="utf-8")


class ResponseCache:
    """Answers by key, in one SQLite file (safe across threads and processes)."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._local = threading.local()
        with self._db() as db:
            db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, answer TEXT NOT NULL)")

    def _db(self) -> sqlite3.Connection:
        if not hasattr(self._local, "db"):
            self._local.db = sqlite3.connect(self.path, timeout=60)
        return self._local.db

    def get(self, key: str) -> str | None:
        row = self._db().execute("SELECT answer FROM answers WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, answer: str) -> None:
        with self._db() as db:
            db.execute("INSERT OR REPLACE INTO answers (key, answer) VALUES (?, ?)", (key, answer))


class ChatClient:
    """POST /chat/completions with retries, backoff and a persistent cache."""

    def __init__(
        self, url: str, model: str, cache: ResponseCache, *, timeout: float = 60.0, retries: int = 4,
        backoff: float = 1.0, usage: Usage | None = None,
    ) -> None:
        self.endpoint = url.rstrip("/") + ("" if url.rstrip("/").endswith("/chat/completions") else "/chat/completions")
        self.model, self.cache, self.timeout, self.retries, self.backoff = model, cache, timeout, retries, backoff
        self.usage = usage or Usage()
        self.api_key = next((os.environ[v] for v in API_KEY_VARIABLES if os.environ.get(v)), None)

    def complete(self, messages: list[dict[str, str]], key: str, fresh: bool = False, max_tokens: int = 64) -> str:
        """The model's answer (cached under ``key`` unless ``fresh``)."""
        if not fresh:
            cached = self.cache.get(key)
            if cached is not None:
                self.usage.add(cached=1)
                return cached
        body = json.dumps({"model": self.model, "messages": messages, "temperature": 0, "max_tokens": max_tokens}).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.usage.add(retries=1)
            try:
                request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    payload = json.loads(response.read().decode("utf-8"))
                self.usage.add(requests=1)
                text = payload["choices"][0]["message"]["content"]
                tokens = payload.get("usage") or {}
                self.usage.add(prompt_tokens=int(tokens.get("prompt_tokens") or 0), completion_tokens=int(tokens.get("completion_tokens") or 0))
                if not isinstance(text, str):
                    raise ValueError("no text in the answer")
                self.cache.put(key, text)
                return text
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code not in RETRY_STATUS:
                    raise LLMError(f"{self.endpoint}: {last} ({exc.reason}); check --llm-url, --llm-model and the API key variable") from None
                wait = _retry_after(exc) or self.backoff * 2**attempt
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as exc:
                last = f"{exc.__class__.__name__}: {getattr(exc, 'reason', exc)}"
                wait = self.backoff * 2**attempt
            except (ValueError, KeyError, IndexError, TypeError) as exc:
                last = f"unreadable response ({exc})"
                wait = self.backoff * 2**attempt
            if attempt < self.retries:
                time.sleep(wait * (1 + random.random() * 0.1))
        raise LLMError(
            f"{self.endpoint}: no answer after {self.retries + 1} attempts (last: {last}). Judgments so far are "
            "cached: run the same command again to resume"
        )


def _retry_after(exc: urllib.error.HTTPError) -> float | None:
    value = exc.headers.get("Retry-After") if exc.headers else None
    try:
        return min(60.0, float(value)) if value else None
    except ValueError:
        return None


_VERDICT = re.compile(r"\{.*\}", re.S)


def json_object(text: str) -> dict[str, Any] | None:
    """The JSON object in a model's answer, prose around it tolerated; None when there is none."""
    match = _VERDICT.search(text)
    if not match:
        return None
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError:
        return None
    return data if isinstance(data, dict) else None


def parse_verdict(text: str) -> Verdict | None:
    """``{"relevant": true|false, "score": 0..1}`` from the answer (surrounding prose tolerated);
    None when it is not there."""
    data = json_object(text)
    if data is None or not isinstance(data.get("relevant"), bool):
        return None
    relevant = bool(data["relevant"])
    score = data.get("score")
    score = float(score) if isinstance(score, (int, float)) and not isinstance(score, bool) and 0 <= score <= 1 else None
    return Verdict(relevant, score)


class Judge:
    """Asks whether a candidate answers the query, with the positives as reference."""

    def __init__(self, url: str, model: str, cache_dir: Path, *, concurrency: int = 8, timeout: float = 60.0,
                 retries: int = 4, backoff: float = 1.0) -> None:
        self.template = prompt_template()
        self.version = hashlib.sha256(self.template.encode()).hexdigest()[:12]
        self.model = model
        self.usage = Usage()
        self.client = ChatClient(url, model, ResponseCache(cache_dir / "llm-cache.sqlite"), timeout=timeout,
                                 retries=retries, backoff=backoff, usage=self.usage)
        self.concurrency = concurrency

    @property
    def fingerprint(self) -> str:
        """What the verdicts depend on: the model and the prompt, not the server's address."""
        return f"llm:{self.model}:{JUDGE_PROMPT}:{self.version}"

    def _one(self, query: str, positives: Sequence[str], candidate: str) -> Verdict:
        prompt = self.template.format(query=query, positives="\n".join(f"- {p}" for p in positives[:3]), candidate=candidate)
        messages = [{"role": "user", "content": prompt}]
        key = hashlib.sha256(json.dumps([self.fingerprint, query, list(positives[:3]), candidate]).encode()).hexdigest()
        for fresh in (False, True):  # a malformed answer is asked again once, bypassing the cache
            verdict = parse_verdict(self.client.complete(messages, key, fresh=fresh))
            if verdict is not None:
                return verdict
            self.usage.add(malformed=1)
        self.usage.add(unjudged=1)
        return Verdict(None, None)

    def judge(self, items: Sequence[tuple[str, Sequence[str], str]], progress: Progress | None = None) -> list[Verdict]:
        """Verdicts for (query, positives, candidate) items, in order; ``progress(n)`` after each
        ``n`` answers (cached ones included)."""
        return _ordered_map(lambda item: self._one(*item), items, self.concurrency, progress)


Progress = Callable[[int], None]


def _ordered_map(fn: Callable[[Any], Any], items: Sequence[Any], workers: int, progress: Progress | None) -> list[Any]:
    """``[fn(item) for item in items]`` on ``workers`` threads, in order; ``progress`` is called
    on the calling thread as answers come in (a progress bar need not be thread-safe)."""
    if not items:
        return []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(fn, item) for item in items]
        if progress is not None:
            for _ in as_completed(futures):
                progress(1)
        return [f.result() for f in futures]


def llm_settings() -> dict[str, Any]:
    """The endpoint from the environment (``HARDNEG_LLM_URL``), for commands that take ``--llm-url``."""
    return {"url": os.environ.get("HARDNEG_LLM_URL")}


def judge_for(config: Any) -> Judge:
    """The judge a mining config asks for (`--judge llm`): endpoint from the config or
    $HARDNEG_LLM_URL, answers cached under the workdir."""

    from hardneg.errors import ConfigError

    url = config.llm_url or os.environ.get("HARDNEG_LLM_URL")
    if not url:
        raise ConfigError("--judge llm needs the endpoint: --llm-url URL or HARDNEG_LLM_URL (any OpenAI-compatible server)")
    if config.engine == "ray":
        raise ConfigError("--judge llm runs with the local engine (the endpoint is the parallel part): drop --engine ray")
    return connect_judge(url, str(config.llm_model), config.llm_concurrency)


def connect_judge(url: str, model: str, concurrency: int = 8) -> Judge:
    """A judge on ``url`` whose answers are cached under the workdir (`mine --judge llm`, `audit`);
    $HARDNEG_LLM_BACKOFF sets the seconds before the first retry."""
    from hardneg.pipeline import default_workdir

    backoff = float(os.environ.get("HARDNEG_LLM_BACKOFF", "1.0"))
    return Judge(url, model, default_workdir() / "llm", concurrency=concurrency, backoff=backoff)


SYNTH_PROMPT = "synth_v1.txt"


def parse_negatives(text: str, count: int) -> list[tuple[str, str]] | None:
    """``[(violates, text), ...]`` (at most ``count``) from a synthesis answer; the model's reasoning,
    if it wrote any outside the JSON, is dropped. None when the answer holds no usable list."""
    data = json_object(text)
    items = data.get("negatives") if data is not None else None
    if not isinstance(items, list):
        return None
    out = [(str(i.get("violates") or "").strip(), i["text"].strip()) for i in items
           if isinstance(i, dict) and isinstance(i.get("text"), str) and i["text"].strip()]
    return out[:count] if out else None


class Synthesizer:
    """Asks for counterfactual negatives of a (query, positive) pair (CausalNeg): passages on the
    positive's topic that each break one requirement of the query."""

    def __init__(self, url: str, model: str, cache_dir: Path, *, concurrency: int = 8, timeout: float = 120.0,
                 retries: int = 4, backoff: float = 1.0, max_tokens: int = 1024) -> None:
        self.template = prompt_template(SYNTH_PROMPT)
        self.version = hashlib.sha256(self.template.encode()).hexdigest()[:12]
        self.model, self.max_tokens, self.concurrency = model, max_tokens, concurrency
        self.usage = Usage()
        self.client = ChatClient(url, model, ResponseCache(cache_dir / "llm-cache.sqlite"), timeout=timeout,
                                 retries=retries, backoff=backoff, usage=self.usage)

    @property
    def fingerprint(self) -> str:
        return f"llm:{self.model}:{SYNTH_PROMPT}:{self.version}"

    def _one(self, query: str, positive: str, count: int) -> list[tuple[str, str]]:
        messages = [{"role": "user", "content": self.template.format(query=query, positive=positive, count=count)}]
        key = hashlib.sha256(json.dumps([self.fingerprint, query, positive, count]).encode()).hexdigest()
        for fresh in (False, True):  # a malformed answer is asked again once, bypassing the cache
            negatives = parse_negatives(self.client.complete(messages, key, fresh=fresh, max_tokens=self.max_tokens), count)
            if negatives is not None:
                return negatives
            self.usage.add(malformed=1)
        self.usage.add(unjudged=1)
        return []

    def generate(self, items: Sequence[tuple[str, str]], count: int, progress: Progress | None = None) -> list[list[tuple[str, str]]]:
        """For each (query, positive), up to ``count`` (violates, text) negatives (none if the model
        never gave a usable answer), in order; ``progress(n)`` after each ``n`` answers."""
        return _ordered_map(lambda item: self._one(item[0], item[1], count), items, self.concurrency, progress)
