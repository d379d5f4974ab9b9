"""The export formats: one writer per format (and a line streamer for those `--out -` can stream),
with the validators that check what a trainer will read. Adding a format is a writer here and its
entry in `EXPORTERS` (and `STREAMERS`), plus its name in `config.EXPORT_FORMATS`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hardneg.artifacts import json_line
from hardneg.config import ExportConfig
from hardneg.errors import ArtifactError
from hardneg.readers import read_table
from hardneg.runs import RunQuery, iter_documents, text_passes
from hardneg.writes import write_table

COLBERT_TRIPLES = "triples.train.colbert.jsonl"
COLBERT_QUERIES = "queries.train.colbert.tsv"
COLBERT_CORPUS = "corpus.train.colbert.tsv"
QID_MAP = "qid_map.tsv"
PID_MAP = "pid_map.tsv"
MSMARCO_TRIPLES_FILE = "triples.train.tsv"
TRIPLETS_FILE = "triplets.jsonl"
ST_FILE = "train.parquet"
PYLATE_TRAIN = "train.parquet"
PYLATE_QUERIES = "queries.parquet"
PYLATE_DOCUMENTS = "documents.parquet"
FLAG_FILE = "train.jsonl"
TEVATRON_FILE = "train.jsonl"
NEMO_FILE = "train.jsonl"

_LINE_BREAKS = re.compile(r"[\t\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029]")


def clean_tsv_text(text: str) -> str:
    """Text safe for a TSV line: tabs and every kind of line break become spaces."""
    return _LINE_BREAKS.sub(" ", text)


@dataclass
class ExportStats:
    format: str
    nway: int
    queries: int = 0
    rows: int = 0
    queries_without_negatives: int = 0
    rows_dropped_short: int = 0
    score_transform: str = "none"
    positive_softmax_share: float | None = None
    """KD formats: the positive's mean share of softmax(scores) over a row (positive + nway - 1
    negatives). 1 / nway is uniform: the teacher says nothing; near 1 it says only "the positive"."""
    uniform_share: float | None = None
    score_source: str | None = None
    """Formats with scores: where they come from (the run's teacher, else its embedding model)."""
    synthetic_negatives: int = 0
    """Generated negatives (`--synthetic`) among the exported ones."""
    files: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _scored_rows(queries: list[RunQuery], nway: int | None, stats: ExportStats) -> list[tuple[RunQuery, int]]:
    """(query, positive index) rows for score-carrying formats: one per positive, negatives shared.
    With a fixed nway, queries with fewer than nway - 1 negatives are dropped (counted)."""
    rows = []
    for q in queries:
        if not q.negatives:
            stats.queries_without_negatives += 1
            continue
        if nway is not None and len(q.negatives) < nway - 1:
            stats.rows_dropped_short += len(q.positives)
            continue
        rows += [(q, i) for i in range(len(q.positives))]
    stats.queries = len({q.query_id for q, _ in rows})
    stats.rows = len(rows)
    return rows


def pair_rows(query: RunQuery, nway: int) -> tuple[list[tuple[str, list[str]]], int]:
    """Rows of (positive, negatives) for one query under the pairing rule; and the rows dropped."""
    pos, neg = query.positives, query.negatives
    if not pos or not neg:
        return [], 0
    if nway == 2:
        return [(pos[i % len(pos)], [neg[i % len(neg)]]) for i in range(max(len(pos), len(neg)))], 0
    need = nway - 1
    if len(neg) < need:
        return [], len(pos)
    return [(p, neg[:need]) for p in pos], 0


def _shuffled(rows: list[Any], config: ExportConfig) -> list[Any]:
    if not config.shuffle:
        return rows
    order = np.random.default_rng(config.seed).permutation(len(rows))
    return [rows[i] for i in order]


# --------------------------------------------------------------------------- formats


def _rows(queries: list[RunQuery], nway: int, stats: ExportStats) -> list[tuple[RunQuery, str, list[str]]]:
    rows: list[tuple[RunQuery, str, list[str]]] = []
    for q in queries:
        if not q.negatives:
            stats.queries_without_negatives += 1
        pairs, dropped = pair_rows(q, nway)
        stats.rows_dropped_short += dropped
        rows += [(q, p, n) for p, n in pairs]
    stats.queries = len({q.query_id for q, _, _ in rows})
    stats.rows = len(rows)
    return rows


def export_colbert(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    if config.scores:
        scored = _scored_rows(queries, stats.nway, stats)
        rows = [(q, q.positives[i], q.negatives[: stats.nway - 1]) for q, i in scored]
    else:
        rows = _rows(queries, stats.nway, stats)
    exported = list(dict.fromkeys(q.query_id for q, _, _ in rows))
    qid_of = {qid: i for i, qid in enumerate(exported)}
    by_id = {q.query_id: q for q in queries}
    pid_of: dict[str, int] = {}
    with open(out / COLBERT_CORPUS, "w", encoding="utf-8", newline="\n") as corpus, open(
        out / PID_MAP, "w", encoding="utf-8", newline="\n"
    ) as pid_map:
        pid_map.write("pid\tdoc_id\n")
        for pid, (did, text) in enumerate(iter_documents(emb_path)):
            corpus.write(f"{pid}\t{clean_tsv_text(text)}\n")
            pid_map.write(f"{pid}\t{did}\n")
            pid_of[did] = pid
    with open(out / COLBERT_QUERIES, "w", encoding="utf-8", newline="\n") as qf, open(
        out / QID_MAP, "w", encoding="utf-8", newline="\n"
    ) as qid_map:
        qid_map.write("qid\tquery_id\n")
        for qid in exported:
            qf.write(f"{qid_of[qid]}\t{clean_tsv_text(by_id[qid].text)}\n")
            qid_map.write(f"{qid_of[qid]}\t{qid}\n")
    with open(out / COLBERT_TRIPLES, "wb") as tf:
        for q, p, negs in _shuffled(rows, config):
            if config.scores:
                score_of = dict(zip(q.positives, q.positive_scores)) | dict(zip(q.negatives, q.negative_scores))
                line: list[Any] = [qid_of[q.query_id], *([pid_of[d], round(float(score_of[d]), 6)] for d in [p, *negs])]
            else:
                line = [qid_of[q.query_id], pid_of[p], *(pid_of[n] for n in negs)]
            tf.write(json_line(line))
    stats.files = [COLBERT_TRIPLES, COLBERT_QUERIES, COLBERT_CORPUS, QID_MAP, PID_MAP]
    validate_colbert(out, stats.nway, scores=config.scores)


def validate_colbert(directory: Path, nway: int, scores: bool = False) -> None:
    """Check the ColBERT invariants on written files; raises ArtifactError on the first violation."""

    def fail(file: str, line: int, what: str) -> None:
        raise ArtifactError(f"{directory / file}:{line}: {what}")

    num_docs = 0
    with open(directory / COLBERT_CORPUS, encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.endswith("\n"):
                fail(COLBERT_CORPUS, lineno, "line does not end with a newline")
            parts = line[:-1].split("\t")
            if len(parts) != 2:
                fail(COLBERT_CORPUS, lineno, f"expected 'pid<TAB>text', found {len(parts)} fields")
            if parts[0] != str(lineno - 1):
                fail(COLBERT_CORPUS, lineno, f"pid {parts[0]} is not the 0-based line number {lineno - 1}")
            if "\r" in parts[1]:
                fail(COLBERT_CORPUS, lineno, "text contains a carriage return")
            num_docs += 1
    qids: set[int] = set()
    with open(directory / COLBERT_QUERIES, encoding="utf-8", newline="") as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 2 or not parts[0].isdigit():
                fail(COLBERT_QUERIES, lineno, "expected 'qid<TAB>text' with an integer qid")
            qid = int(parts[0])
            if qid in qids:
                fail(COLBERT_QUERIES, lineno, f"duplicate qid {qid}")
            qids.add(qid)
    with open(directory / COLBERT_TRIPLES, "rb") as raw:
        for lineno, record in enumerate(raw, 1):
            row = orjson.loads(record)
            if scores:
                ok = isinstance(row, list) and len(row) == nway + 1 and type(row[0]) is int and all(
                    isinstance(x, list) and len(x) == 2 and type(x[0]) is int and isinstance(x[1], float) for x in row[1:]
                )
                if not ok:
                    fail(COLBERT_TRIPLES, lineno, f"expected [qid, [pid+, score], {nway - 1} x [pid-, score]], found {record[:80]!r}")
                row = [row[0], *(x[0] for x in row[1:])]
            elif not isinstance(row, list) or len(row) != nway + 1 or not all(type(x) is int for x in row):
                fail(COLBERT_TRIPLES, lineno, f"expected [qid, pid+, {nway - 1} x pid-] integers, found {record[:80]!r}")
            if row[0] not in qids:
                fail(COLBERT_TRIPLES, lineno, f"qid {row[0]} is not in {COLBERT_QUERIES}")
            if any(not 0 <= pid < num_docs for pid in row[1:]):
                fail(COLBERT_TRIPLES, lineno, f"a pid is outside the corpus (0..{num_docs - 1})")
            if row[1] in row[2:]:
                fail(COLBERT_TRIPLES, lineno, "the positive appears among the negatives")


def _iter_text_triples(queries: list[RunQuery], emb_path: Path, config: ExportConfig, stats: ExportStats) -> Iterator[tuple[str, str, str]]:
    rows = _rows(queries, 2, stats)
    for batch, texts in text_passes(_shuffled(rows, config), lambda r: [r[1], *r[2]], emb_path):
        for q, p, negs in batch:
            if p == negs[0]:
                raise ArtifactError(f"query {q.query_id}: positive {p} selected as a negative (internal error)")
            yield q.text, texts[p], texts[negs[0]]


def iter_triplets(queries: list[RunQuery], emb_path: Path, config: ExportConfig, stats: ExportStats) -> Iterator[bytes]:
    """``{"query", "positive", "negative"}`` objects (what ``datasets.load_dataset("json")`` and
    sentence-transformers read), or ``[query, positive, negative]`` arrays with ``triplet_rows = "arrays"``."""
    arrays = config.triplet_rows == "arrays"
    for query, positive, negative in _iter_text_triples(queries, emb_path, config, stats):
        row: Any = [query, positive, negative] if arrays else {"query": query, "positive": positive, "negative": negative}
        yield json_line(row)


def iter_msmarco_triples(queries: list[RunQuery], emb_path: Path, config: ExportConfig, stats: ExportStats) -> Iterator[bytes]:
    """MS MARCO's ``triples.train.small.tsv`` layout: ``query<TAB>positive<TAB>negative`` texts, one
    line each (tabs and line breaks inside a text become spaces)."""
    for query, positive, negative in _iter_text_triples(queries, emb_path, config, stats):
        yield f"{clean_tsv_text(query)}\t{clean_tsv_text(positive)}\t{clean_tsv_text(negative)}\n".encode()


def export_msmarco_triples(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    with open(out / MSMARCO_TRIPLES_FILE, "wb") as fh:
        for line in iter_msmarco_triples(queries, emb_path, config, stats):
            fh.write(line)
    stats.files = [MSMARCO_TRIPLES_FILE]


def export_triplets(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    with open(out / TRIPLETS_FILE, "wb") as fh:
        for line in iter_triplets(queries, emb_path, config, stats):
            fh.write(line)
    stats.files = [TRIPLETS_FILE]


def export_sentence_transformers(
    queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats
) -> None:
    rows = _shuffled(_rows(queries, stats.nway, stats), config)
    n = stats.nway - 1
    expected = ["query", "positive"] + [f"negative_{i + 1}" for i in range(n)]
    schema = pa.schema([(name, pa.string()) for name in expected])
    with pq.ParquetWriter(out / ST_FILE, schema, compression="zstd") as writer:
        # No empty row group: datasets' Parquet reader fails on one ("BatchSize must be greater than 0").
        if not rows:
            writer.write_table(schema.empty_table())
        for batch, texts in text_passes(rows, lambda r: [r[1], *r[2]], emb_path):
            columns: dict[str, list[str]] = {"query": [q.text for q, _, _ in batch], "positive": [texts[p] for _, p, _ in batch]}
            for i in range(n):
                columns[f"negative_{i + 1}"] = [texts[negs[i]] for _, _, negs in batch]
            writer.write_table(pa.table(columns, schema=schema), row_group_size=8192)
    stats.files = [ST_FILE]
    meta = pq.read_metadata(out / ST_FILE)
    if meta.schema.to_arrow_schema().names != expected or meta.num_rows != len(rows):
        raise ArtifactError(f"{out / ST_FILE}: columns / {meta.num_rows} rows do not match the {len(rows)} rows written")


def export_pylate_kd(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    """PyLate knowledge distillation: train (query_id, document_ids, scores) + queries + documents."""
    nway = stats.nway or None  # resolved: --nway, else the run's kd-depth, else variable
    rows = _shuffled(_scored_rows(queries, nway, stats), config)
    width = (nway - 1) if nway else None
    train: dict[str, list[Any]] = {"query_id": [], "document_ids": [], "scores": []}
    for q, i in rows:
        negs, neg_scores = q.negatives[:width], q.negative_scores[:width]
        train["query_id"].append(q.query_id)
        train["document_ids"].append([q.positives[i], *negs])
        train["scores"].append([float(q.positive_scores[i]), *map(float, neg_scores)])
    write_table(
        out / PYLATE_TRAIN,
        pa.table(train, schema=pa.schema([("query_id", pa.string()), ("document_ids", pa.list_(pa.string())), ("scores", pa.list_(pa.float32()))])),
    )
    used = dict.fromkeys(q.query_id for q, _ in rows)
    by_id = {q.query_id: q for q in queries}
    write_table(out / PYLATE_QUERIES, pa.table({"query_id": list(used), "text": [by_id[q].text for q in used]}))
    referenced = {d for ids in train["document_ids"] for d in ids}
    schema = pa.schema([("document_id", pa.string()), ("text", pa.string())])
    with pq.ParquetWriter(out / PYLATE_DOCUMENTS, schema, compression="zstd") as writer:
        batch: dict[str, list[str]] = {"document_id": [], "text": []}
        for did, text in iter_documents(emb_path):  # corpus order, streamed
            if did in referenced:
                batch["document_id"].append(did)
                batch["text"].append(text)
            if len(batch["document_id"]) >= 65536:
                writer.write_table(pa.table(batch, schema=schema))
                batch = {"document_id": [], "text": []}
        if batch["document_id"] or not referenced:
            writer.write_table(pa.table(batch, schema=schema))
    stats.files = [PYLATE_TRAIN, PYLATE_QUERIES, PYLATE_DOCUMENTS]
    validate_pylate_kd(out)


def validate_pylate_kd(directory: Path) -> None:
    """Every train row's ids resolve in queries/documents and has one score per document."""
    train = read_table(directory / PYLATE_TRAIN).to_pylist()
    query_ids = set(read_table(directory / PYLATE_QUERIES)["query_id"].to_pylist())
    doc_ids = set(read_table(directory / PYLATE_DOCUMENTS)["document_id"].to_pylist())
    for row_number, row in enumerate(train, 1):
        if row["query_id"] not in query_ids or not set(row["document_ids"]) <= doc_ids:
            raise ArtifactError(f"{directory / PYLATE_TRAIN}: row {row_number}: an id is missing from queries/documents")
        if len(row["scores"]) != len(row["document_ids"]) or len(row["document_ids"]) < 2:
            raise ArtifactError(f"{directory / PYLATE_TRAIN}: row {row_number}: needs a positive, negatives and one score each")


def _with_negatives(queries: list[RunQuery], stats: ExportStats) -> tuple[list[RunQuery], int | None]:
    """The queries that have negatives and, with a fixed width (``stats.nway``), at least nway - 1 of
    them (the others counted as dropped), and that width in negatives (None: each query's whole list)."""
    with_negatives = [q for q in queries if q.negatives]
    stats.queries_without_negatives = len(queries) - len(with_negatives)
    width = (stats.nway - 1) if stats.nway else None
    rows = [q for q in with_negatives if width is None or len(q.negatives) >= width]
    stats.rows_dropped_short = len(with_negatives) - len(rows)
    return rows, width


def _text_lines(queries: list[RunQuery], emb_path: Path, path: Path, config: ExportConfig, stats: ExportStats,
                record: Callable[[RunQuery, list[str], list[str], int | None], dict[str, Any]]) -> None:
    """One JSON line per query (``_with_negatives``' queries, shuffled) built by ``record(query,
    positive texts, negative texts, width)``; a positive text among its query's negatives is an
    internal error."""
    rows, width = _with_negatives(queries, stats)
    with open(path, "wb") as fh:
        for q, texts in _per_query(_shuffled(rows, config), width, emb_path, records=False):
            pos, neg = [texts[d] for d in q.positives], [texts[d] for d in q.negatives[:width]]
            if set(pos) & set(neg):
                raise ArtifactError(f"query {q.query_id}: a positive text is among its negatives (internal error)")
            fh.write(json_line(record(q, pos, neg, width)))
    stats.queries = stats.rows = len(rows)
    stats.files = [path.name]


def export_flagembedding(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    """FlagEmbedding: one JSON line per query {query, pos, neg, pos_scores, neg_scores}, each with
    exactly nway - 1 negatives (queries with fewer are dropped and counted: fixed-width KD rows)."""
    _text_lines(queries, emb_path, out / FLAG_FILE, config, stats, lambda q, pos, neg, width: {
        "query": q.text,
        "pos": pos,
        "neg": neg,
        "pos_scores": [round(float(x), 6) for x in q.positive_scores],
        "neg_scores": [round(float(x), 6) for x in q.negative_scores[:width]],
    })


def export_tevatron(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    """Tevatron: one JSON line per query {query_id, query, positive_passages, negative_passages}."""
    rows = [q for q in queries if q.negatives]
    stats.queries_without_negatives = len(queries) - len(rows)
    width = (stats.nway - 1) if stats.nway else None

    def passages(ids: list[str], scores: list[float], records: dict[str, Any]) -> list[dict[str, Any]]:
        # "score": the teacher's (or the embedding's) score, which Tevatron's train_distil reads.
        return [{"docid": d, "title": records[d][0], "text": records[d][1], "score": round(float(s), 6)} for d, s in zip(ids, scores)]

    with open(out / TEVATRON_FILE, "wb") as fh:
        for q, records in _per_query(_shuffled(rows, config), width, emb_path, records=True):
            record = {
                "query_id": q.query_id,
                "query": q.text,
                "positive_passages": passages(q.positives, q.positive_scores, records),
                "negative_passages": passages(q.negatives[:width], q.negative_scores[:width], records),
            }
            fh.write(json_line(record))
    stats.queries = stats.rows = len(rows)
    stats.files = [TEVATRON_FILE]


def export_nemo(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    """NeMo Automodel's inline retrieval rows (``make_retrieval_dataset`` on a JSONL file): one JSON
    line per query ``{"question_id", "query", "pos_doc": [texts], "neg_doc": [texts]}``, negatives in
    the run's order. NeMo takes the first ``n_passages - 1`` of ``neg_doc`` and cycles a shorter list,
    repeating negatives; with ``--nway N`` every row holds exactly N - 1 and queries with fewer are
    dropped and counted, as the fixed-width formats do."""
    _text_lines(queries, emb_path, out / NEMO_FILE, config, stats,
                lambda q, pos, neg, width: {"question_id": q.query_id, "query": q.text, "pos_doc": pos, "neg_doc": neg})


def export_labeled_pair(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    """sentence-transformers' ``labeled-pair`` rows (``mine_hard_negatives(output_format="labeled-pair")``):
    ``train.parquet`` with ``query, positive, label``, each query's positives (label 1) then its
    negatives (label 0), the column named ``positive`` holding both as ST's does; with ``--scores``
    a float ``score`` column instead of ``label`` (ST's ``output_scores``). What a cross-encoder
    trains on with ``BinaryCrossEntropyLoss`` (or ``MSELoss`` on the scores)."""
    with_negatives, _ = _with_negatives(queries, stats)  # nway 0: every query with a negative, all of them
    rows = _shuffled(with_negatives, config)
    label = "score" if config.scores else "label"
    schema = pa.schema([("query", pa.string()), ("positive", pa.string()), (label, pa.float32() if config.scores else pa.int64())])
    written = 0
    with pq.ParquetWriter(out / ST_FILE, schema, compression="zstd") as writer:
        if not rows:
            writer.write_table(schema.empty_table())
        for q, texts in _per_query(rows, None, emb_path, records=False):
            docs = [*q.positives, *q.negatives]
            values: list[Any] = ([*map(float, q.positive_scores), *map(float, q.negative_scores)] if config.scores
                                 else [1] * len(q.positives) + [0] * len(q.negatives))
            writer.write_table(pa.table({"query": [q.text] * len(docs), "positive": [texts[d] for d in docs], label: values},
                                        schema=schema))
            written += len(docs)
    stats.queries, stats.rows = len(rows), written
    stats.files = [ST_FILE]


def export_labeled_list(queries: list[RunQuery], emb_path: Path, out: Path, config: ExportConfig, stats: ExportStats) -> None:
    """sentence-transformers' ``labeled-list`` rows (``output_format="labeled-list"``): ``train.parquet``
    with ``query, positive, labels``, one row per (query, positive): ``positive`` is the list
    [positive, negative, ...], ``labels`` [1, 0, ...]; with ``--scores`` a ``scores`` list instead.
    What listwise cross-encoder losses read (``LambdaLoss``, ``ListNetLoss``). ``--nway N``: exactly
    N - 1 negatives a row, queries with fewer dropped and counted."""
    kept, width = _with_negatives(queries, stats)
    rows = _shuffled([(q, i) for q in kept for i in range(len(q.positives))], config)
    name = "scores" if config.scores else "labels"
    schema = pa.schema([("query", pa.string()), ("positive", pa.list_(pa.string())),
                        (name, pa.list_(pa.float32() if config.scores else pa.int64()))])
    with pq.ParquetWriter(out / ST_FILE, schema, compression="zstd") as writer:
        if not rows:
            writer.write_table(schema.empty_table())
        for batch, texts in text_passes(rows, lambda r: [r[0].positives[r[1]], *r[0].negatives[:width]], emb_path):
            columns: dict[str, list[Any]] = {"query": [], "positive": [], name: []}
            for q, i in batch:
                negs = q.negatives[:width]
                columns["query"].append(q.text)
                columns["positive"].append([texts[q.positives[i]], *(texts[d] for d in negs)])
                columns[name].append([float(q.positive_scores[i]), *map(float, q.negative_scores[:width])] if config.scores
                                     else [1] + [0] * len(negs))
            writer.write_table(pa.table(columns, schema=schema), row_group_size=8192)
    stats.queries, stats.rows = len(kept), len(rows)
    stats.files = [ST_FILE]


def _per_query(
    queries: list[RunQuery], width: int | None, emb_path: Path, records: bool
) -> Iterator[tuple[RunQuery, dict[str, Any]]]:
    """Each query with the texts of its positives and first ``width`` negatives, streamed in passes."""
    for batch, texts in text_passes(queries, lambda q: q.positives + q.negatives[:width], emb_path, records):
        for q in batch:
            yield q, texts


Exporter = Callable[[list[RunQuery], Path, Path, ExportConfig, ExportStats], None]
EXPORTERS: dict[str, Exporter] = {
    "colbert": export_colbert,
    "triplets": export_triplets,
    "sentence-transformers": export_sentence_transformers,
    "pylate-kd": export_pylate_kd,
    "flagembedding": export_flagembedding,
    "tevatron": export_tevatron,
    "nemo": export_nemo,
    "labeled-pair": export_labeled_pair,
    "labeled-list": export_labeled_list,
    "msmarco-triples": export_msmarco_triples,
}
STREAMERS: dict[str, Callable[[list[RunQuery], Path, ExportConfig, ExportStats], Iterator[bytes]]] = {
    "triplets": iter_triplets,
    "msmarco-triples": iter_msmarco_triples,
}
"""Formats that `--out -` can stream to stdout (one line per row)."""
ONE_NEGATIVE_FORMATS = frozenset(STREAMERS)
"""Formats with exactly one negative per row (nway 2)."""
