"""Export formats: invariants checked by reading the files back as the trainers do."""

from __future__ import annotations

import json
from pathlib import Path

import orjson
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.config import EmbedConfig, ExportConfig, IndexConfig, MineConfig
from hardneg.errors import ConfigError
from hardneg.export import RunQuery, clean_tsv_text, export, pair_rows
from hardneg.pipeline import run_mine
from tests.conftest import TINY_BEIR

runner = CliRunner()


@pytest.fixture
def run(tmp_path: Path) -> Path:
    run_mine(TINY_BEIR, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=2, max_rank=30, num_negatives=4))
    return tmp_path / "run"


def _read_tsv(path: Path) -> list[list[str]]:
    return [line.split("\t") for line in path.read_text(encoding="utf-8").split("\n") if line]


def _corpus_texts() -> dict[str, str]:
    out = {}
    for line in (TINY_BEIR / "corpus.jsonl").read_text().splitlines():
        doc = json.loads(line)
        out[doc["_id"]] = f"{doc['title']} {doc['text']}".strip()
    return out


def _qrels() -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for line in (TINY_BEIR / "qrels" / "train.tsv").read_text().splitlines()[1:]:
        q, d, _ = line.split("\t")
        out.setdefault(q, set()).add(d)
    return out


def test_colbert_files_follow_the_colbert_invariants(run, tmp_path):
    result = export(run, tmp_path / "colbert", ExportConfig())
    out = tmp_path / "colbert"
    corpus = _read_tsv(out / "corpus.train.colbert.tsv")
    assert [int(pid) for pid, _ in corpus] == list(range(len(corpus)))  # pid == 0-based line number
    assert len(corpus) == 40
    pid_map = {int(p): d for p, d in _read_tsv(out / "pid_map.tsv")[1:]}
    qid_map = {int(q): d for q, d in _read_tsv(out / "qid_map.tsv")[1:]}
    texts = _corpus_texts()
    assert all(text == texts[pid_map[int(pid)]] for pid, text in corpus)
    queries = {int(q): t for q, t in _read_tsv(out / "queries.train.colbert.tsv")}
    assert set(queries) == set(qid_map) and len(queries) == 8
    qrels = _qrels()
    lines = (out / "triples.train.colbert.jsonl").read_text().splitlines()
    assert len(lines) == result.stats.rows == 8 * 4  # one row per negative (one positive each... or cycled)
    for line in lines:
        qid, pos, neg = json.loads(line)
        query_id = qid_map[qid]
        assert pid_map[pos] in qrels[query_id]
        assert pid_map[neg] not in qrels[query_id]
        assert texts[pid_map[neg]] != texts[pid_map[pos]]


def test_colbert_nway_rows_have_fixed_width(run, tmp_path):
    export(run, tmp_path / "c4", ExportConfig(nway=4))
    rows = [json.loads(x) for x in (tmp_path / "c4" / "triples.train.colbert.jsonl").read_text().splitlines()]
    assert rows and all(len(r) == 5 for r in rows)
    # q6 has two positives: one row each.
    assert len(rows) == 9


def test_pairing_rule_uses_every_positive_and_negative():
    q = RunQuery("q", "t", ["p1", "p2"], ["n1", "n2", "n3"])
    rows, dropped = pair_rows(q, 2)
    assert rows == [("p1", ["n1"]), ("p2", ["n2"]), ("p1", ["n3"])] and dropped == 0
    rows, dropped = pair_rows(q, 5)
    assert rows == [] and dropped == 2
    rows, _ = pair_rows(RunQuery("q", "t", ["p1", "p2", "p3"], ["n1"]), 2)
    assert rows == [("p1", ["n1"]), ("p2", ["n1"]), ("p3", ["n1"])]


def test_tsv_text_is_cleaned_of_tabs_and_line_breaks():
    assert clean_tsv_text("a\tb\nc\r\nd\u2028e") == "a b c  d e"


def test_sentence_transformers_parquet_has_fixed_negative_columns(run, tmp_path):
    export(run, tmp_path / "st", ExportConfig(format="sentence-transformers"))
    table = pq.read_table(tmp_path / "st" / "train.parquet")
    assert table.column_names == ["query", "positive", "negative_1", "negative_2", "negative_3", "negative_4"]
    assert table.num_rows == 9
    rows = table.to_pylist()
    texts = set(_corpus_texts().values())
    for row in rows:
        negatives = [row[f"negative_{i}"] for i in range(1, 5)]
        assert row["positive"] not in negatives and all(n in texts for n in negatives)


def test_triplets_stream_to_stdout(run):
    result = runner.invoke(app, ["export", str(run), "--format", "triplets", "--out", "-"])
    assert result.exit_code == 0, result.output
    rows = [orjson.loads(x) for x in result.stdout.splitlines()]
    assert len(rows) == 32 and all(len(r) == 3 and r[1] != r[2] for r in rows)


def test_stdout_needs_the_triplets_format(run):
    result = runner.invoke(app, ["export", str(run), "--format", "colbert", "--out", "-"])
    assert result.exit_code == 2
    assert "use --format triplets" in result.stderr


def test_triplets_refuse_nway_above_two(run, tmp_path):
    with pytest.raises(ConfigError):
        export(run, tmp_path / "t", ExportConfig(format="triplets", nway=3))


def test_same_seed_gives_byte_identical_exports(tmp_path):
    outs = []
    for name in ("a", "b"):
        run_mine(TINY_BEIR, tmp_path / f"run-{name}", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=2, max_rank=30))
        export(tmp_path / f"run-{name}", tmp_path / f"out-{name}", ExportConfig())
        outs.append({p.name: p.read_bytes() for p in (tmp_path / f"out-{name}").iterdir() if p.name != "manifest.json"})
    assert outs[0] == outs[1]
    assert (tmp_path / "run-a" / "candidates.parquet").read_bytes() == (tmp_path / "run-b" / "candidates.parquet").read_bytes()


def test_export_refuses_to_overwrite_a_foreign_directory(run, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "mine")])
    assert result.exit_code == 1
    assert "is not a hardneg export" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
