"""Bad input never crashes: one `Error: file:line: ...` line, exit 1, and no artifact left behind."""

from __future__ import annotations

import gzip
import json
import lzma
import shutil
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
    ("first-line-broken", b'{"_id": "d1", "text": NaN}\n{"_id": "d2", "text": "b"}\n', None, None, "corpus.jsonl", 1,
     "malformed JSON (unexpected character, expected a JSON value); each line must be one JSON object"),
    ("first-line-cut", b'{"_id": "d1", "te\n{"_id": "d2", "text": "b"}\n', None, None, "corpus.jsonl", 1, "malformed JSON"),
    ("truncated-json", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "te', None, None, "corpus.jsonl", 2, "malformed JSON"),
    ("missing-field", b'{"_id": "d1", "text": "a"}\n{"_id": "d2"}\n', None, None, "corpus.jsonl", 2, "missing field 'text'"),
    ("missing-id", b'{"text": "a"}\n', None, None, "corpus.jsonl", 1, "missing field '_id'"),
    ("wrong-type", b'{"_id": "d1", "text": ["a"]}\n', None, None, "corpus.jsonl", 1, "field 'text' must be a string"),
    ("not-an-object", b'["d1", "a"]\n', None, None, "corpus.jsonl", 1, "expected a JSON object"),
    ("duplicate-id", b'{"_id": "d1", "text": "a"}\n{"_id": "d1", "text": "b"}\n', None, None, "corpus.jsonl", 2, "duplicate document id 'd1'"),
    ("no-text-at-all", b'{"_id": "d1", "text": ""}\n{"_id": "d2", "title": " ", "text": "   "}\n', None, None, "corpus.jsonl", None,
     "the corpus has no document with text (2 empty)"),
    ("empty-duplicate-id", b'{"_id": "d1", "text": ""}\n{"_id": "d1", "text": "b"}\n', None, None, "corpus.jsonl", 2, "duplicate document id 'd1'"),
    ("invalid-utf8", b'{"_id": "d1", "text": "a"}\n{"_id": "d2", "text": "caf\xe9"}\n', None, None, "corpus.jsonl", 2, "not valid UTF-8"),
    ("empty-corpus", b"\n\n", None, None, "corpus.jsonl", None, "the corpus is empty"),
    ("unknown-qrels-doc", GOOD_DOCS, None, b"query-id\tcorpus-id\tscore\nq1\td9\t1\n", "train.tsv", 2, "corpus id 'd9' is not in corpus.jsonl"),
    ("unknown-qrels-query", GOOD_DOCS, None, b"query-id\tcorpus-id\tscore\nq1\td1\t1\r\nq7\td1\t1\r\n", "train.tsv", 3, "query id 'q7' is not in queries.jsonl"),
    ("bad-qrels-score", GOOD_DOCS, None, b"query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\tyes\n", "train.tsv", 3, "field 'score': 'yes' is not a number"),
    ("qrels-fields", GOOD_DOCS, None, b"query-id\tcorpus-id\tscore\nq1\td1\n", "train.tsv", 2, "or 4 (TREC: query-id, iteration, corpus-id, score), found 2"),
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


def test_empty_documents_are_left_out_and_counted(tmp_path, tiny_beir):
    """A corpus row with neither title nor text (BEIR's FiQA has several: ``{"_id": "7915", "title": "",
    "text": ""}``) is left out: never a candidate nor a negative, judgments on it dropped, a query
    judged only on such rows not mined (no positive). The rest mines exactly as without them, and
    the count reaches the log and the manifests. The same holds in MS MARCO's collection.tsv and in
    a pairs file's --corpus."""
    import shutil

    import pyarrow.parquet as pq

    def mine(name: str, source: Path, *extra: str) -> tuple[bytes, str]:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--min-rank", "0", "--max-rank", "6",
                                     "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), *extra])
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes(), result.stderr

    expected, _ = mine("clean", tiny_beir)
    fiqa = shutil.copytree(tiny_beir, tmp_path / "fiqa-like")
    docs = (tiny_beir / "corpus.jsonl").read_text().splitlines()
    empty = [json.dumps({"_id": "7915", "title": "", "text": "", "metadata": {}}),
             json.dumps({"_id": "12229", "text": " \u200b"}),
             json.dumps({"_id": "null-text", "title": None, "text": None})]  # a Parquet corpus's missing values
    (fiqa / "corpus.jsonl").write_text("\n".join([empty[0], *docs, empty[1], empty[2]]) + "\n")
    with open(fiqa / "queries.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "q-empty", "text": "a question judged on an empty row only"}) + "\n")
    with open(fiqa / "qrels" / "train.tsv", "a") as fh:
        fh.write("q1\t7915\t1\nq-empty\t12229\t1\n")
    got, err = mine("fiqa-like", fiqa)
    assert got == expected
    assert "warning: 3 documents with no text left out of the corpus (7915, 12229, null-text): never a candidate nor a " \
           "negative; 2 judgments on them dropped" in err
    run = tmp_path / "run-fiqa-like"
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["input"]["left_out"] == {"empty_documents": 3, "empty_document_ids": ["7915", "12229", "null-text"],
                                             "judgments_on_empty_documents": 2}
    statuses = {r["query_id"]: r["status"] for r in pq.read_table(run / "queries.parquet").to_pylist()}
    assert statuses["q-empty"] == "no-positive" and statuses["q1"] == "mined"

    ms = tmp_path / "ms"
    ms.mkdir()
    rows = [json.loads(line) for line in docs]
    (ms / "collection.tsv").write_text("7915\t\n" + "".join(f"{d['_id']}\t{d['text']}\t{d['title']}\n" for d in rows) + "12229\t \t \n")
    (ms / "queries.train.tsv").write_text("".join(f"{q['_id']}\t{q['text']}\n" for q in map(json.loads, (tiny_beir / "queries.jsonl").read_text().splitlines())))
    qrels = [line.split("\t") for line in (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    (ms / "qrels.train.tsv").write_text("".join(f"{q}\t0\t{d}\t{s}\n" for q, d, s in qrels) + "q1\t0\t7915\t1\n")
    assert mine("ms-clean", _msmarco(tiny_beir, tmp_path / "ms-clean"))[0] == mine("ms", ms)[0]

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "capital of France?", "positive": "Paris is the capital of France."}) + "\n")
    pool = tmp_path / "pool.jsonl"
    pool.write_text("\n".join([empty[0], *docs, empty[1]]) + "\n")
    clean, _ = mine("pairs-clean", pairs, "--corpus", str(tiny_beir / "corpus.jsonl"))
    with_empty, err = mine("pairs-empty", pairs, "--corpus", str(pool))
    assert with_empty == clean and "2 documents with no text left out" in err


def test_empty_positives_are_left_out_and_counted(tmp_path):
    """A pairs row whose positive is blank (a hub dataset's missing answer) gives its query no
    positive: the rest mines exactly as without it, the query is reported `no-positive` if it has no
    other positive, and the count reaches the log and the manifest, in every pairs format."""
    import pyarrow.parquet as pq

    clean = (Path(__file__).parent / "data" / "pairs.jsonl").read_text()
    first = json.loads(clean.splitlines()[0])

    def mine(name: str, content: str, suffix: str = ".jsonl") -> tuple[bytes, str, Path]:
        source = tmp_path / f"{name}{suffix}"
        source.write_text(content, encoding="utf-8")
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--min-rank", "0", "--max-rank", "6",
                                     "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out)])
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes(), result.stderr, out

    expected, _, _ = mine("clean", clean)
    blank_rows = [{"query": "a question without an answer", "answer": " "},
                  {"query": first["query"], "pos": [first["positive"], "\u200b", None]},  # null in a list: blank too
                  {"query": "another unanswered question", "positive": ""},
                  {"query": "a question with an empty list", "pos": []},
                  {"query": "a null answer (a Parquet file's missing value)", "positive": None},
                  {"query": None, "positive": first["positive"]}]  # no question: reported empty-text
    got, err, out = mine("blanks", clean + "".join(json.dumps(r) + "\n" for r in blank_rows))
    assert got == expected
    assert "warning: 6 empty positives left out (a query left without one is reported no-positive)" in err
    assert json.loads((out / "manifest.json").read_text())["input"]["left_out"] == {"empty_positives": 6}
    statuses = {r["query_id"]: r["status"] for r in pq.read_table(out / "queries.parquet").to_pylist()}
    assert sorted(statuses.values()).count("no-positive") == 4 and sorted(statuses.values()).count("empty-text") == 1
    # A blank positive named by the id of a --corpus document is that document.
    corpus = Path(__file__).parent / "data" / "tiny_beir" / "corpus.jsonl"
    by_text = clean.splitlines()[0] + "\n"
    by_id = json.dumps({"query": first["query"], "positive": "", "positive_id": "d01"}) + "\n"
    assert first["positive"] in corpus.read_text()
    runs = {}
    for name, content in (("by-text", by_text), ("by-id", by_id)):
        (tmp_path / f"{name}.jsonl").write_text(content)
        result = runner.invoke(app, ["mine", str(tmp_path / f"{name}.jsonl"), "--corpus", str(corpus), "--model", "hashing",
                                     "--min-rank", "0", "--max-rank", "6", "--workdir", str(tmp_path / "wd-id"),
                                     "--out", str(tmp_path / f"run-{name}")])
        assert result.exit_code == 0 and "empty positive" not in result.stderr, result.output
        runs[name] = pq.read_table(tmp_path / f"run-{name}" / "candidates.parquet").to_pylist()
    assert runs["by-id"] == runs["by-text"] and runs["by-id"]
    tsv = "query\tpositive\n" + "".join(f"{r['query']}\t{r['positive']}\n" for r in map(json.loads, clean.splitlines()))
    assert mine("blank-tsv", tsv + "q1\t \n", ".tsv")[0] == mine("clean-tsv", tsv, ".tsv")[0]


def _squad(rows: list[tuple[str, str, str]], impossible: tuple[tuple[str, str, str], ...] = ()) -> dict:
    """SQuAD's layout for (id, question, context) rows, a paragraph per distinct context, an article
    per two paragraphs; ``impossible``: SQuAD 2.0's unanswerable questions."""
    contexts = list(dict.fromkeys(c for _, _, c in rows + list(impossible)))
    paragraphs = [{"context": c,
                   "qas": [{"id": i, "question": q, "answers": [{"text": c[:5], "answer_start": 0}], "is_impossible": False}
                           for i, q, cc in rows if cc == c]
                   + [{"id": i, "question": q, "answers": [], "plausible_answers": [], "is_impossible": True}
                      for i, q, cc in impossible if cc == c]}
                  for c in contexts]
    return {"version": "v2.0", "data": [{"title": f"Article {k}", "paragraphs": paragraphs[k:k + 2]}
                                        for k in range(0, len(paragraphs), 2)]}


def test_a_squad_file_reads_as_its_question_context_pairs(tmp_path):
    """SQuAD's JSON (what PIAF, FQuAD, XQuAD and most QA sets ship; pretty-printed, on one line or
    gzipped; or the hub's squad_v2 rows) reads as (question, context) pairs with the question ids:
    the same candidates as the same pairs in JSON Lines. An unanswerable SQuAD 2.0 question has no positive (not mined) and
    its paragraph is still a candidate for the others."""
    import gzip

    import pyarrow.parquet as pq

    rows = [(f"q{i}", f"question {i} about topic {i % 4}?", f"paragraph on topic {i % 4}: facts and figures {i % 4}")
            for i in range(10)]
    lonely = ("q-x", "a question its paragraph cannot answer?", "a paragraph only an unanswerable question was written on")

    def mine(name: str, source: Path) -> tuple[list, str, Path]:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--min-rank", "0", "--max-rank", "6",
                                     "--sampling", "top", "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out)])
        assert result.exit_code == 0, f"{name}: {result.output}"
        return pq.read_table(out / "candidates.parquet").to_pylist(), result.stderr, out

    doc = _squad(rows, (lonely,))
    pairs = tmp_path / "pairs.jsonl"  # the same rows in the file's order: paragraph by paragraph
    pairs.write_text("".join(
        json.dumps({"query_id": qa["id"], "query": qa["question"]}
                   | ({"positive": "", "negative": par["context"]} if qa["is_impossible"] else {"positive": par["context"]})) + "\n"
        for article in doc["data"] for par in article["paragraphs"] for qa in par["qas"]
    ))
    expected = mine("pairs", pairs)[0]
    pretty = tmp_path / "squad.json"
    pretty.write_text(json.dumps(doc, indent=2, ensure_ascii=False))
    one_line = tmp_path / "squad-line.json"
    one_line.write_text(json.dumps(doc))
    packed = tmp_path / "squad.json.gz"
    packed.write_bytes(gzip.compress(pretty.read_bytes(), mtime=0))
    import pyarrow as pa

    hub = tmp_path / "squad_v2.parquet"  # the hub's squad_v2 rows: unanswerable = no answer text
    pq.write_table(pa.Table.from_pylist([
        {"id": qa["id"], "title": article["title"], "context": par["context"], "question": qa["question"],
         "answers": {"text": [a["text"] for a in qa["answers"]], "answer_start": [a["answer_start"] for a in qa["answers"]]}}
        for article in doc["data"] for par in article["paragraphs"] for qa in par["qas"]
    ]), hub)
    for name, source in (("pretty", pretty), ("one-line", one_line), ("gz", packed), ("hub-squad-v2", hub)):
        got, err, out = mine(name, source)
        assert got == expected, name
        statuses = {r["query_id"]: r["status"] for r in pq.read_table(out / "queries.parquet").to_pylist()}
        assert statuses["q-x"] == "no-positive" and statuses["q3"] == "mined", name
        assert "1 empty positive left out" in err
        assert _stable_id_of(lonely[2], "d") in {r["doc_id"] for r in got}, name  # a candidate for the others


def test_dpr_rows_read_as_the_same_tevatron_rows(tmp_path):
    """DPR's training file (a JSON array, indented: {"question", "answers", "positive_ctxs":
    [{"title", "text", "passage_id"}], "negative_ctxs", "hard_negative_ctxs"}) reads as the Tevatron
    rows holding the same passages: passage ids kept, both negative lists in the pool, a row with
    no positive_ctxs counted and not mined."""
    import pyarrow.parquet as pq

    topics = ["rivers", "volcanoes", "glaciers", "deserts", "forests"]

    def ctx(kind: str, t: str, j: int) -> dict:
        return {"title": t.title(), "text": f"{kind} passage {j} on {t}", "score": 1.5, "title_score": 0, "passage_id": f"{kind}-{t}-{j}"}

    dpr = [{"dataset": "nq_train_psgs_w100", "question": f"what shapes {t}?", "answers": ["water"],
            "positive_ctxs": [ctx("pos", t, 0)], "negative_ctxs": [ctx("neg", t, j) for j in range(2)],
            "hard_negative_ctxs": [ctx("hard", t, j) for j in range(3)]} for t in topics]
    dpr.append({"question": "a question DPR found no passage for", "answers": ["x"], "positive_ctxs": [],
                "negative_ctxs": [], "hard_negative_ctxs": [ctx("hard", "nothing", 0)]})

    def passages(items: list) -> list:
        return [{"docid": c["passage_id"], "title": c["title"], "text": c["text"]} for c in items]

    tevatron = [{"query": r["question"], "positive_passages": passages(r["positive_ctxs"]),
                 "negative_passages": passages(r["hard_negative_ctxs"] + r["negative_ctxs"])} for r in dpr]
    (tmp_path / "dpr.json").write_text(json.dumps(dpr, indent=4))
    (tmp_path / "tevatron.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tevatron))
    runs = {}
    for name in ("dpr.json", "tevatron.jsonl"):
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(tmp_path / name), "--model", "hashing", "--min-rank", "0", "--max-rank", "8",
                                     "--sampling", "top", "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert "1 empty positive left out" in result.stderr
        assert ": 31 documents, 6 queries" in result.stderr  # 5 x (1 + 3 + 2) passages and the row without positive's
        runs[name] = pq.read_table(out / "candidates.parquet").to_pylist()
        statuses = [r["status"] for r in pq.read_table(out / "queries.parquet").to_pylist()]
        assert statuses == ["mined"] * 5 + ["no-positive"]
    assert runs["dpr.json"] == runs["tevatron.jsonl"]
    ids = {r["doc_id"] for r in runs["dpr.json"]}
    assert {"pos-rivers-0", "hard-rivers-2", "neg-rivers-1"} <= ids


def _stable_id_of(text: str, prefix: str = "q") -> str:
    from hardneg.inputs import _stable_id

    return _stable_id(prefix, text)


@pytest.mark.parametrize(("content", "line", "needle"), [
    (b'{\n  "version": "1.1",\n  "data": [{"paragraphs": [{"context": "c", "qas": [\n    {"id": "a", "question": "q?"},\n'
     b'    {"id": "b", "question": 7}\n  ]}]}]\n}\n', 5, "field 'question' must be a string, got int"),
    (b'{"data": [{"paragraphs": {"context": "c"}}]}\n', None, "SQuAD field 'data[0].paragraphs' must be a list, got dict"),
    (b'{"data": [{"paragraphs": [{"context": "c"}]}]}\n', None, "SQuAD field 'data[0].paragraphs[0]' must be an object with"),
    (b'{\n  "query": "q?",\n  "positive": "p"\n}\n', 1, "one JSON object spread over several lines"),
    (b'{\n  "data": [\n', 3, "malformed JSON (unexpected end of data)"),
    (b'{\n  "data": [{"paragraphs": [{"context": "caf\xe9", "qas": []}]}]}\n', 2, "not valid UTF-8"),
])
def test_a_broken_squad_file_is_one_error(tmp_path, content, line, needle):
    (tmp_path / "squad.json").write_bytes(content)
    _mine_fails_cleanly(tmp_path, tmp_path / "squad.json", f"squad.json:{line}: " if line else "squad.json: ", needle)


def test_mteb_qrels_in_json_lines_read_as_beirs(tmp_path, tiny_beir):
    """MTEB's copies of the BEIR sets on the hub keep qrels as ``qrels/<split>.jsonl``
    (``{"query-id", "corpus-id", "score"}``, ids as text or numbers): the same input as the TSV."""
    import shutil

    def mine(name: str, source: Path) -> bytes:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--min-rank", "0", "--max-rank", "6",
                                     "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes()

    mteb = shutil.copytree(tiny_beir, tmp_path / "mteb")
    rows = [line.split("\t") for line in (mteb / "qrels" / "train.tsv").read_text().splitlines()[1:] if line.strip()]
    (mteb / "qrels" / "train.tsv").unlink()
    (mteb / "qrels" / "train.jsonl").write_text("".join(
        json.dumps({"query-id": q, "corpus-id": d, "score": int(sc)}) + "\n" for q, d, sc in rows))
    assert mine("mteb", mteb) == mine("beir", tiny_beir)

    (mteb / "qrels" / "test.tsv").rename(mteb / "qrels" / "test.jsonl.gz")  # a name is enough to be listed
    result = runner.invoke(app, ["mine", str(mteb), "--split", "dev", "--model", "hashing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "no qrels for split 'dev'; available splits: test, train" in result.stderr
    (mteb / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n")
    _mine_fails_cleanly(tmp_path, mteb, "qrels: the judgments of split 'train' are here in 2 forms (train.tsv, train.jsonl); keep one")
    (mteb / "qrels" / "train.tsv").unlink()
    for line, needle in ((json.dumps({"query-id": "q1", "corpus-id": "d01"}), "missing field 'score'"),
                         (json.dumps({"query-id": "q1", "corpus-id": "d01", "score": "high"}), "field 'score': 'high' is not a number"),
                         (json.dumps({"query-id": "q1", "corpus-id": "d99", "score": 1}), "corpus id 'd99' is not in corpus.jsonl"),
                         (json.dumps({"query-id": "q1", "score": 1}), "missing field 'corpus-id'")):
        (mteb / "qrels" / "train.jsonl").write_text(json.dumps({"query-id": "q1", "corpus-id": "d01", "score": 1}) + "\n" + line + "\n")
        _mine_fails_cleanly(tmp_path, mteb, "train.jsonl:2: ", needle)


def test_a_query_that_is_a_corpus_document_is_never_its_own_negative(tmp_path):
    """ArguAna and Quora put every query in the corpus too (ArguAna: the query is the document's
    title and text joined by two spaces, under the same id). That document is the query itself:
    filtered as a duplicate, never a negative, though it ranks first."""
    import pyarrow.parquet as pq

    args = [(f"arg-{i}", f"Claim {i} about topic {i % 3}", f"Because reasons {i} on topic {i % 3} hold.") for i in range(9)]
    root = _beir(
        tmp_path / "arguana",
        "".join(json.dumps({"_id": i, "title": t, "text": x}) + "\n" for i, t, x in args).encode(),
        "".join(json.dumps({"_id": i, "text": f"{t}  {x}"}) + "\n" for i, t, x in args[:3]).encode(),
        b"query-id\tcorpus-id\tscore\n" + b"".join(f"{i}\targ-{int(i[4:]) + 3}\t1\n".encode() for i, _, _ in args[:3]),
    )
    result = runner.invoke(app, ["mine", str(root), "--model", "hashing", "--min-rank", "0", "--max-rank", "9",
                                 "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "run" / "candidates.parquet").to_pylist()
    own = [r for r in rows if r["doc_id"] == r["query_id"]]
    assert len(own) == 3 and all(r["rank"] == 0 and r["filter"] == "duplicate" and not r["selected"] for r in own)


def test_a_few_judgments_on_documents_the_corpus_lacks_are_left_out(tmp_path):
    """BEIR's ArguAna judges one document its corpus does not hold: up to 1% of a split's judgments
    may name such documents; they are left out and counted (pytrec_eval ignores them) and a query
    judged only on them is not mined. More than that is an error: the qrels are not this corpus's."""
    import pyarrow.parquet as pq

    docs = "".join(json.dumps({"_id": f"d{i}", "text": f"passage {i} on topic {i % 7}"}) + "\n" for i in range(200))
    queries = "".join(json.dumps({"_id": f"q{i}", "text": f"question on topic {i % 7}"}) + "\n" for i in range(150))
    qrels = "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(149)) + "q149\tgone-con03b\t1\n"
    root = _beir(tmp_path / "arguana", docs.encode(), queries.encode(), qrels.encode())
    result = runner.invoke(app, ["mine", str(root), "--model", "hashing", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    assert "warning: 1 judgment on documents not in the corpus left out (gone-con03b)" in result.stderr
    left_out = json.loads((tmp_path / "run" / "manifest.json").read_text())["input"]["left_out"]
    assert left_out == {"judgments_on_missing_documents": 1, "missing_document_ids": ["gone-con03b"]}
    statuses = {r["query_id"]: r["status"] for r in pq.read_table(tmp_path / "run" / "queries.parquet").to_pylist()}
    assert statuses["q149"] == "no-positive" and statuses["q0"] == "mined"
    (root / "qrels" / "train.tsv").write_text(qrels.replace("q0\td0\t1", "q0\tgone-1\t1").replace("q1\td1\t1", "q1\tgone-2\t1"))
    (tmp_path / "again").mkdir()
    _mine_fails_cleanly(tmp_path / "again", root, "train.tsv:2: corpus id 'gone-1' is not in corpus.jsonl (nor are the documents of "
                        "2 more judgments: is this the corpus these qrels judge?)")


def _hub_beir(src: Path, dst: Path, layout: str) -> Path:
    """``src`` (a BEIR folder) as the Hugging Face hub keeps the BEIR sets, each part a folder of Parquet shards:
    ``beir`` (BeIR/<set>: corpus/corpus-00000-of-00001.parquet, queries/queries-…; its judgments, in a dataset of
    their own, put in qrels/ as they come), ``mteb`` (corpus/, queries/ and default/<split>-00000-of-00001.parquet
    with query-id, corpus-id, score), ``converted`` (the hub's Parquet conversion: corpus/corpus/0000.parquet,
    default/train/0000.parquet; ``converted-split``: the queries too by split, queries/train/0000.parquet),
    ``jsonl`` (the same as mteb's, in JSON Lines shards)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    def write(rows: list[dict], file: Path) -> None:
        file.parent.mkdir(parents=True, exist_ok=True)
        if file.suffix == ".jsonl":
            file.write_text("".join(json.dumps(r) + "\n" for r in rows))
        else:
            pq.write_table(pa.Table.from_pylist(rows), file)

    def records(name: str) -> list[dict]:
        return [json.loads(line) for line in (src / name).read_text().splitlines() if line.strip()]

    ext = ".jsonl" if layout == "jsonl" else ".parquet"
    shard = "{}-00000-of-00001" + ext
    for part in ("corpus", "queries"):
        if layout == "converted-split" and part == "queries":  # a configuration with splits: queries/train/0000.parquet
            for split in ("train", "test"):
                write(records("queries.jsonl"), dst / f"queries/{split}/0000{ext}")
            continue
        file = f"{part}/{part}/0000{ext}" if layout.startswith("converted") else f"{part}/" + shard.format(part if layout == "beir" else "test")
        write(records(f"{part}.jsonl"), dst / file)
    for qrels in sorted((src / "qrels").glob("*.tsv")):
        split = qrels.stem
        if layout == "beir":
            (dst / "qrels").mkdir(parents=True, exist_ok=True)
            (dst / "qrels" / qrels.name).write_bytes(qrels.read_bytes())
            continue
        rows = [line.split("\t") for line in qrels.read_text().splitlines()[1:] if line.strip()]
        write([{"query-id": q, "corpus-id": d, "score": int(sc)} for q, d, sc in rows],
              dst / ("default/" + (f"{split}/0000{ext}" if layout.startswith("converted") else shard.format(split))))
    return dst


@pytest.mark.parametrize("layout", ["beir", "mteb", "converted", "converted-split", "jsonl"])
def test_the_hubs_beir_layouts_mine_like_the_files(tmp_path, tiny_beir, layout):
    """The BEIR sets as the hub keeps them (a folder of shards per part, the judgments in shards named
    by split) are the same input as BEIR's files: byte-identical candidates, for either split."""
    def mine(name: str, source: Path, split: str) -> bytes:
        out = tmp_path / f"run-{name}-{split}"
        result = runner.invoke(app, ["mine", str(source), "--split", split, "--model", "hashing", "--min-rank", "0",
                                     "--max-rank", "6", "--allow-empty", "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out),
                                     "--quiet"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes()

    hub = _hub_beir(tiny_beir, tmp_path / layout, layout)
    for split in ("train", "test"):
        assert mine(layout, hub, split) == mine("files", tiny_beir, split), split
    if layout == "beir":  # a download of BeIR/<set> holds corpus.jsonl.gz beside its Parquet copy: the file is read
        import gzip

        for part in ("corpus", "queries"):
            (hub / f"{part}.jsonl.gz").write_bytes(gzip.compress((tiny_beir / f"{part}.jsonl").read_bytes()))
        import pyarrow as pa
        import pyarrow.parquet as pq

        rows = [json.loads(line) for line in (tiny_beir / "corpus.jsonl").read_text().splitlines() if line.strip()]
        extra = {"_id": "only-in-parquet", "title": "", "text": rows[0]["text"] + " and more"}  # would be a candidate
        pq.write_table(pa.Table.from_pylist([*rows, extra]), hub / "corpus" / "corpus-00000-of-00001.parquet")
        assert mine("both", hub, "train") == mine("files", tiny_beir, "train")
    result = runner.invoke(app, ["mine", str(hub), "--split", "dev", "--model", "hashing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "no qrels for split 'dev'; available splits: test, train" in result.stderr


def test_a_null_query_text_is_a_blank_query(tmp_path, tiny_beir):
    """A query whose text is null (a Parquet file's missing value) is reported `empty-text`, exactly as
    a blank one; a query record without a text field is still an error."""
    import shutil

    import pyarrow.parquet as pq

    def mine(name: str, text: object) -> bytes:
        beir = shutil.copytree(tiny_beir, tmp_path / name)
        lines = (beir / "queries.jsonl").read_text().splitlines()
        lines[0] = json.dumps({**json.loads(lines[0]), "text": text})
        (beir / "queries.jsonl").write_text("\n".join(lines) + "\n")
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "6",
                                     "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        assert {r["status"] for r in pq.read_table(out / "queries.parquet").to_pylist() if r["query_id"] == "q1"} == {"empty-text"}
        return (out / "candidates.parquet").read_bytes()

    assert mine("null", None) == mine("blank", " ")
    beir = tmp_path / "null"
    lines = (beir / "queries.jsonl").read_text().splitlines()
    (beir / "queries.jsonl").write_text("\n".join([json.dumps({"_id": "q1"}), *lines[1:]]) + "\n")
    _mine_fails_cleanly(tmp_path, beir, "queries.jsonl:1: missing field 'text' (or 'query'); found fields: _id")


def test_the_hubs_beir_layouts_fail_cleanly(tmp_path, tiny_beir):
    """Each wrong or ambiguous form of the hub's layout is one error line naming the place."""
    import shutil

    import pyarrow as pa
    import pyarrow.parquet as pq

    hub = _hub_beir(tiny_beir, tmp_path / "hub", "beir")
    shutil.rmtree(hub / "qrels")  # BeIR/<set> without its -qrels dataset
    _mine_fails_cleanly(tmp_path, hub, "no qrels for split 'train'; available splits: (none)", "BeIR/<name>-qrels")
    mteb = _hub_beir(tiny_beir, tmp_path / "mteb", "mteb")
    (mteb / "default" / "train.tsv").write_bytes((tiny_beir / "qrels" / "train.tsv").read_bytes())
    _mine_fails_cleanly(tmp_path, mteb, "judgments of split 'train' are here in 2 forms (train.tsv, train-00000-of-00001.parquet); keep one")
    (mteb / "default" / "train.tsv").unlink()
    train = mteb / "default" / "train-00000-of-00001.parquet"
    pq.write_table(pa.Table.from_pylist([{"query-id": "q1", "corpus-id": "nope", "score": 1}] * 2), train)
    _mine_fails_cleanly(tmp_path, mteb, "train-00000-of-00001.parquet:1: corpus id 'nope' is not in corpus")
    pq.write_table(pa.Table.from_pylist([{"query-id": "q1", "corpus-id": "d01"}]), train)
    _mine_fails_cleanly(tmp_path, mteb, "train-00000-of-00001.parquet: ", "score")
    (mteb / "queries" / "test-00000-of-00001.parquet").rename(mteb / "queries" / "test-00000-of-00001.txt")
    _mine_fails_cleanly(tmp_path, mteb, "a BEIR folder with corpus but no queries: it needs queries.jsonl (or .jsonl.gz; or one "
                                        "queries.parquet, .arrow, .json, .tsv or .csv), or a queries/ folder holding its data files")
    half = tmp_path / "half"  # BEIR's files, one of them missing: not read as a pairs folder of two files
    half.mkdir()
    shutil.copy(tiny_beir / "queries.jsonl", half / "queries.jsonl")
    _mine_fails_cleanly(tmp_path, half, "a BEIR folder with queries but no corpus: it needs corpus.jsonl")
    (half / "corpus.jsonl").symlink_to(tmp_path / "moved" / "corpus.jsonl")  # a link whose target went away
    _mine_fails_cleanly(tmp_path, half, "no corpus (corpus.jsonl is a link to ", "moved/corpus.jsonl, which does not exist)")
    (half / "corpus.jsonl").unlink()
    (half / "corpus.jsonl").mkdir()
    _mine_fails_cleanly(tmp_path, half, "no corpus (corpus.jsonl is a folder, not a file)")
    repo = tmp_path / "repo"  # a dataset repository whose subsets are corpus/ and triplet/: not a BEIR set
    shutil.copytree(mteb / "corpus", repo / "corpus")
    shutil.copytree(mteb / "default", repo / "triplet")
    _mine_fails_cleanly(tmp_path, repo, "holds no data files itself; its subfolders corpus, triplet do: point at one of them")


def test_missing_split_lists_the_available_ones(tmp_path):
    root = _beir(tmp_path / "data", GOOD_DOCS)
    result = runner.invoke(app, ["mine", str(root), "--split", "dev", "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert "no qrels for split 'dev'; available splits: train" in result.stderr


def test_unreadable_input_path(tmp_path):
    result = runner.invoke(app, ["mine", str(tmp_path / "nope.jsonl"), "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert result.stderr.strip() == f"Error: {tmp_path / 'nope.jsonl'}: no such file or directory"


def test_labeled_pairs_read_their_label_a_zero_is_a_judged_negative_never_a_positive(tmp_path):
    """sentence-transformers' labeled-pair rows (query, passage, label: "not strictly positives"),
    RAGatouille's labeled pairs and labeled-list rows (a list of passages, a list of labels): a
    passage labeled 0 was read as a positive. It is a document judged not relevant: a confirmed
    negative (--no-qrels-negatives: an ordinary candidate), never a positive. The same pairs in
    every shape mine the same candidates."""
    import csv

    import pyarrow as pa
    import pyarrow.parquet as pq

    topics = ["volcanoes", "tides", "glaciers", "comets", "monsoons", "coral reefs"]
    pos = {t: f"{t} form when forces act on the earth in the way the {t} article explains" for t in topics}
    neg = {t: f"{t} are unrelated to the {t} question, a passage judged not relevant" for t in topics}
    pairs = [(f"how do {t} form", pos[t], 1) for t in topics] + [(f"how do {t} form", neg[t], 0) for t in topics]
    shapes = {
        "passage.jsonl": "".join(json.dumps({"query": q, "passage": p, "label": lab}) + "\n" for q, p, lab in pairs),
        "st-labeled-pair.jsonl": "".join(json.dumps({"anchor": q, "positive": p, "label": bool(lab)}) + "\n" for q, p, lab in pairs),
        "labeled-list.jsonl": "".join(json.dumps({"query": f"how do {t} form", "answer": [pos[t], neg[t]], "labels": [1, 0]}) + "\n"
                                      for t in topics),
    }
    for name, content in shapes.items():
        (tmp_path / name).write_text(content)
    pq.write_table(pa.Table.from_pylist([{"sentence1": q, "sentence2": p, "label": lab} for q, p, lab in pairs]),
                   tmp_path / "two-columns.parquet")
    with open(tmp_path / "spreadsheet.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([("query", "passage", "label"), *((q, p, "yes" if lab else "no") for q, p, lab in pairs)])

    def mine(name: str, *extra: str) -> tuple[list[dict], dict[str, list[str]], dict]:
        out = tmp_path / f"run-{name}{'-'.join(extra)}"
        result = runner.invoke(app, ["mine", str(tmp_path / name), "--model", "hashing", "-n", "2", "--workdir", str(tmp_path / "wd"),
                                     "--out", str(out), "--quiet", *extra])
        assert result.exit_code == 0, f"{name}: {result.output}"
        queries = pq.read_table(out / "queries.parquet").to_pydict()
        return (pq.read_table(out / "candidates.parquet").to_pylist(), dict(zip(queries["query_id"], queries["positive_ids"])),
                json.loads((out / "manifest.json").read_text())["stats"])

    candidates, positives, stats = mine("passage.jsonl")
    assert all(len(p) == 1 for p in positives.values()) and len(positives) == len(topics)
    judged = {(r["query_id"], r["doc_id"]) for r in candidates if r["confirmed"]}
    assert len(judged) == len(topics) and all(r["selected"] for r in candidates if r["confirmed"])
    assert not judged & {(q, d) for q, ds in positives.items() for d in ds}
    assert stats["labels"]["qrels_not_relevant"] == len(topics)
    for name in ("st-labeled-pair.jsonl", "labeled-list.jsonl", "two-columns.parquet", "spreadsheet.csv"):
        assert mine(name)[:2] == (candidates, positives), name
    # A triplet tagged label 0 (the tag names its negative): its positive stays a positive.
    (tmp_path / "tagged-triplets.jsonl").write_text("".join(
        json.dumps({"query": f"how do {t} form", "positive": pos[t], "negative": neg[t], "label": 0}) + "\n" for t in topics))
    assert mine("tagged-triplets.jsonl")[1] == positives
    plain, plain_positives, plain_stats = mine("passage.jsonl", "--no-qrels-negatives")
    assert plain_positives == positives and not any(r["confirmed"] for r in plain) and not plain_stats["labels"]
    for content, line, needle in [
        ('{"query": "a", "passage": "b", "label": "maybe"}\n', 1, "field 'label': 'maybe' is not a relevance label"),
        ('{"query": "a", "passage": "b", "label": 0.5}\n', 1, "field 'label': 0.5 is not a relevance label"),
        ('{"query": "a", "answer": ["b", "c"], "labels": [1]}\n', 1, "field 'labels' must be a list of 2 labels"),
    ]:
        (tmp_path / "bad.jsonl").write_text(content)
        _mine_fails_cleanly(tmp_path, tmp_path / "bad.jsonl", f"bad.jsonl:{line}: {needle}")


def test_a_dataset_file_names_a_layout_no_folder_convention_covers(tmp_path, tiny_beir):
    """MIRACL's layout: a corpus folder of gzipped JSON Lines shards (docid, title, text), topics as
    qid<TAB>text lines and TREC qrels, in folders of their own, named by a TOML file with {split}:
    mined exactly like the same data as a BEIR folder, and evaluated too. Bad dataset files are one
    error naming the file and the key."""
    import pyarrow.parquet as pq

    mir = tmp_path / "miracl"
    (mir / "corpus").mkdir(parents=True)
    (mir / "topics").mkdir()
    (mir / "qrels").mkdir()
    docs = [json.loads(line) for line in (tiny_beir / "corpus.jsonl").read_text().splitlines()]
    for shard in range(2):  # two shards, in name order
        part = docs[: len(docs) // 2] if shard == 0 else docs[len(docs) // 2 :]
        (mir / "corpus" / f"docs-{shard}.jsonl.gz").write_bytes(gzip.compress(
            "".join(json.dumps({"docid": d["_id"], "title": d["title"], "text": d["text"]}) + "\n" for d in part).encode(), mtime=0))
    queries = [json.loads(line) for line in (tiny_beir / "queries.jsonl").read_text().splitlines()]
    (mir / "topics" / "topics.train.tsv").write_text("".join(f"{q['_id']}\t{q['text']}\n" for q in queries))
    qrels = [line.split("\t") for line in (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    (mir / "qrels" / "qrels.train.tsv").write_text("".join(f"{q}\tQ0\t{d}\t{r}\n" for q, d, r in qrels))
    spec = mir / "dataset.toml"
    spec.write_text('corpus = "corpus"\nqueries = "topics/topics.{split}.tsv"\nqrels = "qrels/qrels.{split}.tsv"\n')

    def mine(name: str, source: Path) -> list[dict]:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--workdir", str(tmp_path / f"wd-{name}"),
                                     "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert f"input: dataset file {source} (split train)" in result.stderr or name == "beir", result.stderr
        return pq.read_table(out / "candidates.parquet").to_pylist()

    assert mine("miracl", spec) == mine("beir", tiny_beir)
    assert runner.invoke(app, ["eval", str(spec), "--model", "hashing", "--split", "train"]).exit_code == 0
    for content, split, needle in [
        ('corpus = "corpus"\nqueries = "topics/topics.{split}.tsv"\n', "train", "'qrels' must be the path of the qrels (a string;"),
        ('corpus = "corpus"\nqueries = "topics/topics.{split}.tsv"\nqrels = "qrels/qrels.{split}.tsv"\n', "dev",
         "'queries' = 'topics/topics.{split}.tsv': " + str(mir / "topics" / "topics.dev.tsv") + " does not exist (split 'dev'; use --split)"),
        ('corpus = "corpus"\nqueries = "topics"\nqrels = "qrels/qrels.{split}.tsv"\n', "train", "'queries' = 'topics': "),
        ('corpus = 3\nqueries = "q"\nqrels = "r"\n', "train", "'corpus' must be the path of the corpus (a string;"),
        ('corpus = "corpus"\nquery = "x"\n', "train", "unknown key 'query'; a dataset file names corpus, queries, qrels"),
        ('corpus = "corpus\n', "train", "not valid TOML"),
    ]:
        spec.write_text(content)
        result = runner.invoke(app, ["mine", str(spec), "--model", "hashing", "--split", split, "--workdir", str(tmp_path / "wd-bad"),
                                     "--out", str(tmp_path / "bad")])
        assert result.exit_code == 1 and result.stderr.startswith(f"Error: {spec}: "), result.output
        assert needle in result.stderr, result.stderr
        assert not (tmp_path / "bad").exists()


def _tiny_parts(tiny_beir: Path) -> tuple[list[dict], list[dict], list[list[str]]]:
    """The tiny fixture's documents, queries and train qrels rows (query, document, score)."""
    docs = [json.loads(line) for line in (tiny_beir / "corpus.jsonl").read_text().splitlines()]
    queries = [json.loads(line) for line in (tiny_beir / "queries.jsonl").read_text().splitlines()]
    qrels = [line.split("\t") for line in (tiny_beir / "qrels" / "train.tsv").read_text().splitlines()[1:]]
    return docs, queries, qrels


def _mined(tmp_path: Path, source: Path, name: str, *extra: str) -> list[dict]:
    import pyarrow.parquet as pq

    out = tmp_path / f"run-{name}"
    result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out),
                                 "--quiet", *extra])
    assert result.exit_code == 0, f"{name}: {result.output}"
    return pq.read_table(out / "candidates.parquet").to_pylist()


def test_a_beir_folder_whose_parts_are_single_files_of_other_formats_is_read(tmp_path, tiny_beir):
    """corpus.parquet (a DataFrame's to_parquet), queries.tsv (qid<TAB>text), corpus.csv, a JSON
    array: the readers a dataset file uses, found by name in a BEIR-like folder. They said the folder
    had queries but no corpus. Two forms of one part is ambiguous: an error naming both."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    docs, queries, _ = _tiny_parts(tiny_beir)
    reference = _mined(tmp_path, tiny_beir, "beir")
    forms = {
        "parquet": lambda d: pq.write_table(pa.Table.from_pylist(docs), d / "corpus.parquet"),
        "csv": lambda d: (d / "corpus.csv").write_text("_id,title,text\n" + "".join(
            f'{x["_id"]},"{x["title"]}","{x["text"]}"\n' for x in docs)),
        "json-array": lambda d: (d / "corpus.json").write_text(json.dumps(docs)),
        "tsv": lambda d: (d / "corpus.tsv").write_text("".join(f'{x["_id"]}\t{x["text"]}\t{x["title"]}\n' for x in docs)),
    }
    for name, write in forms.items():
        folder = tmp_path / name
        (folder / "qrels").mkdir(parents=True)
        (folder / "qrels" / "train.tsv").write_bytes((tiny_beir / "qrels" / "train.tsv").read_bytes())
        write(folder)
        (folder / "queries.tsv").write_text("".join(f'{q["_id"]}\t{q["text"]}\n' for q in queries))
        assert _mined(tmp_path, folder, name) == reference, name
    pq.write_table(pa.Table.from_pylist(queries), tmp_path / "tsv" / "queries.parquet")
    _mine_fails_cleanly(tmp_path, tmp_path / "tsv", "both queries.parquet and queries.tsv are here; keep one")


def test_a_headerless_corpus_tsv_is_read_under_any_name(tmp_path, tiny_beir):
    """id<TAB>text[<TAB>title] lines were read without a header only as collection*.tsv: the same
    file as docs.tsv in a dataset file (or --corpus passages.tsv) was told it lacked a 'text' column.
    A first row that names known columns is still a header."""
    docs, _, _ = _tiny_parts(tiny_beir)
    (tiny_beir / "docs.tsv").write_text("".join(f'{d["_id"]}\t{d["text"]}\t{d["title"]}\n' for d in docs))
    (tiny_beir / "dataset.toml").write_text('corpus = "docs.tsv"\nqueries = "queries.jsonl"\nqrels = "qrels/{split}.tsv"\n')
    assert _mined(tmp_path, tiny_beir / "dataset.toml", "toml") == _mined(tmp_path, tiny_beir, "beir")
    (tiny_beir / "docs.tsv").write_text("id\ttitle\ttext\n" + "".join(f'{d["_id"]}\t{d["title"]}\t{d["text"]}\n' for d in docs))
    assert _mined(tmp_path, tiny_beir / "dataset.toml", "header") == _mined(tmp_path, tiny_beir, "beir")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "What is the capital of France?", "positive": docs[0]["text"]}) + "\n")
    (tmp_path / "passages.tsv").write_text("".join(f'{d["_id"]}\t{d["text"]}\n' for d in docs))
    rows = _mined(tmp_path, pairs, "pairs", "--corpus", str(tmp_path / "passages.tsv"), "--min-rank", "0")
    assert {r["doc_id"] for r in rows} <= {d["_id"] for d in docs} and rows


def test_a_llamaindex_qa_dataset_json_is_read_as_a_judged_dataset(tmp_path, tiny_beir):
    """LlamaIndex's EmbeddingQAFinetuneDataset (`generate_qa_embedding_pairs(...).save_json`): one
    JSON object of queries, corpus and relevant_docs, the dicts sentence-transformers'
    InformationRetrievalEvaluator takes. It was read as a pairs file and failed on a missing 'query'
    field. Pretty-printed or on one line, gzipped, graded, evaluated; bad entries are one error
    naming the entry and its line."""
    docs, queries, qrels = _tiny_parts(tiny_beir)
    relevant: dict[str, list[str]] = {}
    for q, d, _ in qrels:
        relevant.setdefault(q, []).append(d)
    text_only = tmp_path / "text-only"
    shutil.copytree(tiny_beir, text_only)  # LlamaIndex's corpus is id -> text, without titles
    (text_only / "corpus.jsonl").write_text("".join(json.dumps({"_id": d["_id"], "text": d["text"]}) + "\n" for d in docs))
    dataset = {"queries": {q["_id"]: q["text"] for q in queries if q["_id"] in relevant},
               "corpus": {d["_id"]: d["text"] for d in docs}, "relevant_docs": relevant, "mode": "text"}
    reference = _mined(tmp_path, text_only, "beir")
    (tmp_path / "train_dataset.json").write_text(json.dumps(dataset, indent=4))
    assert _mined(tmp_path, tmp_path / "train_dataset.json", "pretty") == reference
    (tmp_path / "one-line.json.gz").write_bytes(gzip.compress(json.dumps(dataset).encode(), mtime=0))
    assert _mined(tmp_path, tmp_path / "one-line.json.gz", "gz") == reference
    # Documents with titles, graded judgments (a grade of 0: judged not relevant, a confirmed negative).
    graded = {**dataset, "corpus": {d["_id"]: {"title": d["title"], "text": d["text"]} for d in docs},
              "relevant_docs": {q: {d: 1 for d in ds} | ({"d40": 0} if q == "q1" else {}) for q, ds in relevant.items()}}
    (tmp_path / "graded.json").write_text(json.dumps(graded, indent=2))
    rows = _mined(tmp_path, tmp_path / "graded.json", "graded", "--min-rank", "0", "--max-rank", "40")
    assert [(r["query_id"], r["doc_id"]) for r in rows if r["confirmed"]] == [("q1", "d40")]
    result = runner.invoke(app, ["eval", str(tmp_path / "train_dataset.json"), "--model", "hashing", "--json"])
    assert result.exit_code == 0 and json.loads(result.stdout)["queries"] == len(relevant), result.output
    result = runner.invoke(app, ["mine", str(tmp_path / "graded.json"), "--corpus", str(tiny_beir / "corpus.jsonl"), "--model", "hashing",
                                 "--out", str(tmp_path / "bad")])
    assert result.exit_code == 1 and "--corpus applies to a pairs file; this file holds its own corpus" in result.stderr
    for change, line, needle in [
        (lambda d: d["relevant_docs"].update(q99=["d01"]), "\"q99\"", "query id 'q99' is not in bad.json's queries"),
        (lambda d: d["relevant_docs"].update(q1=["d01", "d99", "d98"]), None, "corpus id 'd99' is not in bad.json's corpus"),
        (lambda d: d["corpus"].update(d05=["text"]), "\"d05\"", "corpus['d05'] must be a text or an object with 'text' (and 'title'), got list"),
        (lambda d: d["corpus"].update(d05="a \x00 b"), "\"d05\"", "corpus['d05']: the text contains a NUL byte"),
        (lambda d: d["queries"].update(q2=3), "\"q2\"", "queries['q2']: the text must be a string, got int"),
        (lambda d: d["queries"].update({" q2": "again"}), "\" q2\"", "query ids 'q2' and ' q2' are the same id once stripped of spaces"),
        (lambda d: d["relevant_docs"].update(q2="d01 d02".split() + [None]), "\"q2\": [", "relevant_docs['q2'] holds None, not a document id"),
        (lambda d: d["relevant_docs"].update(q2={"d02": "yes"}), "\"q2\": {", "relevant_docs['q2']['d02'] must be a number"),
        (lambda d: d.update(corpus=[]), "\"corpus\"", "'corpus' must be an object mapping ids to texts, got list"),
    ]:
        bad = json.loads(json.dumps(dataset))
        change(bad)
        text = json.dumps(bad, indent=4)
        (tmp_path / "bad.json").write_text(text)
        where = f"bad.json:{text[: text.index(line)].count(chr(10)) + 1}: " if line else "bad.json:"
        _mine_fails_cleanly(tmp_path, tmp_path / "bad.json", where, needle)


def test_an_artifact_given_as_input_data_says_what_it_is_and_what_reads_it(tmp_path, tiny_beir):
    """eval and embed take raw data; given one of hardneg's own artifacts they said the folder held
    files of several formats, or that candidates.parquet lacked a 'query' column."""
    run, export = tmp_path / "run", tmp_path / "export"
    assert runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--workdir", str(tmp_path / "wd"), "--out", str(run),
                               "--quiet"]).exit_code == 0
    assert runner.invoke(app, ["export", str(run), "--format", "colbert", "--out", str(export), "--quiet"]).exit_code == 0
    for command, artifact, kind, reader in [
        (["eval"], run, "mine-run", "`hardneg export`, `report` and `select` read a mining run"),
        (["eval"], export, "export", "`hardneg train` reads an export"),
        (["embed", "--out", str(tmp_path / "emb")], run, "mine-run", "read a mining run"),
    ]:
        result = runner.invoke(app, [*command, str(artifact), "--model", "hashing"])
        assert result.exit_code == 1, result.output
        assert result.stderr.startswith(f"Error: {artifact}: is a hardneg '{kind}' artifact (written by `hardneg "), result.stderr
        assert "not input data: give the BEIR or MS MARCO folder or the pairs file it was made from" in result.stderr
        assert reader in result.stderr
    assert not (tmp_path / "emb").exists()


def test_a_directory_given_as_a_pairs_corpus_is_reported(tmp_path):
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "a", "positive": "b"}) + "\n")
    (tmp_path / "corpus.jsonl").mkdir()
    result = runner.invoke(app, ["mine", str(pairs), "--corpus", str(tmp_path / "corpus.jsonl"), "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert "corpus.jsonl: a folder without data files" in result.stderr  # a folder of shards would be read


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (b'{"query": "a"}\n', "missing field 'positive' (or 'pos', 'answer', 'positive_passages', 'positive_ctxs', 'context', 'passage', 'document', 'pos_doc'); found fields: query"),
        (b'{"query": "a", "positive": 3}\n', "field 'positive' must be a string"),
        (b'{"query": "a", "pos": ["b", 3]}\n', "field 'pos[1]' must be a string, got int"),
        (b'{"query": "a", "pos": ["b", "c"], "pid": ["p1", null]}\n', "field 'pid[1]' is null"),
        (b'{"query": ["a"], "positive": "b"}\n', "field 'query' must be a string, got list"),
        (b'{"query": "a", "pos": ["b", "c"], "pid": "p1"}\n', "field 'pid' must be a list of 2 ids, one per text of 'pos'"),
        (b'{"query": "a", "pos": ["b", "c"], "pid": ["p1", "p\\tx"]}\n', "field 'pid[1]' contains a tab"),
        (b'{"text": "a", "pos": ["b"]}\n', "missing field 'query' (or 'anchor', 'question'); found fields: text, pos"),
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

    # Three columns, one of them no text hardneg knows: no pair (two columns would be read in order).
    pq.write_table(pa.table({"question": ["a"], "reply": ["b"], "source": ["c"]}), tmp_path / "pairs.parquet")
    result = runner.invoke(app, ["mine", str(tmp_path / "pairs.parquet"), "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert (
        "pairs.parquet: missing column 'positive' (or 'pos', 'answer', 'positive_passages', 'positive_ctxs', 'context', 'passage', 'document', 'pos_doc'); "
        "found columns: question, reply, source" in result.stderr
    )


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


def _mine_fails_cleanly(tmp_path: Path, source: Path, *needles: str, extra: tuple[str, ...] = ()) -> None:
    """`hardneg mine source` exits 1 with one line on stderr holding every needle, no traceback, and
    no output directory."""
    out = tmp_path / "run"
    result = runner.invoke(app, ["mine", str(source), *extra, "--model", "hashing", "--workdir", str(tmp_path / "wd"),
                                 "--out", str(out)])
    assert result.exit_code == 1, result.output
    assert all(n in result.stderr for n in needles), result.stderr
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.output
    assert not out.exists()


def _gzip_beir(src: Path, dst: Path, how: str = "gz") -> Path:
    """A copy of the BEIR folder ``src`` with its corpus, queries and every qrels file gzipped, as the
    BEIR sets on the Hugging Face hub ship (or compressed with ``how`` = bz2 or xz)."""
    import bz2
    import gzip
    import lzma
    import shutil

    compress = {"gz": lambda data: gzip.compress(data, mtime=0), "bz2": bz2.compress, "xz": lzma.compress}[how]
    shutil.copytree(src, dst)
    for path in [dst / "corpus.jsonl", dst / "queries.jsonl", *(dst / "qrels").glob("*.tsv")]:
        path.with_name(f"{path.name}.{how}").write_bytes(compress(path.read_bytes()))
        path.unlink()
    return dst


def test_gzipped_beir_files_and_pairs_mine_exactly_like_plain_ones(tmp_path, tiny_beir):
    import gzip

    zipped = _gzip_beir(tiny_beir, tmp_path / "zipped")
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text("".join(json.dumps({"query": f"query {i}", "positive": f"passage {i} text"}) + "\n" for i in range(12)))
    (tmp_path / "pairs.jsonl.gz").write_bytes(gzip.compress(pairs.read_bytes(), mtime=0))
    outputs = {}
    sources = [("plain", tiny_beir), ("zipped", zipped), ("pairs", pairs), ("pairs-gz", tmp_path / "pairs.jsonl.gz"),
               ("bz2", _gzip_beir(tiny_beir, tmp_path / "bz2", "bz2")), ("xz", _gzip_beir(tiny_beir, tmp_path / "xz", "xz"))]
    for name, source in sources:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--min-rank", "0", "--max-rank", "5",
                                     "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        outputs[name] = (out / "candidates.parquet").read_bytes()
    assert outputs["zipped"] == outputs["bz2"] == outputs["xz"] == outputs["plain"]
    assert outputs["pairs-gz"] == outputs["pairs"]
    for folder in (zipped, tmp_path / "xz"):
        result = runner.invoke(app, ["mine", str(folder), "--split", "dev", "--model", "hashing", "--out", str(tmp_path / "x")])
        assert result.exit_code == 1
        assert "available splits: test, train" in result.stderr


@pytest.mark.parametrize("damage, needle", [
    ("truncate", "corpus.jsonl.gz:{line}: cannot decompress"),
    ("not-gzip", "corpus.jsonl.gz:1: cannot decompress (Not a gzipped file"),
    ("both", "both corpus.jsonl and corpus.jsonl.gz are here; keep one"),
    ("qrels", "train.tsv.gz: cannot decompress"),
])
def test_a_damaged_or_ambiguous_gzip_input_is_one_error_naming_the_file(tmp_path, tiny_beir, damage, needle):
    import gzip

    zipped = _gzip_beir(tiny_beir, tmp_path / "zipped")
    corpus = zipped / "corpus.jsonl.gz"
    plain = gzip.decompress(corpus.read_bytes())
    line = None
    if damage == "truncate":
        # Cut the compressed stream halfway: the error names the first line it could not read.
        corpus.write_bytes(corpus.read_bytes()[: len(corpus.read_bytes()) // 2])
        with gzip.open(corpus, "rb") as fh:
            read = []
            try:
                read.extend(fh)
            except EOFError:
                pass
        line = len(read) + 1
    elif damage == "not-gzip":
        corpus.write_bytes(plain)
    elif damage == "both":
        (zipped / "corpus.jsonl").write_bytes(plain)
    else:
        qrels = zipped / "qrels" / "train.tsv.gz"
        qrels.write_bytes(qrels.read_bytes()[:-12])
    _mine_fails_cleanly(tmp_path, zipped, needle.format(line=line))


def test_pairs_in_sentence_transformers_and_flagembedding_shapes_mine_the_same_queries(tmp_path):
    """(anchor, positive), (question, answer), SQuAD's (question, context), FlagEmbedding's {query, pos: [...], neg: [...]} with
    an id-less candidate pool, Pyserini and Tevatron corpus lines read as the same queries, positives
    and corpus as hardneg's own pairs + corpus: the same candidates."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    topics = ["rivers", "volcanoes", "glaciers", "deserts", "forests", "reefs"]
    queries = [f"what shapes {t}?" for t in topics]
    positives = [[f"{t} are shaped by water and time", f"how {t} form over ages"] for t in topics]
    pool = [f"{t} and their {w}" for t in topics for w in ("animals", "climate", "history")]
    corpus = tmp_path / "corpus.jsonl"  # hardneg's own: ids given
    corpus.write_text("".join(json.dumps({"_id": f"c{i}", "text": t}) + "\n" for i, t in enumerate(pool)))
    own = tmp_path / "own.jsonl"
    own.write_text("".join(json.dumps({"query": q, "positive": p}) + "\n" for q, ps in zip(queries, positives) for p in ps))
    flag = tmp_path / "flag.jsonl"  # FlagEmbedding: pos lists, old neg ignored; candidate pool without ids, a text twice
    flag.write_text("".join(json.dumps({"query": q, "pos": ps, "neg": ["stale negative"]}) + "\n" for q, ps in zip(queries, positives)))
    flag_pool = tmp_path / "pool.jsonl"
    flag_pool.write_text("".join(json.dumps({"text": t}) + "\n" for t in pool + pool[:2]))
    anchor = tmp_path / "anchor.parquet"
    pq.write_table(pa.table({"anchor": [q for q, ps in zip(queries, positives) for _ in ps],
                             "positive": [p for ps in positives for p in ps]}), anchor)
    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"question": q, "answer": p}) + "\n" for q, ps in zip(queries, positives) for p in ps))

    def mine(name, source, pool_file):
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--corpus", str(pool_file), "--model", "hashing", "--min-rank", "0",
                                     "--max-rank", "8", "--sampling", "top", "--workdir", str(tmp_path / f"wd-{name}"),
                                     "--out", str(out), "--quiet", "--json"])
        assert result.exit_code == 0, result.output
        return pq.read_table(out / "candidates.parquet").to_pylist(), json.loads(result.stdout)["stats"]

    from hardneg.inputs import _stable_id

    own_rows, own_summary = mine("own", own, corpus)
    assert (own_summary["queries"], own_summary["positives"]) == (len(topics), 2 * len(topics))
    # SQuAD's rows (id, title, context, question, answers: a struct), a context per question.
    squad = tmp_path / "squad.parquet"
    pq.write_table(pa.Table.from_pylist([
        {"id": f"s{k}", "title": "T", "context": p, "question": q, "answers": {"text": ["x"], "answer_start": [0]}}
        for k, (q, ps) in enumerate(zip(queries, positives)) for p in ps
    ]), squad)
    for name, source in [("anchor", anchor), ("qa", qa)]:
        assert mine(name, source, corpus)[0] == own_rows, name
    ids = {_stable_id("q", q): f"s{k}" for k, q in enumerate(queries)}  # a SQuAD row's id is its question's
    assert mine("squad", squad, corpus)[0] == [{**r, "query_id": ids[r["query_id"]]} for r in own_rows]
    # Pyserini's {"id", "contents"} and Tevatron's {"docid", "title", "text"} corpus lines.
    for name, key_id, key_text in [("pyserini", "id", "contents"), ("tevatron", "docid", "text")]:
        other = tmp_path / f"corpus-{name}.jsonl"
        other.write_text("".join(json.dumps({key_id: f"c{i}", key_text: t}) + "\n" for i, t in enumerate(pool)))
        assert mine(name, own, other)[0] == own_rows, name
    # Id-less pool documents get ids made from their text, so compare what they are, not their ids.
    # The stale "neg" is not a document, and the pool's repeated texts are read once.
    flag_rows, flag_summary = mine("flag", flag, flag_pool)
    assert (flag_summary["queries"], flag_summary["positives"]) == (own_summary["queries"], own_summary["positives"])

    def texts(rows, pool_ids):
        return [(r["query_id"], r["rank"], r["score"], r["filter"], pool_ids.get(r["doc_id"], r["doc_id"])) for r in rows]

    assert texts(flag_rows, {_stable_id("d", t): t for t in pool}) == texts(own_rows, {f"c{i}": t for i, t in enumerate(pool)})


def test_flagembedding_rows_without_a_pool_mine_from_their_pos_and_neg_texts(tmp_path):
    """hn_mine without --candidate_pool searches the pos + neg texts of the input; so do we: each
    neg text is a document (never a positive, never judged), and the pos texts stay positives. The
    same rows as sentence-transformers n-tuples (negative_1..n columns) mine the same."""
    import pyarrow.parquet as pq

    from hardneg.inputs import _stable_id

    topics = ["rivers", "volcanoes", "glaciers", "deserts"]
    rows = [{"query": f"what shapes {t}?", "pos": [f"{t} are shaped by water"],
             "neg": [f"{t} and their {w}" for w in ("animals", "climate", "history")] + [f"{topics[0]} are shaped by water"]}
            for t in topics]
    flag = tmp_path / "flag.jsonl"
    flag.write_text("".join(json.dumps(r) + "\n" for r in rows))
    # The same rows as sentence-transformers' n-tuples (hardneg's own sentence-transformers export).
    import pyarrow as pa

    ntuple = tmp_path / "ntuple.parquet"
    pq.write_table(pa.table({"query": [r["query"] for r in rows], "positive": [r["pos"][0] for r in rows],
                             **{f"negative_{i + 1}": [r["neg"][i] for r in rows] for i in range(4)}}), ntuple)
    runs = {}
    for name, source in [("flag", flag), ("ntuple", ntuple)]:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--min-rank", "0", "--max-rank", "50",
                                     "--workdir", str(tmp_path / "wd"), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        runs[name] = pq.read_table(out / "candidates.parquet").to_pylist()
    assert runs["ntuple"] == runs["flag"]
    text_of = {_stable_id("d", t): t for r in rows for t in r["pos"] + r["neg"]}
    candidates = runs["flag"]
    by_query: dict[str, dict[str, str]] = {}
    for c in candidates:
        by_query.setdefault(c["query_id"], {})[text_of[c["doc_id"]]] = c["filter"]
    assert len(by_query) == len(topics)
    for r in rows:
        seen = by_query[_stable_id("q", r["query"])]
        assert set(seen) == set(text_of.values())  # the whole pool: 4 positives + 12 negatives, the repeat once
        assert seen[r["pos"][0]] == "positive"
        # rivers' positive is a neg text of every other row: it is a document, and a candidate for them.
        assert all(seen[t] != "positive" for t in r["neg"] if t not in r["pos"])


def test_a_two_column_file_reads_its_columns_in_order_as_sentence_transformers_does(tmp_path):
    """A dataset of two text columns whose names hardneg does not both know (sentence1/sentence2,
    title/abstract, question/reply) is (query, positive) in column order, as sentence-transformers'
    mine_hard_negatives reads it; a known name keeps its role wherever it stands. The manifest says
    which column was read as what. Not for CSV or TSV (a headerless file's first row would be lost)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    queries = [f"what shapes {t}?" for t in ("rivers", "volcanoes", "glaciers", "deserts")]
    positives = [f"{q[12:-1]} are shaped by water and time" for q in queries]
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps({"_id": f"c{i}", "text": f"{q[12:-1]} and their {w}"}) + "\n"
                              for i, (q, w) in enumerate((q, w) for q in queries for w in ("animals", "climate"))))

    def mine(name, source):
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--corpus", str(corpus), "--model", "hashing", "--min-rank", "0",
                                     "--max-rank", "6", "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), "--quiet"])
        return result, out

    own = tmp_path / "own.jsonl"
    own.write_text("".join(json.dumps({"query": q, "positive": p}) + "\n" for q, p in zip(queries, positives)))
    result, out = mine("own", own)
    assert result.exit_code == 0, result.output
    expected = pq.read_table(out / "candidates.parquet").to_pylist()
    sts = tmp_path / "sts.parquet"
    pq.write_table(pa.table({"sentence1": queries, "sentence2": positives}), sts)
    abstracts = tmp_path / "abstracts.jsonl"
    abstracts.write_text("".join(json.dumps({"title": q, "abstract": p}) + "\n" for q, p in zip(queries, positives)))
    flipped = tmp_path / "flipped.jsonl"  # a known name keeps its role: the positive comes first
    flipped.write_text("".join(json.dumps({"positive": p, "prompt": q}) + "\n" for q, p in zip(queries, positives)))
    reply = tmp_path / "reply.parquet"
    pq.write_table(pa.table({"question": queries, "reply": positives}), reply)
    for name, source, roles in [("sts", sts, ("sentence1", "sentence2")), ("abstracts", abstracts, ("title", "abstract")),
                                ("flipped", flipped, ("prompt", "positive")), ("reply", reply, ("question", "reply"))]:
        result, out = mine(name, source)
        assert result.exit_code == 0, result.output
        assert pq.read_table(out / "candidates.parquet").to_pylist() == expected, name
        description = json.loads((out / "manifest.json").read_text())["input"]["description"]
        assert f"two columns: '{roles[0]}' read as the query, '{roles[1]}' as the positive" in description, description
    own_description = json.loads((tmp_path / "run-own" / "manifest.json").read_text())["input"]["description"]
    assert "two columns" not in own_description

    # Every row needs the two columns the first row named: a row without them is an error, not a blank query.
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(json.dumps({"a": queries[0], "b": positives[0]}) + "\n" + json.dumps({"query": queries[1], "positive": positives[1]}) + "\n")
    # Not two texts, or one of them no text (an id, a score): the usual errors.
    three = tmp_path / "three.parquet"
    pq.write_table(pa.table({"sentence1": queries, "sentence2": positives, "score": [1.0] * 4}), three)
    ids = tmp_path / "ids.jsonl"
    ids.write_text("".join(json.dumps({"query_id": str(i), "positive": p}) + "\n" for i, p in enumerate(positives)))
    numbers = tmp_path / "numbers.jsonl"
    numbers.write_text("".join(json.dumps({"text": q, "year": 2020}) + "\n" for q in queries))
    csv_file = tmp_path / "pairs.csv"
    csv_file.write_text("text1,text2\n" + "".join(f"{q},{p}\n" for q, p in zip(queries, positives)))
    for name, source, needle in [
        ("mixed", mixed, "mixed.jsonl:2: missing field 'a'; found fields: query, positive (the first row's two fields"),
        ("three", three, "missing column 'query' (or 'anchor', 'question'); found columns: sentence1, sentence2, score"),
        ("ids", ids, "ids.jsonl:1: missing field 'query'"),
        ("numbers", numbers, "numbers.jsonl:1: missing field 'query'"),
        ("csv", csv_file, "if this first row names the columns, rename them query, positive, in that order"),
    ]:
        result, out = mine(name, source)
        assert result.exit_code == 1 and needle in result.stderr, (name, result.stderr)
        assert not out.exists()


@pytest.mark.parametrize("id_name,text_name", [("pid", "passage"), ("id", "content"), ("doc_id", "body"),
                                               ("corpus-id", "document"), ("passage_id", "text")])
def test_corpus_lines_name_their_id_and_text_as_other_datasets_do(tmp_path, tiny_beir, id_name, text_name):
    """MS MARCO's pid, a passage_id or corpus-id, and passage/content/body/document texts: the same
    documents, under their own ids (a pairs --corpus line's id was once a hash of its text when its
    id field had another name), in a BEIR folder and as a pairs file's corpus."""
    import pyarrow.parquet as pq

    lines = [json.loads(line) for line in (tiny_beir / "corpus.jsonl").read_text().splitlines()]
    renamed = "".join(json.dumps({id_name: d["_id"], "title": d["title"], text_name: d["text"]}) + "\n" for d in lines)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "What is the capital of France?", "positive_id": "d01", "positive": ""}) + "\n")

    def mine(name, *source):
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", *source, "--model", "hashing", "--workdir", str(tmp_path / f"wd-{name}"),
                                     "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        return pq.read_table(out / "candidates.parquet").to_pylist()

    expected_beir = mine("beir", str(tiny_beir))
    expected_pairs = mine("pairs", str(pairs), "--corpus", str(tiny_beir / "corpus.jsonl"))
    (tmp_path / "corpus.jsonl").write_text(renamed)
    (tiny_beir / "corpus.jsonl").write_text(renamed)
    assert mine("beir-renamed", str(tiny_beir)) == expected_beir
    assert mine("pairs-renamed", str(pairs), "--corpus", str(tmp_path / "corpus.jsonl")) == expected_pairs


def test_ids_with_surrounding_spaces_are_the_ids_the_qrels_name(tmp_path, tiny_beir):
    """A corpus or queries id padded with spaces (' d01 ', as a spreadsheet or a careless join
    leaves it) is the id the qrels name: qrels cells are stripped, so ids are stripped everywhere.
    It once failed with "corpus id 'd01' is not in corpus.jsonl" beside a corpus that shows it."""
    import pyarrow.parquet as pq

    def mine(name: str, source: Path) -> list[dict]:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--workdir", str(tmp_path / "wd"),
                                     "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        return pq.read_table(out / "candidates.parquet").to_pylist()

    expected = mine("clean", tiny_beir)
    for part in ("corpus.jsonl", "queries.jsonl"):
        rows = [json.loads(line) for line in (tiny_beir / part).read_text().splitlines()]
        (tiny_beir / part).write_text("".join(json.dumps(r | {"_id": f" {r['_id']}\u00a0"}) + "\n" for r in rows))
    assert mine("padded", tiny_beir) == expected


def test_a_tevatron_export_reads_back_as_pairs_with_its_passages(tmp_path, tiny_beir):
    """Tevatron rows ({query_id, query, positive_passages, negative_passages}) are pairs input: the
    same queries and positives (ids kept), the negative passages pooled as documents."""
    from hardneg.inputs import load_input

    common = ["--model", "hashing", "--workdir", str(tmp_path / "wd"), "--quiet"]
    assert runner.invoke(app, ["mine", str(tiny_beir), *common, "--min-rank", "0", "--max-rank", "8", "--out",
                               str(tmp_path / "run")]).exit_code == 0
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "tevatron", "--out", str(tmp_path / "tev"), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "tev" / "train.jsonl").read_text().splitlines()]
    dataset = load_input(tmp_path / "tev" / "train.jsonl")
    assert [q.query_id for q in dataset.queries] == [r["query_id"] for r in rows]
    assert sorted(dataset.qrels) == sorted((r["query_id"], p["docid"], 1.0) for r in rows for p in r["positive_passages"])
    texts = {d.doc_id: d.text for d in dataset.iter_corpus()}
    for r in rows:
        for passage in r["positive_passages"] + r["negative_passages"]:
            assert texts[passage["docid"]] == (f"{passage['title']} {passage['text']}".strip())
    # A passage that is not an object, or without text, is one error naming it.
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"query": "q", "positive_passages": [{"docid": "a", "text": "x"}, {"docid": "b"}]}) + "\n")
    result = runner.invoke(app, ["mine", str(bad), *common, "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "bad.jsonl:1: missing field 'positive_passages[1].text'" in result.stderr


def test_a_nemo_export_is_what_nemos_inline_loader_needs_and_reads_back_as_pairs(tmp_path, tiny_beir):
    """NeMo Automodel's inline retrieval rows ({question_id, query, pos_doc, neg_doc}): every row has
    a query, a non-empty pos_doc and neg_doc (NeMo's loader refuses either empty); `--nway N` gives
    every row exactly N - 1 negatives; read back as pairs (pos_doc, neg_doc and question_id are
    NeMo's field names, texts or {"text"} objects mixed), the same queries and positives."""
    from hardneg.inputs import load_input

    common = ["--model", "hashing", "--workdir", str(tmp_path / "wd"), "--quiet"]
    assert runner.invoke(app, ["mine", str(tiny_beir), *common, "--min-rank", "0", "--max-rank", "8", "-n", "3", "--out",
                               str(tmp_path / "run")]).exit_code == 0
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "nemo", "--out", str(tmp_path / "nemo"), "--quiet"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in (tmp_path / "nemo" / "train.jsonl").read_text().splitlines()]
    assert rows and all(set(r) == {"question_id", "query", "pos_doc", "neg_doc"} for r in rows)
    assert all(r["query"] and r["pos_doc"] and r["neg_doc"] and not set(r["pos_doc"]) & set(r["neg_doc"]) for r in rows)
    dataset = load_input(tmp_path / "nemo" / "train.jsonl")
    assert sorted(q.query_id for q in dataset.queries) == sorted(r["question_id"] for r in rows)
    texts = {d.doc_id: d.text for d in dataset.iter_corpus()}
    positives = {q: sorted(texts[d] for qq, d, _ in dataset.qrels if qq == q) for q in {q for q, _, _ in dataset.qrels}}
    assert positives == {r["question_id"]: sorted(r["pos_doc"]) for r in rows}
    assert {t for r in rows for t in r["neg_doc"]} <= set(texts.values())
    widths = {len(r["neg_doc"]) for r in rows}
    result = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "nemo", "--nway", "3", "--out", str(tmp_path / "n3"), "--quiet"])
    assert result.exit_code == 0, result.output
    fixed = [json.loads(line) for line in (tmp_path / "n3" / "train.jsonl").read_text().splitlines()]
    assert fixed and {len(r["neg_doc"]) for r in fixed} == {2} and len(fixed) == sum(len(r["neg_doc"]) >= 2 for r in rows)
    assert max(widths) == 3
    # NeMo's documented row shapes: one text or a list; a list may mix texts and {"text"} objects.
    (tmp_path / "mixed.jsonl").write_text(
        json.dumps({"question_id": "x1", "query": "capital of France", "pos_doc": {"text": "Paris is the capital of France."},
                    "neg_doc": ["Madrid is in Spain.", {"text": "Berlin is in Germany."}]}) + "\n"
        + json.dumps({"question": "blood sugar", "pos_doc": "Insulin regulates blood sugar.", "neg_doc": "Glucagon raises it."}) + "\n")
    mixed = load_input(tmp_path / "mixed.jsonl")
    assert [q.query_id for q in mixed.queries][0] == "x1" and len(mixed.queries) == 2 and mixed.num_docs == 5


def test_pairs_and_corpus_as_csv_tsv_a_json_array_compressed_or_misnamed_mine_like_jsonl(tmp_path, tiny_beir):
    """The same pairs and corpus as CSV or TSV with a header row (quoted commas, tabs and newlines in
    texts), as one pretty-printed JSON array, gzipped or Parquet under a .jsonl name: the same
    candidates as JSON Lines. A BEIR folder whose queries file is a JSON array reads the same too."""
    import csv
    import gzip

    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"query": f"query {i}, about topic {i % 3}", "positive": f"passage {i}\tsays \"{i}\",\nin two lines"}
            for i in range(10)]
    docs = [{"_id": f"c{i}", "title": "", "text": f"pool text {i}, on topic {i % 3}"} for i in range(8)]

    def delimited(path: Path, records: list[dict], delimiter: str) -> Path:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(records[0]), delimiter=delimiter)
            writer.writeheader()
            writer.writerows(records)
        return path

    def compressed(dest: Path, source: Path, how: str) -> Path:
        import bz2
        import lzma

        dest.write_bytes(bz2.compress(source.read_bytes()) if how == "bz2" else lzma.compress(source.read_bytes()))
        return dest

    def utf16(dest: Path, source: Path, encoding: str) -> Path:
        dest.write_bytes(source.read_text(encoding="utf-8").replace("\n", "\r\n").encode(encoding))
        return dest

    jsonl = tmp_path / "pairs.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    array = tmp_path / "pairs.json"
    array.write_text(json.dumps(rows, indent=2))
    gz_named_jsonl = tmp_path / "download.jsonl"
    gz_named_jsonl.write_bytes(gzip.compress(jsonl.read_bytes(), mtime=0))
    parquet_named_jsonl = tmp_path / "export.jsonl"
    pq.write_table(pa.Table.from_pylist(rows), parquet_named_jsonl)
    csv_gz = tmp_path / "pairs.csv.gz"
    csv_gz.write_bytes(gzip.compress(delimited(tmp_path / "p.csv", rows, ",").read_bytes(), mtime=0))
    sources = [
        ("csv", delimited(tmp_path / "pairs.csv", rows, ","), delimited(tmp_path / "corpus.csv", docs, ",")),
        ("tsv", delimited(tmp_path / "pairs.tsv", rows, "\t"), delimited(tmp_path / "corpus.tsv", docs, "\t")),
        ("csv-gz", csv_gz, corpus),
        # Empty optional id cells (pandas writes a missing value so) are no ids: ids come from the texts.
        ("csv-empty-ids", delimited(tmp_path / "ids.csv", [r | {"query_id": "", "positive_id": ""} for r in rows], ","), corpus),
        ("array", array, corpus),
        ("gz-named-jsonl", gz_named_jsonl, corpus),
        ("bz2", compressed(tmp_path / "pairs.jsonl.bz2", jsonl, "bz2"), corpus),
        ("xz-named-jsonl", compressed(tmp_path / "xz.jsonl", jsonl, "xz"), corpus),
        ("csv-xz", compressed(tmp_path / "pairs.csv.xz", tmp_path / "p.csv", "xz"), compressed(tmp_path / "c.jsonl.bz2", corpus, "bz2")),
        ("parquet-named-jsonl", parquet_named_jsonl, corpus),
        # A spreadsheet's "Unicode text" export: UTF-16 with a byte-order mark, CRLF.
        ("utf16-tsv", utf16(tmp_path / "pairs16.tsv", tmp_path / "pairs.tsv", "utf-16"), utf16(tmp_path / "c32.jsonl", corpus, "utf-32")),
    ]

    def candidates(name: str, source: Path, pool: Path | None = None) -> bytes:
        out = tmp_path / f"run-{name}"
        args = ["mine", str(source), "--model", "hashing", "--min-rank", "0", "--max-rank", "6", "--sampling", "top",
                "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), "--quiet"]
        result = runner.invoke(app, args + (["--corpus", str(pool)] if pool else []))
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes()

    expected = candidates("jsonl", jsonl, corpus)
    for name, source, pool in sources:
        assert candidates(name, source, pool) == expected, name

    import shutil

    beir = shutil.copytree(tiny_beir, tmp_path / "beir-array")
    lines = (beir / "queries.jsonl").read_text().splitlines()
    (beir / "queries.jsonl").write_text("[\n" + ",\n".join(line for line in lines if line.strip()) + "\n]\n")
    assert candidates("beir-array", beir) == candidates("beir", tiny_beir)


@pytest.mark.parametrize("name, content, line, needle", [
    ("ragged.csv", b"query,positive\nq1,p1\nq2,p2,extra\n", 3, "3 fields, but the header has 2; quote a field"),
    ("triples.train.small.tsv", b"what is x\tx is y\tz is w\n", 1,
     "this one's first row looks like data: give the columns' names ahead of it, as in "
     "(printf 'query\\tpositive\\tnegative\\n'; cat FILE) | hardneg mine - ..."),
    ("nocolumn.csv", b"question,text\nq1,p1\n", 1,
     "missing column 'positive' (or 'pos', 'answer', 'positive_passages', 'positive_ctxs', 'context', 'passage', 'document', 'pos_doc') in the header row"),
    ("latin1.csv", b"query,positive\nq1,p1\nq2,caf\xe9\n", 3, "not valid UTF-8"),
    ("header-twice.csv", b"query,query,positive\na,b,c\n", 1, "the header names column 'query' twice"),
    ("empty.csv", b"\n", None, "the CSV file is empty"),
    ("number.json", b'[\n {"query": "a", "positive": "b"},\n 3\n]\n', 3, "expected a JSON object in the array, found int"),
    ("broken.json", b'[\n {"query": "a", "positive": "b"},\n {"query": }\n]\n', 3, "malformed JSON"),
    ("no-comma.json", b'[\n {"query": "a", "positive": "b"}\n {"query": "c", "positive": "d"}\n]\n', 3, "expected ',' or ']'"),
    ("trailing.json", b'[{"query": "a", "positive": "b"}]\n[]\n', 2, "extra data after the array"),
    ("surrogate.json", b'[{"query": "a", "positive": "\\ud800"}]', 1, "malformed JSON"),
    ("unclosed.csv", b'query,positive\nq1,"an answer cut\nin a download', 3, "malformed CSV (unexpected end of data)"),
    ("stray-quote.csv", b'query,positive\nq1,"p1" x\n', 2, "malformed CSV"),
    ("unclosed.tsv", b'query\tpositive\nq1\t"a tab\there, never closed\nq2\tp2\n', 2, "malformed TSV (unexpected end of data)"),
    ("ragged.tsv", b'query\tpositive\nq1\t"p1" x\tmore\n', 2, "3 fields, but the header has 2; quote a field that holds a tab"),
    ("bad16.tsv", "query\tpositive\nq1\tp1\n".encode("utf-16") + b"\x00\xd8", 3, "not valid UTF-16 (the byte-order mark says it is)"),
    ("pairs.jsonl.zst", b"\x28\xb5\x2f\xfd\x00\x00", None, "is zstd-compressed, which hardneg does not read; decompress it first"),
    ("pairs.zip", b"PK\x03\x04\x14\x00", None, "is a zip archive, which hardneg does not read; decompress it first (unzip"),
    ("pairs.parquet.gz", gzip.compress(b"PAR1" + b"\x00" * 64, mtime=0), None,
     "is a gzip-compressed Parquet file; decompress it first (gunzip FILE)"),
    ("pairs.parquet.xz", lzma.compress(b"PAR1" + b"\x00" * 64), None, "is an xz-compressed Parquet file"),
    ("cut.jsonl.bz2", b"BZh91AY&SY\x00\x01", 1, "cannot decompress"),
    ("deep.json", b"[" + b"[" * 100_000 + b"]" * 100_000 + b"]", 1, "malformed JSON (depth limit exceeded)"),
    ("deep-field.json", b'[\n{"query": ' + b"[" * 100_000 + b"]" * 100_000 + b', "positive": "x"}]', 2, "depth limit exceeded"),
    ("missing.json", b'[\n {"query": "a", "positive": "b"},\n {"query": "c"}\n]\n', 3, "missing field 'positive'"),
])
def test_bad_csv_and_json_array_pairs_name_the_line(tmp_path, name, content, line, needle):
    pairs = tmp_path / name
    pairs.write_bytes(content)
    _mine_fails_cleanly(tmp_path, pairs, f"{name}:{line}: " if line is not None else f"{name}: ", needle)


PLAIN_AND_QUOTED_TSV = [
    # Plain TSV (MS MARCO, colbert-ai, paste, hardneg's own exports): quotes are text.
    ('"Dune" is a novel\tby 5" Herbert\nsay "hi\tok\n', [(2, '"Dune" is a novel', 'by 5" Herbert'), (3, 'say "hi', "ok")]),
    ('"Dune"\t"x"\n', [(2, '"Dune"', '"x"')]),  # a QUOTE_MINIMAL writer never quotes these
    ('"an open quote\tp1\nq2\tsays "yes" twice\nq3\tp3 ends with a quote"\n',
     [(2, '"an open quote', "p1"), (3, "q2", 'says "yes" twice'), (4, "q3", 'p3 ends with a quote"')]),
    # Quoted, as pandas' to_csv(sep="\t") writes it: tabs, line breaks and doubled quotes.
    ('"say ""hi"" twice"\tp\n', [(2, 'say "hi" twice', "p")]),
    ('"a\tb"\tp\n', [(2, "a\tb", "p")]),
    ('q1\t"line one\nline two"\nq2\tp2\n', [(2, "q1", "line one\nline two"), (4, "q2", "p2")]),
    ('q1\t"code:\n\tindented"\n', [(2, "q1", "code:\n\tindented")]),
]


@pytest.mark.parametrize("body, expected", PLAIN_AND_QUOTED_TSV)
def test_tsv_pairs_are_read_plain_or_quoted_as_they_were_written(tmp_path, body, expected):
    """A TSV file's quotes are text where no quoting explains them (a plain writer's file), and
    quoting where they hold a tab, a line break or a doubled quote (pandas'); a file whose header is
    quoted throughout (QUOTE_ALL) is quoted throughout. Lines are numbered as in the file."""
    from hardneg.inputs import QUERY_FIELDS, iter_delimited

    path = tmp_path / "pairs.tsv"
    path.write_text("query\tpositive\n" + body, encoding="utf-8")
    rows = [(line, r["query"], r["positive"]) for line, r in iter_delimited(path, (QUERY_FIELDS,), delimiter="\t")]
    assert rows == expected
    path.write_text('"query"\t"positive"\n"Dune"\t"a\tb"\n', encoding="utf-8")
    assert [r for _, r in iter_delimited(path, (QUERY_FIELDS,), delimiter="\t")] == [{"query": "Dune", "positive": "a\tb"}]


def test_tsv_pairs_round_trip_from_either_writer(tmp_path):
    """Seeded texts with paired and bare quotes (and, for the quoting writer, tabs, line breaks and
    indentation) read back exactly, whether written by csv/pandas or joined with tabs."""
    import csv
    import io
    import random

    from hardneg.inputs import QUERY_FIELDS, iter_delimited

    rng = random.Random(7)

    def text(breaks: bool) -> str:
        words = []
        for _ in range(rng.randint(1, 6)):
            word, r = rng.choice(["dune", "is", "a", "novel", "5", "by"]), rng.random()
            words.append(f'"{word}"' if r < 0.15 else word + '"' if r < 0.2 else '"' + word if r < 0.25
                         else word + rng.choice(["\t", "\n", "\n\t"]) if breaks and r < 0.35 else word)
        return " ".join(words)

    path = tmp_path / "pairs.tsv"
    for quoted in (True, False):
        for _ in range(300):
            rows = [[text(quoted), text(quoted)] for _ in range(rng.randint(1, 4))]
            if quoted:
                buf = io.StringIO()
                csv.writer(buf, delimiter="\t", lineterminator="\n").writerows([["query", "positive"], *rows])
                path.write_text(buf.getvalue(), encoding="utf-8")
            else:
                path.write_text("query\tpositive\n" + "".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
            got = [[r["query"], r["positive"]] for _, r in iter_delimited(path, (QUERY_FIELDS,), delimiter="\t")]
            assert got == rows, path.read_text()


def _msmarco(beir: Path, dest: Path, *, header: bool = False, trec: bool = True, gz: bool = False) -> Path:
    """``beir`` in MS MARCO's layout: headerless ``collection.tsv`` (pid, passage, title, as colbert-ai
    reads it), ``queries.<split>.tsv`` and TREC ``qrels.<split>.tsv`` (``qid 0 pid 1``)."""
    import gzip

    dest.mkdir()

    def write(name: str, lines: list[str]) -> None:
        data = "".join(line + "\n" for line in lines).encode()
        (dest / (name + (".gz" if gz else ""))).write_bytes(gzip.compress(data, mtime=0) if gz else data)

    docs = [json.loads(line) for line in (beir / "corpus.jsonl").read_text().splitlines() if line.strip()]
    write("collection.tsv", (["id\ttext\ttitle"] if header else []) + [f"{d['_id']}\t{d['text']}\t{d['title']}" for d in docs])
    queries = [json.loads(line) for line in (beir / "queries.jsonl").read_text().splitlines() if line.strip()]
    write("queries.train.tsv", [f"{q['_id']}\t{q['text']}" for q in queries])
    rows = [line.split("\t") for line in (beir / "qrels" / "train.tsv").read_text().splitlines()[1:] if line.strip()]
    write("qrels.train.tsv", [f"{q}\t0\t{d}\t{s}" if trec else f"{q}\t{d}\t{s}" for q, d, s in rows])
    return dest


def test_an_msmarco_folder_mines_like_the_same_data_in_beir_layout(tmp_path, tiny_beir):
    """MS MARCO's and colbert-ai's files (collection.tsv, queries.train.tsv, qrels.train.tsv; with or
    without a header line, gzipped or not) are the same input as the BEIR folder they were made from;
    collection.tsv is also a --corpus for a pairs file."""

    def candidates(name: str, source: Path, *extra: str) -> bytes:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--model", "hashing", "--min-rank", "0", "--max-rank", "6",
                                     "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), "--quiet", *extra])
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes()

    expected = candidates("beir", tiny_beir)
    assert candidates("msmarco", _msmarco(tiny_beir, tmp_path / "ms")) == expected
    assert candidates("msmarco-header-3col", _msmarco(tiny_beir, tmp_path / "ms-h", header=True, trec=False)) == expected
    assert candidates("msmarco-gz", _msmarco(tiny_beir, tmp_path / "ms-gz", gz=True)) == expected
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "capital of France?", "positive": "Paris is the capital of France."}) + "\n")
    assert candidates("pairs-own", pairs, "--corpus", str(tiny_beir / "corpus.jsonl")) == \
        candidates("pairs-collection", pairs, "--corpus", str(tmp_path / "ms" / "collection.tsv"))
    result = runner.invoke(app, ["mine", str(tmp_path / "ms"), "--split", "dev", "--model", "hashing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1
    assert "without queries.dev.tsv; available splits: train (use --split)" in result.stderr


def test_a_lotte_folder_mines_like_the_same_data_in_ms_marco_layout(tmp_path, tiny_beir):
    """LoTTE (ColBERTv2's benchmark: collection.tsv, questions.<search|forum>.tsv and
    qas.<search|forum>.jsonl with each question's answer_pids) is read as the MS MARCO folder holding
    the same data, with --split search or forum."""
    import shutil

    def candidates(name: str, source: Path, split: str) -> bytes:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--split", split, "--model", "hashing", "--min-rank", "0",
                                     "--max-rank", "6", "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes()

    ms = _msmarco(tiny_beir, tmp_path / "ms")
    lotte = tmp_path / "lotte" / "dev"
    lotte.mkdir(parents=True)
    shutil.copy(ms / "collection.tsv", lotte / "collection.tsv")
    shutil.copy(ms / "queries.train.tsv", lotte / "questions.search.tsv")
    answers: dict[str, list[str]] = {}
    for line in (ms / "qrels.train.tsv").read_text().splitlines():
        qid, _, pid, _ = line.split("\t")
        answers.setdefault(qid, []).append(pid)
    texts = dict(line.split("\t", 1) for line in (ms / "queries.train.tsv").read_text().splitlines())
    (lotte / "qas.search.jsonl").write_text("".join(
        json.dumps({"qid": q, "query": texts[q], "username": "u", "score": 3, "url": "https://x", "answer_pids": pids}) + "\n"
        for q, pids in answers.items()))
    assert candidates("lotte", lotte, "search") == candidates("ms", ms, "train")
    result = runner.invoke(app, ["mine", str(lotte), "--model", "hashing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "available splits: search (use --split)" in result.stderr
    (lotte / "qas.search.jsonl").write_text(json.dumps({"qid": "q1", "answer_pids": "d01"}) + "\n")
    _mine_fails_cleanly(tmp_path / "lotte", lotte, "qas.search.jsonl:1: field 'answer_pids' must be a list", extra=("--split", "search"))


@pytest.mark.parametrize("file, content, line, needle", [
    ("collection.tsv", b"1\tone passage\n2\n", 2, "expected 2 to 3 tab-separated fields (_id, text, title), found 1"),
    ("collection.tsv", b"1\tone passage\n2\ta\tb\tc\n", 2, "found 4"),
    ("collection.tsv", b"1\tone passage\n1\tother passage\n", 2, "duplicate document id '1'"),
    ("collection.tsv", b"1\t\n2\t  \n", None, "the corpus has no document with text (2 empty)"),
    ("collection.tsv", b"1\tone passage\n2\tcaf\xe9\n", 2, "not valid UTF-8"),
    ("queries.train.tsv", b"q1\twhat?\nq2 what\n", 2, "expected 2 tab-separated fields (_id, text), found 1"),
    ("qrels.train.tsv", b"q1\t0\t9\t1\n", 1, "corpus id '9' is not in collection.tsv"),
])
def test_a_bad_msmarco_file_is_one_error_naming_its_line(tmp_path, file, content, line, needle):
    folder = tmp_path / "ms"
    folder.mkdir()
    (folder / "collection.tsv").write_bytes(b"1\tone passage\n2\tanother passage\n")
    (folder / "queries.train.tsv").write_bytes(b"q1\twhat?\n")
    (folder / "qrels.train.tsv").write_bytes(b"q1\t0\t1\t1\n")
    (folder / file).write_bytes(content)
    _mine_fails_cleanly(tmp_path, folder, f"{file}:{line}: " if line is not None else f"{file}: ", needle)


def test_a_folder_of_shards_reads_as_one_file(tmp_path):
    """A Hugging Face dataset's files, as the hub ships them (``train-0000N-of-00002.parquet``) and as
    ``save_to_disk`` writes them (``data-00000-of-00001.arrow`` beside ``dataset_info.json`` and
    ``state.json``), and a corpus split into JSONL shards, read as the one file they were cut from."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = [{"query": f"question {i} on topic {i % 4}", "positive": f"answer {i}: topic {i % 4} explained"} for i in range(12)]
    docs = [{"_id": f"c{i}", "text": f"pool passage {i} about topic {i % 4}"} for i in range(10)]
    one = tmp_path / "pairs.jsonl"
    one.write_text("".join(json.dumps(r) + "\n" for r in rows))
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in docs))
    hub = tmp_path / "hub" / "pair"
    hub.mkdir(parents=True)
    for i, part in enumerate((rows[:5], rows[5:])):
        pq.write_table(pa.Table.from_pylist(part), hub / f"train-0000{i}-of-00002.parquet")
    (tmp_path / "hub" / "README.md").write_text("a dataset card\n")
    saved = tmp_path / "saved"
    saved.mkdir()
    table = pa.Table.from_pylist(rows)
    with pa.ipc.new_stream(str(saved / "data-00000-of-00001.arrow"), table.schema) as writer:
        for batch in table.to_batches(max_chunksize=4):
            writer.write_batch(batch)
    (saved / "dataset_info.json").write_text('{"features": {}}')
    (saved / "state.json").write_text('{"_data_files": [{"filename": "data-00000-of-00001.arrow"}]}')
    shards = tmp_path / "corpus-shards"
    shards.mkdir()
    for i, part in enumerate((docs[:3], docs[3:7], docs[7:])):
        (shards / f"part-{i}.jsonl").write_text("".join(json.dumps(d) + "\n" for d in part))

    def candidates(name: str, source: Path, pool: Path) -> bytes:
        out = tmp_path / f"run-{name}"
        result = runner.invoke(app, ["mine", str(source), "--corpus", str(pool), "--model", "hashing", "--min-rank", "0",
                                     "--max-rank", "6", "--workdir", str(tmp_path / f"wd-{name}"), "--out", str(out), "--quiet"])
        assert result.exit_code == 0, f"{name}: {result.output}"
        return (out / "candidates.parquet").read_bytes()

    expected = candidates("one", one, corpus)
    assert candidates("hub", hub, corpus) == expected
    assert candidates("save-to-disk", saved, corpus) == expected
    assert candidates("corpus-shards", one, shards) == expected
    result = runner.invoke(app, ["mine", str(tmp_path / "hub"), "--model", "hashing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "holds no data files itself; its subfolders pair do: point at one" in result.stderr
    # The hub's Parquet conversion keeps a subset's splits in subfolders (pair/train/0000.parquet): --split picks one.
    converted = tmp_path / "converted" / "pair"
    for split, part in (("train", rows), ("test", rows[:2])):
        (converted / split).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(part), converted / split / "0000.parquet")
    assert candidates("converted", converted, corpus) == expected
    result = runner.invoke(app, ["mine", str(converted), "--split", "dev", "--model", "hashing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "its subfolders test, train do: point at one" in result.stderr
    # The hub keeps splits side by side (data/train-*.parquet, data/test-*.parquet): a folder is read
    # for --split (train by default) and never across splits.
    pq.write_table(pa.Table.from_pylist([{"query": "a test question", "positive": "a test answer"}]),
                   hub / "test-00000-of-00001.parquet")
    assert candidates("hub-with-test", hub, corpus) == expected
    result = runner.invoke(app, ["mine", str(hub), "--split", "dev", "--model", "hashing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "holds no shards of split 'dev'; its shards are of split test, train (use --split)" in result.stderr
    result = runner.invoke(app, ["mine", str(one), "--corpus", str(hub), "--model", "hashing", "--out", str(tmp_path / "x")])
    assert result.exit_code == 1 and "holds the shards of several splits (test, train); point at one file" in result.stderr


@pytest.mark.parametrize("case, needle", [
    ("mixed", "holds files of several formats (.jsonl, .parquet)"),
    ("duplicate-id", "part-1.jsonl:1: duplicate document id 'c1' (first seen on {folder}/part-0.jsonl:2)"),
    ("bad-line", "part-1.jsonl:2: missing field 'text'"),
    ("empty", "a folder without data files"),
])
def test_a_bad_folder_of_shards_names_the_file_and_line(tmp_path, case, needle):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps({"query": "a question", "positive": "an answer"}) + "\n")
    folder = tmp_path / "shards"
    folder.mkdir()
    (folder / "part-0.jsonl").write_text('{"_id": "c0", "text": "zero"}\n{"_id": "c1", "text": "one"}\n')
    if case == "mixed":
        pq.write_table(pa.table({"_id": ["c9"], "text": ["nine"]}), folder / "part-1.parquet")
    elif case == "duplicate-id":
        (folder / "part-1.jsonl").write_text('{"_id": "c1", "text": "one again"}\n')
    elif case == "bad-line":
        (folder / "part-1.jsonl").write_text('{"_id": "c2", "text": "two"}\n{"_id": "c3"}\n')
    else:
        (folder / "part-0.jsonl").unlink()
        (folder / "notes.txt").write_text("not data\n")
    _mine_fails_cleanly(tmp_path, pairs, needle.format(folder=folder), extra=("--corpus", str(folder)))


@pytest.mark.parametrize("name", ["cut.arrow", "cut-file.arrow", "damaged.parquet"])
def test_a_cut_or_damaged_arrow_or_parquet_file_is_one_error(tmp_path, name):
    """A file cut short in a download (an Arrow stream past its first batches, an Arrow file) or with
    a damaged page (Parquet) is one error naming the file, never an 'unexpected error'."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    table = pa.Table.from_pylist([{"query": f"question {i}", "positive": f"answer number {i}"} for i in range(400)])
    path = tmp_path / name
    if name == "damaged.parquet":
        pq.write_table(table, path, row_group_size=100, compression="none")
        data = bytearray(path.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 200] = b"\xff" * 200
        path.write_bytes(bytes(data))
    else:
        with (pa.ipc.new_stream if name == "cut.arrow" else pa.ipc.new_file)(str(path), table.schema) as writer:
            for batch in table.to_batches(max_chunksize=50):
                writer.write_batch(batch)
        path.write_bytes(path.read_bytes()[: int(path.stat().st_size * 0.7)])
    _mine_fails_cleanly(tmp_path, path, f"{name}:" if name != "cut-file.arrow" else f"{name}: ",
                        "cannot read Parquet file" if name.endswith(".parquet") else "cannot read Arrow file")
