"""Encoders behind one small interface (`Encoder`): sentence-transformers models (CPU processes or
GPUs, fp16/bf16 where safe) and a hashing encoder for tests; the allocator settings that cut their
memory; device and precision checks. Models are resolved in `models.py`, teachers live in
`teachers.py`. torch and sentence-transformers are imported only when a real model is loaded, so
the CLI stays fast.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

import numpy as np

from hardneg.artifacts import normalize_text
from hardneg.errors import ModelError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from hardneg.config import EmbedConfig

from hardneg.models import ModelSpec, resolve_model, weights_fingerprint

TextKind = Literal["query", "document"]

class Encoder(Protocol):
    """What the embed stage needs from a model."""

    spec: ModelSpec
    max_length: int | None

    @property
    def dim(self) -> int:
        """The vector dimension."""
        ...

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


# --------------------------------------------------------------------------- encoders


def longest_first(texts: Sequence[str]) -> list[int]:
    """Positions of ``texts``, longest first; stable, so equal lengths keep their input order.

    The one batching order of every encoding path: embed slices a shard in this order and the
    encoder batches each call in it, so one process, N workers and a Ray actor put each text in the
    same batch with the same padding (in bf16 a vector moves by ~1e-3 with its batch's padding)."""
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))


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
        self.device = config.device or default_device()
        # Reduced precision changes the numbers, so it is part of the identity.
        self.precision = resolve_precision(config.precision, self.device)
        self.backend = config.backend
        if self.backend == "openvino":
            if not self.device.startswith("cpu"):
                raise ModelError(f"--backend openvino runs on the CPU; use --device cpu or --backend torch (device is {self.device})")
            if config.workers > 1:
                raise ModelError("--backend openvino uses every core in one process; use --workers 1")
        self.onednn = uses_onednn(self.device, self.precision, self.backend)
        self._weights = weights_fingerprint(spec.path)
        self._model: Any = None
        self._pool: Any = None
        self._dim: int | None = None
        self.max_length = config.max_length

    @property
    def fingerprint(self) -> str:
        suffix = ("" if self.precision == "fp32" else f":{self.precision}") + ("" if self.backend == "torch" else f":{self.backend}")
        suffix += ":onednn" if self.onednn else ""
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
        quiet_transformers()
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
        if self.backend == "openvino":
            from hardneg.backends import to_openvino
            from hardneg.pipeline import default_workdir

            to_openvino(model, precision=self.precision, weights=self._weights, cache_root=default_workdir())
        elif self.precision == "fp16":
            model.half()
        elif self.precision == "bf16":
            model.to(torch.bfloat16)
        else:
            apply_onednn(model, self.onednn)
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
            quiet_pool_shutdown()
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
        texts, batch = list(texts), self.config.batch_size
        options: dict[str, Any] = {
            "prompt": prompt or None, "batch_size": batch, "normalize_embeddings": not half,
            "convert_to_numpy": not half, "convert_to_tensor": half, "show_progress_bar": False,
        }
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Longest first, stable (what embed's callers already pass, so for them nothing moves): the
        # batches below are slices of this order, padded no more than sentence-transformers' own sort.
        order = longest_first(texts)
        texts = [texts[i] for i in order]
        if self._pool is not None:
            # One chunk per batch, so each worker encodes exactly the batches one process would: by
            # default sentence-transformers cuts len/workers/10 texts per chunk (batches of ~7 for a
            # 128-text slice: slower, and in bf16 another padding moves a vector by ~1e-3).
            parts = [self._model.encode(texts, pool=self._pool, chunk_size=batch, **options)]
        else:
            # Batch by batch for the same reason: the batches are the caller's length-sorted slices,
            # never regrouped by sentence-transformers' own (unstable) length sort.
            parts = [self._model.encode(texts[i : i + batch], **options) for i in range(0, len(texts), batch)]
        # Half precision: the raw embeddings go to float32 and are normalised there (a bf16 norm is off by up to ~0.5%).
        vectors = np.concatenate([p.float().cpu().numpy() if half else p for p in parts])
        if half:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        out = np.empty((len(order), vectors.shape[1]), dtype=np.float32)
        out[order] = vectors
        return out

    def close(self) -> None:
        if self._pool is not None:
            self._model.stop_multi_process_pool(self._pool)
            self._pool = None


RESOURCE_TRACKER_WARNING = "ignore:resource_tracker:UserWarning"


def quiet_pool_shutdown() -> None:
    """Keep "resource_tracker: There appear to be N leaked semaphore objects" off the user's stderr.

    sentence-transformers stops its encoding pool by terminating the workers; each had created a
    multiprocessing lock (tqdm's write lock) that it can no longer release, so at exit the resource
    tracker unlinks them (the cleanup works) and warns about it. The tracker is its own process and
    takes its warning filters from ``sys.warnoptions`` when it starts, i.e. at the pool's first queue.
    """
    if RESOURCE_TRACKER_WARNING not in sys.warnoptions:
        sys.warnoptions.append(RESOURCE_TRACKER_WARNING)


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


def quiet_transformers() -> None:
    """Model loading must not print its own progress bars: ours are on stderr, under --quiet control."""
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
        hf_logging.set_verbosity_error()
    except ImportError:  # pragma: no cover
        pass


def resolve_precision(precision: str, device: str, *, cpu_bf16: bool = True) -> str:
    """`auto` is fp16 on CUDA, bf16 on a CPU with native bf16 arithmetic (AVX512-BF16 or AMX; with
    ``cpu_bf16``) and fp32 elsewhere; fp16 on a CPU is refused (slower than fp32 there).

    bf16 on such CPUs encodes in about half the time of fp32 and was shown not to change what the
    mined negatives are worth (docs/benchmarks.md: 97% of the negatives kept, a 3-seed student
    trained on them within noise of fp32's); on CPUs that emulate bf16 it is slower than fp32.
    Evaluation passes ``cpu_bf16=False``: a metric should measure the model, not the arithmetic."""
    if precision == "auto":
        if device.startswith("cuda"):
            return "fp16"
        return "bf16" if cpu_bf16 and device.startswith("cpu") and cpu_has_native_bf16() else "fp32"
    if precision == "fp16" and not device.startswith(("cuda", "mps")):
        raise ModelError(f"precision fp16 needs a GPU (device is {device}); on a CPU use bf16 or fp32")
    return precision


def uses_onednn(device: str, precision: str, backend: str) -> bool:
    """Whether torch's fp32 linear layers run through oneDNN (`backends.onednn_linears`): on x86
    CPUs in fp32 with the torch backend, decided without importing torch (it is part of the cache
    key). HARDNEG_ONEDNN=0|1 overrides it."""
    if backend != "torch" or precision != "fp32" or not device.startswith("cpu"):
        return False
    forced = os.environ.get("HARDNEG_ONEDNN", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return platform.machine().lower() in ("x86_64", "amd64")


def apply_onednn(model: Any, use: bool) -> bool:
    """Run ``model``'s fp32 linear layers through oneDNN if ``use`` (what `uses_onednn` decided, once,
    for the fingerprint that names the path); returns ``use``."""
    if use:
        from hardneg.backends import onednn_linears

        onednn_linears(model)
    return use


def cpu_has_native_bf16() -> bool:
    """Whether this CPU computes in bf16 natively (x86 AVX512-BF16 or AMX-BF16), read from
    /proc/cpuinfo without importing torch (the answer decides the precision, hence the cache key
    of a run that may need no model at all). Elsewhere (macOS, Windows, ARM): False, so `auto`
    stays fp32 where bf16 would be emulated or unmeasured. HARDNEG_CPU_BF16=0|1 overrides it."""
    forced = os.environ.get("HARDNEG_CPU_BF16", "").strip()
    if forced in ("0", "1"):
        return forced == "1"
    return _cpuinfo_has_bf16()


@functools.lru_cache(maxsize=1)
def _cpuinfo_has_bf16() -> bool:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    return bool(set(line.split(":", 1)[-1].split()) & {"avx512_bf16", "amx_bf16"})
    except OSError:
        pass
    return False


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


def default_device() -> str:
    if not _torch_build_has_gpu():
        return "cpu"
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _torch_build_has_gpu() -> bool:
    """False when the installed torch is a CPU-only build (its `version.py` names no CUDA, HIP or
    ROCm), read without importing torch: the device decides the precision and so the cache key,
    and a run that reuses cached embeddings should not pay torch's 1.5-3 s import to learn that
    the answer is "cpu". Unknown (no such file, unexpected text): True, and torch is asked."""
    import importlib.util

    spec = importlib.util.find_spec("torch")
    if spec is None or not spec.submodule_search_locations:
        return True
    version = Path(next(iter(spec.submodule_search_locations))) / "version.py"
    try:
        text = version.read_text(encoding="utf-8")
    except OSError:
        return True
    fields = dict(re.findall(r"^(cuda|hip|rocm)\s*(?::[^=]*)?=\s*(.+?)\s*$", text, flags=re.M))
    if set(fields) != {"cuda", "hip", "rocm"}:
        return True
    return any(value != "None" for value in fields.values())


def load_encoder(config: EmbedConfig) -> Encoder:
    """Resolve and load the configured model."""
    spec = resolve_model(config)
    if spec.path is None:
        if config.backend != "torch":
            raise ModelError(f"--backend {config.backend} runs transformer models; '{spec.name}' has no graph to run (use --backend torch)")
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
