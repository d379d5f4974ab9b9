"""`hardneg eval`: metric definitions and an evaluation on a corpus with a known ranking."""

from __future__ import annotations

import json
import math

import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.config import EmbedConfig, EvalConfig
from hardneg.evaluate import evaluate, mrr_at, ndcg_at, recall_at
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
