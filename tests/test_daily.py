"""What costs users work: annotations wiped, empty outputs, a closed pipe, stray files in training dirs."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.cli import app

runner = CliRunner()


@pytest.fixture
def run(tmp_path, tiny_beir) -> Path:
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "10",
                                 "--num-negatives", "3", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def test_reselecting_over_annotated_files_is_refused_and_keeps_the_labels(tmp_path, run):
    sel = tmp_path / "sel"
    assert runner.invoke(app, ["select", str(run), "--budget", "2", "--out", str(sel)]).exit_code == 0
    rows = list(csv.reader(open(sel / "to_label.csv", encoding="utf-8-sig", newline="")))
    rows[1][-1] = "relevant"
    rows[2][-1] = "not_relevant"
    with open(sel / "to_label.csv", "w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh).writerows(rows)
    before = (sel / "to_label.csv").read_bytes()
    result = runner.invoke(app, ["select", str(run), "--budget", "2", "--out", str(sel)])
    assert result.exit_code == 1 and "2 annotation(s)" in result.output and "label import" in result.output
    assert (sel / "to_label.csv").read_bytes() == before
    # Imported, the labels are safe; --force then re-selects (discarding the file's copy).
    assert runner.invoke(app, ["label", "import", str(sel / "to_label.csv"), "--run", str(run)]).exit_code == 0
    assert runner.invoke(app, ["select", str(run), "--budget", "2", "--out", str(sel), "--force"]).exit_code == 0


def test_an_export_with_no_row_is_an_error_naming_the_widest_nway(tmp_path, run):
    result = runner.invoke(app, ["export", str(run), "--format", "sentence-transformers", "--nway", "30", "--out", str(tmp_path / "e")])
    assert result.exit_code == 1 and "0 training rows" in result.output and "--nway 4" in result.output
    assert not (tmp_path / "e").exists()
    ok = runner.invoke(app, ["export", str(run), "--format", "sentence-transformers", "--nway", "30", "--out", str(tmp_path / "e"), "--allow-empty"])
    assert ok.exit_code == 0, ok.output


@pytest.mark.parametrize("args", [["mine", "{data}", "--model", "hashing", "--out", "{tmp}/r"],
                                  ["export", "{run}", "--format", "triplets", "--out", "-"],
                                  ["eval", "{data}", "--model", "hashing", "--split", "train"],
                                  ["cache", "list"]])
def test_a_reader_that_leaves_early_is_a_normal_end(tmp_path, tiny_beir, run, args):
    cmd = [sys.executable, "-m", "hardneg", *(a.format(data=tiny_beir, run=run, tmp=tmp_path) for a in args)]
    env = {**os.environ, "HARDNEG_DISABLE_PROGRESS": "1"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    proc.stdout.close()  # the reader is gone before the first byte
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err.decode()[-2000:]
    assert b"Traceback" not in err


@pytest.mark.parametrize(("fmt", "loader"), [("triplets", "json"), ("flagembedding", "json"), ("tevatron", "json"),
                                             ("sentence-transformers", "parquet")])
def test_a_trainer_pointed_at_an_export_directory_reads_only_training_rows(tmp_path, run, fmt, loader):
    datasets = pytest.importorskip("datasets")
    out = tmp_path / f"export-{fmt}"
    result = runner.invoke(app, ["export", str(run), "--format", fmt, "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["stats"]["rows"]
    loaded = datasets.load_dataset(loader, data_dir=str(out), split="train", cache_dir=str(tmp_path / "hf"))
    assert len(loaded) == rows
    # FlagEmbedding and Tevatron list the directory and read every *.json / *.jsonl file in it.
    data_files = [p for p in os.listdir(out) if p.endswith((".json", ".jsonl"))]
    assert "manifest.json" not in data_files


def test_tevatron_passages_carry_scores_for_distillation(tmp_path, run):
    assert runner.invoke(app, ["export", str(run), "--format", "tevatron", "--out", str(tmp_path / "t")]).exit_code == 0
    for line in (tmp_path / "t" / "train.jsonl").read_text().splitlines():
        row = json.loads(line)
        scores = [p["score"] for p in row["positive_passages"] + row["negative_passages"]]
        assert scores and all(isinstance(s, float) for s in scores)


@pytest.mark.parametrize("fmt", ["pylate-kd", "flagembedding", "colbert-scores", "sentence-transformers"])
def test_kd_and_fixed_width_formats_have_one_width_when_some_queries_are_short(tmp_path, tiny_beir, fmt):
    import pyarrow.parquet as pq

    # A narrow window leaves some queries short of the 5 negatives asked for.
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "6",
                                 "--num-negatives", "5", "--out", str(tmp_path / "run"), "--quiet", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["stats"]["queries_short"] > 0
    args = ["--format", "colbert", "--scores"] if fmt == "colbert-scores" else ["--format", fmt]
    result = runner.invoke(app, ["export", str(tmp_path / "run"), *args, "--out", str(tmp_path / "e"), "--json"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert stats["nway"] == 6 and stats["rows_dropped_short"] > 0 and stats["rows"] > 0
    out = tmp_path / "e"
    if fmt == "pylate-kd":
        widths = {len(r["document_ids"]) for r in pq.read_table(out / "train.parquet").to_pylist()}
    elif fmt == "flagembedding":
        widths = {1 + len(json.loads(x)["neg"]) for x in (out / "train.jsonl").read_text().splitlines()}
    elif fmt == "colbert-scores":
        widths = {len(json.loads(x)) - 1 for x in (out / "triples.train.colbert.jsonl").read_text().splitlines()}
    else:
        widths = {len(pq.read_table(out / "train.parquet").column_names) - 1}
    assert widths == {6}


def test_a_window_past_the_corpus_is_an_error_or_is_clipped_with_a_warning(tmp_path, tiny_beir):
    # tiny_beir has 40 documents: ranks 0-39.
    beyond = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "50", "--max-rank", "150",
                                 "--out", str(tmp_path / "none")])
    assert beyond.exit_code == 1 and "past the end of the corpus" in beyond.output and "40 documents" in beyond.output
    assert "raising --max-rank" not in beyond.output and not (tmp_path / "none").exists()
    clipped = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "30", "--max-rank", "150",
                                  "--num-negatives", "12", "--out", str(tmp_path / "run")])
    assert clipped.exit_code == 0, clipped.output
    assert "warning: --max-rank 150 is past the end of the corpus (40 documents): the window is [30, 40)" in clipped.stderr
    assert "ranks [30, 40)" in clipped.stdout
    assert "the window already reaches the end of the corpus" in clipped.stdout  # not "raise --max-rank"
    stats = json.loads((tmp_path / "run" / "manifest.json").read_text())["stats"]
    assert stats["window"] == [30, 40] and stats["rank_histogram"][-1]["to"] == 40


def test_the_mining_summary_says_what_ran_how_long_and_what_comes_next(tmp_path, tiny_beir):
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "20",
                                 "--sampling", "simans", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    header = result.stdout.splitlines()[0]
    assert header.startswith("model hashing · retriever dense · sampling simans (seed 42) · relative margin 0.05, fallback from rank 10 · "
                             "scores: embedding cosine")
    assert header.endswith(" s") and "no --cross-encoder" in header
    assert "eligible candidates (sampled from)" in result.stdout
    assert f"next: hardneg export {tmp_path / 'run'} --format colbert --out {tmp_path / 'run'}-colbert" in result.stdout
    again = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "20",
                                "--sampling", "simans", "--out", str(tmp_path / "run")])
    assert "up to date, reused" in again.stdout.splitlines()[0]
    stats = json.loads((tmp_path / "run" / "manifest.json").read_text())["stats"]
    assert stats["eligible_scores"]["p50"] <= stats["positive_scores"]["p50"]
    kd = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "pylate-kd", "--out", str(tmp_path / "kd")])
    assert "scores: embedding cosine of hashing, no --cross-encoder" in kd.stdout
    plain = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "triplets", "--out", str(tmp_path / "t")])
    assert "scores:" not in plain.stdout
