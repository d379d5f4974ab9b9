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
