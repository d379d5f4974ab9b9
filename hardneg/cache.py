"""The workdir cache (`hardneg cache`): what the one-liner keeps under ``$HARDNEG_HOME``, and pruning it.

Layout (see ``hardneg.pipeline``): ``embeddings/<fingerprint>``, ``index/<fingerprint>``, their
resumable ``<fingerprint>.partial`` work directories, and ``stdin/<hash>.jsonl`` (``.jsonl.gz``, ``.parquet``) spools of piped
input. Entries are used by fingerprint, so removing any of them only costs recomputation. An entry
that a live process is writing (its lock is held) is never removed.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from hardneg.artifacts import artifact_kind, has_damaged_manifest, read_manifest
from hardneg.errors import ConfigError
from hardneg.writes import LOCK_SUFFIX, LockedError, writing

SECTIONS = ("embeddings", "index", "stdin", "openvino", "local-llm")
_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1 << 10, "m": 1 << 20, "mb": 1 << 20, "g": 1 << 30, "gb": 1 << 30, "t": 1 << 40, "tb": 1 << 40}
_AGES = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


@dataclass
class Entry:
    path: Path
    section: str
    kind: str
    """embeddings, index, partial (an interrupted build, resumable), stdin, openvino or local-llm."""
    bytes: int
    last_used: float
    """Seconds since the epoch: the newest modification time inside the entry."""
    describes: str

    def to_dict(self) -> dict[str, object]:
        """The `hardneg cache list --json` record."""
        return {"path": str(self.path), "kind": self.kind, "bytes": self.bytes, "last_used": self.last_used, "what": self.describes}


def parse_size(text: str) -> int:
    """'10G', '500MB', '1024' -> bytes."""
    value = text.strip().lower().replace(" ", "")
    number = value.rstrip("kmgtb")
    unit = value[len(number):]
    try:
        amount = float(number)
    except ValueError:
        raise ConfigError(f"size {text!r}: expected a number with an optional unit (K, M, G, T), e.g. 10G") from None
    if unit not in _UNITS or not math.isfinite(amount) or amount < 0:
        raise ConfigError(f"size {text!r}: expected a number with an optional unit (K, M, G, T), e.g. 10G")
    return int(amount * _UNITS[unit])


def parse_age(text: str) -> float:
    """'7d', '12h', '30m', '2w' -> seconds."""
    value = text.strip().lower()
    unit = value[-1:] if value[-1:] in _AGES else "s"
    number = value[:-1] if value[-1:] in _AGES else value
    try:
        amount = float(number)
    except ValueError:
        raise ConfigError(f"age {text!r}: expected a number with a unit (s, m, h, d, w), e.g. 7d") from None
    if not math.isfinite(amount):
        raise ConfigError(f"age {text!r}: must be a finite number, e.g. 7d")
    if amount < 0:
        raise ConfigError(f"age {text!r}: must not be negative")
    return amount * _AGES[unit]


def _usage(path: Path) -> tuple[int, float]:
    if path.is_file():
        stat = path.stat()
        return stat.st_size, stat.st_mtime
    total, newest = 0, path.stat().st_mtime
    for root, _, files in os.walk(path):
        for name in files:
            try:
                stat = (Path(root) / name).stat()
            except OSError:
                continue
            total += stat.st_size
            newest = max(newest, stat.st_mtime)
    return total, newest


def list_entries(workdir: Path) -> list[Entry]:
    """Every cache entry under ``workdir``, oldest use first."""
    entries: list[Entry] = []
    for section in SECTIONS:
        folder = workdir / section
        if not folder.is_dir():
            continue
        for path in sorted(folder.iterdir()):
            if path.name.endswith(LOCK_SUFFIX) or ".tmp-" in path.name or ".old-" in path.name:
                continue
            size, used = _usage(path)
            if section == "stdin":
                kind, describes = "stdin", "piped input"
            elif section == "openvino":
                kind, describes = "openvino", "an encoder converted for --backend openvino (rebuilt when needed)"
            elif section == "local-llm":
                kind, describes = "local-llm", "the offline smoke-test LLM of scripts/local_llm.py (rebuilt when needed)"
            elif path.name.endswith(".partial"):
                kind, describes = "partial", "an interrupted build (resumable)"
            else:
                kind = artifact_kind(path) or "unknown"
                describes = ("damaged: its manifest does not parse; runs needing it stop until it is removed (rm -r, "
                             "or prune)" if kind == "unknown" and has_damaged_manifest(path) else "")
                if kind == "embeddings":
                    manifest = read_manifest(path)
                    describes = f"{manifest['input']['description']} with {manifest['model']['name']}"
                elif kind == "index":
                    manifest = read_manifest(path)
                    describes = f"{manifest.get('backend')} index of {manifest['counts']['docs']} documents"
            entries.append(Entry(path, section, kind, size, used, describes))
    return sorted(entries, key=lambda e: (e.last_used, str(e.path)))


def prune(workdir: Path, *, older_than: float | None = None, max_bytes: int | None = None, dry_run: bool = False) -> tuple[list[Entry], list[Entry]]:
    """Remove entries last used more than ``older_than`` seconds ago, then the least recently used
    ones until the cache holds at most ``max_bytes``. Returns (removed, kept busy by a live writer)."""
    entries = list_entries(workdir)
    now = time.time()
    chosen: list[Entry] = []
    remaining = sum(e.bytes for e in entries)
    for entry in entries:  # oldest first
        too_old = older_than is not None and now - entry.last_used > older_than
        too_big = max_bytes is not None and remaining > max_bytes
        if too_old or too_big:
            chosen.append(entry)
            remaining -= entry.bytes
    removed: list[Entry] = []
    busy: list[Entry] = []
    for entry in chosen:
        if dry_run:
            removed.append(entry)
            continue
        # A partial's lock is its artifact's: <fp>.partial belongs to <fp>.
        owner = entry.path.with_name(entry.path.name[: -len(".partial")]) if entry.kind == "partial" else entry.path
        try:
            with writing(owner):
                if entry.path.is_dir():
                    shutil.rmtree(entry.path)
                else:
                    entry.path.unlink(missing_ok=True)
            removed.append(entry)
        except LockedError:
            busy.append(entry)
    return removed, busy
