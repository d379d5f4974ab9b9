"""The disk contract between stages: artifact layouts, Parquet schemas, manifests and atomic writes.

Every artifact is a directory holding Parquet (or Voyager/NumPy) data plus a ``manifest.json``. A
directory without a manifest of the expected kind is never accepted by a later stage, and artifacts
are written into a sibling temporary directory that is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import mmap
import os
import re
import shutil
import signal
import socket
import sys
import time
import unicodedata
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hardneg import __version__
from hardneg.errors import ArtifactError, ConfigError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HIDDEN_DIR = ".hardneg"
"""Where an export keeps its manifest: trainers pointed at an export directory (FlagEmbedding's
``--train_data``, Tevatron's ``--train_dir``, ``datasets.load_dataset(..., data_dir=)``) read every
``*.json``/``*.jsonl``/``*.parquet`` file in it, and skip hidden directories."""


def manifest_file(directory: Path) -> Path:
    """The manifest of the artifact at ``directory``: ``manifest.json``, or ``.hardneg/manifest.json``
    for exports."""
    top = Path(directory) / MANIFEST
    return top if top.is_file() else Path(directory) / HIDDEN_DIR / MANIFEST

KIND_EMBEDDINGS = "embeddings"
KIND_INDEX = "index"
KIND_MINE = "mine-run"
KIND_EXPORT = "export"
KIND_MODEL = "model"
KIND_LABELS = "labels"
KIND_SELECTION = "selection"
KIND_LOOP = "loop"

# Embeddings artifact
CORPUS_DIR = "corpus"
QUERIES_DIR = "queries"
QRELS_FILE = "qrels.parquet"
# Index artifact
DOC_IDS_FILE = "doc_ids.parquet"
VECTORS_FILE = "vectors.npy"
HNSW_FILE = "hnsw.voyager"
# Mine artifact
RUN_QUERIES_FILE = "queries.parquet"
CANDIDATES_FILE = "candidates.parquet"
# Labels artifact
JUDGMENTS_FILE = "judgments.parquet"
JUDGMENTS_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("label", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
    ]
)


def docs_schema(dim: int) -> pa.Schema:
    """Schema of one corpus shard of an embeddings artifact."""
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("title", pa.string()),
            ("text", pa.string()),
            ("text_hash", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


def queries_schema(dim: int) -> pa.Schema:
    """Schema of one query shard of an embeddings artifact."""
    return pa.schema(
        [
            ("query_id", pa.string()),
            ("text", pa.string()),
            ("text_hash", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


QRELS_SCHEMA = pa.schema([("query_id", pa.string()), ("doc_id", pa.string()), ("score", pa.float32())])
DOC_IDS_SCHEMA = pa.schema([("label", pa.int64()), ("doc_id", pa.string()), ("text_hash", pa.string())])
RUN_QUERIES_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("text", pa.string()),
        ("positive_ids", pa.list_(pa.string())),
        ("positive_scores", pa.list_(pa.float32())),
        ("positive_teacher_scores", pa.list_(pa.float32())),
        ("status", pa.string()),
        ("num_selected", pa.int32()),
    ]
)
CANDIDATES_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("rank", pa.int32()),
        ("score", pa.float32()),
        ("teacher_score", pa.float32()),
        ("selected", pa.bool_()),
        ("filter", pa.string()),
        ("confirmed", pa.bool_()),
    ]
)


# --------------------------------------------------------------------------- text helpers

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Canonical form used to detect duplicate texts: NFKC, case-folded, whitespace collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    """True when a text has nothing to read: only whitespace, control and format characters
    (zero-width spaces U+200B, joiners, BOMs, soft hyphens...). Such a text is empty for hardneg."""
    return all(ch.isspace() or unicodedata.category(ch) in _INVISIBLE for ch in text)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_cell(value: str) -> str:
    """A string made safe for a spreadsheet: a cell starting with a formula character (= + - @, tab,
    CR) gets a leading apostrophe, which spreadsheets show as text, as does one that already starts
    with an apostrophe, so that ``csv_value`` reverses it exactly."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_value(cell: str) -> str:
    """The original string of a cell written by ``csv_cell``."""
    return cell[1:] if cell.startswith("'") else cell


def text_hash(text: str) -> str:
    """Stable hash of a text's normalised form (hex, 128 bits)."""
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).hexdigest()


def doc_text(title: str, text: str) -> str:
    """The text a document is encoded and exported as: ``title text`` (BEIR convention)."""
    title = title.strip()
    return f"{title} {text}".strip() if title else text.strip()


# --------------------------------------------------------------------------- fingerprints


def fingerprint(*parts: Any) -> str:
    """sha256 of the JSON form of ``parts`` (keys sorted), as hex."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def file_fingerprint(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- manifests


def write_manifest(directory: Path, kind: str, **fields: Any) -> dict[str, Any]:
    """Write ``manifest.json`` into ``directory`` (call last, inside the temporary directory)."""
    manifest = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "hardneg_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **fields,
    }
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    target = directory / MANIFEST
    if kind == KIND_EXPORT:  # out of the way of trainers that read every data file in the directory
        (directory / HIDDEN_DIR).mkdir(exist_ok=True)
        target = directory / HIDDEN_DIR / MANIFEST
    write_bytes_atomic(target, data + b"\n")  # a manifest is never seen half-written
    return manifest


# Which command writes each kind, and the order the pipeline makes them in (for error hints).
WRITER = {KIND_EMBEDDINGS: "embed", KIND_INDEX: "index", KIND_MINE: "mine", KIND_EXPORT: "export", KIND_MODEL: "train",
          KIND_LABELS: "label import", KIND_SELECTION: "select", KIND_LOOP: "loop"}
_PIPELINE = [KIND_EMBEDDINGS, KIND_INDEX, KIND_MINE, KIND_EXPORT]


def _how_to_get(kind: str | None, found: str | None = None) -> str:
    """A hint: the commands that turn what is there (``found``; None: raw input) into ``kind``."""
    if kind is None or kind not in WRITER:
        return ""
    if kind in _PIPELINE and (found is None or found in _PIPELINE):
        start = 0 if found is None else _PIPELINE.index(found) + 1
        steps = [WRITER[k] for k in _PIPELINE[start : _PIPELINE.index(kind) + 1]]
        if steps and kind in (KIND_INDEX, KIND_MINE) and found is None:
            steps = ["mine"] if kind == KIND_MINE else steps  # the one-liner embeds and indexes itself
        if steps:
            return "; make one with " + " then ".join(f"`hardneg {s} ... --out DIR`" for s in steps)
    return f"; `hardneg {WRITER[kind]}` writes one"


def read_manifest(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load and check an artifact's manifest. Raises ArtifactError naming what is wrong and which
    command makes the artifact that is wanted."""
    directory = Path(path)
    what = f"a '{kind}' artifact" if kind else "a hardneg artifact"
    if not directory.exists():
        raise ArtifactError(f"{directory}: does not exist; expected {what}{_how_to_get(kind)}")
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: is a file, not {what}{_how_to_get(kind)}")
    manifest_path = manifest_file(directory)
    if not manifest_path.is_file():
        if (directory / "corpus.jsonl").is_file():
            raise ArtifactError(f"{directory}: is raw input (a BEIR folder), not {what}{_how_to_get(kind)}")
        raise ArtifactError(
            f"{directory}: no {MANIFEST}; this is not a complete hardneg artifact "
            f"(an interrupted run leaves none){_how_to_get(kind) or '. Re-run the stage that writes it.'}"
        )
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or "kind" not in manifest:
        raise ArtifactError(f"{manifest_path}: not a hardneg manifest")
    if kind is not None and manifest["kind"] != kind:
        raise ArtifactError(
            f"{directory}: expected a '{kind}' artifact, found a '{manifest['kind']}' artifact{_how_to_get(kind, manifest['kind'])}"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{directory}: artifact format version {version} is not supported "
            f"(this hardneg reads version {FORMAT_VERSION}); rebuild it with --force"
        )
    keys, files = _REQUIRED.get(manifest["kind"], ((), ()))
    missing_keys = [k for k in keys if not isinstance(manifest.get(k), dict | str)]
    if missing_keys:
        raise ArtifactError(
            f"{manifest_path}: lacks {', '.join(repr(k) for k in missing_keys)}; the artifact is damaged: rebuild it (with --force)"
        )
    missing = [name for name in files if not (directory / name).exists()]
    if missing:
        raise ArtifactError(f"{directory}: {', '.join(missing)} missing; the artifact is incomplete: rebuild it (with --force)")
    return manifest


_REQUIRED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (manifest fields every reader relies on, files that must be there)
    KIND_EMBEDDINGS: (("fingerprint", "model", "counts", "input"), (QRELS_FILE, CORPUS_DIR, QUERIES_DIR)),
    KIND_INDEX: (("fingerprint", "embeddings", "backend"), (DOC_IDS_FILE, VECTORS_FILE)),
    KIND_MINE: (("fingerprint", "config", "stats", "index", "embeddings", "model"), (RUN_QUERIES_FILE, CANDIDATES_FILE)),
    KIND_EXPORT: (("config",), ()),
}


def input_ref(target: Path, artifact: Path, **extra: Any) -> dict[str, Any]:
    """How an artifact names an input artifact: its absolute path and its path relative to the
    artifact's final location, so a tree of artifacts moved or copied together still resolves."""
    target = Path(target).resolve()
    return {"path": str(target), "relpath": os.path.relpath(target, Path(artifact).resolve()), **extra}


def resolve_ref(artifact: Path, manifest: dict[str, Any], key: str, kind: str, redo: str) -> Path:
    """The input artifact ``manifest[key]`` names: beside us (relative path) first, then at its
    absolute path. Gone from both: an ArtifactError saying where it was looked for and what to re-run."""
    ref = manifest.get(key)
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        raise ArtifactError(f"{manifest_file(artifact)}: lacks the path of its {key}; the artifact is damaged: {redo}")
    places = ([Path(artifact) / ref["relpath"]] if isinstance(ref.get("relpath"), str) else []) + [Path(ref["path"])]
    for place in places:
        if artifact_kind(place) == kind:
            return place.resolve()
    looked = " or ".join(dict.fromkeys(str(p) for p in places))
    raise ArtifactError(
        f"{artifact}: the {key} it was made from ({kind}) is gone: not at {looked} (moved, or a cleaned cache); {redo}"
    )


def artifact_kind(path: str | Path) -> str | None:
    """The kind of the artifact at ``path``, or None when it is not a hardneg artifact."""
    manifest_path = manifest_file(Path(path))
    if not manifest_path.is_file():
        return None
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    return manifest.get("kind") if isinstance(manifest, dict) else None


# --------------------------------------------------------------------------- atomic writes


def check_writable_parent(out: Path) -> None:
    """Create ``out``'s parent if needed; a clear ArtifactError when that or writing there fails."""
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"{out}: cannot create the parent directory ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArtifactError(f"{out}: the directory {parent} is not writable")


_COMMIT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back for the duration of the block and deliver them after it.

    Python-level handlers rather than a signal mask: pyarrow's worker threads do not block signals,
    so a masked main thread would just see the kernel deliver the signal to one of them."""
    if not threading_main():
        yield
        return
    pending: list[int] = []
    previous: dict[int, Any] = {}
    for sig in _COMMIT_SIGNALS:
        handler = signal.getsignal(sig)
        try:
            signal.signal(sig, lambda number, _frame: pending.append(number))
        except (OSError, ValueError):
            continue
        previous[sig] = signal.SIG_DFL if handler is None else handler
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for sig in dict.fromkeys(pending):
            os.kill(os.getpid(), sig)


def commit_dir(tmp: Path, out: Path) -> None:
    """Move a finished temporary directory into place, replacing ``out`` only at the last moment.

    Two renames on one filesystem, with SIGINT/SIGTERM/SIGHUP held back between them (delivered
    right after), so a stopped run leaves the old or the new artifact at ``out``, never neither.
    Only SIGKILL or a power cut can fall between the renames; the next writer of ``out`` then
    finds ``out.old-*`` and puts it back (see ``writing``).
    """
    old: Path | None = None
    with signals_deferred():
        if out.exists() or out.is_symlink():
            old = out.with_name(f"{out.name}.old-{uuid.uuid4().hex[:8]}")
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)
            raise
    if old is not None:
        remove_path(old)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def remove_path(path: Path) -> None:
    """Remove a file, a symlink (never what it points to) or a directory tree."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def write_errors(out: Path) -> Iterator[None]:
    """Turn an operating-system write failure (full disk, permissions) into a clear ArtifactError."""
    try:
        yield
    except OSError as exc:
        if exc.errno is not None and exc.strerror:
            raise ArtifactError(
                f"{out}: write failed ({exc.strerror}); the previous output, if any, is untouched"
            ) from exc
        raise


@contextlib.contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """Yield a fresh sibling temporary directory; on success it replaces ``out``, on error it is removed.

    Example:
        >>> with atomic_dir(path) as tmp:   # doctest: +SKIP
        ...     write_files(tmp)
        ...     write_manifest(tmp, "mine-run", ...)
    """
    out = Path(out)
    check_writable_parent(out)
    tmp = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
    except OSError as exc:
        raise ArtifactError(f"{out}: cannot write here ({exc.strerror})") from None
    try:
        with write_errors(out):
            yield tmp
            commit_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_table(path: Path, table: pa.Table, row_group_size: int = 65536) -> None:
    """Write a Parquet file (zstd) to a temporary name, then rename it into place."""
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    try:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


STATE_FILE = "state.json"


def _is_our_partial(partial: Path) -> bool:
    """A work directory is ours when its state file (written first, removed last) says so."""
    try:
        state = orjson.loads((partial / STATE_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(state, dict) and isinstance(state.get("fingerprint"), str)


def unit_selector(shard: tuple[int, int] | None) -> Callable[[int], bool] | None:
    """For ``(i, n)`` (a job of an n-way split, ``--shard-index i --num-shards n``): whether unit
    number ``k`` is this job's (k mod n == i). None: every unit."""
    if shard is None:
        return None
    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard-index must be in [0, num-shards), got {index} of {count}")
    return lambda number: number % count == index


def prepare_partial(partial: Path, fp: str, subdirs: list[str], clean: bool = True) -> bool:
    """Make ``partial`` (a resumable work directory) ready for a run with fingerprint ``fp``.

    Returns True when it holds earlier work of the same run, to resume; otherwise it is emptied.
    A directory at that path that hardneg did not create (no state file of ours) is never deleted.
    The caller holds the artifact's lock (``writing``); with a shared lock (jobs splitting the work)
    ``clean=False`` leaves other jobs' in-flight temporary files alone.
    """
    if partial.is_symlink() or (partial.exists() and not partial.is_dir()):
        raise ArtifactError(f"{partial}: exists and is not hardneg's work directory; move it away or choose another --out")
    if partial.is_dir():
        if not _is_our_partial(partial):
            if any(partial.iterdir()):
                raise ArtifactError(
                    f"{partial}: exists and was not created by hardneg (no {STATE_FILE}; it holds "
                    f"{describe_entries(partial)}); hardneg keeps its resumable work there: move it away "
                    "or choose another --out"
                )
        elif orjson.loads((partial / STATE_FILE).read_bytes()).get("fingerprint") == fp:
            for sub in subdirs:
                (partial / sub).mkdir(parents=True, exist_ok=True)
                for stale in (partial / sub).glob("*.tmp-*") if clean else ():  # a killed writer's half file
                    remove_path(stale)
            return True
        if not clean:
            raise ArtifactError(
                f"{partial}: holds work of another configuration, and other jobs may be using it; finish or remove it first"
            )
        shutil.rmtree(partial)
    # Created whole (state file first) under a temporary name, then renamed: jobs sharing the work
    # never see a work directory without its state file.
    fresh = partial.with_name(f"{partial.name}.tmp-{uuid.uuid4().hex[:8]}")
    fresh.mkdir()
    write_bytes_atomic(fresh / STATE_FILE, orjson.dumps({"fingerprint": fp}))
    for sub in subdirs:
        (fresh / sub).mkdir(parents=True)
    try:
        fresh.rename(partial)
    except OSError:  # another job of the same split created it first
        shutil.rmtree(fresh, ignore_errors=True)
        if clean:
            raise
        return prepare_partial(partial, fp, subdirs, clean)
    return False


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a small file to a temporary name, then rename it into place."""
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def shard_name(index: int) -> str:
    """File name of the ``index``-th shard in a shard directory."""
    return f"part-{index:05d}.parquet"


def list_shards(directory: Path) -> list[Path]:
    """The shard files of a shard directory, in order."""
    return sorted(directory.glob("part-*.parquet"))


# --------------------------------------------------------------------------- readers


def vectors_of(table: pa.Table) -> np.ndarray:
    """The ``embedding`` column of a shard as an (n, dim) float32 array."""
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return column.values.to_numpy(zero_copy_only=False).reshape(-1, dim)


def describe_entries(directory: Path, limit: int = 3) -> str:
    """'a.txt, b/ and 4 more' for the first entries of a directory (sorted), for error messages."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    except OSError:
        return "entries that cannot be listed"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def refuse_foreign(out: Path, what: str) -> None:
    """Raise unless ``out`` is absent, an empty directory or a hardneg artifact: hardneg replaces
    only what it wrote, with or without --force."""
    if not out.exists() or artifact_kind(out) is not None:
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    found = f"a directory holding {describe_entries(out)}" if out.is_dir() else "a file"
    raise ArtifactError(
        f"{out}: exists and is not a hardneg {what} ({found}); hardneg never deletes what it did not "
        "write, even with --force: choose another --out, or remove it yourself"
    )


def check_replaceable(out: Path, kind: str, what: str, force: bool) -> None:
    """Refuse to replace ``out`` unless it is absent, an empty directory, an earlier ``kind``
    artifact, or another hardneg artifact and ``force`` is given (outputs that are always
    rewritten: exports, selections). A foreign file or directory is never replaced."""
    refuse_foreign(out, what)
    if force or not out.exists():
        return
    found = artifact_kind(out)
    if found not in (kind, None):
        raise ArtifactError(f"{out}: holds a '{found}' artifact; choose another --out or pass --force")


def check_existing(out: Path, fp: str, what: dict[str, str], force: bool) -> dict[str, Any] | None:
    """The manifest of an up-to-date artifact at ``out``; None when it must be (re)built.

    A different hardneg artifact at ``out`` is refused (naming what differs) unless ``force``; a
    foreign file or directory always.
    """
    if not out.exists():
        return None
    refuse_foreign(out, "artifact")
    kind = artifact_kind(out)
    if kind is None:
        return None  # an empty directory
    manifest = read_manifest(out)
    if manifest.get("fingerprint") == fp and not force:
        return manifest
    if force:
        return None
    if not any(key in manifest.get("identity", {}) for key in what):
        raise ArtifactError(
            f"{out}: holds a '{kind}' artifact, not one this stage writes; choose another --out, or pass --force to replace it"
        )
    differences = [
        f"{key}: {manifest.get('identity', {}).get(key)!r} there, {value!r} now"
        for key, value in what.items()
        if manifest.get("identity", {}).get(key) != value
    ]
    detail = "; ".join(differences) or "its configuration differs"
    raise ArtifactError(f"{out}: holds a different {kind} artifact ({detail}); pass --force to rebuild it")


# --------------------------------------------------------------------------- one writer per artifact

LOCK_SUFFIX = ".lock"
_HELD: dict[Path, int] = {}
_SIBLING_LITTER = re.compile(r"\.(tmp|old)-[0-9a-f]{8}$")


class LockedError(ArtifactError):
    """Another live process is writing the same artifact."""


def _holder(lock: Path) -> str:
    try:
        info = orjson.loads(lock.read_bytes())
        since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
        return f"PID {info.get('pid')} on {info.get('host')}, since {since}: {info.get('command', '?')}"
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return "a process that has not written its name, or jobs splitting the work with --shard-index"


def guard_output(out: Path, inputs: Sequence[str | Path] = ()) -> Path:
    """The real path to write ``out`` to, after refusing the places no write may replace: the
    current directory or one of its parents, an input of this stage or a directory holding one.
    A symlinked ``out`` is written through (the artifact replaces the link's target, never the
    link itself)."""
    out = Path(out)
    real = Path(os.path.realpath(out))
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise ArtifactError(f"{out}: is the current directory or one of its parents; choose another --out")
    if real == Path(real.anchor):
        raise ArtifactError(f"{out}: is a filesystem root; choose another --out")
    for source in inputs:
        src = Path(os.path.realpath(source))
        if real == src or real in src.parents:
            raise ArtifactError(f"{out}: would replace this stage's input {source}; choose another --out")
    return real if out.is_symlink() else out


def _clean_siblings(out: Path) -> None:
    """Remove the temporaries that dead writers of ``out`` left beside it (we hold its lock, so no
    live writer owns them), and put back an artifact a SIGKILL caught between the two renames."""
    parent = out.parent
    try:
        siblings = [p for p in parent.iterdir() if p.name.startswith(out.name + ".")
                    and _SIBLING_LITTER.fullmatch(p.name[len(out.name):])]
    except OSError:
        return
    olds = sorted((p for p in siblings if ".old-" in p.name), key=lambda p: p.stat().st_mtime)
    if not out.exists() and olds and artifact_kind(olds[-1]) is not None:
        olds[-1].rename(out)
        siblings.remove(olds[-1])
    for stale in siblings:
        remove_path(stale)


@contextlib.contextmanager
def writing(
    out: str | Path,
    inputs: Sequence[str | Path] = (),
    *,
    wait: bool = False,
    log: Callable[[str], None] | None = None,
    lock: str = "exclusive",
) -> Iterator[Path]:
    """Hold the exclusive right to write the artifact ``out`` (and its ``.partial``) until the block ends.

    ``lock="shared"``: jobs that each write their own units of one artifact (``--shard-index``)
    share it with one another, never with an exclusive writer (the committing call).

    The lock is ``flock`` on ``<out>.lock``: the kernel drops it when its holder dies, so a stale
    lock of a killed process is taken over without any guessing by PID. A second writer raises
    LockedError naming the holder (``wait=False``: a user's ``--out``) or waits for it
    (``wait=True``: cache entries two runs may share, which the second then reuses). Yields the
    path to write (see ``guard_output``). Re-entrant within one process.
    """
    out = guard_output(Path(out), inputs)
    key = Path(os.path.abspath(out))
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield out
        finally:
            _HELD[key] -= 1
        return
    check_writable_parent(out)
    mode = fcntl.LOCK_SH if lock == "shared" else fcntl.LOCK_EX
    lock_path = out.with_name(out.name + LOCK_SUFFIX)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ArtifactError(f"{out}: cannot create its lock file {lock_path.name} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(lock_path)
            if not wait:
                os.close(fd)
                raise LockedError(
                    f"{out}: another hardneg process is writing it ({holder}); wait for it to finish "
                    "or choose another --out"
                ) from None
            if log is not None:
                log(f"waiting for {holder}, which is writing {out}")
            fcntl.flock(fd, mode)
        # The previous holder removes the lock file when it is done: make sure ours is still the one
        # at that path, or a third process could lock a new file and write alongside us.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                "command": " ".join(["hardneg", *sys.argv[1:]])[:300]}
        if mode == fcntl.LOCK_EX:  # shared holders leave the holder record and the litter alone
            os.ftruncate(fd, 0)
            os.write(fd, orjson.dumps(info))
            _clean_siblings(out)
        _HELD[key] = 1
        yield out
    finally:
        _HELD.pop(key, None)
        if mode == fcntl.LOCK_EX or _no_other_holder(fd):
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
        os.close(fd)


def _no_other_holder(fd: int) -> bool:
    """True when a shared holder is the last one (it may then remove the lock file)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def read_table(path: Path, columns: list[str] | None = None, **kwargs: Any) -> pa.Table:
    """``pq.read_table`` for a file inside an artifact: a missing or damaged file is an
    ArtifactError naming it (not a pyarrow traceback)."""
    try:
        return pq.read_table(path, columns=columns, **kwargs)
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; the artifact is incomplete: rebuild it (with --force)") from None
    except (OSError, pa.ArrowException) as exc:
        raise ArtifactError(f"{path}: unreadable ({exc}); rebuild it (with --force)") from None


def load_vectors(path: Path) -> np.ndarray:
    """A memory-mapped ``vectors.npy``; a missing, truncated or foreign file is an ArtifactError."""
    try:
        vectors = np.load(path, mmap_mode="r")
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; the index is incomplete: rebuild it (hardneg index ... --force)") from None
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path}: unreadable or truncated ({exc}); rebuild the index (hardneg index ... --force)") from None
    if vectors.ndim != 2 or vectors.dtype != np.float32:
        raise ArtifactError(f"{path}: not an (n, dim) float32 matrix; rebuild the index (hardneg index ... --force)")
    return vectors


READ_BATCH_ROWS = 16_384
"""Rows per table when streaming shards: ``pq.read_table`` of a 50k-row shard of 384-d vectors peaks
at ~500 MB of decode buffers; batches of this size keep reading under ~200 MB whatever the shard size."""


def iter_shard_tables(artifact: Path, sub: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Stream the rows of an embeddings artifact (``corpus`` or ``queries``) in order, as tables of
    at most ``READ_BATCH_ROWS`` rows (several per shard)."""
    for _, _, table in iter_shard_batches(artifact, sub, columns):
        yield table


def iter_shard_batches(artifact: Path, sub: str, columns: list[str] | None = None) -> Iterator[tuple[Path, int, pa.Table]]:
    """``iter_shard_tables`` with where each table comes from: (shard file, first row in it, table).
    An unreadable shard is an ArtifactError naming it."""
    for shard in list_shards(artifact / sub):
        start = 0
        try:
            with pq.ParquetFile(shard) as reader:
                for batch in reader.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
                    yield shard, start, pa.Table.from_batches([batch])
                    start += batch.num_rows
        except (OSError, pa.ArrowException) as exc:
            raise ArtifactError(f"{shard}: unreadable shard ({exc}); rebuild the embeddings with --force") from None


UNIT_TOLERANCE = 1e-2
"""How far from 1 a stored vector's norm may be: bf16/fp16 encoders normalise in reduced precision
(|norm - 1| up to ~4e-3 measured); anything further is not a cosine embedding."""


def bad_vectors(vectors: np.ndarray, blank: Sequence[bool] | None = None) -> np.ndarray:
    """Mask of the rows that are not finite unit vectors (rows flagged ``blank``: not all zeros)."""
    if not len(vectors):
        return np.zeros(0, dtype=bool)
    finite = np.isfinite(vectors).all(axis=1)
    with np.errstate(invalid="ignore", over="ignore"):
        norms = np.linalg.norm(np.where(finite[:, None], vectors, 0).astype(np.float64), axis=1)
    bad = ~finite | (np.abs(norms - 1.0) > UNIT_TOLERANCE)
    if blank is not None:
        bad = np.where(np.asarray(blank, dtype=bool), ~finite | (norms != 0.0), bad)
    return bad


def check_vectors(vectors: np.ndarray, where: Callable[[int], str], blank: Sequence[bool] | None = None) -> None:
    """Refuse non-finite or non-unit vectors: ``where(row)`` names the offending row. Rows flagged
    ``blank`` (texts with nothing to encode) must be all zeros instead."""
    if not len(vectors):
        return
    finite = np.isfinite(vectors).all(axis=1)
    if not finite.all():
        row = int(np.argmin(finite))
        raise ArtifactError(
            f"{where(row)}: the vector holds NaN or infinity ({int((~finite).sum())} such row(s) here); "
            "re-embed (with --precision fp32 if it was encoded in fp16/bf16)"
        )
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    bad = np.abs(norms - 1.0) > UNIT_TOLERANCE
    if blank is not None:
        zero_ok = np.asarray(blank, dtype=bool)
        bad = np.where(zero_ok, norms != 0.0, bad)
    if bad.any():
        row = int(np.argmax(bad))
        raise ArtifactError(
            f"{where(row)}: the vector's norm is {norms[row]:.6g}, not 1 ({int(bad.sum())} such row(s) here); "
            "hardneg stores unit vectors (cosine): re-embed with hardneg embed"
        )


def release_pages(array: np.ndarray) -> None:
    """Drop the resident pages of a memory-mapped array from this process (``MADV_DONTNEED``).

    The data stays in the file and the OS page cache, so a later read costs a minor fault; what goes
    is the mapping's share of this process's RSS, which otherwise grows to the whole file as search
    touches rows. A no-op for arrays that are not memory-mapped."""
    mapping = getattr(array, "_mmap", None)
    if mapping is not None and hasattr(mapping, "madvise") and hasattr(mmap, "MADV_DONTNEED"):
        if array.flags.writeable:
            mapping.flush()
        mapping.madvise(mmap.MADV_DONTNEED)


GATHER_ROWS = 4096
"""Rows gathered from a memory-mapped array between two ``release_pages`` calls. Each page fault on
a cached file maps its neighbours too (the kernel's fault-around, 64 KiB), so gathering 100k random
rows of a 1.5 GB file at once made nearly all of it resident; 4,096 rows keep that under ~80 MB and,
measured at 1M x 384, gather 112k rows in half the time of one fancy-indexing call."""


def gather_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]`` as float32, releasing a memory-mapped array's pages every ``GATHER_ROWS`` rows
    so that random access never makes the whole file resident."""
    rows = np.asarray(rows, dtype=np.int64)
    if getattr(array, "_mmap", None) is None:
        return np.asarray(array[rows], dtype=np.float32)
    out = np.empty((len(rows), array.shape[1]), dtype=np.float32)
    for start in range(0, len(rows), GATHER_ROWS):
        out[start : start + GATHER_ROWS] = array[rows[start : start + GATHER_ROWS]]
        release_pages(array)
    return out


def read_queries(artifact: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Query ids, texts and vectors of an embeddings artifact."""
    ids: list[str] = []
    texts: list[str] = []
    vectors: list[np.ndarray] = []
    for shard, start, table in iter_shard_batches(artifact, QUERIES_DIR):
        shard_ids, shard_texts, block = table["query_id"].to_pylist(), table["text"].to_pylist(), vectors_of(table)
        check_vectors(block, lambda row, shard=shard, start=start, ids=shard_ids: f"{shard}: row {start + row} (query {ids[row]!r})",
                      blank=[is_blank(t) for t in shard_texts])
        ids += shard_ids
        texts += shard_texts
        vectors.append(block)
    manifest = read_manifest(artifact, KIND_EMBEDDINGS)
    dim = manifest["model"]["dim"]
    expected = manifest.get("counts", {}).get("queries")
    if expected is not None and expected != len(ids):
        raise ArtifactError(
            f"{artifact / QUERIES_DIR}: the manifest says {expected} queries but the shards hold {len(ids)} "
            "(a shard is missing or truncated); rebuild the embeddings with --force"
        )
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
    return ids, texts, matrix


def read_qrels(artifact: Path) -> list[tuple[str, str, float]]:
    table = read_table(artifact / QRELS_FILE)
    return list(zip(table["query_id"].to_pylist(), table["doc_id"].to_pylist(), table["score"].to_pylist()))




class DocTextLookup:
    """Random access to document texts of an embeddings artifact by label (= corpus row number),
    reading only the shards that hold the requested rows (a few shards are kept in memory)."""

    def __init__(self, artifact: Path, keep: int = 4) -> None:
        self.shards = list_shards(artifact / CORPUS_DIR)
        self.starts: list[int] = []
        total = 0
        for shard in self.shards:
            self.starts.append(total)
            total += pq.ParquetFile(shard).metadata.num_rows
        self.size = total
        self.keep = keep
        self._cache: dict[int, list[str]] = {}

    def _shard_texts(self, index: int) -> list[str]:
        if index not in self._cache:
            if len(self._cache) >= self.keep:
                self._cache.pop(next(iter(self._cache)))
            table = read_table(self.shards[index], columns=["title", "text"])
            self._cache[index] = [doc_text(t, x) for t, x in zip(table["title"].to_pylist(), table["text"].to_pylist())]
        return self._cache[index]

    def get(self, labels: list[int]) -> list[str]:
        import bisect

        out = []
        for label in labels:
            index = bisect.bisect_right(self.starts, label) - 1
            out.append(self._shard_texts(index)[label - self.starts[index]])
        return out
