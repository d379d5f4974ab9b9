"""Hostile and broken inputs: non-finite vectors, inputs that would vanish silently, text that
attacks the files people open. Each case ends in one `Error:` line naming where, or is neutralised."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardneg.artifacts import CORPUS_DIR, QUERIES_DIR, csv_cell, csv_value, is_blank
from hardneg.cli import app
from hardneg.config import EmbedConfig
from hardneg.embed import embed
from hardneg.errors import InputError, ModelError
from hardneg.inputs import load_input
from hardneg.writes import list_shards

runner = CliRunner()


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.output


def _error(args: list[str], *needles: str, code: int = 1) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == code, result.output
    err = result.stderr.strip().splitlines()[-1]  # progress logs may come first; the error is one line, last
    assert err.startswith("Error: ") and result.stderr.count("Error") == 1 and "Traceback" not in result.output, err
    for needle in needles:
        assert needle in err, err
    return err


def _embedded(tmp_path: Path, tiny_beir: Path) -> Path:
    _ok(["embed", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "emb"), "--quiet"])
    return tmp_path / "emb"


def _poke_vector(shard: Path, row: int, transform) -> None:
    table = pq.read_table(shard)
    vectors = np.array(table["embedding"].to_pylist(), dtype=np.float32)
    vectors[row] = transform(vectors[row])
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), vectors.shape[1])
    pq.write_table(table.set_column(table.schema.get_field_index("embedding"), "embedding", column), shard)


# --------------------------------------------------------------------------- vectors


@pytest.mark.parametrize(
    ("transform", "needle"),
    [(lambda v: np.where(np.arange(len(v)) == 0, np.nan, v), "NaN or infinity"),
     (lambda v: np.where(np.arange(len(v)) == 1, np.inf, v), "NaN or infinity"),
     (lambda v: v * 3.0, "norm is 3"),
     (lambda v: v * 0.0, "norm is 0")],
)
def test_index_refuses_a_non_finite_or_non_unit_document_vector_naming_shard_and_row(tmp_path, tiny_beir, transform, needle):
    emb = _embedded(tmp_path, tiny_beir)
    shard = list_shards(emb / CORPUS_DIR)[0]
    doc_id = pq.read_table(shard)["doc_id"][2].as_py()
    _poke_vector(shard, 2, transform)
    _error(["index", str(emb), "--out", str(tmp_path / "idx")], needle, shard.name, "row 2", repr(doc_id))
    assert not (tmp_path / "idx").exists()
    # ... and the one-liner, which builds the index on the way, too
    _error(["mine", str(emb), "--out", str(tmp_path / "run")], needle, "row 2")
    assert not (tmp_path / "run").exists()


def test_mine_refuses_a_nan_query_vector_naming_the_query(tmp_path, tiny_beir):
    emb = _embedded(tmp_path, tiny_beir)
    _ok(["index", str(emb), "--out", str(tmp_path / "idx"), "--quiet"])
    shard = list_shards(emb / QUERIES_DIR)[0]
    query_id = pq.read_table(shard)["query_id"][0].as_py()
    _poke_vector(shard, 0, lambda v: v * np.nan)
    _error(["mine", str(tmp_path / "idx"), "--out", str(tmp_path / "run")], "NaN", "row 0", repr(query_id))
    assert not (tmp_path / "run").exists()


def test_a_missing_query_shard_is_an_error_not_zero_queries(tmp_path, tiny_beir):
    emb = _embedded(tmp_path, tiny_beir)
    _ok(["index", str(emb), "--out", str(tmp_path / "idx"), "--quiet"])
    for shard in list_shards(emb / QUERIES_DIR):
        shard.unlink()
    _error(["mine", str(tmp_path / "idx"), "--out", str(tmp_path / "run")], "queries", "shards hold 0")


class NaNEncoder:
    """A model that overflows on one text, as fp16 on a GPU can."""

    dim = 4
    max_length = None
    precision = "fp16"
    fingerprint = "nan-encoder"

    def __init__(self, bad: str) -> None:
        from hardneg.models import ModelSpec

        self.bad = bad
        self.spec = ModelSpec("nan", None, "", "", "none")

    def encode(self, texts, kind):
        out = np.tile(np.array([0.5, 0.5, 0.5, 0.5], dtype=np.float32), (len(texts), 1))
        for i, t in enumerate(texts):
            if self.bad in t:
                out[i] = np.nan
        return out

    def close(self) -> None:
        return None


def test_embed_never_writes_a_non_finite_vector_and_names_the_texts(tmp_path, tiny_beir):
    first_doc = json.loads((tiny_beir / "corpus.jsonl").read_text().splitlines()[0])
    dataset = load_input(tiny_beir)
    with pytest.raises(ModelError, match=rf"'{first_doc['_id']}'.*--precision fp32"):
        embed(dataset, tmp_path / "emb", EmbedConfig(), encoder=NaNEncoder(first_doc["text"][:20]))
    assert not (tmp_path / "emb").exists()


# --------------------------------------------------------------------------- inputs that vanish


def _beir_with_qrels(tmp_path: Path, tiny_beir: Path, qrels: bytes) -> Path:
    (tiny_beir / "qrels" / "train.tsv").write_bytes(qrels)
    return tiny_beir


def test_qrels_lines_ending_in_a_tab_are_read(tmp_path, tiny_beir):
    lines = (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()
    _beir_with_qrels(tmp_path, tiny_beir, ("\t\n".join(lines) + "\t\n").encode())
    assert len(load_input(tiny_beir).qrels) == len(lines) - 1


def test_space_separated_trec_qrels_read_as_the_tab_separated_ones(tmp_path, tiny_beir):
    """TREC qrels files are often space-separated (`qid 0 docid grade`): the same judgments."""
    expected = load_input(tiny_beir).qrels
    lines = (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()[1:]
    trec = "".join(f"{q} 0 {d}  {g}\n" for q, d, g in (line.split("\t") for line in lines))
    _beir_with_qrels(tmp_path, tiny_beir, trec.encode())
    assert load_input(tiny_beir).qrels == expected
    _beir_with_qrels(tmp_path, tiny_beir, trec.replace(" 0 ", " ", 1).encode())  # 3 fields, no iteration
    assert load_input(tiny_beir).qrels == expected


def test_a_qrels_header_row_is_read_by_its_column_names(tmp_path, tiny_beir):
    """A header row says which column is which: corpus-id before query-id, or TREC's four columns
    under names, read the same judgments as BEIR's order; a row of another width than its header's
    is an error naming its line. Judgments kept as records may call their grade relevance or label."""
    expected = load_input(tiny_beir).qrels
    rows = [line.split("\t") for line in (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    for header, line in [("corpus-id\tquery-id\tscore", "{d}\t{q}\t{g}"), ("score\tqid\tdocid", "{g}\t{q}\t{d}"),
                         ("qid iter docno rel", "{q} 0 {d} {g}"), ("docid\tQ0\tqid\trelevance", "{d}\t0\t{q}\t{g}")]:
        _beir_with_qrels(tmp_path, tiny_beir, (header + "\n" + "".join(line.format(q=q, d=d, g=g) + "\n" for q, d, g in rows)).encode())
        assert load_input(tiny_beir).qrels == expected, header
    _beir_with_qrels(tmp_path, tiny_beir, b"corpus-id\tquery-id\tscore\nd01\tq1\t1\nq2\t0\td16\t1\n")
    with pytest.raises(InputError, match="train.tsv:3: 4 fields, but the header row has 3"):
        load_input(tiny_beir)
    (tiny_beir / "qrels" / "train.tsv").unlink()
    for name in ("relevance", "label"):
        (tiny_beir / "qrels" / "train.jsonl").write_text("".join(json.dumps({"query-id": q, "corpus-id": d, name: int(g)}) + "\n"
                                                                 for q, d, g in rows))
        assert load_input(tiny_beir).qrels == expected, name
    (tiny_beir / "qrels" / "train.jsonl").write_text(json.dumps({"query-id": "q1", "corpus-id": "d01", "grade": None}) + "\n")
    with pytest.raises(InputError, match="train.jsonl:1: field 'grade' is null"):
        load_input(tiny_beir)


def _pipe(tmp_path: Path, name: str, data: bytes) -> Path:
    """A named pipe that a thread fills with ``data`` (what ``<(...)`` gives a command)."""
    import os
    import threading

    path = tmp_path / name
    os.mkfifo(path)

    def write() -> None:
        with open(path, "wb") as fh:
            fh.write(data)

    threading.Thread(target=write, daemon=True).start()
    return path


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="named pipes")
def test_pipes_given_by_name_are_kept_and_fingerprinted_by_content(tmp_path):
    """`hardneg mine <(...)` twice with one workdir: the second pipe used to be fingerprinted empty
    (read once) and mined as the first one's cached embeddings."""
    import gzip

    rows = [json.dumps({"query": f"question {i} on subject {i % 4}", "positive": f"passage {i} about subject {i % 4}"})
            for i in range(12)]
    first, second = "\n".join(rows[:7]).encode() + b"\n", "\n".join(rows[7:]).encode() + b"\n"
    corpus = "".join(json.dumps({"id": f"c{i}", "text": f"background {i} on subject {i % 4}"}) + "\n" for i in range(8))
    common = ["--model", "hashing", "--min-rank", "0", "--max-rank", "4", "--workdir", str(tmp_path / "wd"), "--quiet"]
    outputs = {}
    for name, data, pool in [("a", first, None), ("b", second, None), ("gz", gzip.compress(second, mtime=0), None),
                             ("pool", second, corpus.encode())]:
        args = ["mine", str(_pipe(tmp_path, f"pairs-{name}", data)), *common, "--out", str(tmp_path / name)]
        if pool is not None:
            args += ["--corpus", str(_pipe(tmp_path, f"corpus-{name}", pool))]
        _ok(args)
        outputs[name] = pq.read_table(tmp_path / name / "queries.parquet").num_rows, (tmp_path / name / "candidates.parquet").read_bytes()
    assert outputs["a"][0] == 7 and outputs["b"][0] == 5
    assert outputs["gz"] == outputs["b"]  # a gzipped stream is recognised by its bytes
    # The same pairs with the corpus from a pipe: a file with that corpus gives the same run.
    (tmp_path / "pairs-b.jsonl").write_bytes(second)
    (tmp_path / "corpus.jsonl").write_text(corpus)
    _ok(["mine", str(tmp_path / "pairs-b.jsonl"), "--corpus", str(tmp_path / "corpus.jsonl"), *common, "--out", str(tmp_path / "file")])
    assert (tmp_path / "file" / "candidates.parquet").read_bytes() == outputs["pool"][1] != outputs["b"][1]
    # Commands that read their input more than once without a workdir copy say so, naming the pipe.
    pipe = _pipe(tmp_path, "eval-input", first)
    _error(["eval", str(pipe), "--model", "hashing"], str(pipe), "can be read only once")
    with open(pipe, "rb") as fh:
        assert fh.read() == first  # untouched: refused before any read
    from hardneg.errors import InputError
    from hardneg.label import read_judgment_file

    pipe = _pipe(tmp_path, "judgments", b'{"query_id": "q", "doc_id": "d", "label": 1}\n')
    with pytest.raises(InputError, match="can be read only once"):
        read_judgment_file(pipe)
    with open(pipe, "rb") as fh:
        fh.read()


def test_queries_in_tevatron_shape_read_as_beir_ones(tmp_path, tiny_beir):
    expected = load_input(tiny_beir).queries
    path = tiny_beir / "queries.jsonl"
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    path.write_text("".join(json.dumps({"query_id": r["_id"], "query": r["text"]}) + "\n" for r in rows))
    assert load_input(tiny_beir).queries == expected


@pytest.mark.parametrize(
    ("qrels", "line", "needle"),
    [(b"q1\td01\tyes\nq2\td16\t1\n", 1, "'yes' is not a number"),            # no header: line 1 is data
     (b"query-id\tcorpus-id\tscore\n", None, "no judgments"),                   # header only
     (b"query-id\tcorpus-id\tscore\nq1\td01\tnan\n", 2, "not a finite number"),
     (b"q1\td01\t1\nq2\td16\tinf\n", 2, "not a finite number"),
     (b"q1\x00\td01\t1\n", 1, "control character"),
     (b"q1\td01\t1\nfoo\tbar\tscore\n", 2, "'score' is not a number")],        # a header mid-file is not one
)
def test_qrels_lines_are_parsed_by_content_never_skipped_on_a_failed_parse(tmp_path, tiny_beir, qrels, line, needle):
    _beir_with_qrels(tmp_path, tiny_beir, qrels)
    where = f"train.tsv:{line}: " if line else "train.tsv: "
    _error(["mine", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "run")], where, needle)
    _error(["eval", str(tiny_beir), "--model", "hashing", "--split", "train"], where, needle)


def test_a_run_with_no_query_to_mine_is_an_error_unless_allowed(tmp_path, tiny_beir):
    # Every judgment has score 0: no query has a positive.
    lines = (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()
    zeroed = [lines[0]] + ["\t".join(line.split("\t")[:2] + ["0"]) for line in lines[1:]]
    (tiny_beir / "qrels" / "train.tsv").write_text("\n".join(zeroed) + "\n")
    _error(["mine", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "run")], "no query can be mined",
           "--allow-empty")
    assert not (tmp_path / "run").exists()
    _ok(["mine", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "run"), "--allow-empty", "--quiet"])


def test_a_window_that_selects_nothing_is_an_error_unless_allowed(tmp_path, tiny_beir):
    args = ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "5", "--max-score", "-0.99"]
    _error([*args, "--out", str(tmp_path / "run")], "0 negatives selected", "--allow-empty")
    assert not (tmp_path / "run").exists() and not (tmp_path / "run.partial").exists()
    _ok([*args, "--out", str(tmp_path / "run"), "--allow-empty", "--quiet"])


def test_a_positive_id_with_another_text_than_the_corpus_is_an_error(tmp_path):
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text(json.dumps({"id": "d1", "text": "Paris is the capital of France."}) + "\n"
                      + json.dumps({"id": "d2", "text": "Madrid is the capital of Spain."}) + "\n")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "capital of France?", "positive": "Paris is the capital of France.", "positive_id": "d1"}) + "\n"
                     + json.dumps({"query": "capital of Spain?", "positive": "Lisbon is in Portugal.", "positive_id": "d2"}) + "\n")
    _error(["embed", str(pairs), "--corpus", str(corpus), "--model", "hashing", "--out", str(tmp_path / "emb")],
           "pairs.jsonl:2: ", "'d2'", "different text")


# --------------------------------------------------------------------------- hostile text


@pytest.mark.parametrize("text", ["\u200b", "\u200b\u200c\ufeff ", "\u00ad\n\t"])
def test_a_document_of_invisible_characters_is_empty(tmp_path, tiny_beir, text):
    """Left out of the corpus as an empty document is (see test_empty_documents_are_left_out_and_counted)."""
    assert is_blank(text)
    before = load_input(tiny_beir).num_docs
    with open(tiny_beir / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "ghost", "title": "", "text": text}) + "\n")
    result = runner.invoke(app, ["embed", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "emb")])
    assert result.exit_code == 0, result.output
    assert "1 document with no text left out of the corpus (ghost)" in result.stderr
    manifest = json.loads((tmp_path / "emb" / "manifest.json").read_text())
    assert manifest["counts"]["docs"] == before
    assert manifest["input"]["left_out"] == {"empty_documents": 1, "empty_document_ids": ["ghost"], "judgments_on_empty_documents": 0}


def test_nul_bytes_are_refused_in_ids_and_texts(tmp_path, tiny_beir):
    good = (tiny_beir / "corpus.jsonl").read_text()
    (tiny_beir / "corpus.jsonl").write_text(good + json.dumps({"_id": "bad\u0000id", "text": "x"}) + "\n")
    _error(["embed", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "emb")], "corpus.jsonl:", "control character")
    (tiny_beir / "corpus.jsonl").write_text(good + json.dumps({"_id": "nul", "text": "a\u0000b"}) + "\n")
    _error(["embed", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "emb")], "corpus.jsonl:", "NUL")


@pytest.mark.parametrize("value", ["=1+1", "+cmd", "-2+3", "@SUM(A1)", "\tx", "\rx", "'quoted", "''", "plain", "", "a=b"])
def test_csv_cells_are_neutralised_and_reversed_exactly(value):
    cell = csv_cell(value)
    assert not cell.startswith(("=", "+", "-", "@", "\t", "\r"))
    assert csv_value(cell) == value


def test_to_label_csv_neutralises_formulas_and_label_import_round_trips_the_ids(tmp_path):
    root = tmp_path / "data"
    (root / "qrels").mkdir(parents=True)
    docs = [("=HYPERLINK(\"http://x\")", "=1+1 a formula as text"), ("@d2", "@SUM(A1:A9) another"),
            ("-d3", "-2+3 numbers"), ("+d4", "+cmd|' /C calc'!A0"), ("d5", "plain text about cells"),
            ("'d6", "'quoted start")]
    (root / "corpus.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in docs))
    (root / "queries.jsonl").write_text(json.dumps({"_id": "=q1", "text": "=cmd formula query"}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n=q1\t'd6\t1\n")
    _ok(["mine", str(root), "--model", "hashing", "--min-rank", "0", "--max-rank", "6", "--num-negatives", "3",
         "--out", str(tmp_path / "run"), "--quiet"])
    _ok(["select", str(tmp_path / "run"), "--budget", "1", "--out", str(tmp_path / "sel")])
    rows = list(csv.reader(open(tmp_path / "sel" / "to_label.csv", encoding="utf-8-sig", newline="")))
    for row in rows[1:]:
        for cell in row:
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), row
    # An annotator labels every row; the import maps the escaped ids back to the real ones.
    header = rows[0]
    for row in rows[1:]:
        row[header.index("label")] = "not_relevant"
    with open(tmp_path / "labelled.csv", "w", encoding="utf-8", newline="") as fh:
        csv.writer(fh).writerows(rows)
    _ok(["label", "import", str(tmp_path / "labelled.csv"), "--run", str(tmp_path / "run"), "--into", str(tmp_path / "labels")])
    judged = pq.read_table(tmp_path / "labels" / "judgments.parquet").to_pylist()
    assert {j["query_id"] for j in judged} == {"=q1"}
    assert {j["doc_id"] for j in judged} <= {i for i, _ in docs} and judged


def test_report_escapes_tampered_loop_manifest_fields(tmp_path):
    from hardneg.report import _rounds_table

    evil = "<script>alert(1)</script>"
    html = _rounds_table([{"round": evil, "negatives": evil, "overlap_with_previous": evil, "seconds": evil,
                           "negative_scores": {"p50": evil}, "train": {"training_loss": evil},
                           "dev": {"metrics": {evil: evil}}}])
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_blank_is_only_invisible():
    assert not is_blank("a\u200b") and not is_blank("\u4e2d") and is_blank("") and is_blank(" \u3000\u2028")



# --------------------------------------------------------------------------- one Error: line, never a traceback

BIG = "99999999999999999999999"


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [(["mine", "{data}", "--model", "hashing", "--seed", BIG], 2, "64 bits"),
     (["mine", "{data}", "--model", "hashing", "--max-rank", BIG], 2, "64 bits"),
     (["mine", "{data}", "--model", "hashing", "--seed", "-1"], 2, "seed must be >= 0"),
     (["mine", "{data}", "--model", "hashing", "--relative-margin", "nan"], 2, "finite"),
     (["mine", "{data}", "--model", "hashing", "--relative-margin", "off", "--fallback-min-rank", "10"], 2, "set --relative-margin or --absolute-margin"),
     (["mine", "{data}", "--model", "hashing", "--min-rank", "10", "--fallback-min-rank", "5"], 2, "inside the window"),
     (["export", "{run}", "--nway", BIG], 2, "64 bits"),
     (["export", "{run}", "--seed", "-1"], 2, "seed must be >= 0"),
     (["report", "{run}", "--sample", "-1"], 2, "sample must be >= 0"),
     (["mine", "{data}", "--model", "hashing:0"], 1, "hashing dimension"),
     (["mine", "{data}", "--model", "hashing", "--device", "bogus"], 2, "device must be"),
     (["mine", "{data}", "--model", "hashing", "--out", ".", "--force"], 1, "current directory")],
)
def test_bad_values_are_one_error_line_before_any_work(tmp_path, tiny_beir, args, code, needle):
    run = tmp_path / "run"
    _ok(["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "10", "--out", str(run), "--quiet"])
    args = [a.format(data=tiny_beir, run=run) for a in args]
    if "--out" not in args:
        args += ["--out", str(tmp_path / "new")]
    _error(args, needle, code=code)
    assert not (tmp_path / "new").exists()


def test_a_toml_integer_beyond_64_bits_is_a_config_error(tmp_path, tiny_beir):
    (tmp_path / "c.toml").write_text(f"[mine]\nmax-rank = {BIG}\n")
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--config", str(tmp_path / "c.toml"), "--out", "x"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_a_cache_entry_damaged_from_outside_is_named_with_how_to_remove_it(tmp_path, tiny_beir):
    """hardneg's writes are atomic, but a disk or a hand can damage a cache entry's manifest: the run
    that needs it names the entry and how to remove it (not 'choose another --out', which the user
    never gave), `cache list` marks it damaged, and once pruned the next run rebuilds it."""
    wd = tmp_path / "wd"
    _ok(["mine", str(tiny_beir), "--model", "hashing", "--workdir", str(wd), "--out", str(tmp_path / "run"), "--quiet"])
    entry = next((wd / "embeddings").iterdir())
    (entry / "manifest.json").write_text("{not json")
    _error(["mine", str(tiny_beir), "--model", "hashing", "--workdir", str(wd), "--out", str(tmp_path / "run2")],
           str(entry), "holds a manifest.json that is not a hardneg manifest", f"rm -r '{entry}'")
    listing = _ok(["cache", "list", "--workdir", str(wd), "--json"])
    assert any(e["kind"] == "unknown" and e["what"].startswith("damaged") for e in json.loads(listing)["entries"]), listing
    _ok(["cache", "prune", "--workdir", str(wd), "--older-than", "0s"])
    _ok(["mine", str(tiny_beir), "--model", "hashing", "--workdir", str(wd), "--out", str(tmp_path / "run2"), "--quiet"])


@pytest.mark.parametrize("damage", ["no-qrels", "truncated-vectors", "no-config", "corrupt-candidates"])
def test_damaged_artifacts_are_named_not_tracebacks(tmp_path, tiny_beir, damage):
    _ok(["embed", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "emb"), "--quiet"])
    _ok(["index", str(tmp_path / "emb"), "--out", str(tmp_path / "idx"), "--quiet"])
    _ok(["mine", str(tmp_path / "idx"), "--min-rank", "0", "--max-rank", "10", "--out", str(tmp_path / "run"), "--quiet"])
    if damage == "no-qrels":
        (tmp_path / "emb" / "qrels.parquet").unlink()
        _error(["index", str(tmp_path / "emb"), "--out", str(tmp_path / "i2")], "qrels.parquet missing")
    elif damage == "truncated-vectors":
        path = tmp_path / "idx" / "vectors.npy"
        with open(path, "r+b") as fh:
            fh.truncate(path.stat().st_size // 2)
        _error(["mine", str(tmp_path / "idx"), "--out", str(tmp_path / "r2")], "vectors.npy", "truncated")
    elif damage == "no-config":
        manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
        del manifest["config"]
        (tmp_path / "run" / "manifest.json").write_text(json.dumps(manifest))
        for cmd in (["export", str(tmp_path / "run"), "--out", str(tmp_path / "e")], ["select", str(tmp_path / "run"), "--out", str(tmp_path / "s")],
                    ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rp")]):
            _error(cmd, "lacks 'config'")
    else:
        path = tmp_path / "run" / "candidates.parquet"
        data = bytearray(path.read_bytes())
        for i in range(8, min(len(data) - 8, 300)):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
        for cmd in (["export", str(tmp_path / "run"), "--out", str(tmp_path / "e")], ["select", str(tmp_path / "run"), "--out", str(tmp_path / "s")],
                    ["report", str(tmp_path / "run"), "--out", str(tmp_path / "rp")]):
            _error(cmd, "candidates.parquet")


def test_piped_input_with_an_unusable_workdir_is_one_error(tmp_path):
    (tmp_path / "not-a-dir").write_text("x")
    result = runner.invoke(app, ["mine", "-", "--model", "hashing", "--workdir", str(tmp_path / "not-a-dir"), "--out", str(tmp_path / "r")],
                           input='{"query": "a", "positive": "b"}\n')
    assert result.exit_code == 1 and "cannot keep the piped input" in result.output and "Traceback" not in result.output


def test_export_refuses_a_nan_score_in_a_run_naming_the_query_and_document(tmp_path, tiny_beir):
    import pyarrow as pa

    _ok(["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "10", "--out", str(tmp_path / "run"), "--quiet"])
    path = tmp_path / "run" / "candidates.parquet"
    table = pq.read_table(path)
    scores = table["score"].to_pylist()
    first = table["selected"].to_pylist().index(True)
    scores[first] = float("nan")
    pq.write_table(table.set_column(table.schema.get_field_index("score"), "score", pa.array(scores, pa.float32())), path)
    for fmt in ("pylate-kd", "flagembedding", "triplets"):
        _error(["export", str(tmp_path / "run"), "--format", fmt, "--out", str(tmp_path / f"e-{fmt}")], "candidates.parquet",
               table["query_id"][first].as_py(), "not a finite number")
        assert not (tmp_path / f"e-{fmt}").exists()


def test_many_empty_documents_are_named_by_their_first_ids(tmp_path, tiny_beir):
    """Thirty empty rows: the warning names five and says there are more; the manifest keeps twenty."""
    with open(tiny_beir / "corpus.jsonl", "a") as fh:
        for i in range(30):
            fh.write(json.dumps({"_id": f"empty-{i}", "title": "", "text": ""}) + "\n")
    dataset = load_input(tiny_beir)
    assert dataset.left_out["empty_documents"] == 30 and len(dataset.left_out["empty_document_ids"]) == 20
    assert dataset.left_out_line() == (
        "30 documents with no text left out of the corpus (empty-0, empty-1, empty-2, empty-3, empty-4, ...): "
        "never a candidate nor a negative"
    )
    assert all(not d.doc_id.startswith("empty-") for d in dataset.iter_corpus())
