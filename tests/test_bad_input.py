"""Bad input never crashes: one `Error: file:line: ...` line, exit 1, and no artifact left behind."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.cli import app

runner = CliRunner()


def _beir(root: Path, corpus: bytes, queries: bytes | None = None, qrels: bytes | None = None) -> Path:
    (root / "qrels").mkdir(parents=True)
    (root / "corpus.jsonl").write_bytes(corpus)
    (root / "queries.jsonl").write_bytes(queries if queries is not None else b'{"_id": "q1", "text": "alpha"}\n')
    (root / "qrels" / "train.tsv").write_bytes(qrels if qrels is not None else b"query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    return root


GOOD_DOCS = b'{"_id": "d1", "text": "alpha beta"}\n{"_id": "d2", "text": "gamma delta"}\n'

# (name, corpus bytes, queries bytes or None, qrels bytes or None, file, line, message part)
CASES = [
    ("malformed-json", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": \n', None, None, "corpus.jsonl", 2, "malformed JSON"),
    ("truncated-json", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "te', None, None, "corpus.jsonl", 2, "malformed JSON"),
    ("missing-field", b'{"_id": "d1", "text": "a"}\n{"_id": "d2"}\n', None, None, "corpus.jsonl", 2, "missing field 'text'"),
    ("missing-id", b'{"text": "a"}\n', None, None, "corpus.jsonl", 1, "missing field '_id'"),
    ("wrong-type", b'{"_id": "d1", "text": ["a"]}\n', None, None, "corpus.jsonl", 1, "field 'text' must be a string"),
    ("not-an-object", b'["d1", "a"]\n', None, None, "corpus.jsonl", 1, "expected a JSON object"),
    ("duplicate-id", b'{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', None, None, "corpus.jsonl", 2, "duplicate document id 'd1'"),
    ("empty-text", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "   "}\n', None, None, "corpus.jsonl", 2, "empty text"),
    ("invalid-utf8", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "caf\xe9"}\n', None, None, "corpus.jsonl", 2, "not valid UTF-8"),
    ("empty-corpus", b"\n\n", None, None, "corpus.jsonl", None, "the corpus is empty"),
    ("unknown-qrels-doc", GOOD_DOCS, None, b"query-id\tcorpus-id\tscore\nq1\td9\t1\n", "train.tsv", 2, "corpus id 'd9' is not in corpus.jsonl"),
    ("unknown-qrels-query", GOOD_DOCS, None, b"query-id\tcorpus-id\tscore\nq1\td1\t1\r\nq7\td1\t1\r\n", "train.tsv", 3, "query id 'q7' is not in queries.jsonl"),
    ("bad-qrels-score", GOOD_DOCS, None, b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\tyes\n", "train.tsv", 3, "field 'score': 'yes' is not a number"),
    ("qrels-fields", GOOD_DOCS, None, b"query-id\tcorpus-id\tscore\nq1 d1 1\n", "train.tsv", 2, "expected 3 tab-separated fields"),
    ("duplicate-query", GOOD_DOCS, b'{"_id": "q1", "text": "a"}\n{"_id": "q1", "text": "b"}\n', None, "queries.jsonl", 2, "duplicate query id 'q1'"),
]


@pytest.mark.parametrize(("corpus", "queries", "qrels", "file", "line", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_beir_input(tmp_path, corpus, queries, qrels, file, line, message):
    root = _beir(tmp_path / "data", corpus, queries, qrels)
    result = runner.invoke(app, ["mine", str(root), "--model", "hashing", "--out", str(tmp_path / "run")])
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert err.count("\n") == 0, err
    location = f"{file}:{line}: " if line is not None else f"{file}: "
    assert err.startswith("Error: ") and location in err and message in err, err
    assert "Traceback" not in result.output
    assert not (tmp_path / "run").exists()
    assert not list(tmp_path.glob("run.*"))


def test_bom_and_crlf_are_accepted(tmp_path):
    root = _beir(
        tmp_path / "data",
        b'\xef\xbb\xbf{"_id": "d1", "text": "alpha beta"}\r\n{"_id": "d2", "text": "gamma"}\r\n',
        qrels=b"query-id\tcorpus-id\tscore\r\nq1\td1\t1\r\n",
    )
    result = runner.invoke(app, ["mine", str(root), "--model", "hashing", "--min-rank", "0", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output


def test_missing_split_lists_the_available_ones(tmp_path):
    root = _beir(tmp_path / "data", GOOD_DOCS)
    result = runner.invoke(app, ["mine", str(root), "--split", "dev", "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert "no qrels for split 'dev'; available splits: train" in result.stderr


def test_unreadable_input_path(tmp_path):
    result = runner.invoke(app, ["mine", str(tmp_path / "nope.jsonl"), "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {tmp_path / 'nope.jsonl'}: no such file or directory"


def test_a_directory_given_as_a_pairs_corpus_is_reported(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "a", "positive": "b"}) + "\n")
    (tmp_path / "corpus.jsonl").mkdir()
    result = runner.invoke(app, ["mine", str(pairs), "--corpus", str(tmp_path / "corpus.jsonl"), "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert "corpus.jsonl: not a file" in result.stderr


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"query": "a"}\n', "missing field 'positive'"),
        (b'{"query": "a", "positive": 3}\n', "field 'positive' must be a string"),
        (b'{"query": "a", "positive": ""}\n', "field 'positive' is empty"),
    ],
)
def test_bad_pairs_from_stdin_name_stdin_and_line(line, message):
    result = runner.invoke(app, ["mine", "-", "--model", "hashing", "--out", "run"], input=b'{"query": "q", "positive": "p"}\n' + line)
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: <stdin>:2: ")
    assert message in result.stderr


def test_parquet_pairs_with_wrong_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"question": ["a"], "answer": ["b"]}), tmp_path / "pairs.parquet")
    result = runner.invoke(app, ["mine", str(tmp_path / "pairs.parquet"), "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert "pairs.parquet: missing column 'query'; found columns: question, answer" in result.stderr


def test_previous_good_output_survives_a_failed_run(tmp_path):
    root = _beir(tmp_path / "data", GOOD_DOCS)
    ok = runner.invoke(app, ["mine", str(root), "--model", "hashing", "--min-rank", "0", "--out", "run"])
    assert ok.exit_code == 0, ok.output
    before = {p.name: p.read_bytes() for p in Path("run").iterdir()}
    (root / "corpus.jsonl").write_bytes(GOOD_DOCS + b"{broken\n")
    bad = runner.invoke(app, ["mine", str(root), "--model", "hashing", "--min-rank", "0", "--out", "run"])
    assert bad.exit_code == 1
    assert {p.name: p.read_bytes() for p in Path("run").iterdir()} == before


def test_usage_errors_exit_2(tmp_path):
    result = runner.invoke(app, ["mine", str(tmp_path), "--min-rank", "20", "--max-rank", "10", "--out", "run"])
    assert result.exit_code == 2
    assert "max-rank must be greater than min-rank" in result.stderr
    result = runner.invoke(app, ["mine", str(tmp_path), "--sampling", "best", "--out", "run"])
    assert result.exit_code == 2
