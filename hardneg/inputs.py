"""Readers for raw inputs (a BEIR folder, a pairs file, stdin), validated line by line.

Every problem is raised as an InputError naming the file, the line (or Parquet row) and the field.
The corpus is validated in one streaming pass and then streamed again when it is encoded, so the
texts are never all held in memory.
"""

from __future__ import annotations

import bz2
import csv
import gzip
import hashlib
import itertools
import lzma
import math
import os
import re
import stat
import unicodedata
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hardneg.artifacts import (
    WRITER,
    artifact_kind,
    doc_text,
    file_fingerprint,
    fingerprint,
    is_blank,
    normalize_text,
    text_hash,
)
from hardneg.errors import InputError

_BOM = b"\xef\xbb\xbf"

# Field names read from pairs files, first present wins: hardneg's own, sentence-transformers' dataset
# columns (anchor/positive, query/answer, question/answer) and FlagEmbedding's training rows
# ({"query", "pos": [...], "neg": [...]}). Without --corpus, "neg" texts (and sentence-transformers'
# n-tuple columns negative_1..n) join the corpus as documents (FlagEmbedding's hn_mine pools pos + neg
# the same way); they are never judged negatives. Tevatron's rows ({"query_id", "query",
# "positive_passages": [{"docid", "title", "text"}], "negative_passages": [...]}) read the same way, and
# DPR's ({"question", "answers", "positive_ctxs": [{"title", "text", "passage_id"}], "negative_ctxs",
# "hard_negative_ctxs"}: both negative lists join the pool).
QUERY_FIELDS = ("query", "anchor", "question")
POSITIVE_FIELDS = ("positive", "pos", "answer", "positive_passages", "positive_ctxs",
                   "context",  # context: SQuAD-style rows (question, context)
                   "passage", "document",  # labeled pairs' (query, passage, label) rows name it so
                   "pos_doc")  # NeMo's retrieval rows: {"question_id", "query", "pos_doc", "neg_doc"}, texts or {"text"}
NEGATIVE_FIELDS = ("negative", "neg", "negative_passages", "neg_doc")
DPR_NEGATIVE_FIELDS = ("hard_negative_ctxs", "negative_ctxs")
_NTUPLE_NEGATIVE = re.compile(r"negative_[0-9]+")
PAIRS_READER = "v7"  # bumped when the same pairs file reads as another corpus or other queries (v3: DPR fields, passage_id;
# v4: a --corpus line's pid, passage_id or corpus-id is its id, no longer a hash of its text; v5: a TSV
# file's bare quotes are text, see _tsv_records; ids are stripped of surrounding spaces; v6: a labeled
# pair's label is read: label 0 is a judged negative, no longer a positive; v7: NeMo's pos_doc, neg_doc and
# question_id fields)
FOLDER_READER = "v2"  # the same for BEIR, MS MARCO and LoTTE folders (v2: ids stripped of surrounding spaces)
QUERY_ID_FIELDS = ("query_id", "qid", "question_id")
POSITIVE_ID_FIELDS = ("positive_id", "pid", "doc_id")
# Corpus lines: BEIR's, Pyserini's ({"id", "contents"}) and Tevatron's ({"docid", "title", "text"}), then the
# names other datasets give a passage's id (MS MARCO's pid, corpus-id as qrels call it) and its text.
DOC_ID_FIELDS = ("_id", "id", "doc_id", "docid", "pid", "passage_id", "corpus-id", "corpus_id")
PASSAGE_ID_FIELDS = (*DOC_ID_FIELDS, "psg_id")  # a pairs row's passage objects: DPR's name their ids passage_id
DOC_TEXT_FIELDS = ("text", "contents", "passage", "content", "body", "document")
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
    left_out: dict[str, Any] = field(default_factory=dict)
    """What the input holds that is not used, counted: ``empty_documents`` (documents with neither
    title nor text: never a candidate, never a negative; BEIR's FiQA has such rows), their first ids,
    ``judgments_on_empty_documents`` (qrels rows naming them, dropped with them),
    ``judgments_on_missing_documents`` (a few qrels rows naming documents the corpus lacks, see
    MISSING_JUDGED_SHARE) and a pairs file's ``empty_positives`` (blank positive texts: its query is not mined if it has no other)."""
    unavailable_qrels: list[tuple[str, str, float]] = field(default_factory=list)
    """Judgments left out of ``qrels`` because their document is empty or missing: no use to mining,
    but an evaluation counts them as pytrec_eval does (relevant, never retrievable)."""

    def left_out_line(self) -> str | None:
        """One line for the log saying what was left out, or None."""
        parts = []
        if empty := self.left_out.get("empty_documents", 0):
            ids = self.left_out.get("empty_document_ids", [])
            shown = ", ".join(ids[:5]) + (", ..." if empty > len(ids[:5]) else "")
            judged = self.left_out.get("judgments_on_empty_documents", 0)
            parts.append(
                f"{empty} document{'s' if empty != 1 else ''} with no text left out of the corpus ({shown}): never a candidate "
                "nor a negative" + (f"; {judged} judgment{'s' if judged != 1 else ''} on them dropped" if judged else "")
            )
        if missing := self.left_out.get("judgments_on_missing_documents", 0):
            ids = self.left_out.get("missing_document_ids", [])
            parts.append(f"{missing} judgment{'s' if missing != 1 else ''} on documents not in the corpus left out "
                         f"({', '.join(ids[:5])}{', ...' if len(ids) > 5 else ''})")
        if positives := self.left_out.get("empty_positives", 0):
            parts.append(f"{positives} empty positive{'s' if positives != 1 else ''} left out (a query left without one is "
                         "reported no-positive)")
        return "; ".join(parts) or None

    def iter_corpus(self) -> Iterator[Document]:
        """Stream the corpus in input order (positives added by a pairs file come last)."""
        return self._corpus_factory()


# --------------------------------------------------------------------------- low-level readers


def is_stream(path: Path) -> bool:
    """A pipe, a device or a socket (``<(...)``, ``/dev/stdin``): it can be read only once."""
    try:
        mode = path.stat().st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or stat.S_ISDIR(mode))


STREAM_HINT = "write it to a file first, or pipe pairs to '-' (mine and embed keep a copy of a pipe in --workdir)"


def refuse_stream(path: Path, where: str | Path, hint: str = STREAM_HINT) -> None:
    """An InputError for a pipe or device where a file that can be read twice is needed."""
    if is_stream(path):
        raise InputError(f"is a pipe or a device, which can be read only once; {hint}", where)


GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"
# Compressed files are read through the standard library, recognised by name or by content (a
# download saved as ``corpus.jsonl``); formats it cannot read are named, with the way out.
_BZIP2 = re.compile(rb"BZh[1-9]1AY&SY")
_XZ_MAGIC = b"\xfd7zXZ\x00"
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz")
_UNREADABLE = (
    (b"\x28\xb5\x2f\xfd", "zstd-compressed", "zstd -d FILE"),
    (b"PK\x03\x04", "a zip archive", "unzip FILE"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "7z x FILE"),
)


def _head(path: Path, size: int = 10) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(size)
    except OSError:
        return b""


def plain_name(path: Path) -> str:
    """The file's name without a compression suffix, lower-cased: what its content format is named."""
    name = path.name.lower()
    for suffix in COMPRESSED_SUFFIXES:
        name = name.removesuffix(suffix)
    return name


def compression(path: Path, head: bytes | None = None) -> str | None:
    """``gzip``, ``bzip2``, ``xz`` or None, by the file's name or its first bytes (``head``, read
    here when not given)."""
    head, name = _head(path) if head is None else head, path.name.lower()
    if name.endswith(".gz") or head.startswith(GZIP_MAGIC):
        return "gzip"
    if name.endswith(".bz2") or _BZIP2.match(head):
        return "bzip2"
    if name.endswith(".xz") or head.startswith(_XZ_MAGIC):
        return "xz"
    return None


def _open_bytes(path: Path, name: str) -> Any:
    """The file's bytes, decompressed when it is compressed (gzip, bzip2, xz)."""
    head = _head(path)
    kind = compression(path, head)
    if kind is None:
        for magic, what, command in _UNREADABLE:
            if head.startswith(magic):
                raise InputError(f"is {what}, which hardneg does not read; decompress it first ({command}): "
                                 "gzip, bzip2 and xz files are read as they are", name)
    opener: Any = {"gzip": gzip.open, "bzip2": bz2.open, "xz": lzma.open}.get(kind or "", open)
    try:
        fh = opener(path, "rb")
    except OSError as exc:
        raise InputError(f"cannot read file ({exc.strerror or exc})", name) from None
    try:
        text_head = fh.peek(4)[:4]
    except DECOMPRESS_ERRORS as exc:  # not compressed as its name says, or cut in its first block
        fh.close()
        raise _decompress_failure(exc, name, 1) from None
    for bom, encoding in _UNICODE_BOMS:
        if text_head.startswith(bom):
            return _Utf8Lines(fh, encoding, name)
    if kind is not None and text_head == PARQUET_MAGIC:
        fh.close()
        commands = {"gzip": "gunzip", "bzip2": "bunzip2", "xz": "unxz"}
        raise InputError(f"is {'an' if kind == 'xz' else 'a'} {kind}-compressed Parquet file; decompress it first ({commands[kind]} FILE): Parquet "
                         "compresses its own columns, and hardneg reads it as it is", name)
    return fh


# A spreadsheet's "Unicode text" export is UTF-16 with a byte-order mark: read as UTF-8 lines.
_UNICODE_BOMS = ((b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"), (b"\xff\xfe", "utf-16"),
                 (b"\xfe\xff", "utf-16"))


class _Utf8Lines:
    """A UTF-16 or UTF-32 file (its byte-order mark says which) as the UTF-8 byte lines the readers take."""

    def __init__(self, raw: Any, encoding: str, name: str) -> None:
        import io

        self._text = io.TextIOWrapper(raw, encoding=encoding, newline="")
        self._encoding, self._name = encoding, name

    def _failure(self, line: int | None) -> InputError:
        return InputError(f"not valid {self._encoding.upper()} (the byte-order mark says it is); re-encode the file "
                          "as UTF-8", self._name, line)

    def __iter__(self) -> Iterator[bytes]:
        done = 0
        try:
            for line in self._text:
                done += 1
                yield line.encode("utf-8")
        except UnicodeError:
            raise self._failure(done + 1) from None

    def read(self) -> bytes:
        try:
            return self._text.read().encode("utf-8")
        except UnicodeError:
            raise self._failure(None) from None

    def readline(self, size: int = -1) -> bytes:
        """The first line (up to ``size`` characters), as ``delimited_kind`` reads a pipe's copy."""
        try:
            return self._text.readline(size).encode("utf-8")
        except UnicodeError:
            raise self._failure(1) from None

    def __enter__(self) -> _Utf8Lines:
        return self

    def __exit__(self, *exc: object) -> None:
        self._text.close()


DECOMPRESS_ERRORS = (OSError, EOFError, zlib.error, lzma.LZMAError)  # what a cut or damaged compressed stream raises


def _decompress_failure(exc: BaseException, name: str, line: int | None = None) -> InputError:
    return InputError(f"cannot decompress ({exc or type(exc).__name__}); is it a complete compressed file?", name, line)


def _lines(fh: Any, name: str) -> Iterator[tuple[int, bytes]]:
    """(line number, raw line) of an open file, a UTF-8 BOM left out of the first; a damaged
    compressed stream is an InputError at its line."""
    lineno = 0
    try:
        for lineno, raw in enumerate(fh, 1):
            yield lineno, (raw[len(_BOM) :] if lineno == 1 and raw.startswith(_BOM) else raw)
    except DECOMPRESS_ERRORS as exc:
        raise _decompress_failure(exc, name, lineno + 1) from None


def iter_jsonl(path: Path, display: str | None = None, start_after: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, object) for each non-blank line after ``start_after``; BOM and CRLF
    tolerated, a ``.gz`` file read through gzip (as the BEIR sets on the Hugging Face hub ship)."""
    name = display or str(path)
    with _open_bytes(path, name) as fh:
        first = True
        for lineno, raw in _lines(fh, name):
            line = raw.strip()
            if not line:
                continue
            if first and line.startswith(b"["):
                yield from _json_array(raw + _rest(fh, name), name, lineno, start_after)
                return
            if first and line.startswith(b"{") and _may_be_one_document(line):
                # One JSON object for the whole file: SQuAD's {"version", "data": [...]} (pretty-printed
                # or on one line), read as its (question, context) rows.
                data = raw + _rest(fh, name)
                whole = _one_document(data, name, lineno)  # malformed: an error; a one-line object is SQuAD's here
                if whole is None:
                    raise InputError(
                        "one JSON object spread over several lines; hardneg reads JSON Lines (one object per line), "
                        "a JSON array of objects, or a SQuAD file ({\"data\": [{\"paragraphs\": [...]}]})", name, lineno,
                    )
                yield from (row for row in _squad_rows(whole, data, name, lineno) if row[0] > start_after)
                return
            first = False
            if lineno <= start_after:
                continue
            if len(line) > MAX_LINE_BYTES:
                raise InputError(
                    f"line is {len(line) / 2**20:.1f} MiB long (limit {MAX_LINE_BYTES // 2**20} MiB); "
                    "is this JSON Lines, one object per line?",
                    name,
                    lineno,
                )
            _decode(line, name, lineno)  # a bad byte is named before orjson's generic message
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                raise InputError(f"malformed JSON ({exc.msg}); each line must be one JSON object", name, lineno) from None
            if not isinstance(obj, dict):
                raise InputError(f"expected a JSON object, found {type(obj).__name__}", name, lineno)
            yield lineno, obj


def _may_be_one_document(line: bytes) -> bool:
    """A first line that stops before its object ends (a pretty-printed file's ``{``), or one
    holding SQuAD's ``data`` list. A line broken in its middle is a JSON Lines error, reported as such."""
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        # A pretty-printer ends a line after an opening bracket or a comma; a JSON Lines record cut
        # short (a truncated download) ends anywhere, and is not read whole into memory to find out.
        return line.rstrip().endswith((b"{", b"[", b","))
    return _is_squad(obj)


def _is_squad(obj: Any) -> bool:
    """SQuAD's layout (v1.1 and v2.0, and what PIAF, FQuAD, XQuAD and many QA sets ship):
    ``{"data": [{"title", "paragraphs": [{"context", "qas": [{"id", "question", "answers"}]}]}]}``."""
    data = obj.get("data") if isinstance(obj, dict) else None
    return isinstance(data, list) and bool(data) and all(isinstance(a, dict) and "paragraphs" in a for a in data)


def _one_document(data: bytes, name: str, first_line: int) -> dict[str, Any] | None:
    """The file as one JSON document when it is SQuAD's, else None (the caller says what it is)."""
    try:
        obj = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        _decode_all(data, name, first_line)
        raise InputError(
            f"malformed JSON ({exc.msg}); each line must be one JSON object (or the whole file one SQuAD document)",
            name, first_line + data.count(b"\n", 0, exc.pos),
        ) from None
    return obj if _is_squad(obj) else None


def _decode_all(data: bytes, name: str, first_line: int) -> str:
    """A whole file (from ``first_line`` on) as text; bad UTF-8 is an InputError naming its line."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError("not valid UTF-8; re-encode the file as UTF-8", name, first_line + data.count(b"\n", 0, exc.start)) from None


_SQUAD_QUESTION = re.compile(r'(?<!\\)"question"\s*:')


def _squad_rows(doc: dict[str, Any], data: bytes, name: str, first_line: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line, row) of a SQuAD file: one row per question, ``{"query_id", "question", "context"}``
    (the paragraph it was written on is its positive; questions on one paragraph share it). An
    unanswerable SQuAD 2.0 question (``is_impossible``) has no positive: its row's positive is
    blank (left out and counted, the query reported no-positive) and its paragraph still joins the
    corpus. Each row's line is the line of its ``"question"`` key."""
    text = _decode_all(data, name, first_line)
    lines = [first_line + text.count("\n", 0, m.start()) for m in _SQUAD_QUESTION.finditer(text)]
    k = 0
    for a, article in enumerate(doc["data"]):
        paragraphs = article["paragraphs"]
        if not isinstance(paragraphs, list):
            raise InputError(f"SQuAD field 'data[{a}].paragraphs' must be a list, got {type(paragraphs).__name__}", name)
        for p, paragraph in enumerate(paragraphs):
            where = f"data[{a}].paragraphs[{p}]"
            if not isinstance(paragraph, dict) or not isinstance(paragraph.get("qas"), list):
                raise InputError(f"SQuAD field '{where}' must be an object with 'context' and a 'qas' list", name)
            for i, qa in enumerate(paragraph["qas"]):
                line = lines[k] if k < len(lines) else first_line
                k += 1
                if not isinstance(qa, dict):
                    raise InputError(f"SQuAD field '{where}.qas[{i}]' must be an object, got {type(qa).__name__}", name, line)
                row: dict[str, Any] = {"question": qa.get("question"), "context": paragraph.get("context")}
                if qa.get("id") is not None:
                    row["query_id"] = qa["id"]
                if qa.get("is_impossible") is True:
                    row["positive"], row["negative"] = "", row.pop("context")
                yield line, row


def _decode(raw: bytes, name: str, lineno: int) -> str:
    """One line as text; bad UTF-8 is an InputError naming the line and the byte."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start} of the line); re-encode the file as UTF-8", name, lineno) from None


def _rest(fh: Any, name: str) -> bytes:
    try:
        return bytes(fh.read())
    except DECOMPRESS_ERRORS as exc:
        raise _decompress_failure(exc, name) from None


def _json_array(data: bytes, name: str, first_line: int, start_after: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) of a file holding one JSON array of objects (``[{...}, {...}]``, as
    ``json.dump`` and ``Dataset.to_json(lines=False)`` write it), ``data`` starting at line
    ``first_line``. The file is held in memory (JSON Lines is read line by line); each element is
    located by the standard library's decoder, for its line, and parsed by orjson, as a JSON line is."""
    import json

    text = _decode_all(data, name, first_line)
    decoder = json.JSONDecoder()
    line, counted = first_line, 0

    def at(pos: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, pos)
        counted = pos
        return line

    def skip(pos: int) -> int:
        while pos < len(text) and text[pos] in " \t\r\n":
            pos += 1
        return pos

    def broken(pos: int, what: str) -> InputError:
        return InputError(f"malformed JSON ({what}); a file starting with '[' must be one JSON array of objects "
                          "(or JSON Lines: one object per line)", name, at(pos))

    pos = skip(text.index("[") + 1)
    if pos < len(text) and text[pos] == "]":
        pos = len(text) if not text[pos + 1 :].strip() else pos + 1
    else:
        while True:
            start = skip(pos)
            try:
                _, end = decoder.raw_decode(text, start)
                obj = orjson.loads(text[start:end])
            except (json.JSONDecodeError, orjson.JSONDecodeError) as exc:
                raise broken(start, exc.msg) from None
            except RecursionError:  # the stdlib decoder's limit; orjson says "depth limit exceeded"
                raise broken(start, "depth limit exceeded") from None
            lineno = at(start)
            if lineno > start_after:
                if not isinstance(obj, dict):
                    raise InputError(f"expected a JSON object in the array, found {type(obj).__name__}", name, lineno)
                yield lineno, obj
            pos = skip(end)
            if pos < len(text) and text[pos] == ",":
                pos += 1
                continue
            if pos < len(text) and text[pos] == "]":
                pos += 1
                break
            raise broken(pos, "expected ',' or ']' after an element")
    if text[pos:].strip():
        raise broken(skip(pos), "extra data after the array")


def iter_delimited(
    path: Path, required: tuple[tuple[str, ...], ...], display: str | None = None, delimiter: str = ","
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (line number, row dict) of a CSV (or, with ``delimiter="\\t"``, TSV) file with a header
    row, as pandas' ``to_csv`` and spreadsheets write it: quoted fields may hold the delimiter and
    newlines, a BOM is tolerated, every value is a string. A TSV file may also be plain (texts with
    bare quotes, as MS MARCO, colbert-ai and ``paste`` write it): see ``_tsv_records``. Checks that
    one column of each group of ``required`` names is in the header."""
    name = display or str(path)
    kind = "TSV" if delimiter == "\t" else "CSV"
    csv.field_size_limit(MAX_LINE_BYTES)
    with _open_bytes(path, name) as fh:
        # Decoded line by line (not through a TextIOWrapper, which decodes ahead in chunks), so a
        # bad byte is reported on its own line; each line keeps its end, as csv wants (newline="").
        lines = ((lineno, _decode(raw, name, lineno)) for lineno, raw in _lines(fh, name))
        records = _tsv_records(lines, name) if kind == "TSV" else _csv_records(lines, name)
        header: list[str] | None = None
        for start, row in records:
            if not any(cell.strip() for cell in row):
                continue
            if header is None:
                header = [cell.strip() for cell in row]
                repeated = next((c for i, c in enumerate(header) if c in header[:i]), None)
                if repeated is not None:
                    raise InputError(f"the header names column '{repeated}' twice", name, start)
                _require_columns(header, required, name, start, _header_hint(header, required, kind, delimiter))
                continue
            if len(row) != len(header):
                raise InputError(
                    f"{len(row)} fields, but the header has {len(header)}; quote a field that holds "
                    f"{'a tab' if kind == 'TSV' else 'a comma'} or a newline", name, start,
                )
            yield start, dict(zip(header, row))
    if header is None:
        raise InputError(f"the {kind} file is empty; it needs a header row and at least one row", name)


def _csv_records(lines: Iterator[tuple[int, str]], name: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each record of a CSV file, quoted fields as the csv module reads them."""
    reader = csv.reader((text for _, text in lines), strict=True)  # an unclosed quote is an error
    line = 0
    while True:
        try:
            row = next(reader, None)
        except csv.Error as exc:
            raise InputError(f"malformed CSV ({exc})", name, reader.line_num) from None
        if row is None:
            return
        yield line + 1, row
        line = reader.line_num


def _quoted(field: str) -> bool:
    return len(field) >= 2 and field[0] == field[-1] == '"'


def _says_more(plain: list[str], taken: list[tuple[int, str]], width: int, plain_before: bool) -> bool:
    """Whether a TSV record's quoted reading (of the right width) says more than its plain one: it
    doubles a quote, its first line splits into another width than the header's (a quoted tab), or
    it spans lines (a quoted line break). A record whose lines are each a plain record of the right
    width is ambiguous: a plain text may open a quote that a later line's text closes. It is read
    quoted (a line break with a tab after it, as in indented text), unless the file has read a
    field that opens with a quote as plain text before."""
    if len(plain) != width or any(_quoted(f) and '""' in f for f in plain):
        return True
    if not taken:
        return False
    return not plain_before or any(len(text.rstrip("\r\n").split("\t")) != width for _, text in taken)


def _tsv_records(lines: Iterator[tuple[int, str]], name: str) -> Iterator[tuple[int, list[str]]]:
    """(first line, fields) of each record of a TSV file with a header row, in either of the two
    ways TSV is written:

    - plain, one record per line split on tabs, quotes being text (MS MARCO, colbert-ai, ``cut`` and
      ``paste``, hardneg's own TSV exports): ``"Dune" is a novel<TAB>...``;
    - quoted as pandas' ``to_csv(sep="\\t")`` writes it: a field that holds a tab, a line break or a
      quote is put in quotes, its quotes doubled (``"say ""hi"" twice"``), and may span lines.

    A line is read as quoted only where the quoting says something (``_says_more``): it doubles a
    quote, holds a quoted tab or spans lines. A line whose quoted reading fails or says nothing
    more (``"Dune"<TAB>...``: a QUOTE_MINIMAL writer never quotes a field without a tab, a break or
    a quote) is read plain, as is a line whose quoted reading has another width than the header's.
    A header whose every column name is quoted comes from a writer that quotes everything
    (QUOTE_ALL): its records are read quoted."""
    pending: list[tuple[int, str]] = []  # lines a quoted reading looked at and gave back, next last

    def pull() -> tuple[int, str] | None:
        return pending.pop() if pending else next(lines, None)

    width: int | None = None
    quote_all = plain_before = False
    while (item := pull()) is not None:
        lineno, text = item
        body = text.rstrip("\r\n")
        plain = body.split("\t")
        if not body.strip("\t "):
            continue
        if width is not None and not quote_all and not any(f.startswith('"') for f in plain):
            yield lineno, plain
            continue
        taken: list[tuple[int, str]] = []  # lines after the first that the quoted reading consumed

        def feed(first: str = text, taken: list[tuple[int, str]] = taken) -> Iterator[str]:
            yield first
            size = len(first)
            while size <= MAX_LINE_BYTES and (nxt := pull()) is not None:  # an unclosed quote reads no further
                taken.append(nxt)
                size += len(nxt[1])
                yield nxt[1]

        row: list[str] | None
        try:
            row = next(csv.reader(feed(), delimiter="\t", strict=True), None)
            error = None
        except csv.Error as exc:
            row, error = None, exc
        if row is not None and width is None:  # the header
            width, quote_all = len(row), not taken and all(_quoted(f) for f in plain)
            yield lineno, row
            continue
        if row is not None and len(row) == width and (quote_all or _says_more(plain, taken, width, plain_before)):
            yield lineno, row
            continue
        pending.extend(reversed(taken))  # read plain: the lines after this one are read again
        if width is None or len(plain) == width:
            width = width or len(plain)
            plain_before = True  # a field opened with a quote that is text: a plain writer's file
            yield lineno, plain
        elif error is not None and taken:  # a quote left open over the lines after it
            raise InputError(f"malformed TSV ({error})", name, lineno)
        else:
            yield lineno, plain  # of another width than the header's: reported so


_HEADER_CELL = re.compile(r"[A-Za-z_][A-Za-z0-9_.\- ]{0,63}")


def delimited_kind(path: Path, name: str) -> str | None:
    """``.csv`` or ``.tsv`` when a file's first line is a header row (two or more column names, no
    JSON), else None: how a pipe's copy is named, since a pipe has no name to say so. The first
    line is read decompressed and decoded as the readers read it; a line that does not decode is
    left for the reader to report."""
    try:
        with _open_bytes(path, name) as fh:
            raw = fh.readline(64 * 1024)
    except (InputError, *DECOMPRESS_ERRORS):
        return None
    try:
        line = raw.removeprefix(_BOM).decode("utf-8").strip("\r\n")
    except UnicodeDecodeError:
        return None
    if line.lstrip()[:1] in ("{", "[", ""):
        return None
    delimiter = "\t" if "\t" in line else ","
    cells = [cell.strip() for cell in next(csv.reader([line], delimiter=delimiter))]
    if len(cells) < 2 or not all(_HEADER_CELL.fullmatch(cell) for cell in cells):
        return None
    return ".tsv" if delimiter == "\t" else ".csv"


# MS MARCO's and colbert-ai's files: headerless TSV, one record per line, ``pid<TAB>passage`` (colbert-ai
# also reads a third column, the title) and ``qid<TAB>query``.
COLLECTION_COLUMNS = ("_id", "text", "title")
QUERY_COLUMNS = ("_id", "text")
_TSV_HEADER_IDS = {"id", "_id", "pid", "qid", "docid", "doc_id", "query_id"}


def is_collection_tsv(path: Path) -> bool:
    """colbert-ai's and MS MARCO's ``collection.tsv`` (``collection*.tsv``, gzipped or not)."""
    plain = plain_name(path)
    return plain.startswith("collection") and plain.endswith(".tsv")


def _is_headerless_corpus_tsv(path: Path) -> bool:
    """A corpus TSV of ``id<TAB>text[<TAB>title]`` lines under another name than collection.tsv
    (``docs.tsv`` named in a dataset file, ``--corpus passages.tsv``): its first line has 2 or 3
    fields, none of them a column name a corpus header would hold. A first row that names a column
    hardneg knows is a header, read as one (and a wrong header is reported as such)."""
    if not plain_name(path).endswith(".tsv"):
        return False
    known = {*DOC_ID_FIELDS, *DOC_TEXT_FIELDS, "title"}
    try:
        with _open_bytes(path, str(path)) as fh:
            for _, raw in _lines(fh, str(path)):
                if raw.strip():
                    cells = raw.rstrip(b"\r\n").decode("utf-8", "replace").split("\t")
                    return 2 <= len(cells) <= len(COLLECTION_COLUMNS) and not known & {c.strip().lower() for c in cells}
    except (InputError, OSError):
        return False  # the record reader reports what is wrong with the file
    return False


def iter_headerless_tsv(path: Path, columns: tuple[str, ...], display: str | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a headerless TSV file whose lines hold the first 2 to ``len(columns)``
    of ``columns``, split on tabs (texts hold no tab, as in MS MARCO). A first line whose id field
    reads ``id``, ``pid``, ``qid``, ... is a header and skipped (colbert-ai skips it too)."""
    name = display or str(path)
    expected = "2" if len(columns) == 2 else f"2 to {len(columns)}"
    with _open_bytes(path, name) as fh:
        first = True
        for lineno, raw in _lines(fh, name):
            line = raw.rstrip(b"\r\n")
            if not line.strip():
                continue
            if len(line) > MAX_LINE_BYTES:
                raise InputError(f"line is {len(line) / 2**20:.1f} MiB long (limit {MAX_LINE_BYTES // 2**20} MiB)", name, lineno)
            parts = _decode(line, name, lineno).split("\t")
            if not 2 <= len(parts) <= len(columns):
                raise InputError(
                    f"expected {expected} tab-separated fields ({', '.join(columns)}), found {len(parts)}", name, lineno
                )
            if first and parts[0].strip().lower() in _TSV_HEADER_IDS:
                first = False
                continue
            first = False
            yield lineno, dict(zip(columns, parts))


_COLUMN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]{0,63}")  # a name as datasets spell them: no spaces, unlike data


def _header_hint(header: list[str], required: tuple[tuple[str, ...], ...], kind: str, delimiter: str) -> str:
    """What a delimited file without the right header is told: when no cell of its first row is a
    column name hardneg knows (MS MARCO's triples.train.small.tsv has no header at all), how to give
    it one without rewriting the file."""
    hint = f" (a {kind} file needs a header row naming its columns"
    known = {n for names in required for n in names} | set(NEGATIVE_FIELDS) | set(QUERY_ID_FIELDS) | set(POSITIVE_ID_FIELDS)
    if required and required[0] == QUERY_FIELDS and 2 <= len(header) <= 3 and not known & set(header):
        names = ("query", "positive", "negative")[: len(header)]
        sep = "\\t" if delimiter == "\t" else delimiter
        ahead = f"(printf '{sep.join(names)}\\n'; cat FILE) | hardneg mine - ..."
        if all(_COLUMN_NAME.fullmatch(cell) for cell in header):  # names hardneg does not know, or short data
            hint += (f"; if this first row names the columns, rename them {', '.join(names)}, in that order: "
                     f"sed '1s/.*/{sep.join(names)}/' FILE | hardneg mine - ...; if it is data, give the names ahead of it: "
                     f"{ahead}")
        else:
            hint += f"; this one's first row looks like data: give the columns' names ahead of it, as in {ahead}"
    return hint + ")"


def _require_columns(columns: list[str], required: tuple[tuple[str, ...], ...], name: str, line: int | None = None,
                     hint: str = "") -> None:
    """An InputError unless one column of each group of ``required`` names is among ``columns``."""
    missing = [names for names in required if not any(c in columns for c in names)]
    if missing:
        raise InputError(
            f"missing column {_names(missing[0])}{hint and ' in the header row'}; found columns: "
            f"{', '.join(columns) or '(none)'}{hint}", name, line,
        )


def iter_parquet(
    path: Path, required: tuple[tuple[str, ...], ...], display: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based row number, row dict) from a Parquet file, in batches; checks that one column
    of each group of ``required`` names is there."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    name = display or str(path)
    try:
        pf = pq.ParquetFile(path)
    except (OSError, pa.ArrowInvalid) as exc:
        raise InputError(f"cannot read Parquet file ({exc})", name) from None
    _require_columns(pf.schema_arrow.names, required, name)
    yield from _rows_of(pf.iter_batches(batch_size=8192), "Parquet", name)


def _rows_of(batches: Iterator[Any], kind: str, name: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(1-based row number, row dict) of record batches; a batch that cannot be read (a damaged or
    cut file) is an InputError at the first row it would have held."""
    import pyarrow as pa

    row = 0
    while True:
        try:
            batch = next(batches, None)
            records = batch.to_pylist() if batch is not None else None
        except (OSError, pa.ArrowException) as exc:
            raise InputError(f"cannot read {kind} file from here on ({exc}); is it complete?", name, row + 1) from None
        if records is None:
            return
        for record in records:
            row += 1
            yield row, record


def iter_arrow(
    path: Path, required: tuple[tuple[str, ...], ...], display: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based row number, row dict) from an Arrow IPC file: the stream format that Hugging
    Face ``datasets`` writes with ``save_to_disk`` (``data-00000-of-00001.arrow``), or the file format."""
    import pyarrow as pa

    name = display or str(path)
    try:
        source = pa.memory_map(str(path))
        try:
            stream = pa.ipc.open_stream(source)
            batches: Iterator[Any] = iter(stream)
            schema = stream.schema
        except pa.ArrowInvalid:
            source.seek(0)
            reader = pa.ipc.open_file(source)
            batches = (reader.get_batch(i) for i in range(reader.num_record_batches))
            schema = reader.schema
    except (OSError, pa.ArrowException) as exc:
        raise InputError(f"cannot read Arrow file ({exc})", name) from None
    _require_columns(schema.names, required, name)
    yield from _rows_of(batches, "Arrow", name)


# The files of a folder read as one input (a Hugging Face dataset's shards: ``train-00000-of-00002.parquet``
# from the hub, ``data-00000-of-00001.arrow`` from ``save_to_disk``), in name order. ``.json`` files are
# not among them: beside shards they are metadata (``dataset_info.json``, ``state.json``).
SHARD_SUFFIXES = (".parquet", ".arrow", ".jsonl", ".csv", ".tsv")  # each of the last three may be compressed too


def _is_shard(path: Path) -> bool:
    return path.is_file() and not path.name.startswith(".") and plain_name(path).endswith(SHARD_SUFFIXES)


# The hub names shards by split (``train-00000-of-00002.parquet``, ``test-00000-of-00001.parquet``),
# often side by side in one data/ folder: a folder is never read across splits.
_SPLIT_SHARD = re.compile(r"(?P<split>[^/]+?)-[0-9]{5}-of-[0-9]{5}\.")
SPLIT_NAMES = {"train", "test", "dev", "validation", "valid", "val"}


def _folder_shards(folder: Path) -> list[Path]:
    """The record files of ``folder`` (not its subfolders), sorted by name; all of one format."""
    files = sorted((p for p in folder.iterdir() if _is_shard(p)), key=lambda p: p.name)
    kinds = {next(s for s in SHARD_SUFFIXES if plain_name(p).endswith(s)) for p in files}
    if len(kinds) > 1:
        raise InputError(
            f"holds files of several formats ({', '.join(sorted(kinds))}); a folder is read as the shards of one "
            "dataset: point at one file, or a folder of one format", folder,
        )
    return files


def shard_files(folder: Path, split: str | None = None) -> list[Path]:
    """The record files of ``folder`` (not its subfolders), sorted by name; all of one format. Shards
    named by split are those of ``split`` (a pairs folder's ``--split``); a corpus folder (``split``
    None) must not mix splits."""
    files = _folder_shards(folder)
    matches = [_SPLIT_SHARD.match(p.name) for p in files]
    if not files or not all(matches):
        return files
    splits = sorted({m.group("split") for m in matches if m})
    if split is None:
        if len(splits) > 1:
            raise InputError(f"holds the shards of several splits ({', '.join(splits)}); point at one file", folder)
        return files
    if split in splits:
        return [p for p, m in zip(files, matches) if m and m.group("split") == split]
    if len(splits) > 1 or SPLIT_NAMES & set(splits):
        raise InputError(
            f"holds no shards of split '{split}'; its shards are of split {', '.join(splits)} (use --split)", folder
        )
    return files


def _record_files(
    path: Path, display: str | None, split: str | None = None, files: list[Path] | None = None
) -> list[tuple[Path, str]]:
    """(file, its name in messages) of a records input: the file itself, or a folder's shards (``files``
    when the caller chose them)."""
    if not path.is_dir():
        return [(path, display or str(path))]
    files = shard_files(path, split) if files is None else files
    if not files:
        raise InputError(f"no data files in this folder (looked for {', '.join(SHARD_SUFFIXES)})", display or path)
    return [(f, str(f)) for f in files]


def _iter_records(
    path: Path, required: tuple[tuple[str, ...], ...], display: str | None = None
) -> Iterator[tuple[int, dict[str, Any]]]:
    """A records file by its kind: Parquet (by name or by its magic bytes), CSV or TSV with a header
    row (by name, ``.csv``/``.tsv``, gzipped or not), otherwise JSON Lines or one JSON array."""
    kind = _record_kind(path)
    if kind == "parquet":
        return iter_parquet(path, required, display)
    if kind == "arrow":
        return iter_arrow(path, required, display)
    if kind in ("csv", "tsv"):
        return iter_delimited(path, required, display, "\t" if kind == "tsv" else ",")
    return iter_jsonl(path, display)


def _record_kind(path: Path) -> str:
    """How ``_iter_records`` reads a file: parquet, arrow, csv, tsv or json (JSON Lines or an array)."""
    if path.suffix.lower() == ".parquet" or _head(path, 4) == PARQUET_MAGIC:
        return "parquet"
    if path.suffix.lower() == ".arrow":
        return "arrow"
    plain = plain_name(path)
    return plain[-3:] if plain.endswith((".csv", ".tsv")) else "json"


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
                    if not required:
                        continue  # an optional id left empty (a CSV's empty cell) is no id
                    raise InputError(f"field '{name}' is an empty id", *where)
                if any(unicodedata.category(c) == "Cc" for c in value):
                    raise InputError(
                        f"field '{name}' contains a tab, newline or other control character (e.g. NUL); ids must be "
                        "single-line plain text", *where
                    )
                return value.strip()  # as the qrels readers strip their cells: ' d1 ' and 'd1' are one id
            elif "\x00" in value:
                raise InputError(f"field '{name}' contains a NUL byte; remove it (binary data is not text)", *where)
            return value
    if required:
        null = next((n for n in names if n in obj), None)
        if null is not None:
            raise InputError(f"field '{null}' is null", *where)
        found = ", ".join(list(obj)[:12]) or "(none)"
        raise InputError(f"missing field {_names(names)}; found fields: {found}", *where)
    return None


def _text_or_blank(obj: dict[str, Any], names: tuple[str, ...], where: tuple[str, int]) -> str:
    """A text field that may be null: null is no text (a Parquet file's missing value), which the
    callers leave out and count as they do a blank text. A field missing altogether is an error."""
    if any(n in obj for n in names) and all(obj.get(n) is None for n in names):
        return ""
    text = _field(obj, names, where, kind="text")
    assert text is not None
    return text


def _names(names: tuple[str, ...]) -> str:
    """'query' or 'query' (or 'anchor', 'question'): a field and the other names it may have."""
    rest = ", ".join(f"'{n}'" for n in names[1:])
    return f"'{names[0]}'" + (f" (or {rest})" if rest else "")


def _positives(obj: dict[str, Any], where: tuple[str, int]) -> list[tuple[str, str | None]]:
    """(text, id or None) of a pairs row's positives: one text, a list of texts (FlagEmbedding's
    ``pos``) with, optionally, a list of as many ids, or Tevatron's passage objects. Blank texts are
    returned too: the caller leaves them out and counts them."""
    name = next((n for n in POSITIVE_FIELDS if obj.get(n) is not None), None)
    if name is None:
        _text_or_blank(obj, POSITIVE_FIELDS, where)  # raises when the field is missing
        return [("", _field(obj, POSITIVE_ID_FIELDS, where, kind="id", required=False))]  # null: as a blank positive
    docs = _documents_of(obj, name, where)
    if not docs:
        return [("", None)]  # no positive in this row (DPR's rows may have none): left out and counted, as a blank one
    value = obj[name]
    if not isinstance(value, list):
        return [(docs[0][0], _field(obj, POSITIVE_ID_FIELDS, where, kind="id", required=False))]
    id_name = next((n for n in POSITIVE_ID_FIELDS if obj.get(n) is not None), None)
    if id_name is None or any(isinstance(v, dict) for v in value):  # passages carry their own ids
        return [(text, did) for text, did, _ in docs]
    if not isinstance(obj[id_name], list) or len(obj[id_name]) != len(docs):
        raise InputError(f"field '{id_name}' must be a list of {len(docs)} ids, one per text of '{name}'", *where)
    return list(zip([text for text, _, _ in docs], _list_field(obj, id_name, where, kind="id")))


def _is_squad_row(obj: dict[str, Any]) -> bool:
    """A row whose positive is its ``context`` (SQuAD's rows, as the Hugging Face ``squad`` and
    ``squad_v2`` datasets have them): its ``id`` is the question's."""
    return next((n for n in POSITIVE_FIELDS if obj.get(n) is not None), None) == "context"


def _unanswerable(obj: dict[str, Any]) -> bool:
    """A SQuAD 2.0 row as the Hugging Face ``squad_v2`` dataset has it (``question``, ``context``,
    ``answers: {"text": [], "answer_start": []}``): the question has no answer in its context, so
    the context is no positive (it stays a corpus document)."""
    answers = obj.get("answers")
    return isinstance(answers, dict) and answers.get("text") == [] and isinstance(obj["context"], str)


def _negative_fields(obj: dict[str, Any]) -> list[str]:
    """The fields of a pairs row that hold negatives, in reading order (none null)."""
    names = [n for n in NEGATIVE_FIELDS if obj.get(n) is not None][:1]
    names += [n for n in DPR_NEGATIVE_FIELDS if obj.get(n) is not None]
    names += sorted((n for n in obj if _NTUPLE_NEGATIVE.fullmatch(n) and obj[n] is not None), key=lambda n: int(n[9:]))
    return names


def _pool_documents(obj: dict[str, Any], where: tuple[str, int]) -> list[tuple[str, str | None]]:
    """(text, id or None) of a pairs row's negatives: ``negative``/``neg`` (one text or a list),
    Tevatron's ``negative_passages`` and the n-tuple columns ``negative_1``, ``negative_2``, ... of
    sentence-transformers' datasets."""
    docs = [doc for name in _negative_fields(obj) for doc in _documents_of(obj, name, where)]
    return [(text, did) for text, did, _ in docs if not is_blank(text)]  # an empty negative is no document


def _documents_of(obj: dict[str, Any], name: str, where: tuple[str, int]) -> list[tuple[str, str | None, str]]:
    """(text, id or None, label for errors) of a field holding documents: one text, a list of texts,
    or Tevatron's passage objects (title + text, docid)."""
    value = obj[name]
    if isinstance(value, dict):  # one passage object (NeMo's pos_doc may be one {"text"})
        obj, value = {**obj, name: [value]}, [value]
    if not isinstance(value, list):
        text = _field(obj, (name,), where, kind="text")
        assert text is not None
        return [(text, None, name)]
    if any(isinstance(v, dict) for v in value):
        return [(text, did, f"{name}[{i}]") for i, (text, did) in enumerate(_passages(obj, name, where))]
    return [(text, None, f"{name}[{i}]") for i, text in enumerate(_list_field(obj, name, where, kind="text"))]


def _passages(obj: dict[str, Any], name: str, where: tuple[str, int]) -> list[tuple[str, str | None]]:
    """Tevatron's passage objects ``[{"docid", "title", "text"}, ...]``: (title + text, docid or None).
    A list may mix them with plain texts, as NeMo's ``pos_doc``/``neg_doc`` do."""
    out: list[tuple[str, str | None]] = []
    for i, item in enumerate(obj[name]):
        label = f"{name}[{i}]"
        if not isinstance(item, dict):
            plain = "" if item is None else _field({label: item}, (label,), where, kind="text")  # null: a blank text
            assert plain is not None
            out.append((plain, None))
            continue
        fields = {f"{label}.{key}": value for key, value in item.items()}
        text = _field(fields, tuple(f"{label}.{n}" for n in DOC_TEXT_FIELDS), where, kind="text")
        title = _field(fields, (f"{label}.title",), where, kind="text", required=False) or ""
        assert text is not None
        out.append((doc_text(title, text), _field(fields, tuple(f"{label}.{n}" for n in PASSAGE_ID_FIELDS), where, kind="id", required=False)))
    return out


def _list_field(obj: dict[str, Any], name: str, where: tuple[str, int], *, kind: str) -> list[str]:
    """The items of a list field, each checked as ``_field`` checks one value ('pos[2]' in errors). A
    null text is a blank one, as a null text field is (a Parquet list column's missing value: pandas
    pads ragged lists so); a null id is an error."""
    items = []
    for i, value in enumerate(obj[name]):
        label = f"{name}[{i}]"
        if value is None:
            if kind == "text":
                items.append("")
                continue
            raise InputError(f"field '{label}' is null", *where)
        item = _field({label: value}, (label,), where, kind=kind)
        assert item is not None
        items.append(item)
    return items


def _read_document(obj: dict[str, Any], where: tuple[str, int], *, ids_required: bool = True) -> tuple[Document, bool]:
    """The document of a corpus line, and whether its id was made from its text (a pairs file's
    corpus may leave ids out, as FlagEmbedding's candidate pool does: ``d-`` + a hash of the text)."""
    doc_id = _field(obj, DOC_ID_FIELDS, where, kind="id", required=ids_required)
    text = _text_or_blank(obj, DOC_TEXT_FIELDS, where)  # null: the document is its title, or empty and left out
    title = _field(obj, ("title",), where, kind="text", required=False) or ""
    made = doc_id is None
    if doc_id is None:
        doc_id = _stable_id("d", doc_text(title, text))
    return Document(doc_id, title, text), made


def is_empty_document(doc: Document) -> bool:
    """Neither title nor text (nothing but whitespace or invisible characters): nothing to embed or
    to train on. Such a document is left out of the corpus and counted (``Dataset.left_out``)."""
    return is_blank(doc.text) and is_blank(doc.title)


# --------------------------------------------------------------------------- BEIR


def beir_file(folder: Path, name: str) -> Path | None:
    """``folder/name`` or its compressed ``name.gz`` (``.bz2``, ``.xz``); two at once is ambiguous,
    so an error."""
    found = [p for p in (folder / f"{name}{suffix}" for suffix in ("", *COMPRESSED_SUFFIXES)) if p.is_file()]
    if len(found) > 1:
        raise InputError(f"both {' and '.join(p.name for p in found)} are here; keep one", folder)
    return found[0] if found else None


def _shard_dirs(folder: Path) -> dict[str, Path]:
    """The subfolders of ``folder`` that hold shards, by name."""
    return {d.name: d for d in sorted(folder.iterdir()) if d.is_dir() and not d.name.startswith(".")
            and any(_is_shard(f) for f in d.iterdir())}


def _part_dir(path: Path, name: str, split: str | None = None) -> Path | None:
    """The folder form of a BEIR part, as the hub keeps it: ``name/`` holding its shards
    (BeIR/<set>: ``corpus/corpus-00000-of-00001.parquet``; mteb/<set>: ``queries/test-00000-of-00001.parquet``),
    or one level deeper, as the hub's Parquet conversion writes it (``corpus/corpus/0000.parquet``):
    the only subfolder with shards, or the one named ``split``."""
    folder = path / name
    if not folder.is_dir():
        return None
    if any(_is_shard(f) for f in folder.iterdir()):
        return folder
    subs = _shard_dirs(folder)
    if split is not None and split in subs:
        return subs[split]
    if len(subs) > 1 and split is not None:
        raise InputError(f"holds the data files of {', '.join(subs)} in subfolders, none for split '{split}' (use --split)", folder)
    return next(iter(subs.values()), None)  # the only one (or, finding whether there is a part at all, the first)


BEIR_PART_FORMATS = (".parquet", ".arrow", ".json", ".tsv", ".csv")
"""Besides BEIR's ``.jsonl``, the forms a part may take as one file in a BEIR-like folder (a corpus
saved with ``to_parquet``, ``queries.tsv`` of ``qid<TAB>text`` lines): read as a dataset file's part
is, as long as the folder holds one form of it."""


def _beir_part_file(path: Path, name: str) -> Path | None:
    """``name.jsonl`` (plain or compressed), else the one file ``name.parquet`` / ``.arrow`` /
    ``.json`` / ``.tsv`` / ``.csv`` (the last three plain or compressed); two of those is ambiguous."""
    jsonl = beir_file(path, f"{name}.jsonl")
    if jsonl is not None:
        return jsonl
    found = [f for suffix in BEIR_PART_FORMATS if (f := beir_file(path, f"{name}{suffix}")) is not None]
    if len(found) > 1:
        raise InputError(f"both {' and '.join(f.name for f in found)} are here; keep one", path)
    return found[0] if found else None


def beir_part(path: Path, name: str, split: str | None = None) -> Path | None:
    """A BEIR folder's ``corpus`` or ``queries``: ``name.jsonl`` (plain or compressed) or one file of
    another format (``_beir_part_file``), or else a folder of its shards (``_part_dir``). A download
    of BeIR/<set> holds both, the same data twice (``corpus.jsonl.gz`` beside the Parquet copy the
    hub added): the file, BEIR's own, is read."""
    return _beir_part_file(path, name) or _part_dir(path, name, split)


def _part_files(path: Path, split: str | None) -> list[Path] | None:
    """The shards of a BEIR part to read (None for a file): those of ``split`` when the shards are
    named by split and it is among them, otherwise all of them. Which queries a split has is said by
    its judgments, so the queries of other splits are read and not used (mteb names its queries'
    shards by split, BeIR by part: ``queries-00000-of-00001.parquet``)."""
    if not path.is_dir():
        return None
    files = _folder_shards(path)
    matches = [_SPLIT_SHARD.match(f.name) for f in files]
    if split is not None and all(matches) and split in {m.group("split") for m in matches if m}:
        return [f for f, m in zip(files, matches) if m and m.group("split") == split]
    return files


def is_beir_dir(path: Path) -> bool:
    """A folder with a corpus and queries, each a file (plain or compressed) or a folder of shards."""
    return path.is_dir() and all(
        any((path / f"{n}{form}{suffix}").is_file() for form in (".jsonl", *BEIR_PART_FORMATS) for suffix in ("", *COMPRESSED_SUFFIXES))
        or _part_dir(path, n) is not None
        for n in ("corpus", "queries")
    )


def _iter_documents(
    path: Path, display: str | None = None, *, ids_required: bool = True, files: list[Path] | None = None
) -> Iterator[tuple[tuple[str, int], Document]]:
    """((file, line), document) of a corpus file or a folder of corpus shards (``files``, when the
    caller chose them). A document without an id whose text came before is the same document (its id
    is made from the text) and is read once."""
    made_ids: set[str] = set()
    for part, name in _record_files(path, display, files=files):
        records = (
            iter_headerless_tsv(part, COLLECTION_COLUMNS, name) if is_collection_tsv(part) or _is_headerless_corpus_tsv(part)
            else _iter_records(part, (DOC_TEXT_FIELDS,), name)
        )
        for lineno, obj in records:
            doc, made = _read_document(obj, (name, lineno), ids_required=ids_required)
            if made and is_empty_document(doc):
                continue  # no id and no text: nothing to name, nothing to leave out
            if made:
                if doc.doc_id in made_ids:
                    continue
                made_ids.add(doc.doc_id)
            yield (name, lineno), doc


def _place(first: tuple[str, int], where: tuple[str, int]) -> str:
    """Where something was first seen, said from where it is seen again: 'line 3' or 'a.jsonl:3'."""
    return f"line {first[1]}" if first[0] == where[0] else f"{first[0]}:{first[1]}"


@dataclass
class _Corpus:
    """What one validating pass over a corpus found."""

    ids: set[str]
    by_hash: dict[str, str]
    """Text hash -> the first id with that text (a pairs file's positives find their document by text)."""
    empty_ids: list[str]
    """Documents with neither title nor text, in input order: left out, and counted."""


def _scan_corpus(path: Path, display: str | None = None, *, ids_required: bool = True, files: list[Path] | None = None) -> _Corpus:
    """Validate a corpus in one streaming pass: its ids, text hashes and empty documents."""
    ids: set[str] = set()
    empty: list[str] = []
    by_hash: dict[str, str] = {}
    first_seen: dict[str, tuple[str, int]] = {}
    for where, doc in _iter_documents(path, display, ids_required=ids_required, files=files):
        if doc.doc_id in first_seen:
            raise InputError(
                f"duplicate document id '{doc.doc_id}' (first seen on {_place(first_seen[doc.doc_id], where)}); ids must be unique",
                *where,
            )
        first_seen[doc.doc_id] = where
        if is_empty_document(doc):
            empty.append(doc.doc_id)
            continue
        ids.add(doc.doc_id)
        by_hash.setdefault(text_hash(doc.text), doc.doc_id)
    if not ids:
        raise InputError(
            f"the corpus has no document with text ({len(empty)} empty)" if empty else "the corpus is empty; it needs at least one document",
            display or path,
        )
    return _Corpus(ids, by_hash, empty)


def _stream_corpus(
    path: Path, display: str | None = None, *, ids_required: bool = True, files: list[Path] | None = None
) -> Iterator[Document]:
    """The corpus's documents with text, in input order (``_scan_corpus`` validated it)."""
    for _, doc in _iter_documents(path, display, ids_required=ids_required, files=files):
        if not is_empty_document(doc):
            yield doc


def _left_out(empty_ids: list[str], judgments: int = 0, missing_ids: list[str] | None = None,
              empty_positives: int = 0) -> dict[str, Any]:
    """``Dataset.left_out``: only the counts that are not zero. ``missing_ids``: one per judgment
    naming a document the corpus lacks."""
    out: dict[str, Any] = {}
    if empty_ids:
        out |= {"empty_documents": len(empty_ids), "empty_document_ids": empty_ids[:20], "judgments_on_empty_documents": judgments}
    if missing_ids:
        out |= {"judgments_on_missing_documents": len(missing_ids), "missing_document_ids": sorted(set(missing_ids))[:20]}
    if empty_positives:
        out["empty_positives"] = empty_positives
    return out


QRELS_QUERY_FIELDS = ("query-id", "query_id", "qid")
QRELS_DOC_FIELDS = ("corpus-id", "corpus_id", "doc_id", "docid", "pid")
QRELS_SCORE_FIELDS = ("score", "relevance", "rel", "label", "grade", "judgment")  # BEIR's and mteb's, then other datasets'


def _read_qrels_records(path: Path) -> list[tuple[int, str, str, float]]:
    """MTEB's qrels (``qrels/<split>.jsonl``: ``{"query-id", "corpus-id", "score"}`` per line), or
    the same records in Parquet or Arrow shards (the hub's copies: ``qrels/test-00000-of-00001.parquet``)."""
    name = str(path)
    rows: list[tuple[int, str, str, float]] = []
    records = (iter_jsonl(path) if plain_name(path).endswith(".jsonl")
               else _iter_records(path, (QRELS_QUERY_FIELDS, QRELS_DOC_FIELDS, QRELS_SCORE_FIELDS), name))
    for lineno, obj in records:
        where = (name, lineno)
        qid = _field(obj, QRELS_QUERY_FIELDS, where, kind="id")
        did = _field(obj, QRELS_DOC_FIELDS, where, kind="id")
        assert qid is not None and did is not None
        key = next((n for n in QRELS_SCORE_FIELDS if n in obj), None)
        value = obj.get(key) if key is not None else None
        if value is None:
            raise InputError(f"missing field {_names(QRELS_SCORE_FIELDS)}" if key is None else f"field '{key}' is null", *where)
        try:
            score = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            raise InputError(f"field '{key}': {value!r} is not a number", *where) from None
        if not math.isfinite(score):
            raise InputError(f"field '{key}': {value!r} is not a finite number", *where)
        rows.append((lineno, qid, did, score))
    if not rows:
        raise InputError("no judgments: the file is empty", name)
    return rows


def _read_lotte_qas(path: Path) -> list[tuple[int, str, str, float]]:
    """LoTTE's judgments (``qas.<search|forum>.jsonl``: ``{"qid", "query", "answer_pids": [...]}``
    per line): every answer passage is a positive."""
    name = str(path)
    rows: list[tuple[int, str, str, float]] = []
    for lineno, obj in iter_jsonl(path):
        where = (name, lineno)
        qid = _field(obj, ("qid",), where, kind="id")
        assert qid is not None
        pids = obj.get("answer_pids")
        if not isinstance(pids, list):
            raise InputError(f"field 'answer_pids' must be a list of passage ids, got {type(pids).__name__}", *where)
        for i, pid in enumerate(pids):
            did = _field({f"answer_pids[{i}]": pid}, (f"answer_pids[{i}]",), where, kind="id")
            assert did is not None
            rows.append((lineno, qid, did, 1.0))
    if not rows:
        raise InputError("no judgments: no line has an answer passage", name)
    return rows


@dataclass
class RunRanking:
    """An external ranking (``--run FILE``): each query's documents, best first, as corpus rows."""

    rows: dict[str, list[int]]
    unknown_documents: int
    """Lines naming a document the corpus lacks (left out, so the documents after it move up one rank;
    more than MISSING_JUDGED_SHARE of the mined queries' lines is an error)."""
    lines: int


RUN_KEEP = 4
"""A query's ranked documents are cut to ``RUN_KEEP`` x depth while the file is read, so memory holds
what mining can use, not the whole run (MS MARCO runs rank 1,000 documents a query)."""


def read_run_file(path: Path, queries: set[str], doc_row: dict[str, int], depth: int, display: str | None = None) -> RunRanking:
    """A ranking another retriever wrote: TREC's run format (``qid Q0 docid rank score tag``, as
    Pyserini, Anserini and trec_eval write and read it), colbert-ai's ``ranking.tsv`` (``qid<TAB>pid
    <TAB>rank<TAB>score``) or MS MARCO's ``qid<TAB>pid<TAB>rank``; plain or compressed. Documents are
    ordered as trec_eval orders them, by score (highest first; ties by the file's rank, then id), or by
    rank when the file has no score. Only ``queries`` are kept, each to its best ``depth``. A document
    listed twice for one query, a rank or score that is no number, or lines of different widths are
    errors naming the line."""
    name = display or str(path)
    ranked: dict[str, dict[str, tuple[float, int, int]]] = {}  # qid -> docid -> (-score, rank, line)

    def best(docs: dict[str, tuple[float, int, int]]) -> list[str]:
        """A query's documents in trec_eval's order (score, then rank, then id), its best ``depth``."""
        return sorted(docs, key=lambda d: (docs[d][0], docs[d][1], d))[:depth]

    width = 0
    lines = wanted = unknown = 0
    first_unknown: tuple[int, str] | None = None
    with _open_bytes(path, name) as fh:
        for lineno, raw in _lines(fh, name):
            line = raw.rstrip(b" \t\r\n")
            if not line.strip():
                continue
            text = _decode(line, name, lineno)
            parts = text.split("\t") if "\t" in text else text.split()
            if width == 0:
                if len(parts) not in (3, 4, 6):
                    raise InputError(f"expected a run line: 6 fields (TREC: qid Q0 docid rank score tag), 4 (qid, docid, rank, "
                                     f"score: colbert-ai's ranking.tsv) or 3 (qid, docid, rank: MS MARCO's), found {len(parts)}",
                                     name, lineno)
                width = len(parts)
            elif len(parts) != width:
                raise InputError(f"{len(parts)} fields, but the first line has {width}", name, lineno)
            qid, did = parts[0].strip(), parts[2 if width == 6 else 1].strip()
            rank_text = parts[3 if width == 6 else 2].strip()
            score_text = parts[4].strip() if width == 6 else parts[3].strip() if width == 4 else None
            if not qid or not did:
                raise InputError("a query or document id is empty", name, lineno)
            try:
                rank = int(rank_text)
            except ValueError:
                raise InputError(f"rank {rank_text!r} is not a whole number", name, lineno) from None
            score = 0.0
            if score_text is not None:
                try:
                    score = float(score_text)
                except ValueError:
                    raise InputError(f"score {score_text!r} is not a number", name, lineno) from None
                if not math.isfinite(score):
                    raise InputError(f"score {score_text!r} is not a finite number", name, lineno)
            lines += 1
            if qid not in queries:
                continue
            wanted += 1
            if did not in doc_row:
                unknown += 1
                first_unknown = first_unknown or (lineno, did)
                continue
            docs = ranked.setdefault(qid, {})
            if did in docs:
                raise InputError(f"document '{did}' is ranked twice for query '{qid}' (first on line {docs[did][2]})", name, lineno)
            docs[did] = (-score, rank, lineno)
            if len(docs) > RUN_KEEP * depth:
                ranked[qid] = {d: docs[d] for d in best(docs)}
    if lines == 0:
        raise InputError("the run file ranks no document", name)
    if first_unknown is not None and unknown > MISSING_JUDGED_SHARE * wanted:
        raise InputError(f"document '{first_unknown[1]}' is not in the corpus" + (f" (nor are those of {unknown - 1} more lines)"
                         if unknown > 1 else "") + f": is this run over this corpus? (up to {MISSING_JUDGED_SHARE:.0%} of the "
                         "mined queries' lines may name documents it lacks; they are left out)", name, first_unknown[0])
    rows = {qid: [doc_row[d] for d in best(docs)] for qid, docs in ranked.items()}
    return RunRanking(rows, unknown, lines)


def read_qrels(path: Path) -> list[tuple[int, str, str, float]]:
    """Read a BEIR qrels TSV (or MTEB's JSONL): (line, query_id, doc_id, score). The TSV's header
    line is optional."""
    if plain_name(path).startswith("qas.") and plain_name(path).endswith(".jsonl"):
        return _read_lotte_qas(path)
    if plain_name(path).endswith((".jsonl", ".parquet", ".arrow")) or _head(path, 4) == PARQUET_MAGIC:
        return _read_qrels_records(path)
    rows: list[tuple[int, str, str, float]] = []
    name = str(path)
    with _open_bytes(path, name) as fh:
        try:
            data = fh.read()
        except DECOMPRESS_ERRORS as exc:
            raise _decompress_failure(exc, name) from None
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    order: tuple[int, int, int] | None = None  # (query, document, score) columns, when a header row names them
    width = 0
    for lineno, raw in enumerate(data.split(b"\n"), 1):
        # Trailing whitespace (a tab at the end of every line, CRLF) is not a field.
        line = raw.rstrip(b" \t\r")
        if not line.strip():
            continue
        text = _decode(line, name, lineno)
        # Tab-separated (BEIR, MS MARCO); a line without a tab is split on spaces (TREC qrels files).
        parts = text.split("\t") if "\t" in text else text.split()
        if len(parts) not in (3, 4):
            raise InputError(
                f"expected 3 tab-separated fields (query-id, corpus-id, score) or 4 (TREC: query-id, iteration, "
                f"corpus-id, score), found {len(parts)}", name, lineno
            )
        if not rows and order is None and is_qrels_header(parts):
            # A header is recognised by what it says, never by a failed parse; the columns it names
            # are read by name (a corpus-id column first is still the document), the rest by position.
            order, width = qrels_header_order(parts), len(parts)
            continue
        if order is not None and len(parts) != width:
            raise InputError(f"{len(parts)} fields, but the header row has {width}", name, lineno)
        # TREC style without a header: qid iteration docid score.
        parts = [parts[i] for i in (order or ((0, 2, 3) if len(parts) == 4 else (0, 1, 2)))]
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


_QRELS_ROLES = (
    {"query-id", "query_id", "queryid", "qid", "query", "topic"},
    {"corpus-id", "corpus_id", "doc-id", "doc_id", "docid", "docno", "pid"},
    set(QRELS_SCORE_FIELDS),
)
"""The names a qrels header row gives its (query, document, score) columns."""
QRELS_HEADER_WORDS = set().union(*_QRELS_ROLES)


def is_qrels_header(parts: list[str]) -> bool:
    """A header line names its columns: at least two of its fields are known column names."""
    return sum(p.strip().lower() in QRELS_HEADER_WORDS for p in parts) >= 2


def qrels_header_order(parts: list[str]) -> tuple[int, int, int]:
    """The (query, document, score) columns of a qrels header row: each role's named column, else
    its place in BEIR's order (three columns) or TREC's (four: query, iteration, document, score)."""
    names = [p.strip().lower() for p in parts]
    default = (0, 2, 3) if len(parts) == 4 else (0, 1, 2)
    found = [next((i for i, n in enumerate(names) if n in role), None) for role in _QRELS_ROLES]
    order = tuple(f if f is not None else d for f, d in zip(found, default))
    if len(set(order)) < 3:  # a role named where another is expected by position: positions, as before
        return default
    return order  # type: ignore[return-value]


QRELS_DIRS = ("qrels", "default")
"""Where a BEIR folder keeps its judgments: ``qrels/`` (BEIR's, MTEB's), or ``default/`` (the hub's
name for a dataset's unnamed configuration: mteb's uploads whose corpus and queries are configurations
of their own)."""


def _qrels_forms(path: Path, split: str) -> list[list[Path]]:
    """Every form the judgments of ``split`` take in a BEIR folder: ``qrels/<split>.tsv`` (BEIR's),
    ``qrels/<split>.jsonl`` (MTEB's), shards named by split (``qrels/test-00000-of-00001.parquet``), or a
    subfolder of shards named by split (the hub's Parquet conversion: ``default/test/0000.parquet``)."""
    forms: list[list[Path]] = []
    for folder in (path / d for d in QRELS_DIRS):
        if not folder.is_dir():
            continue
        forms.extend([f] for f in (beir_file(folder, f"{split}.tsv"), beir_file(folder, f"{split}.jsonl")) if f is not None)
        shards = [f for f in sorted(folder.iterdir(), key=lambda p: p.name)
                  if _is_shard(f) and (m := _SPLIT_SHARD.match(f.name)) and m.group("split") == split]
        if shards:
            forms.append(shards)
        if (folder / split).is_dir() and (files := shard_files(folder / split)):
            forms.append(files)
    return forms


def _qrels_splits(path: Path) -> list[str]:
    """The splits a BEIR folder has judgments for, in any of ``_qrels_forms``."""
    splits: set[str] = set()
    for folder in (path / d for d in QRELS_DIRS):
        if not folder.is_dir():
            continue
        for f in folder.iterdir():
            if _is_shard(f) and (m := _SPLIT_SHARD.match(f.name)):
                splits.add(m.group("split"))
            elif f.is_file() and plain_name(f).endswith((".tsv", ".jsonl")):
                splits.add(plain_name(f).rsplit(".", 1)[0])
        splits.update(_shard_dirs(folder))  # the hub's conversion: default/test/0000.parquet
    return sorted(splits)


def _display(files: list[Path]) -> str:
    return files[0].name if len(files) == 1 else f"{files[0].parent.name}/ ({len(files)} shards)"


def load_beir(path: Path, split: str) -> Dataset:
    """Validate a BEIR folder's corpus, queries and judgments of ``split``: ``qrels/<split>.tsv`` as
    BEIR ships them (MTEB's: ``qrels/<split>.jsonl``; each may be compressed), or as the hub keeps
    them, each part a folder of Parquet (or JSON Lines, Arrow) shards (``_part_dir``, ``_qrels_forms``)."""
    forms = _qrels_forms(path, split)
    if len(forms) > 1:
        raise InputError(
            f"the judgments of split '{split}' are here in {len(forms)} forms ({', '.join(_display(f) for f in forms)}); keep one",
            forms[0][0].parent,
        )
    if not forms:
        hint = "" if any((path / d).is_dir() for d in QRELS_DIRS) else (
            "; BEIR's copies on the hub keep them in a dataset of their own (BeIR/<name>-qrels): put its <split>.tsv "
            "files in qrels/"
        )
        raise InputError(
            f"no qrels for split '{split}'; available splits: {', '.join(_qrels_splits(path)) or '(none)'} (use --split){hint}",
            path / "qrels",
        )
    corpus_path, queries_path = beir_part(path, "corpus"), beir_part(path, "queries", split)
    assert corpus_path is not None and queries_path is not None  # load_input checked is_beir_dir
    return _load_judged("BEIR", path, split, corpus_path, queries_path, forms[0])


def is_msmarco_dir(path: Path) -> bool:
    """MS MARCO's and colbert-ai's layout: a folder with ``collection.tsv`` (plain or gzipped)."""
    return path.is_dir() and any((path / f"collection.tsv{suffix}").is_file() for suffix in ("", *COMPRESSED_SUFFIXES))


def load_msmarco(path: Path, split: str) -> Dataset:
    """Validate an MS MARCO folder: ``collection.tsv`` (``pid<TAB>passage[<TAB>title]``),
    ``queries.<split>.tsv`` (``qid<TAB>query``) and ``qrels.<split>.tsv`` (TREC's ``qid 0 pid 1``,
    or ``qrels/<split>.tsv``), as MS MARCO ships them and colbert-ai reads them; or LoTTE's
    ``questions.<split>.tsv`` and ``qas.<split>.jsonl`` (splits ``search`` and ``forum``); each may be
    gzipped."""
    corpus_path = beir_file(path, "collection.tsv")
    assert corpus_path is not None  # load_input checked is_msmarco_dir
    queries_path = beir_file(path, f"queries.{split}.tsv")
    qrels_path = beir_file(path, f"qrels.{split}.tsv") or (
        beir_file(path / "qrels", f"{split}.tsv") if (path / "qrels").is_dir() else None
    )
    if queries_path is None and qrels_path is None:  # LoTTE's: questions.search.tsv + qas.search.jsonl
        queries_path, qrels_path = beir_file(path, f"questions.{split}.tsv"), beir_file(path, f"qas.{split}.jsonl")
        if queries_path is not None and qrels_path is not None:
            return _load_judged("LoTTE", path, split, corpus_path, queries_path, [qrels_path])
        queries_path = qrels_path = None
    if queries_path is None or qrels_path is None:
        names = [plain_name(p) for p in path.iterdir()]
        with_queries = {n[len("queries."):-len(".tsv")] for n in names if n.startswith("queries.") and n.endswith(".tsv")}
        with_qrels = {n[len("qrels."):-len(".tsv")] for n in names if n.startswith("qrels.") and n.endswith(".tsv")}
        if (path / "qrels").is_dir():
            with_qrels |= {plain_name(q).removesuffix(".tsv") for q in (path / "qrels").iterdir()}
        with_queries |= {n[len("questions."):-len(".tsv")] for n in names if n.startswith("questions.") and n.endswith(".tsv")}
        with_qrels |= {n[len("qas."):-len(".jsonl")] for n in names if n.startswith("qas.") and n.endswith(".jsonl")}
        missing = f"queries.{split}.tsv" if queries_path is None else f"qrels.{split}.tsv"
        raise InputError(
            f"an MS MARCO folder (collection.tsv) without {missing}; available splits: "
            f"{', '.join(sorted(with_queries & with_qrels)) or '(none)'} (use --split)", path,
        )
    return _load_judged("MS MARCO", path, split, corpus_path, queries_path, [qrels_path])


BEIR_QUERY_ID_FIELDS = ("_id", "id", "query_id", "qid")
BEIR_QUERY_TEXT_FIELDS = ("text", "query")  # BEIR's, or Tevatron's {"query_id", "query"}


def _iter_queries(path: Path, files: list[Path] | None) -> Iterator[tuple[tuple[str, int], dict[str, Any]]]:
    """((file, line), record) of a queries file (BEIR's JSON Lines, MS MARCO's TSV) or folder of shards
    (``files``)."""
    if not path.is_dir() and plain_name(path).endswith(".tsv"):
        records: Iterator[tuple[int, dict[str, Any]]] = iter_headerless_tsv(path, QUERY_COLUMNS)
        yield from (((str(path), lineno), obj) for lineno, obj in records)
        return
    for part, name in _record_files(path, None, files=files):
        records = iter_jsonl(part, name) if plain_name(part).endswith(".jsonl") else _iter_records(
            part, (BEIR_QUERY_ID_FIELDS, BEIR_QUERY_TEXT_FIELDS), name)
        yield from (((name, lineno), obj) for lineno, obj in records)


MISSING_JUDGED_SHARE = 0.01
"""Up to this share of a split's judgments may name documents the corpus lacks (BEIR's ArguAna
judges one, test-free-speech-debate-yfsdfkhbwu-con03b, that its corpus does not hold): they are
left out of mining and counted (an evaluation still counts them, as pytrec_eval does: relevant, never
retrieved). More means the qrels do not belong to this corpus."""


def _load_judged(
    layout: str, path: Path, split: str, corpus_path: Path, queries_path: Path, qrels_files: list[Path]
) -> Dataset:
    """A corpus, queries and judgments (BEIR's or MS MARCO's; each a file, or a folder of shards),
    validated against each other."""
    corpus_files, queries_files = _part_files(corpus_path, None), _part_files(queries_path, split)
    scanned = _scan_corpus(corpus_path, files=corpus_files)
    qrels_rows = [((str(f), lineno), qid, did, score) for f in qrels_files for lineno, qid, did, score in read_qrels(f)]
    qrels_fp = [file_fingerprint(qrels_files[0])] if len(qrels_files) == 1 else _files_fingerprint(qrels_files[0].parent, qrels_files)
    fp = fingerprint(
        "beir" if layout == "BEIR" else layout, FOLDER_READER, split, *_files_fingerprint(corpus_path, corpus_files),
        *_files_fingerprint(queries_path, queries_files),
        *qrels_fp,
    )
    return _judged_dataset(
        f"{layout} {path} (split {split})", fp, fingerprint("corpus", FOLDER_READER, *_files_fingerprint(corpus_path, corpus_files)),
        scanned, lambda: _stream_corpus(corpus_path, files=corpus_files), _iter_queries(queries_path, queries_files),
        qrels_rows, corpus_path.name, queries_path.name,
    )


def _judged_dataset(
    description: str, fp: str, corpus_fp: str, scanned: _Corpus, corpus_factory: Callable[[], Iterator[Document]],
    query_records: Iterable[tuple[tuple[str, int], dict[str, Any]]],
    qrels_rows: list[tuple[tuple[str, int], str, str, float]], corpus_name: str, queries_name: str,
) -> Dataset:
    """A corpus (scanned), queries and judgments checked against each other: every judged query is
    in the queries, and all but a few judged documents (``MISSING_JUDGED_SHARE``) in the corpus."""
    doc_ids, empty_ids = scanned.ids, set(scanned.empty_ids)
    wanted = {qid for _, qid, _, _ in qrels_rows}
    queries: dict[str, Query] = {}
    for where, obj in query_records:
        qid = _field(obj, BEIR_QUERY_ID_FIELDS, where, kind="id")
        text = _text_or_blank(obj, BEIR_QUERY_TEXT_FIELDS, where)  # blank or null: reported empty-text, not mined
        assert qid is not None
        if qid in queries:
            raise InputError(f"duplicate query id '{qid}'; ids must be unique", *where)
        if qid in wanted:
            queries[qid] = Query(qid, text)
    qrels: list[tuple[str, str, float]] = []
    missing: list[tuple[tuple[str, int], str]] = []  # (where, id): judgments on documents the corpus does not have
    unavailable: list[tuple[str, str, float]] = []  # those and the judgments on empty documents
    for where, qid, did, score in qrels_rows:
        if qid not in queries:
            raise InputError(f"query id '{qid}' is not in {queries_name}", *where)
        if did in empty_ids:
            unavailable.append((qid, did, score))  # a document with no text: nothing to train on, dropped with it
            continue
        if did not in doc_ids:
            missing.append((where, did))
            unavailable.append((qid, did, score))
            continue
        qrels.append((qid, did, score))
    if len(missing) > MISSING_JUDGED_SHARE * len(qrels_rows):
        where, did = missing[0]
        raise InputError(
            f"corpus id '{did}' is not in {corpus_name}"
            + (f" (nor are the documents of {len(missing) - 1} more judgments: is this the corpus these qrels judge?)"
               if len(missing) > 1 else ""),
            *where,
        )
    # Every judged query stays, in qrels order: one whose judgments were all on empty documents is
    # counted by mine as having no positive, not dropped unseen.
    ordered = [queries[q] for q in dict.fromkeys(qid for _, qid, _, _ in qrels_rows)]
    return Dataset(
        description=description,
        fingerprint=fp,
        corpus_fingerprint=corpus_fp,
        num_docs=len(doc_ids),
        queries=ordered,
        qrels=qrels,
        _corpus_factory=corpus_factory,
        left_out=_left_out(scanned.empty_ids, len(unavailable) - len(missing), [d for _, d in missing]),
        unavailable_qrels=unavailable,
    )


# --------------------------------------------------------------------------- pairs


PAIR_COLUMNS = (QUERY_FIELDS, POSITIVE_FIELDS)
LABEL_FIELDS = ("label", "labels")
"""A labeled pair's relevance (sentence-transformers' ``labeled-pair`` rows: query, passage, label;
RAGatouille's labeled pairs; ``labeled-list`` rows: a list of passages and a list of labels)."""


def _relevance(value: Any, label: str, where: tuple[str, int]) -> str:
    """``relevant``, ``not_relevant`` or ``skip`` (null: unjudged) for a labeled pair's label: a
    bool, a number (above 0: relevant, as qrels grades are read) or a word `hardneg label import`
    reads (1/0, yes/no, true/false, relevant/not relevant)."""
    from hardneg.label import NOT_RELEVANT, RELEVANT, parse_label

    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and float(value).is_integer():
        return RELEVANT if value > 0 else NOT_RELEVANT  # a grade, as qrels scores are read
    parsed = parse_label(value)  # null, a bool or a word
    if parsed is None:
        raise InputError(f"field '{label}': {value!r} is not a relevance label (1/0, true/false, relevant/not relevant, "
                         "or a whole-number grade)", *where)
    return parsed


def _row_labels(obj: dict[str, Any], count: int, where: tuple[str, int]) -> list[str] | None:
    """The relevance of each of a pairs row's ``count`` positive-field texts, or None when the row
    has no label: ``label`` applies to all of them, ``labels`` is a list of one per text. A row with
    negatives is a triplet (some tools tag those with ``label: 0``, meaning the negative): its
    positive stays a positive."""
    if _negative_fields(obj):
        return None
    if "label" in obj:
        return [_relevance(obj["label"], "label", where)] * count
    if "labels" in obj and obj["labels"] is not None:
        labels = obj["labels"]
        if not isinstance(labels, list) or len(labels) != count:
            raise InputError(f"field 'labels' must be a list of {count} labels, one per text of the row's passages", *where)
        return [_relevance(v, f"labels[{i}]", where) for i, v in enumerate(labels)]
    return None


# Columns that are never a query's or a positive's text: a two-column file naming one of them is no pair.
_NOT_PAIR_TEXT = {*NEGATIVE_FIELDS, *DPR_NEGATIVE_FIELDS, *QUERY_ID_FIELDS, *POSITIVE_ID_FIELDS, *PASSAGE_ID_FIELDS,
                  "score", "label", "labels", "relevance", "answers"}


def pair_roles(row: dict[str, Any]) -> tuple[str, str] | None:
    """The (query, positive) columns of a file with exactly two text columns whose names hardneg
    does not both know (sentence1/sentence2, title/abstract, query/document): as sentence-transformers'
    ``mine_hard_negatives`` reads a dataset, the first column is the query and the second the positive,
    unless one of them has a name hardneg knows, which keeps its role. None when the row's columns name
    a query and a positive already, or are not two texts."""
    columns = [c for c in row if c not in LABEL_FIELDS]  # a labeled pair's label goes with its two texts
    if any(c in QUERY_FIELDS for c in columns) and any(c in POSITIVE_FIELDS for c in columns):
        return None
    if len(columns) != 2 or _NOT_PAIR_TEXT & set(columns) or not all(isinstance(row[c], str) for c in columns):
        return None
    first, second = columns
    if second in QUERY_FIELDS or first in POSITIVE_FIELDS:
        return second, first
    return first, second


def _pair_records(part: Path, name: str, roles_read: dict[str, tuple[str, str]]) -> Iterator[tuple[int, dict[str, Any]]]:
    """The rows of one pairs file, a two-column file's renamed to query and positive (see
    ``pair_roles``, decided on its first row; every row must have both columns); any other file is
    read as it is, its columns checked. Not for CSV or TSV: there, two unknown names may be a
    headerless file's first row, which would be lost without a word; the reader's error says how to
    name the columns."""
    kind = _record_kind(part)
    if kind in ("csv", "tsv"):
        yield from _iter_records(part, PAIR_COLUMNS, name)
        return
    rows = _iter_records(part, (), name)
    first = next(rows, None)
    if first is None:
        yield from _iter_records(part, PAIR_COLUMNS, name)  # an empty file: its reader says so
        return
    roles = pair_roles(first[1])
    if roles is None:
        if kind == "json" or all(any(c in first[1] for c in names) for names in PAIR_COLUMNS):
            yield first  # JSON rows are checked one by one, as they are read
            yield from rows
        else:
            yield from _iter_records(part, PAIR_COLUMNS, name)  # a table without the columns: its reader says which
        return
    roles_read[name] = roles
    query, positive = roles
    for lineno, obj in itertools.chain([first], rows):
        missing = next((c for c in roles if c not in obj), None)
        if missing is not None:
            raise InputError(
                f"missing field '{missing}'; found fields: {', '.join(list(obj)[:12]) or '(none)'} (the first row's two "
                f"fields, '{query}' and '{positive}', were read as the query and the positive: every row needs both)",
                name, lineno,
            )
        yield lineno, {"query": obj[query], "positive": obj[positive], **{k: obj[k] for k in LABEL_FIELDS if k in obj}}


def _stable_id(prefix: str, text: str) -> str:
    return f"{prefix}-{hashlib.blake2b(normalize_text(text).encode(), digest_size=8).hexdigest()}"


def load_pairs(
    path: Path, corpus: Path | None = None, display: str | None = None, corpus_display: str | None = None,
    split: str = "train",
) -> Dataset:
    """Validate a (query, positive) pairs file plus an optional corpus file.

    Positives are always part of the corpus: a positive whose text matches a corpus document (after
    normalisation) takes that document's id, any other positive is added to the corpus. Repeated
    queries (same ``query_id``, or same text when there is no id) are one query with several positives.
    Ids that are not given are stable hashes of the normalised text.
    """
    name = display or str(path)
    corpus_ids: set[str] = set()
    by_hash: dict[str, str] = {}
    empty_ids: list[str] = []
    if corpus is not None:
        scanned = _scan_corpus(corpus, corpus_display, ids_required=False)
        corpus_ids, by_hash, empty_ids = scanned.ids, scanned.by_hash, scanned.empty_ids
    num_corpus = len(corpus_ids)
    extra_docs: dict[str, Document] = {}
    extra_line: dict[str, tuple[str, int]] = {}
    queries: dict[str, Query] = {}
    qrels: dict[tuple[str, str], None] = {}
    judged_out: dict[tuple[str, str], None] = {}  # labeled pairs judged not relevant: qrels rows scored 0
    in_corpus: dict[str, tuple[str, tuple[str, int]]] = {}  # positive id given in --corpus -> (text hash, where), checked below
    rows = 0
    empty_positives = 0
    files = _record_files(path, display, split)

    def add_document(did: str, text: str, what: str, where: tuple[str, int]) -> None:
        """A document the pairs file brings (a positive, or a negative pooled without --corpus)."""
        if did in extra_docs and normalize_text(extra_docs[did].text) != normalize_text(text):
            raise InputError(
                f"{what} id '{did}' appears with two different texts (first on {_place(extra_line[did], where)})", *where
            )
        if did not in extra_docs:
            extra_docs[did] = Document(did, "", text)
            extra_line[did] = where
            by_hash.setdefault(text_hash(text), did)

    def place(text: str, did: str | None, what: str, where: tuple[str, int]) -> str:
        """The id of a text the row names (its own, a --corpus document's of the same text, or one made
        from the text): a --corpus document is checked against the text below, any other is added."""
        did = did or by_hash.get(text_hash(text)) or _stable_id("d", text)
        if did in corpus_ids:
            in_corpus.setdefault(did, (text_hash(text), where))
        else:
            add_document(did, text, what, where)
        return did

    roles_read: dict[str, tuple[str, str]] = {}  # file -> (query column, positive column), for two-column files
    records = ((part_name, lineno, obj) for part, part_name in files
               for lineno, obj in _pair_records(part, part_name, roles_read))
    for part_name, lineno, obj in records:
        where = (part_name, lineno)
        rows += 1
        qtext = _text_or_blank(obj, QUERY_FIELDS, where)  # blank or null: reported empty-text, not mined
        squad_row = _is_squad_row(obj)
        if squad_row and _unanswerable(obj):
            obj = {**obj, "context": "", "negative": obj["context"]}
        positives = _positives(obj, where)
        qid = (_field(obj, QUERY_ID_FIELDS + (("id",) if squad_row else ()), where, kind="id", required=False)
               or _stable_id("q", qtext))  # a SQuAD row's id is its question's
        if qid in queries and queries[qid].text != qtext:
            raise InputError(f"query id '{qid}' appears with two different texts", *where)
        queries.setdefault(qid, Query(qid, qtext))
        labels = _row_labels(obj, len(positives), where)
        for i, (ptext, pid) in enumerate(positives):
            if labels is not None and labels[i] != "relevant":
                # A labeled pair's passage judged not relevant (or unjudged): a document of the corpus,
                # and for a "not relevant" one a confirmed negative of the query, never a positive.
                if not is_blank(ptext):
                    did = place(ptext, pid, "document", where)
                    if labels[i] == "not_relevant":
                        judged_out[(qid, did)] = None
                continue
            if is_blank(ptext):
                if pid is not None and pid in corpus_ids:
                    qrels[(qid, pid)] = None  # named by id: the --corpus document of that id is the positive
                    continue
                empty_positives += 1  # nothing to train on; the query is reported no-positive if it has no other
                continue
            qrels[(qid, place(ptext, pid, "positive", where))] = None
        if corpus is None:
            for ntext, nid in _pool_documents(obj, where):
                add_document(nid or by_hash.get(text_hash(ntext)) or _stable_id("d", ntext), ntext, "document", where)
    if rows == 0:
        raise InputError("no pairs found; each line needs 'query' and 'positive'", name)
    if in_corpus and corpus is not None:
        # A positive named by id must be the corpus document of that id: a different text would be
        # silently replaced by the corpus's. One streaming pass over the corpus, for those ids only.
        for doc in _stream_corpus(corpus, corpus_display, ids_required=False):
            expected = in_corpus.get(doc.doc_id)
            if expected is not None and expected[0] != text_hash(doc_text(doc.title, doc.text)) and expected[0] != text_hash(doc.text):
                raise InputError(
                    f"field 'positive': positive id '{doc.doc_id}' is in {corpus_display or corpus} with a different text; "
                    "give the corpus text, or another id",
                    *expected[1],
                )
    extra = list(extra_docs.values())

    def corpus_stream() -> Iterator[Document]:
        if corpus is not None:
            yield from _stream_corpus(corpus, corpus_display, ids_required=False)
        yield from extra

    # The reading rules are part of the identity: since v2 a row's negatives join the corpus, so an
    # embeddings cache of the same file read by the old rules (positives only) is not reused.
    parts: list[Any] = ["pairs", PAIRS_READER, *_files_fingerprint(path, [f for f, _ in files])]
    if corpus is not None:
        parts.extend(_files_fingerprint(corpus))
    roles = sorted(set(roles_read.values()))
    return Dataset(
        description=f"pairs {name}" + (f" + corpus {corpus_display or corpus}" if corpus else "")
        + "".join(f" (two columns: '{q}' read as the query, '{p}' as the positive)" for q, p in roles),
        fingerprint=fingerprint(*parts),
        corpus_fingerprint=fingerprint(*parts),  # the pairs file adds documents of its own
        num_docs=num_corpus + len(extra),
        queries=list(queries.values()),
        qrels=[(q, d, 1.0) for q, d in qrels] + [(q, d, 0.0) for q, d in judged_out if (q, d) not in qrels],
        _corpus_factory=corpus_stream,
        left_out=_left_out(empty_ids, empty_positives=empty_positives),
    )


def _files_fingerprint(path: Path, files: list[Path] | None = None) -> list[str]:
    """A file's content hash; a folder's shards (``files``: those read) by name and content (the
    same as before for a file)."""
    if not path.is_dir():
        return [file_fingerprint(path)]
    return ["shards", *(f"{f.name}:{file_fingerprint(f)}" for f in (files if files is not None else shard_files(path)))]


DATASET_FILE_KEYS = ("corpus", "queries", "qrels")


def load_dataset_file(path: Path, split: str, display: str | None = None) -> Dataset:
    """A dataset laid out in no folder convention hardneg knows (MIRACL's and Mr. TyDi's topics and
    qrels beside a corpus folder, a TREC collection), named by a TOML file::

        corpus = "miracl-corpus-v1.0-sw"                       # a file or a folder of shards
        queries = "topics/topics.miracl-v1.0-sw-{split}.tsv"   # JSON Lines, or qid<TAB>text lines
        qrels = "qrels/qrels.miracl-v1.0-sw-{split}.tsv"       # BEIR's, TREC's or MTEB's JSON Lines

    Paths are relative to the file (absolute and ``~/`` paths too); ``{split}`` is replaced by
    ``--split``. Read and validated as a BEIR folder's three parts are."""
    from hardneg.config_file import tomllib  # tomli before Python 3.11

    name = display or str(path)
    try:
        spec = tomllib.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        raise InputError(f"not valid UTF-8 (byte {exc.start}); a dataset file is TOML text", name) from None
    except tomllib.TOMLDecodeError as exc:
        raise InputError(f"not valid TOML ({exc})", name) from None
    unknown = [k for k in spec if k not in DATASET_FILE_KEYS]
    if unknown:
        raise InputError(f"unknown key {', '.join(repr(k) for k in unknown)}; a dataset file names {', '.join(DATASET_FILE_KEYS)}", name)
    parts: dict[str, Path] = {}
    for key in DATASET_FILE_KEYS:
        value = spec.get(key)
        if not isinstance(value, str) or not value.strip():
            got = "missing" if value is None else f"got {type(value).__name__ if not isinstance(value, str) else 'an empty string'}"
            raise InputError(f"'{key}' must be the path of the {key} (a string; relative paths start at this file's folder), {got}", name)
        part = path.parent / Path(value.replace("{split}", split)).expanduser()  # an absolute path stays itself
        if not part.exists():
            raise InputError(f"'{key}' = {value!r}: {part} does not exist" + (f" (split '{split}'; use --split)" if "{split}" in value else ""), name)
        if key != "corpus" and part.is_dir():
            raise InputError(f"'{key}' = {value!r}: {part} is a folder; name the file", name)
        parts[key] = part
    refuse_stream(parts["corpus"], parts["corpus"])
    return _load_judged("dataset file", path, split, parts["corpus"], parts["queries"], [parts["qrels"]])


QA_JSON_KEYS = ("queries", "corpus", "relevant_docs")
"""LlamaIndex's ``EmbeddingQAFinetuneDataset`` (``generate_qa_embedding_pairs(...).save_json``), the
three dicts sentence-transformers' ``InformationRetrievalEvaluator`` takes, as one JSON object."""


def _qa_json(path: Path, name: str) -> tuple[dict[str, Any], bytes] | None:
    """The file's object and bytes when the whole file is one ``QA_JSON_KEYS`` object, else None.
    A JSON Lines file costs one parsed line; only a file that names ``relevant_docs`` is read whole."""
    with _open_bytes(path, name) as fh:
        for _, raw in _lines(fh, name):
            line = raw.strip()
            if not line:
                continue
            if not line.startswith(b"{"):
                return None
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                obj = None  # pretty-printed (or broken: the reader that takes the file says so)
            if isinstance(obj, dict):  # a JSON Lines record, or the whole object on one line
                if not all(k in obj for k in QA_JSON_KEYS):
                    return None
                data = raw + _rest(fh, name)
                return (obj, data) if not data[len(raw):].strip() else None
            data = raw + _rest(fh, name)
            if b'"relevant_docs"' not in data:
                return None
            try:
                whole = orjson.loads(data)
            except orjson.JSONDecodeError:
                return None
            return (whole, data) if isinstance(whole, dict) and all(k in whole for k in QA_JSON_KEYS) else None
    return None


def _json_key_line(data: bytes, section: str, key: str) -> int:
    """The line of ``key`` inside ``section`` of a one-object JSON file (for error messages)."""
    start = max(data.find(orjson.dumps(section)), 0)
    found = re.compile(re.escape(orjson.dumps(key)) + rb"\s*:").search(data, start)
    return data.count(b"\n", 0, found.start() if found else start) + 1


def load_qa_json(path: Path, display: str | None = None, found: tuple[dict[str, Any], bytes] | None = None) -> Dataset:
    """A LlamaIndex ``EmbeddingQAFinetuneDataset`` file: ``{"queries": {qid: text}, "corpus": {id:
    text}, "relevant_docs": {qid: [id, ...]}}`` (a document may be an object with ``text`` and
    ``title``; the judgments of a query may be ``{id: grade}``, a grade of 0 or below judging the
    document not relevant, as a qrels row scored 0 does). One file is one split; every judged query is mined."""
    name = display or str(path)
    found = found or _qa_json(path, name)
    assert found is not None
    obj, data = found
    for key in QA_JSON_KEYS:
        if not isinstance(obj[key], dict):
            raise InputError(f"'{key}' must be an object mapping ids to {'its documents' if key == 'relevant_docs' else 'texts'}, "
                             f"got {type(obj[key]).__name__}", name, _json_key_line(data, key, key))

    def where(section: str, key: str) -> tuple[str, int]:
        return name, _json_key_line(data, section, key)

    def checked(section: str, key: str, read: Callable[[tuple[str, int]], Any]) -> Any:
        """``read`` a record of ``section``; its error names the entry and its line (found only then)."""
        try:
            return read((name, 0))
        except InputError as exc:
            reason = exc.reason.replace("field '_id'", "the id").replace("field 'text'", "the text").replace("field 'title'", "the title")
            raise InputError(f"{section}[{key!r}]: {reason}", *where(section, key)) from None

    docs: list[Document] = []
    seen: dict[str, str] = {}
    for raw_id, value in obj["corpus"].items():
        if isinstance(value, str) or value is None:
            record: dict[str, Any] = {"_id": raw_id, "text": value}
        elif isinstance(value, dict):
            record = {**value, "_id": raw_id}
        else:
            raise InputError(f"corpus[{raw_id!r}] must be a text or an object with 'text' (and 'title'), got {type(value).__name__}",
                             *where("corpus", raw_id))
        doc, _ = checked("corpus", raw_id, lambda here: _read_document(record, here))  # noqa: B023 (called at once)
        if doc.doc_id in seen:
            raise InputError(f"corpus ids {seen[doc.doc_id]!r} and {raw_id!r} are the same id once stripped of spaces",
                             *where("corpus", raw_id))
        seen[doc.doc_id] = raw_id
        docs.append(doc)
    empty = [d.doc_id for d in docs if is_empty_document(d)]
    ids = {d.doc_id for d in docs} - set(empty)
    if not ids:
        raise InputError(f"the corpus has no document with text ({len(empty)} empty)" if empty
                         else "'corpus' is empty; it needs at least one document", name, _json_key_line(data, "corpus", "corpus"))
    scanned = _Corpus(ids, {}, empty)
    queries: list[dict[str, Any]] = []
    query_keys: dict[str, str] = {}
    for raw_id, value in obj["queries"].items():
        record = {"_id": raw_id, "text": value}
        qid = checked("queries", raw_id, lambda here: _field(record, ("_id",), here, kind="id"))  # noqa: B023 (called at once)
        if qid in query_keys:
            raise InputError(f"query ids {query_keys[qid]!r} and {raw_id!r} are the same id once stripped of spaces",
                             *where("queries", raw_id))
        query_keys[qid] = raw_id
        queries.append({"_id": qid, "text": checked("queries", raw_id, lambda here: _text_or_blank(record, ("text",), here))})  # noqa: B023
    qrels_rows: list[tuple[tuple[str, int], str, str, float]] = []
    # Each judged query's line, found by one forward scan (its keys are in file order): a search from
    # the section's start for every key would read the file once per query.
    pos = max(data.find(b'"relevant_docs"'), 0)
    line = data.count(b"\n", 0, pos) + 1
    for raw_qid, judged in obj["relevant_docs"].items():
        key_at = re.compile(re.escape(orjson.dumps(raw_qid)) + rb"\s*:").search(data, pos)
        if key_at is not None:  # not found: written with other escapes (ensure_ascii); the section's line then
            line += data.count(b"\n", pos, key_at.start())
            pos = key_at.end()
        here = (name, line)
        pairs: list[tuple[Any, Any]]
        if isinstance(judged, (str, int)) and not isinstance(judged, bool):
            pairs = [(judged, 1)]
        elif isinstance(judged, list):
            pairs = [(d, 1) for d in judged]
        elif isinstance(judged, dict):
            pairs = list(judged.items())
        else:
            raise InputError(f"relevant_docs[{raw_qid!r}] must be a list of document ids (or an object of id: grade), "
                             f"got {'null' if judged is None else type(judged).__name__}", *here)
        qid = raw_qid.strip()
        for did, grade in pairs:
            if isinstance(did, int) and not isinstance(did, bool):
                did = str(did)
            if not isinstance(did, str) or not did.strip():
                raise InputError(f"relevant_docs[{raw_qid!r}] holds {did!r}, not a document id", *here)
            if isinstance(grade, bool) or not isinstance(grade, (int, float)) or not math.isfinite(grade):
                raise InputError(f"relevant_docs[{raw_qid!r}][{did!r}] must be a number (a relevance grade), got {grade!r}", *here)
            qrels_rows.append((here, qid, did.strip(), float(grade)))
    if not qrels_rows:
        raise InputError("'relevant_docs' judges no document: nothing to mine or evaluate", *where("relevant_docs", "relevant_docs"))
    fp = fingerprint("qa-json", FOLDER_READER, file_fingerprint(path))
    return _judged_dataset(
        f"QA JSON {path}", fp, fingerprint("corpus-qa-json", FOLDER_READER, fp), scanned,
        lambda: (d for d in docs if not is_empty_document(d)),
        (((name, 0), q) for q in queries),  # checked above: the line is never shown
        qrels_rows, f"{Path(name).name}'s corpus", f"{Path(name).name}'s queries",
    )


ARTIFACT_READERS = {
    "embeddings": " (`hardneg index` and `hardneg mine` read an embeddings artifact)",
    "index": " (`hardneg mine` reads an index)",
    "mine-run": " (`hardneg export`, `report` and `select` read a mining run)",
    "export": " (`hardneg train` reads an export)",
    "model": " (a checkpoint is given as --model)",
}


def load_input(
    path: Path, split: str = "train", corpus: Path | None = None, display: str | None = None,
    corpus_display: str | None = None,
) -> Dataset:
    """Detect the input's layout (BEIR folder or pairs file) and load it. A pipe is refused: its
    content could not be fingerprinted after it is read (the caller keeps a copy, see pipeline)."""
    if not path.exists():
        raise InputError("no such file or directory", display or path)
    refuse_stream(path, display or path)
    if path.is_dir() and (kind := artifact_kind(path)) is not None:
        raise InputError(
            f"is a hardneg '{kind}' artifact (written by `hardneg {WRITER.get(kind, kind)}`), not input data: give the BEIR or "
            f"MS MARCO folder or the pairs file it was made from{ARTIFACT_READERS.get(kind, '')}", display or path,
        )
    if path.is_file() and plain_name(path).endswith(".toml"):
        if corpus is not None:
            raise InputError("--corpus applies to a pairs file; a dataset file names its own corpus", display or path)
        return load_dataset_file(path, split, display)
    if path.is_file() and _record_kind(path) == "json" and (qa := _qa_json(path, display or str(path))) is not None:
        if corpus is not None:
            raise InputError("--corpus applies to a pairs file; this file holds its own corpus", display or path)
        return load_qa_json(path, display, qa)
    if is_beir_dir(path) or is_msmarco_dir(path):
        if corpus is not None:
            raise InputError("--corpus applies to a pairs file; a BEIR or MS MARCO folder has its own corpus", path)
        return load_beir(path, split) if is_beir_dir(path) else load_msmarco(path, split)
    if path.is_dir():
        # One part of a BEIR folder found, the other not (both: is_beir_dir above). A corpus/ folder
        # alone may be one subset of a dataset repository (corpus/, triplet/): BEIR's only with qrels.
        half = {n: _beir_part_file(path, n) is not None
                or (_part_dir(path, n) is not None and any((path / d).is_dir() for d in QRELS_DIRS)) for n in ("corpus", "queries")}
        if any(half.values()):
            have = next(n for n in half if half[n])
            lack = next(n for n in half if not half[n])
            there = path / f"{lack}.jsonl"
            why = (f" ({there.name} is a link to {os.readlink(there)}, which does not exist)" if there.is_symlink() and not there.exists()
                   else f" ({there.name} is a folder, not a file)" if there.is_dir() else "")
            raise InputError(
                f"a BEIR folder with {have} but no {lack}{why}: it needs {lack}.jsonl (or .jsonl.gz; or one {lack}.parquet, .arrow, .json, .tsv or .csv), or a {lack}/ folder "
                f"holding its data files (.parquet, .jsonl, .arrow)", display or path,
            )
    if path.is_dir() and not shard_files(path, split) and (path / split).is_dir() and shard_files(path / split):
        # The hub's Parquet conversion keeps a subset's splits in subfolders (pair/train/0000.parquet).
        path, display = path / split, str(Path(display) / split) if display else None
    if path.is_dir() and not shard_files(path, split):
        # A dataset repository from the hub keeps each subset's shards in a subfolder (pair/, triplet/).
        subsets = list(_shard_dirs(path))
        raise InputError(
            (f"holds no data files itself; its subfolders {', '.join(subsets[:8])} do: point at one of them"
             + (" (or name a split with --split)" if SPLIT_NAMES & set(subsets) else "")
             if subsets else
             "not a BEIR folder (needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv, or corpus/ and queries/ folders "
             "of shards as the hub keeps them), nor an MS MARCO folder "
             "(collection.tsv, queries.<split>.tsv, qrels.<split>.tsv), nor a folder of pairs files (.parquet, "
             ".arrow, .jsonl, .csv, .tsv: a dataset's shards), nor a hardneg artifact; another layout is read through a "
             "dataset file (a .toml naming its corpus, queries and qrels)"),
            display or path,
        )
    if corpus is not None:
        where = corpus_display or corpus
        refuse_stream(corpus, where)
        if not corpus.exists():
            raise InputError("no such file", where)
        if corpus.is_dir() and not shard_files(corpus):
            raise InputError(f"a folder without data files (looked for {', '.join(SHARD_SUFFIXES)})", where)
        if not corpus.is_file() and not corpus.is_dir():
            raise InputError("not a file", where)
    return load_pairs(path, corpus, display, corpus_display, split)
