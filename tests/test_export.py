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


def _strings(value):
    """Every string inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict | list):
        for item in value.values() if isinstance(value, dict) else value:
            yield from _strings(item)


def test_json_lines_exports_escape_unicode_line_breaks(tmp_path, tiny_beir):
    """U+0085, U+2028 and U+2029 are line breaks to str.splitlines(), which JSON leaves raw: every
    JSON Lines export escapes them, so any line splitter sees one record per line, and the texts
    read back exactly."""
    lines = []
    for i, line in enumerate((tiny_beir / "corpus.jsonl").read_text().splitlines()):
        doc = json.loads(line)
        doc["text"] += ("\u2028second\u0085third\u2029fourth\r\x0bfifth" if i % 2 else "")
        lines.append(json.dumps(doc) + "\n")
    (tiny_beir / "corpus.jsonl").write_text("".join(lines))
    out = tmp_path / "run"
    run_mine(tiny_beir, out, EmbedConfig(model="hashing"), IndexConfig(backend="exact"),
             MineConfig(min_rank=0, max_rank=30, num_negatives=4, relative_margin=None), workdir=tmp_path / "wd")
    seen = 0
    for fmt in ("colbert", "triplets", "flagembedding", "tevatron"):
        export(out, tmp_path / fmt, ExportConfig(format=fmt, scores=fmt == "colbert"))
        for path in (tmp_path / fmt).glob("*.jsonl"):
            data = path.read_bytes()
            assert not any(c in data for c in ("\u0085".encode(), "\u2028".encode(), "\u2029".encode())), path
            assert len(data.decode().splitlines()) == data.count(b"\n"), path
            records = [orjson.loads(x) for x in data.decode().splitlines()]
            seen += sum(text.endswith("\u2028second\u0085third\u2029fourth\r\x0bfifth") for r in records for text in _strings(r))
    assert seen > 0  # the texts are there, whole
    from hardneg.artifacts import doc_text

    whole = {doc_text(doc["title"], doc["text"]) for doc in map(json.loads, lines)}
    triplets = [orjson.loads(x) for x in (tmp_path / "triplets" / "triplets.jsonl").read_bytes().splitlines()]
    assert {r["negative"] for r in triplets} <= whole and {r["positive"] for r in triplets} <= whole


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
    assert len(rows) == 32 and all(set(r) == {"query", "positive", "negative"} and r["positive"] != r["negative"] for r in rows)
    arrays = runner.invoke(app, ["export", str(run), "--format", "triplets", "--triplet-rows", "arrays", "--out", "-"])
    assert [orjson.loads(x) for x in arrays.stdout.splitlines()] == [[r["query"], r["positive"], r["negative"]] for r in rows]


def test_stdout_needs_a_line_format(run):
    result = runner.invoke(app, ["export", str(run), "--format", "colbert", "--out", "-"])
    assert result.exit_code == 2
    assert "use --format msmarco-triples or triplets" in result.stderr


def test_triplets_refuse_nway_above_two(run, tmp_path):
    with pytest.raises(ConfigError):
        export(run, tmp_path / "t", ExportConfig(format="triplets", nway=3))


def test_same_seed_gives_byte_identical_exports(tmp_path):
    outs = []
    for name in ("a", "b"):
        run_mine(TINY_BEIR, tmp_path / f"run-{name}", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=2, max_rank=30))
        export(tmp_path / f"run-{name}", tmp_path / f"out-{name}", ExportConfig())
        outs.append({p.name: p.read_bytes() for p in (tmp_path / f"out-{name}").iterdir() if p.is_file()})
    assert outs[0] == outs[1]
    assert (tmp_path / "run-a" / "candidates.parquet").read_bytes() == (tmp_path / "run-b" / "candidates.parquet").read_bytes()


def test_export_refuses_to_overwrite_a_foreign_directory(run, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    result = runner.invoke(app, ["export", str(run), "--out", str(tmp_path / "mine")])
    assert result.exit_code == 1
    assert "is not a hardneg export" in result.stderr
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"


# --------------------------------------------------------------------------- formats with scores


@pytest.fixture
def teacher_run(tmp_path: Path) -> Path:
    """A run mined with a fake cross-encoder that promotes d37 (a copy of d01) to pseudo-positive."""
    from hardneg.mine import mine as run_mine_stage
    from hardneg.pipeline import ensure_embeddings, ensure_index

    class Teacher:
        name, fingerprint = "teacher", "teacher-v1"

        def score(self, pairs):
            import numpy as np

            return np.array([0.99 if "Seine" in d else 0.3 + len(d) % 7 / 100 for _, d in pairs], dtype=np.float32)

    emb = ensure_embeddings(TINY_BEIR, EmbedConfig(model="hashing"), tmp_path / "wd")
    idx = ensure_index(emb, IndexConfig(), tmp_path / "wd")
    cfg = MineConfig(min_rank=0, max_rank=40, num_negatives=4, dedup_threshold=None, cross_encoder="teacher", ce_pseudo_positive_score=0.95)
    run_mine_stage(idx, tmp_path / "trun", cfg, scorer=Teacher())
    return tmp_path / "trun"


def test_colbert_distillation_lines_put_the_positive_first_with_teacher_scores(teacher_run, tmp_path):
    export(teacher_run, tmp_path / "kd", ExportConfig(scores=True))
    lines = [json.loads(x) for x in (tmp_path / "kd" / "triples.train.colbert.jsonl").read_text().splitlines()]
    pid_map = {int(p): d for p, d in _read_tsv(tmp_path / "kd" / "pid_map.tsv")[1:]}
    qid_map = {int(q): d for q, d in _read_tsv(tmp_path / "kd" / "qid_map.tsv")[1:]}
    qrels = _qrels()
    assert lines and all(len(x) == 1 + 5 for x in lines)
    for qid, (_pos, pos_score), *negs in lines:
        assert isinstance(pos_score, float) and all(isinstance(s, float) for _, s in negs)
        assert all(pid_map[n] not in qrels[qid_map[qid]] for n, _ in negs)
    manifest = json.loads((tmp_path / "kd" / ".hardneg" / "manifest.json").read_text())
    assert manifest["scores_from"] == "teacher"
    # q1 ("capital of France"): d01 and its copy d37 mention the Seine; the fake teacher promotes the
    # Seine documents it sees as candidates to pseudo-positives, which then lead rows of their own.
    q1_positives = {pid_map[pos] for qid, (pos, _), *_ in lines if qid_map[qid] == "q1"}
    assert "d01" in q1_positives and q1_positives - {"d01"} <= {"d10", "d37"}


def test_pylate_kd_datasets_resolve_like_pylates_kd_processing(teacher_run, tmp_path):
    export(teacher_run, tmp_path / "pl", ExportConfig(format="pylate-kd"))
    train = pq.read_table(tmp_path / "pl" / "train.parquet").to_pylist()
    queries = {r["query_id"]: r["text"] for r in pq.read_table(tmp_path / "pl" / "queries.parquet").to_pylist()}
    documents = {r["document_id"]: r["text"] for r in pq.read_table(tmp_path / "pl" / "documents.parquet").to_pylist()}
    assert train
    for row in train:  # what pylate.utils.KDProcessing does: look every id up, keep the first n_ways
        assert queries[row["query_id"]]
        texts = [documents[d] for d in row["document_ids"][:32]]
        assert len(texts) == len(row["scores"][:32]) >= 2


def test_flagembedding_lines_carry_texts_and_scores(teacher_run, tmp_path):
    export(teacher_run, tmp_path / "fe", ExportConfig(format="flagembedding"))
    rows = [json.loads(x) for x in (tmp_path / "fe" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    for row in rows:
        assert set(row) == {"query", "pos", "neg", "pos_scores", "neg_scores"}
        assert len(row["pos"]) == len(row["pos_scores"]) and len(row["neg"]) == len(row["neg_scores"]) == 4
        assert not set(row["pos"]) & set(row["neg"])


def test_tevatron_lines_keep_title_and_text_apart(run, tmp_path):
    export(run, tmp_path / "tv", ExportConfig(format="tevatron"))
    rows = [json.loads(x) for x in (tmp_path / "tv" / "train.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    by_query = {r["query_id"]: r for r in rows}
    assert [{k: v for k, v in p.items() if k != "score"} for p in by_query["q1"]["positive_passages"]] == [
        {"docid": "d01", "title": "Paris", "text": "Paris is the capital and largest city of France, on the river Seine."}
    ]
    assert all(len(r["negative_passages"]) == 4 for r in rows)
    qrels = _qrels()
    assert all(p["docid"] not in qrels[r["query_id"]] for r in rows for p in r["negative_passages"])


def test_sentence_transformers_and_pylate_files_load_with_datasets(run, tmp_path):
    """sentence-transformers and PyLate read these files through `datasets`: do the same."""
    datasets = pytest.importorskip("datasets")
    export(run, tmp_path / "st", ExportConfig(format="sentence-transformers"))
    train = datasets.load_dataset("parquet", data_files=str(tmp_path / "st" / "train.parquet"), split="train")
    assert train.column_names == ["query", "positive", "negative_1", "negative_2", "negative_3", "negative_4"]
    assert len(train) == 9 and all(isinstance(v, str) and v for v in train[0].values())
    export(run, tmp_path / "pl", ExportConfig(format="pylate-kd"))
    kd = {
        name: datasets.load_dataset("parquet", data_files=str(tmp_path / "pl" / f"{name}.parquet"), split="train")
        for name in ("train", "queries", "documents")
    }
    assert kd["train"].column_names == ["query_id", "document_ids", "scores"]
    assert kd["queries"].column_names == ["query_id", "text"]
    assert kd["documents"].column_names == ["document_id", "text"]
    documents = dict(zip(kd["documents"]["document_id"], kd["documents"]["text"]))
    row = kd["train"][0]
    assert len(row["document_ids"]) == len(row["scores"]) == 5 and all(d in documents for d in row["document_ids"])


def test_labeled_exports_are_sentence_transformers_cross_encoder_rows_and_read_back(run, tmp_path):
    """labeled-pair and labeled-list, as `mine_hard_negatives(output_format=...)` writes them: one
    (query, document, 0/1) row per document, each query's positives first; one (query, [positive,
    negatives...], [1, 0, ...]) row per positive. Scores instead with --scores. Read back as
    labeled pairs, each keeps the run's positives and its negatives as judged-not-relevant."""
    import pyarrow.parquet as pq

    from hardneg.inputs import load_input
    from hardneg.runs import read_run

    mined = read_run(run)
    texts = _corpus_texts()
    export(run, tmp_path / "pair", ExportConfig(format="labeled-pair", shuffle=False))
    pair = pq.read_table(tmp_path / "pair" / "train.parquet")
    assert pair.column_names == ["query", "positive", "label"]
    expected = [(q.text, texts[d], 1) for q in mined.queries if q.negatives for d in q.positives]
    expected += [(q.text, texts[d], 0) for q in mined.queries if q.negatives for d in q.negatives]
    assert sorted(zip(*pair.to_pydict().values())) == sorted(expected)
    first = mined.queries[0]
    assert pair.to_pydict()["label"][: len(first.positives) + 1] == [1] * len(first.positives) + [0]  # grouped per query
    export(run, tmp_path / "list", ExportConfig(format="labeled-list", nway=3))
    rows = pq.read_table(tmp_path / "list" / "train.parquet").to_pylist()
    assert rows and all(len(r["positive"]) == 3 and r["labels"] == [1, 0, 0] for r in rows)
    assert len(rows) == sum(len(q.positives) for q in mined.queries if len(q.negatives) >= 2)
    export(run, tmp_path / "scores", ExportConfig(format="labeled-list", scores=True, shuffle=False))
    scored = pq.read_table(tmp_path / "scores" / "train.parquet").to_pylist()
    q = next(q for q in mined.queries if q.negatives)
    assert scored[0]["scores"] == pytest.approx([q.positive_scores[0], *q.negative_scores], abs=1e-6)
    with pytest.raises(ConfigError, match="--nway does not apply"):
        export(run, tmp_path / "x", ExportConfig(format="labeled-pair", nway=3))
    with pytest.raises(ConfigError, match="--scores applies to the colbert, labeled-pair and labeled-list formats"):
        export(run, tmp_path / "x", ExportConfig(format="triplets", scores=True))
    back = load_input(tmp_path / "pair" / "train.parquet")
    positives = {qq.text: {texts[d] for d in qq.positives} for qq in mined.queries if qq.negatives}
    corpus = {d.doc_id: d.text for d in back.iter_corpus()}
    by_text = {qq.query_id: qq.text for qq in back.queries}
    read = {}
    for qid, did, score in back.qrels:
        read.setdefault(by_text[qid], {})[corpus[did]] = score
    assert {t: {d for d, s in judged.items() if s > 0} for t, judged in read.items()} == positives
    assert {t: {d for d, s in judged.items() if s <= 0} for t, judged in read.items()} == {
        qq.text: {texts[d] for d in qq.negatives} for qq in mined.queries if qq.negatives}


@pytest.mark.parametrize("fmt", ["triplets", "sentence-transformers", "flagembedding", "tevatron", "pylate-kd"])
def test_exports_stream_texts_in_bounded_passes_with_identical_output(run, tmp_path, monkeypatch, fmt):
    """With room for only 3 texts at a time (one query's texts per pass, at least) the corpus is read
    in many passes; the files are the same as with one pass."""
    import hardneg.runs as export_module  # where the texts are read in passes

    export(run, tmp_path / "one-pass", ExportConfig(format=fmt))
    passes = []
    real = export_module.doc_texts, export_module.doc_records

    def counting(fetch):
        def wrapped(emb_path, wanted):
            passes.append(len(wanted))
            return fetch(emb_path, wanted)

        return wrapped

    monkeypatch.setattr(export_module, "TEXTS_PER_PASS", 3)
    monkeypatch.setattr(export_module, "doc_texts", counting(real[0]))
    monkeypatch.setattr(export_module, "doc_records", counting(real[1]))
    export(run, tmp_path / "many-passes", ExportConfig(format=fmt))
    if fmt != "pylate-kd":  # pylate-kd streams the corpus once for documents.parquet
        assert len(passes) > 1
    for path in sorted((tmp_path / "one-pass").iterdir()):
        if path.is_dir():  # .hardneg/manifest.json
            continue
        other = tmp_path / "many-passes" / path.name
        if path.suffix == ".parquet":
            assert pq.read_table(path).equals(pq.read_table(other)), path.name
        else:
            assert path.read_bytes() == other.read_bytes(), path.name


def test_msmarco_triples_are_text_tsv_lines_and_stream(tmp_path, tiny_beir):
    from typer.testing import CliRunner

    from hardneg.cli import app

    runner = CliRunner()
    assert runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "10",
                               "--out", str(tmp_path / "run"), "--quiet"]).exit_code == 0
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "msmarco-triples", "--out", str(tmp_path / "tsv")])
    assert result.exit_code == 0, result.output
    lines = (tmp_path / "tsv" / "triples.train.tsv").read_text(encoding="utf-8").splitlines()
    triplets = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "triplets", "--triplet-rows", "arrays", "--out", "-"])
    expected = [json.loads(line) for line in triplets.stdout.splitlines()]
    assert [line.split("\t") for line in lines] == [[" ".join(t.split()) if "\t" in t else t for t in row] for row in expected]
    streamed = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "msmarco-triples", "--out", "-"])
    assert streamed.stdout.splitlines() == lines
    assert runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "msmarco-triples", "--nway", "3", "--out", "x"]).exit_code == 2


def test_score_transforms_rescale_each_query_and_the_summary_reports_the_positive_share(run, tmp_path):
    import pyarrow.parquet as pq

    raw = export(run, tmp_path / "raw", ExportConfig(format="pylate-kd", score_transform="none"))
    scaled = export(run, tmp_path / "minmax", ExportConfig(format="pylate-kd", score_transform="minmax"))
    standard = export(run, tmp_path / "z", ExportConfig(format="pylate-kd", score_transform="zscore"))
    for result in (raw, scaled, standard):
        assert result.stats.uniform_share == pytest.approx(1 / result.stats.nway, abs=1e-3)
    assert scaled.stats.positive_softmax_share > raw.stats.positive_softmax_share > raw.stats.uniform_share
    rows = pq.read_table(tmp_path / "minmax" / "train.parquet").to_pylist()
    assert all(0.0 <= s <= 1.0 for r in rows for s in r["scores"])
    raw_rows = {(r["query_id"], r["document_ids"][0]): r for r in pq.read_table(tmp_path / "raw" / "train.parquet").to_pylist()}
    for r in rows:  # a monotone transform: every strict order between two scores of a row is kept
        before, after = raw_rows[(r["query_id"], r["document_ids"][0])]["scores"], r["scores"]
        assert all(after[i] < after[j] for i in range(len(before)) for j in range(len(before)) if before[i] < before[j] - 1e-6)
    with pytest.raises(ConfigError):
        export(run, tmp_path / "t", ExportConfig(format="triplets", score_transform="minmax"))


def test_auto_scales_pylate_kd_to_unit_range_and_leaves_the_raw_score_formats_raw(run, tmp_path):
    """PyLate's Distillation min-max normalises the student's scores only, so its teacher scores must
    arrive in [0, 1]; colbert-ai and FlagEmbedding softmax raw student scores, so theirs stay raw."""
    default = export(run, tmp_path / "pl", ExportConfig(format="pylate-kd"))
    minmax = export(run, tmp_path / "pl-minmax", ExportConfig(format="pylate-kd", score_transform="minmax"))
    assert default.stats.score_transform == "minmax"
    assert (tmp_path / "pl" / "train.parquet").read_bytes() == (tmp_path / "pl-minmax" / "train.parquet").read_bytes()
    assert default.stats.positive_softmax_share == minmax.stats.positive_softmax_share
    manifest = json.loads((tmp_path / "pl" / ".hardneg" / "manifest.json").read_text())
    assert manifest["config"]["score_transform"] == "minmax" and manifest["stats"]["score_transform"] == "minmax"
    rows = pq.read_table(tmp_path / "pl" / "train.parquet").to_pylist()
    assert min(min(r["scores"]) for r in rows) == 0.0 and max(max(r["scores"]) for r in rows) == 1.0
    for fmt, name in (("flagembedding", "train.jsonl"), ("tevatron", "train.jsonl")):
        auto = export(run, tmp_path / fmt, ExportConfig(format=fmt))
        none = export(run, tmp_path / f"{fmt}-none", ExportConfig(format=fmt, score_transform="none"))
        assert auto.stats.score_transform == none.stats.score_transform == "none"
        assert (tmp_path / fmt / name).read_bytes() == (tmp_path / f"{fmt}-none" / name).read_bytes()
    colbert = export(run, tmp_path / "colbert", ExportConfig(format="colbert", scores=True))
    assert colbert.stats.score_transform == "none"
    assert export(run, tmp_path / "triplets", ExportConfig(format="triplets")).stats.score_transform == "none"


def test_a_trainer_that_normalises_each_row_reads_the_same_targets_whatever_the_export_transform(run, tmp_path):
    """minmax and zscore are per-query positive affine maps, which a row's min-max undoes: hardneg's
    `train --loss distillation` (and PyLate's default) see identical targets from all three exports,
    which is why the transform is for trainers that do not normalise (docs/trainers.md)."""
    import torch

    from hardneg.losses import minmax_rows

    targets = {}
    for how in ("none", "minmax", "zscore"):
        export(run, tmp_path / how, ExportConfig(format="pylate-kd", score_transform=how))
        rows = pq.read_table(tmp_path / how / "train.parquet").to_pylist()
        targets[how] = {(r["query_id"], tuple(r["document_ids"])): r["scores"] for r in rows}
    assert targets["none"].keys() == targets["minmax"].keys() == targets["zscore"].keys()
    keys = sorted(targets["none"])
    normalised = {how: minmax_rows(torch.tensor([t[k] for k in keys], dtype=torch.float64)) for how, t in targets.items()}
    assert not torch.allclose(torch.tensor([targets["none"][k] for k in keys]), torch.tensor([targets["zscore"][k] for k in keys]))
    torch.testing.assert_close(normalised["none"], normalised["minmax"], atol=1e-5, rtol=0)
    torch.testing.assert_close(normalised["none"], normalised["zscore"], atol=1e-5, rtol=0)


def test_the_export_summary_suggests_a_transform_only_for_nearly_uniform_targets():
    from io import StringIO

    from rich.console import Console

    from hardneg._render import nearly_uniform_targets, render_export

    assert nearly_uniform_targets(0.263, 0.2)  # SciFact's raw cosines, 5-way
    assert not nearly_uniform_targets(0.681, 0.125)  # a ColBERT teacher's MaxSim sums, 8-way
    assert not nearly_uniform_targets(None, None)

    def summary(share: float, transform: str) -> str:
        out = StringIO()
        render_export(Console(file=out, width=200), {"format": "pylate-kd", "nway": 8, "rows": 3, "queries": 3,
                      "queries_without_negatives": 0, "rows_dropped_short": 0, "positive_softmax_share": share,
                      "uniform_share": 0.125, "score_transform": transform, "files": []}, "out")
        return out.getvalue()

    assert "consider --score-transform minmax" in summary(0.15, "none")
    assert "teacher targets (raw scores)" in summary(0.15, "none") and "(min-max scaled scores)" in summary(0.15, "minmax")
    assert "consider" not in summary(0.68, "none") and "consider" not in summary(0.15, "minmax")


def test_an_export_option_the_format_does_not_read_is_refused_not_ignored(run, tmp_path):
    """--scores on triplets, --triplet-rows on another format, --synthetic-ratio without --synthetic
    used to write the export as if they were not given."""
    for args, needle in [
        (["--format", "triplets", "--scores"], "--scores applies to the colbert, labeled-pair and labeled-list formats"),
        (["--format", "sentence-transformers", "--triplet-rows", "arrays"], "--format sentence-transformers does not read it"),
        (["--format", "colbert", "--synthetic-ratio", "0.5"], "synthetic-ratio is the share of generated negatives: it needs --synthetic"),
    ]:
        result = runner.invoke(app, ["export", str(run), *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and needle in result.stderr, (args, result.output)  # 2: a usage error
        assert not (tmp_path / "out").exists()
