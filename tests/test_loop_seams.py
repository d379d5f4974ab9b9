"""The loop's orchestration, through its seams (a fake trainer, a hashing encoder): which export each
round trains on, from which checkpoint, in seconds and without a model."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from hardneg.config import EmbedConfig, IndexConfig, LoopConfig, MineConfig, TrainConfig
from hardneg.encoders import load_encoder
from hardneg.loop import run_loop
from tests.conftest import TINY_BEIR


def _fake_trainer(calls: list[tuple[str, str]]) -> Any:
    def train(export_dir: Path, out: Path, config: TrainConfig, start: EmbedConfig, **_: Any) -> Any:
        calls.append((Path(export_dir).parent.name, Path(start.model).parent.name if "rounds" in str(start.model) else "base"))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "weights.txt").write_text(f"trained on {export_dir}\n")
        return SimpleNamespace(manifest={"training": {"rows": 1, "steps": 1, "training_loss": 0.0, "seconds": 0.0, "device": "cpu"},
                                         "weights_fingerprint": str(out)})
    return train


@pytest.mark.parametrize("warm_start", [True, False])
def test_each_round_trains_on_the_previous_rounds_export_from_the_right_checkpoint(tmp_path, warm_start):
    calls: list[tuple[str, str]] = []
    result = run_loop(
        TINY_BEIR, tmp_path / "loop", EmbedConfig(model="hashing:32"), IndexConfig(backend="exact"),
        MineConfig(min_rank=1, max_rank=10, num_negatives=2), TrainConfig(), LoopConfig(rounds=2, warm_start=warm_start),
        trainer=_fake_trainer(calls), encoder_factory=lambda cfg: load_encoder(EmbedConfig(model="hashing:32")),
    )
    assert [r["round"] for r in result.rounds] == [0, 1, 2]
    # Round k trains on round k-1's export; warm start continues from round k-1's model, else the base.
    assert calls == [("0", "base"), ("1", "1" if warm_start else "base")]
    for k in (0, 1, 2):
        assert (tmp_path / "loop" / "rounds" / str(k) / "round.json").is_file()
    # Run again: every round is complete, nothing is trained again.
    run_loop(
        TINY_BEIR, tmp_path / "loop", EmbedConfig(model="hashing:32"), IndexConfig(backend="exact"),
        MineConfig(min_rank=1, max_rank=10, num_negatives=2), TrainConfig(), LoopConfig(rounds=2, warm_start=warm_start),
        trainer=_fake_trainer(calls), encoder_factory=lambda cfg: load_encoder(EmbedConfig(model="hashing:32")),
    )
    assert len(calls) == 2


def test_naming_the_bundled_model_is_the_same_loop_as_leaving_it_out(tmp_path, monkeypatch):
    """`hardneg loop DATA` (no --model: the bundled MiniLM) and `run_loop(..., EmbedConfig(model="minilm"))`
    are one loop: the second resumes the first instead of refusing it as changed."""
    import hardneg.loop as loop_module

    class Stop(Exception):
        pass

    seen: list[str] = []
    original = loop_module.loop_fingerprint

    def capture(*args: Any) -> str:
        seen.append(original(*args))
        raise Stop  # the identity is all this test needs: no work

    monkeypatch.setattr(loop_module, "loop_fingerprint", capture)
    for embed in (EmbedConfig(), EmbedConfig(model="minilm"), EmbedConfig(model="hashing:32")):
        with pytest.raises(Stop):
            run_loop(TINY_BEIR, tmp_path / "loop", embed, IndexConfig(), MineConfig(), TrainConfig(), LoopConfig(rounds=1))
    assert seen[0] == seen[1] != seen[2]


def test_a_final_only_colbert_student_trains_once_on_the_best_miners_negatives(tmp_path, monkeypatch):
    """`--students final`: the rounds train only the bi-encoder miner (early stopping follows its dev
    metric); one ColBERT student is trained after them, from the base model, on the negatives of the
    round whose miner scored best, and a rerun reuses it."""
    import hardneg.evaluate
    from hardneg.evaluate import EvalResult

    scores = iter([0.50, 0.70, 0.60, 0.65])  # rounds 0, 1, 2 (the miners), then the student

    def fake_evaluate(source: Any, embed_config: EmbedConfig, config: Any, **_: Any) -> EvalResult:
        value = next(scores)
        return EvalResult({"ndcg@10": value}, 1, 0, config.split, config.k, {}, Path("."))

    monkeypatch.setattr(hardneg.evaluate, "evaluate", fake_evaluate)
    architectures: list[str] = []
    calls: list[tuple[str, str]] = []
    fake = _fake_trainer(calls)

    def trainer(export_dir: Path, out: Path, config: TrainConfig, start: EmbedConfig, **kwargs: Any) -> Any:
        architectures.append(f"{config.architecture}->{Path(out).parent.name}/{Path(out).name}")
        return fake(export_dir, out, config, start, **kwargs)

    def loop() -> Any:
        return run_loop(
            TINY_BEIR, tmp_path / "loop", EmbedConfig(model="hashing:32"), IndexConfig(backend="exact"),
            MineConfig(min_rank=1, max_rank=10, num_negatives=2), TrainConfig(architecture="colbert"),
            LoopConfig(rounds=2, dev_split="test", patience=5, students="final"),
            trainer=trainer, encoder_factory=lambda cfg: load_encoder(EmbedConfig(model="hashing:32")),
        )

    result = loop()
    assert result.best_round == 1
    assert architectures == ["biencoder->1/model", "biencoder->2/model", "colbert->1/student"]
    assert calls[-1] == ("1", "base")  # round 1's export, from the base model
    assert all(r["student"] is None for r in result.rounds)
    assert result.student is not None and result.student["round"] == 1 and result.student["dev"]["metrics"] == {"ndcg@10": 0.65}
    assert (tmp_path / "loop" / "rounds" / "1" / "student.json").is_file()
    assert result.manifest["student"]["path"] == str(tmp_path / "loop" / "rounds" / "1" / "student")

    again = loop()  # complete: nothing is trained or evaluated again
    assert len(architectures) == 3 and again.student == result.student
