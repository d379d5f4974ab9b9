"""Readers for raw inputs (a BEIR folder, a pairs file, stdin), validated line by line.

Every problem is raised as an InputError naming the file, the line (or Parquet row) and the field.
The corpus is validated in one streaming pass and then streamed again when it is encoded, so the
texts are never all held in memory.
"""

from __future__ import annotations

import hashlib
import math
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hardneg.artifacts import (
    doc_text,
    file_fingerprint,
    fingerprint,
    is_blank,
    normalize_text,
    text_hash,
)
from hardneg.errors import InputError

_BOM = b"\xef\xbb\xbf"
MAX_LINE_BYTES = 8 * 1024 * 1024  # one record; longer usually means a file that is not JSON Lines


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str


@dataclass(frozen=True)
class Query:
    query_id: str
    text: str


@dataclass
class Dataset:
    """A validated input: a re-streamable corpus, the queries to mine for, and their judgments."""

    description: str
    fingerprint: str
    corpus_fingerprint: str
    """The corpus alone (its documents and their order): embeddings of inputs that share it share
    their corpus shards, whatever their queries or split."""
    num_docs: int
    queries: list[Query]
    qrels: list[tuple[str, str, float]]
    _corpus_factory: Any = field(repr=False)

    def iter_corpus(self) -> Iterator[Document]:
        """Stream the corpus in input order (positives added by a pairs file come last)."""
        return self._corpus_factory()


# --------------------------------------------------------------------------- low-level readers


def iter_jsonl(path: Path, display: str | None = None, start_after: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line after ``start_after``; BOM and CRLF tolerated."""
    name = display or str(path)
    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", name) from None
    with fh:
        for lineno, raw in enumerate(fh, 1):
            if lineno <= start_after:
                continue
            if lineno == 1 and raw.startswith(_BOM):
                raw = raw[len(_BOM) :]
            line = raw.strip()
            if not line:
                continue
            if len(line) > MAX_LINE_BYTES:
                raise InputError(
                    f"line is {len(line) / 2**20:.1f} MiB long (limit {MAX_LINE_BYTES // 2**20} MiB); "
                    "is this JSON Lines, one object per line?",
                    name,
                    lineno,
                )
            try:
                line.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InputError(
                    f"not valid UTF-8 (byte {exc.start} of the line); re-encode the file as UTF-8", name, lineno
                ) from None
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"malformed JSON ({exc.msg}); each line must be one JSON object", name, lineno) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, found {type(obj).__name__}", name, lineno)
            yield lineno, obj


def iter_parquet(path: Path, required: tuple[str, ...], display: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based row number, row dict) from a Parquet file, in batches; checks required columns."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = display or str(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"cannot read Parquet file ({exc})", name) from None
    columns = pf.schema_arrow.names
    missing = [c for c in required if c not in columns]
    if missing:
        raise InputError(f"missing column '{missing[0]}'; found columns: {', '.join(columns) or '(none)'}", name)
    row = 0
    for batch in pf.iter_batches(batch_size=8192):
        for record in batch.to_pylist():
            row += 1
            yield row, record


def _iter_records(path: Path, required: tuple[str, ...], display: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    if path.suffix == ".parquet":
        return iter_parquet(path, required, display)
    return iter_jsonl(path, display)


def _field(obj: dict[str, Any], names: tuple[str, ...], where: tuple[str, int], *, kind: str, required: bool = True) -> str | None:
    """Read the first present field of ``names``; ids may be int, texts must be strings."""
    for name in names:
        if name in obj and obj[name] is not None:
            value = obj[name]
            if kind == "id" and isinstance(value, int) and not isinstance(value, bool):
                return str(value)
            if not isinstance(value, str):
                raise InputError(f"field '{name}' must be a string, got {type(value).__name__}", *where)
            if kind == "id":
                if is_blank(value):
                    raise InputError(f"field '{name}' is an empty id", *where)
                if any(unicodedata.category(c) == "Cc" for c in value):
                    raise InputError(
                        f"field '{name}' contains a tab, newline or other control character (e.g. NUL); ids must be "
                        "single-line plain text", *where
                    )
            elif "\x00" in value:
                raise InputError(f"field '{name}' contains a NUL byte; remove it (binary data is not text)", *where)
            return value
    if required:
        raise InputError(f"missing field '{names[0]}'", *where)
    return None


def _read_document(obj: dict[str, Any], where: tuple[str, int]) -> Document:
    doc_id = _field(obj, ("_id", "id", "doc_id"), where, kind="id")
    text = _field(obj, ("text",), where, kind="text")
    title = _field(obj, ("title",), where, kind="text", required=False) or ""
    assert doc_id is not None and text is not None
    if is_blank(text) and is_blank(title):
        raise InputError(
            f"document '{doc_id}' has empty text (nothing but whitespace or invisible characters); remove it or give it text",
            *where,
        )
    return Document(doc_id, title, text)


# --------------------------------------------------------------------------- BEIR


def is_beir_dir(path: Path) -> bool:
    return path.is_dir() and (path / "corpus.jsonl").is_file() and (path / "queries.jsonl").is_file()


def _scan_corpus(path: Path, display: str | None = None) -> tuple[set[str], dict[str, str], int]:
    """Validate a corpus file in one streaming pass: returns its ids, text-hash -> id, and size."""
    ids: set[str] = set()
    by_hash: dict[str, str] = {}
    first_line: dict[str, int] = {}
    name = display or str(path)
    for lineno, obj in _iter_records(path, ("text",), display):
        doc = _read_document(obj, (name, lineno))
        if doc.doc_id in ids:
            raise InputError(
                f"duplicate document id '{doc.doc_id}' (first seen on line {first_line[doc.doc_id]}); ids must be unique",
                name,
                lineno,
            )
        ids.add(doc.doc_id)
        first_line[doc.doc_id] = lineno
        by_hash.setdefault(text_hash(doc.text), doc.doc_id)
    if not ids:
        raise InputError("the corpus is empty; it needs at least one document", name)
    return ids, by_hash, len(ids)


def _stream_corpus(path: Path, display: str | None = None) -> Iterator[Document]:
    name = display or str(path)
    for lineno, obj in _iter_records(path, ("text",), display):
        yield _read_document(obj, (name, lineno))


def read_qrels(path: Path) -> list[tuple[int, str, str, float]]:
    """Read a BEIR qrels TSV: (line, query_id, doc_id, score). The header line is optional."""
    rows: list[tuple[int, str, str, float]] = []
    name = str(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror})", name) from None
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        # Trailing whitespace (a tab at the end of every line, CRLF) is not a field.
        line = raw.rstrip(b" \t\r")
        if not line.strip():
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"not valid UTF-8 (byte {exc.start} of the line)", name, lineno) from None
        parts = text.split("\t")
        if len(parts) == 4:  # TREC style: qid iteration docid score
            parts = [parts[0], parts[2], parts[3]]
        if len(parts) != 3:
            raise InputError(
                f"expected 3 tab-separated fields (query-id, corpus-id, score), found {len(parts)}", name, lineno
            )
        if not rows and is_qrels_header(parts):
            continue  # a header is recognised by what it says, never by a failed parse
        try:
            score = float(parts[2])
        except ValueError:
            raise InputError(f"field 'score': '{parts[2]}' is not a number", name, lineno) from None
        if not math.isfinite(score):
            raise InputError(f"field 'score': '{parts[2]}' is not a finite number", name, lineno)
        qid, did = parts[0].strip(), parts[1].strip()
        for field_name, value in (("query-id", qid), ("corpus-id", did)):
            if not value:
                raise InputError(f"field '{field_name}' is empty", name, lineno)
            if any(unicodedata.category(c) == "Cc" for c in value):
                raise InputError(f"field '{field_name}' contains a control character (e.g. NUL); ids must be plain text", name, lineno)
        rows.append((lineno, qid, did, score))
    if not rows:
        raise InputError("no judgments: the file is empty or holds only a header", name)
    return rows


QRELS_HEADER_WORDS = {"query-id", "query_id", "queryid", "qid", "query", "topic", "corpus-id", "corpus_id", "doc-id",
                      "doc_id", "docid", "docno", "pid", "score", "relevance", "rel", "label", "grade", "judgment"}


def is_qrels_header(parts: list[str]) -> bool:
    """A header line names its columns: at least two of its fields are known column names."""
    return sum(p.strip().lower() in QRELS_HEADER_WORDS for p in parts) >= 2


def load_beir(path: Path, split: str) -> Dataset:
    """Validate a BEIR folder's corpus, queries and ``qrels/<split>.tsv``."""
    corpus_path, queries_path = path / "corpus.jsonl", path / "queries.jsonl"
    qrels_path = path / "qrels" / f"{split}.tsv"
    if not qrels_path.is_file():
        available = sorted(p.stem for p in (path / "qrels").glob("*.tsv")) if (path / "qrels").is_dir() else []
        raise InputError(
            f"no qrels for split '{split}'; available splits: {', '.join(available) or '(none)'} (use --split)",
            path / "qrels",
        )
    doc_ids, _, num_docs = _scan_corpus(corpus_path)
    qrels_rows = read_qrels(qrels_path)
    wanted = {qid for _, qid, _, _ in qrels_rows}
    queries: dict[str, Query] = {}
    for lineno, obj in iter_jsonl(queries_path):
        where = (str(queries_path), lineno)
        qid = _field(obj, ("_id", "id", "query_id"), where, kind="id")
        text = _field(obj, ("text",), where, kind="text")
        assert qid is not None and text is not None
        if qid in queries:
            raise InputError(f"duplicate query id '{qid}'; ids must be unique", *where)
        if qid in wanted:
            queries[qid] = Query(qid, text)
    qrels: list[tuple[str, str, float]] = []
    for lineno, qid, did, score in qrels_rows:
        if qid not in queries:
            raise InputError(f"query id '{qid}' is not in {queries_path.name}", qrels_path, lineno)
        if did not in doc_ids:
            raise InputError(f"corpus id '{did}' is not in {corpus_path.name}", qrels_path, lineno)
        qrels.append((qid, did, score))
    del doc_ids
    ordered = [queries[q] for q in dict.fromkeys(qid for qid, _, _ in qrels)]
    fp = fingerprint(
        "beir", split, file_fingerprint(corpus_path), file_fingerprint(queries_path), file_fingerprint(qrels_path)
    )
    return Dataset(
        description=f"BEIR {path} (split {split})",
        fingerprint=fp,
        corpus_fingerprint=fingerprint("corpus", file_fingerprint(corpus_path)),
        num_docs=num_docs,
        queries=ordered,
        qrels=qrels,
        _corpus_factory=lambda: _stream_corpus(corpus_path),
    )


# --------------------------------------------------------------------------- pairs


def _stable_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.blake2b(normalize_text(text).encode(), digest_size=8).hexdigest()}"


def load_pairs(path: Path, corpus: Path | None = None, display: str | None = None) -> Dataset:
    """Validate a (query, positive) pairs file plus an optional corpus file.

    Positives are always part of the corpus: a positive whose text matches a corpus document (after
    normalisation) takes that document's id, any other positive is added to the corpus. Repeated
    queries (same ``query_id``, or same text when there is no id) are one query with several positives.
    Ids that are not given are stable hashes of the normalised text.
    """
    name = display or str(path)
    corpus_ids: set[str] = set()
    by_hash: dict[str, str] = {}
    num_corpus = 0
    if corpus is not None:
        corpus_ids, by_hash, num_corpus = _scan_corpus(corpus)
    extra_docs: dict[str, Document] = {}
    extra_line: dict[str, int] = {}
    queries: dict[str, Query] = {}
    qrels: dict[tuple[str, str], None] = {}
    in_corpus: dict[str, tuple[str, int]] = {}  # positive id given in --corpus -> (text hash, line), checked below
    rows = 0
    for lineno, obj in _iter_records(path, ("query", "positive"), display):
        where = (name, lineno)
        rows += 1
        qtext = _field(obj, ("query", "anchor"), where, kind="text")
        ptext = _field(obj, ("positive", "pos"), where, kind="text")
        assert qtext is not None and ptext is not None
        if is_blank(ptext):
            raise InputError("field 'positive' is empty (nothing but whitespace or invisible characters)", *where)
        qid = _field(obj, ("query_id", "qid"), where, kind="id", required=False) or _stable_id("q", qtext)
        pid = _field(obj, ("positive_id", "pid", "doc_id"), where, kind="id", required=False)
        if qid in queries and queries[qid].text != qtext:
            raise InputError(f"query id '{qid}' appears with two different texts", *where)
        queries.setdefault(qid, Query(qid, qtext))
        if pid is None:
            pid = by_hash.get(text_hash(ptext)) or _stable_id("d", ptext)
        if pid in corpus_ids:
            in_corpus.setdefault(pid, (text_hash(ptext), lineno))
        else:
            if pid in extra_docs and normalize_text(extra_docs[pid].text) != normalize_text(ptext):
                raise InputError(
                    f"positive id '{pid}' appears with two different texts (first on line {extra_line[pid]})", *where
                )
            if pid not in extra_docs:
                extra_docs[pid] = Document(pid, "", ptext)
                extra_line[pid] = lineno
                by_hash.setdefault(text_hash(ptext), pid)
        qrels[(qid, pid)] = None
    if rows == 0:
        raise InputError("no pairs found; each line needs 'query' and 'positive'", name)
    if in_corpus and corpus is not None:
        # A positive named by id must be the corpus document of that id: a different text would be
        # silently replaced by the corpus's. One streaming pass over the corpus, for those ids only.
        for doc in _stream_corpus(corpus):
            expected = in_corpus.get(doc.doc_id)
            if expected is not None and expected[0] != text_hash(doc_text(doc.title, doc.text)) and expected[0] != text_hash(doc.text):
                raise InputError(
                    f"field 'positive': positive id '{doc.doc_id}' is in {corpus} with a different text; "
                    "give the corpus text, or another id",
                    name, expected[1],
                )
    extra = list(extra_docs.values())

    def corpus_stream() -> Iterator[Document]:
        if corpus is not None:
            yield from _stream_corpus(corpus)
        yield from extra

    parts: list[Any] = ["pairs", file_fingerprint(path)]
    if corpus is not None:
        parts.append(file_fingerprint(corpus))
    return Dataset(
        description=f"pairs {name}" + (f" + corpus {corpus}" if corpus else ""),
        fingerprint=fingerprint(*parts),
        corpus_fingerprint=fingerprint(*parts),  # the pairs file adds documents of its own
        num_docs=num_corpus + len(extra),
        queries=list(queries.values()),
        qrels=[(q, d, 1.0) for q, d in qrels],
        _corpus_factory=corpus_stream,
    )


def load_input(path: Path, split: str = "train", corpus: Path | None = None, display: str | None = None) -> Dataset:
    """Detect the input's layout (BEIR folder or pairs file) and load it."""
    if not path.exists():
        raise InputError("no such file or directory", display or path)
    if is_beir_dir(path):
        if corpus is not None:
            raise InputError("--corpus applies to a pairs file; a BEIR folder has its own corpus.jsonl", path)
        return load_beir(path, split)
    if path.is_dir():
        raise InputError(
            "not a BEIR folder (needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv) nor a hardneg artifact",
            display or path,
        )
    if corpus is not None and not corpus.is_file():
        raise InputError("not a file" if corpus.exists() else "no such file", corpus)
    return load_pairs(path, corpus, display)
