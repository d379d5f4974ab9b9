"""The disk contract between stages: artifact layouts, Parquet schemas, manifests and atomic writes.

Every artifact is a directory holding Parquet (or Voyager/NumPy) data plus a ``manifest.json``. A
directory without a manifest of the expected kind is never accepted by a later stage, and artifacts
are written into a sibling temporary directory that is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import re
import shutil
import time
import unicodedata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hardneg import __version__
from hardneg.errors import ArtifactError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"

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
    write_bytes_atomic(directory / MANIFEST, data + b"\n")  # a manifest is never seen half-written
    return manifest


def read_manifest(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load and check an artifact's manifest. Raises ArtifactError naming what is wrong."""
    directory = Path(path)
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: not an artifact directory (it does not exist or is a file)")
    manifest_path = directory / MANIFEST
    if not manifest_path.is_file():
        raise ArtifactError(
            f"{directory}: no {MANIFEST}; this is not a complete hardneg artifact "
            "(an interrupted run leaves none). Re-run the stage that writes it."
        )
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or "kind" not in manifest:
        raise ArtifactError(f"{manifest_path}: not a hardneg manifest")
    if kind is not None and manifest["kind"] != kind:
        raise ArtifactError(f"{directory}: expected a '{kind}' artifact, found a '{manifest['kind']}' artifact")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{directory}: artifact format version {version} is not supported "
            f"(this hardneg reads version {FORMAT_VERSION}); rebuild it with --force"
        )
    return manifest


def artifact_kind(path: str | Path) -> str | None:
    """The kind of the artifact at ``path``, or None when it is not a hardneg artifact."""
    manifest_path = Path(path) / MANIFEST
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


def commit_dir(tmp: Path, out: Path) -> None:
    """Move a finished temporary directory into place, replacing ``out`` only at the last moment.

    Two renames on one filesystem: the old artifact stays whole until the new one is complete, and a
    crash between the renames leaves ``out.old-*`` beside a complete new artifact, never a half one.
    """
    old: Path | None = None
    if out.exists():
        old = out.with_name(f"{out.name}.old-{uuid.uuid4().hex[:8]}")
        out.rename(old)
    try:
        tmp.rename(out)
    except OSError:
        if old is not None:
            old.rename(out)
        raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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


def prepare_partial(partial: Path, fp: str, subdirs: list[str]) -> bool:
    """Make ``partial`` (a resumable work directory) ready for a run with fingerprint ``fp``.

    Returns True when it holds earlier work of the same run, to resume; otherwise it is emptied.
    """
    state = partial / STATE_FILE
    if state.is_file():
        try:
            if orjson.loads(state.read_bytes()).get("fingerprint") == fp:
                for sub in subdirs:
                    (partial / sub).mkdir(parents=True, exist_ok=True)
                return True
        except orjson.JSONDecodeError:
            pass
    if partial.exists():
        shutil.rmtree(partial)
    for sub in subdirs:
        (partial / sub).mkdir(parents=True)
    state.write_bytes(orjson.dumps({"fingerprint": fp}))
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


def check_replaceable(out: Path, kind: str, what: str, force: bool) -> None:
    """Refuse to replace ``out`` unless it is absent, an empty directory, an earlier ``kind``
    artifact, or ``force`` is given (outputs that are always rewritten: exports, selections)."""
    if force or not out.exists():
        return
    found = artifact_kind(out)
    if found not in (kind, None):
        raise ArtifactError(f"{out}: holds a '{found}' artifact; choose another --out or pass --force")
    if found is None and (not out.is_dir() or any(out.iterdir())):
        raise ArtifactError(f"{out}: exists and is not a hardneg {what}; choose another --out or pass --force")


def check_existing(out: Path, fp: str, what: dict[str, str], force: bool) -> dict[str, Any] | None:
    """The manifest of an up-to-date artifact at ``out``; None when it must be (re)built.

    A different artifact at ``out`` is refused (naming what differs) unless ``force``.
    """
    if not out.exists():
        return None
    kind = artifact_kind(out)
    if kind is None:
        if out.is_dir() and not any(out.iterdir()):
            return None
        if not force:
            raise ArtifactError(f"{out}: exists and is not a hardneg artifact; choose another --out or pass --force")
        return None
    manifest = read_manifest(out)
    if manifest.get("fingerprint") == fp and not force:
        return manifest
    if force:
        return None
    differences = [
        f"{key}: {manifest.get('identity', {}).get(key)!r} there, {value!r} now"
        for key, value in what.items()
        if manifest.get("identity", {}).get(key) != value
    ]
    detail = "; ".join(differences) or "its configuration differs"
    raise ArtifactError(f"{out}: holds a different {kind} artifact ({detail}); pass --force to rebuild it")


READ_BATCH_ROWS = 16_384
"""Rows per table when streaming shards: ``pq.read_table`` of a 50k-row shard of 384-d vectors peaks
at ~500 MB of decode buffers; batches of this size keep reading under ~200 MB whatever the shard size."""


def iter_shard_tables(artifact: Path, sub: str, columns: list[str] | None = None) -> Iterator[pa.Table]:
    """Stream the rows of an embeddings artifact (``corpus`` or ``queries``) in order, as tables of
    at most ``READ_BATCH_ROWS`` rows (several per shard)."""
    for shard in list_shards(artifact / sub):
        with pq.ParquetFile(shard) as reader:
            for batch in reader.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns):
                yield pa.Table.from_batches([batch])


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
    for table in iter_shard_tables(artifact, QUERIES_DIR):
        ids += table["query_id"].to_pylist()
        texts += table["text"].to_pylist()
        vectors.append(vectors_of(table))
    dim = read_manifest(artifact, KIND_EMBEDDINGS)["model"]["dim"]
    matrix = np.concatenate(vectors) if vectors else np.zeros((0, dim), dtype=np.float32)
    return ids, texts, matrix


def read_qrels(artifact: Path) -> list[tuple[str, str, float]]:
    table = pq.read_table(artifact / QRELS_FILE)
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
            table = pq.read_table(self.shards[index], columns=["title", "text"])
            self._cache[index] = [doc_text(t, x) for t, x in zip(table["title"].to_pylist(), table["text"].to_pylist())]
        return self._cache[index]

    def get(self, labels: list[int]) -> list[str]:
        import bisect

        out = []
        for label in labels:
            index = bisect.bisect_right(self.starts, label) - 1
            out.append(self._shard_texts(index)[label - self.starts[index]])
        return out
