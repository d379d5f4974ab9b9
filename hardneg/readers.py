"""Reading artifacts back: Parquet tables and shards with file-naming errors, vectors checked for
finiteness and unit norm, queries, qrels and document texts of an embeddings artifact.
"""

from __future__ import annotations

import contextlib
import functools
import mmap
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hardneg.artifacts import CORPUS_DIR, KIND_EMBEDDINGS, QRELS_FILE, QUERIES_DIR, doc_text, is_blank, read_manifest, text_key
from hardneg.errors import ArtifactError
from hardneg.writes import list_shards


def vectors_of(table: pa.Table) -> np.ndarray:
    """The ``embedding`` column of a shard as an (n, dim) float32 array."""
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    return column.values.to_numpy(zero_copy_only=False).reshape(-1, dim)


def read_table(path: Path, columns: list[str] | None = None, **kwargs: Any) -> pa.Table:
    """``pq.read_table`` for a file inside an artifact: a missing or damaged file is an
    ArtifactError naming it (not a pyarrow traceback)."""
    with _artifact_file(path):
        return pq.read_table(path, columns=columns, **kwargs)


@contextlib.contextmanager
def _artifact_file(path: Path) -> Iterator[None]:
    """Reading a Parquet file inside an artifact: a missing or damaged file is an ArtifactError
    naming it (not a pyarrow traceback)."""
    try:
        yield
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; the artifact is incomplete: rebuild it (with --force)") from None
    except (OSError, pa.ArrowException) as exc:
        raise ArtifactError(f"{path}: unreadable ({exc}); rebuild it (with --force)") from None


def read_schema(path: Path) -> pa.Schema:
    """``pq.read_schema`` for a file inside an artifact, with ``read_table``'s errors."""
    with _artifact_file(path):
        return pq.read_schema(path)


def iter_batches(path: Path, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The record batches of a Parquet file inside an artifact, streamed; a missing or damaged file
    (also one damaged past its first batch) is an ArtifactError naming it."""
    with _artifact_file(path), pq.ParquetFile(path) as reader:
        yield from reader.iter_batches(batch_size=READ_BATCH_ROWS, columns=columns)


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


def self_documents(artifact: Path, doc_ids: Sequence[str], query_texts: dict[str, str]) -> dict[str, int]:
    """Query id -> corpus row of the query itself, kept in the corpus under its own id with a title
    of its own (ArguAna: topic tags before the argument's text): the same id, and the document's
    text without its title equal to the query's once normalised. A document that only shares an id
    (MS MARCO numbers its queries and passages alike) is not the query; one whose title and text
    together are the query's is a duplicate by text already. Reads the text column of the shards
    that hold such ids only."""
    wanted = {row: d for row, d in enumerate(doc_ids) if d in query_texts}
    out: dict[str, int] = {}
    rows = sorted(wanted)
    i = offset = 0
    for shard in list_shards(artifact / CORPUS_DIR) if rows else []:
        n = _num_rows(shard)  # from the footer: a shard without such a row is not read
        if rows[i] < offset + n:
            texts = read_table(shard, columns=["text"]).column("text")
            while i < len(rows) and rows[i] < offset + n:
                doc = wanted[rows[i]]
                if text_key(texts[rows[i] - offset].as_py() or "") == text_key(query_texts[doc]):
                    out[doc] = rows[i]
                i += 1
        offset += n
        if i == len(rows):
            break
    return out


UNIT_TOLERANCE = 1e-2
"""How far from 1 a stored vector's norm may be: bf16/fp16 encoders normalise in reduced precision
(|norm - 1| up to ~4e-3 measured); anything further is not a cosine embedding."""


def _num_rows(shard: Path) -> int:
    try:
        return int(pq.read_metadata(shard).num_rows)
    except (OSError, pa.ArrowException) as exc:
        raise ArtifactError(f"{shard}: unreadable shard ({exc}); rebuild the embeddings with --force") from None


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


def _query_row(shard: Path, start: int, ids: list[str], row: int) -> str:
    return f"{shard}: row {start + row} (query {ids[row]!r})"


def read_queries(artifact: Path) -> tuple[list[str], list[str], np.ndarray]:
    """Query ids, texts and vectors of an embeddings artifact."""
    ids: list[str] = []
    texts: list[str] = []
    vectors: list[np.ndarray] = []
    for shard, start, table in iter_shard_batches(artifact, QUERIES_DIR):
        shard_ids, shard_texts, block = table["query_id"].to_pylist(), table["text"].to_pylist(), vectors_of(table)
        check_vectors(block, functools.partial(_query_row, shard, start, shard_ids), blank=[is_blank(t) for t in shard_texts])
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
            total += _num_rows(shard)
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

