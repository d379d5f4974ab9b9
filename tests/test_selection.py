"""`hardneg select`: uncertainty measures, MMR diversity, and the labelling files."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from hardneg.config import EmbedConfig, IndexConfig, MineConfig, SelectConfig
from hardneg.embed import embed
from hardneg.errors import ArtifactError
from hardneg.index import build_index
from hardneg.inputs import load_input
from hardneg.mine import mine
from hardneg.selection import entropy_uncertainty, margin_uncertainty, mmr_order, select
from tests.test_label import build_planes


def test_margin_is_lowest_positive_minus_best_candidate():
    assert margin_uncertainty([0.9, 0.7], [0.5, 0.75, 0.2]) == pytest.approx(-0.05)
    assert margin_uncertainty([0.9], [0.3]) == pytest.approx(0.6)


def test_entropy_is_normalised_and_grows_with_ambiguity():
    assert entropy_uncertainty([0.5], [0.5, 0.5, 0.5], temperature=0.05) == pytest.approx(1.0)
    clear = entropy_uncertainty([0.9], [0.1, 0.1], temperature=0.05)
    close = entropy_uncertainty([0.9], [0.88, 0.1], temperature=0.05)
    assert 0 <= clear < close <= 1
    p = np.exp(np.array([0.9, 0.88, 0.1]) / 0.05)
    p /= p.sum()
    assert close == pytest.approx(-(p * np.log(p)).sum() / math.log(3))


def test_mmr_without_diversity_keeps_the_uncertainty_order():
    vectors = np.eye(4, dtype=np.float32)
    assert mmr_order(np.array([2.0, 0.0, 3.0, 1.0]), vectors, 3, 0.0) == [1, 3, 0]


def test_mmr_skips_a_paraphrase_of_a_picked_query():
    # Rows 0 and 1 are the same query (cosine 1); row 2 is different but less uncertain.
    vectors = np.array([[1, 0], [1, 0], [0, 1]], dtype=np.float32)
    order = np.array([0.0, 1.0, 2.0])
    assert mmr_order(order, vectors, 2, 0.0) == [0, 1]
    assert mmr_order(order, vectors, 2, 0.6) == [0, 2]


@pytest.fixture
def uneven(tmp_path):
    """Four queries; q2's labelled positive ranks 20th (a very uncertain query), the others 3rd."""
    root = tmp_path / "planes"
    encoder = build_planes(root, 4, known={0: 3, 1: 3, 2: 20, 3: 3})
    emb = embed(load_input(root), tmp_path / "emb", EmbedConfig(), encoder=encoder).path
    idx = build_index(emb, tmp_path / "idx", IndexConfig(backend="exact")).path
    mine(idx, tmp_path / "run", MineConfig(min_rank=10, max_rank=25, num_negatives=3, dedup_threshold=None))
    return tmp_path / "run"


def test_margin_puts_the_query_whose_positive_is_outscored_first(uneven, tmp_path):
    result = select(uneven, tmp_path / "sel", SelectConfig(budget=2, candidates=5, strategy="margin"))
    assert [c["query_id"] for c in result.chosen][0] == "q2"
    assert len(result.chosen) == 2


def test_entropy_orders_by_how_flat_the_score_distribution_is(uneven, tmp_path):
    # q2's positive is far below five near-equal candidates: the softmax is flat over five of six
    # items, less flat than for the queries whose positive sits among its candidates.
    chosen = select(uneven, tmp_path / "sel", SelectConfig(budget=4, candidates=5, strategy="entropy")).chosen
    entropies = [c["uncertainty"]["entropy"] for c in chosen]
    assert entropies == sorted(entropies, reverse=True)
    assert chosen[-1]["query_id"] == "q2"


def test_labelling_files_hold_candidates_from_rank_zero_without_positives(uneven, tmp_path):
    select(uneven, tmp_path / "sel", SelectConfig(budget=4, candidates=5))
    rows = [json.loads(line) for line in (tmp_path / "sel" / "to_label.jsonl").read_text().splitlines()]
    assert len(rows) == 4
    q2 = next(r for r in rows if r["query_id"] == "q2")
    assert [p["doc_id"] for p in q2["positives"]] == ["q2d20"]
    assert [c["doc_id"] for c in q2["candidates"]] == [f"q2d{i:02d}" for i in range(5)]
    assert [c["rank"] for c in q2["candidates"]] == [0, 1, 2, 3, 4]
    assert all(c["label"] == "" for c in q2["candidates"])
    assert q2["candidates"][0]["in_run"] == "outside window"
    q0 = next(r for r in rows if r["query_id"] == "q0")
    assert "q0d03" not in [c["doc_id"] for c in q0["candidates"]]  # the positive is never a candidate
    assert [c["rank"] for c in q0["candidates"]] == [0, 1, 2, 4, 5]
    assert (tmp_path / "sel" / "to_label.csv").read_bytes().startswith(b"\xef\xbb\xbfquery_id,")  # Excel reads it as UTF-8
    with open(tmp_path / "sel" / "to_label.csv", encoding="utf-8-sig", newline="") as fh:
        table = list(csv.DictReader(fh))
    assert len(table) == 4 * 5
    assert {r["label"] for r in table} == {""}


def test_budget_larger_than_the_queries_takes_them_all_and_refuses_foreign_out(uneven, tmp_path):
    assert len(select(uneven, tmp_path / "sel", SelectConfig(budget=100)).chosen) == 4
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    with pytest.raises(ArtifactError, match="not a hardneg selection"):
        select(uneven, foreign, SelectConfig())
    assert (foreign / "notes.txt").read_text() == "mine"


def test_already_judged_candidates_are_not_asked_again(uneven, tmp_path):
    from hardneg.label import import_labels

    first = select(uneven, tmp_path / "sel", SelectConfig(budget=1, candidates=3)).chosen[0]
    for cand in first["candidates"]:
        cand["label"] = "not_relevant"
    (tmp_path / "l.jsonl").write_text(json.dumps(first) + "\n")
    import_labels(tmp_path / "l.jsonl", uneven, tmp_path / "labels")
    index = json.loads((uneven / "manifest.json").read_text())["index"]["path"]
    mine(index, tmp_path / "run2", MineConfig(min_rank=10, max_rank=25, num_negatives=3, dedup_threshold=None, labels=str(tmp_path / "labels")))
    again = select(tmp_path / "run2", tmp_path / "sel2", SelectConfig(budget=4, candidates=3)).chosen
    q = next(c for c in again if c["query_id"] == first["query_id"])
    judged = {c["doc_id"] for c in first["candidates"]}
    assert judged.isdisjoint(c["doc_id"] for c in q["candidates"])


def test_readers_of_a_run_refuse_embeddings_rebuilt_since(tmp_path, tiny_beir):
    """select, export, audit and report read a run's embeddings (texts, vectors): a rebuild at the
    same path is named with both fingerprints, never silently used."""
    from typer.testing import CliRunner

    from hardneg.cli import app

    cli = CliRunner()
    for args in (["embed", str(tiny_beir), "--model", "hashing:32", "--out", str(tmp_path / "emb")],
                 ["index", str(tmp_path / "emb"), "--exact", "--out", str(tmp_path / "idx")],
                 ["mine", str(tmp_path / "idx"), "--min-rank", "1", "--out", str(tmp_path / "run")]):
        assert cli.invoke(app, [*args, "--quiet"]).exit_code == 0
    rebuilt = cli.invoke(app, ["embed", str(tiny_beir), "--model", "hashing:64", "--out", str(tmp_path / "emb"), "--force", "--quiet"])
    assert rebuilt.exit_code == 0, rebuilt.output
    for args in (["select", str(tmp_path / "run"), "--out", str(tmp_path / "sel")],
                 ["export", str(tmp_path / "run"), "--format", "triplets", "--out", str(tmp_path / "exp")]):
        result = cli.invoke(app, args)
        assert result.exit_code == 1 and "now holds" in result.output, (args[0], result.output)
