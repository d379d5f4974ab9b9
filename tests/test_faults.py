"""Fault tolerance: SIGKILL mid-run, full disks, oversized lines; the previous good output survives."""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.writes import list_shards
from tests.conftest import crash_mining_at_batch

runner = CliRunner()
WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho sigma tau".split()


def _big_beir(root: Path, docs: int, words: int = 120) -> Path:
    """A synthetic BEIR folder large enough that the hashing encoder takes a few seconds."""
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as fh:
        for i in range(docs):
            text = " ".join(WORDS[(i * 7 + j * 3) % len(WORDS)] + str((i + j) % 97) for j in range(words))
            fh.write(json.dumps({"_id": f"d{i}", "text": text}) + "\n")
    with open(root / "queries.jsonl", "w") as fh:
        for i in range(0, docs, 10):
            fh.write(json.dumps({"_id": f"q{i}", "text": f"{WORDS[i % len(WORDS)]}{i % 97} {WORDS[(i + 1) % len(WORDS)]}"}) + "\n")
    with open(root / "qrels" / "train.tsv", "w") as fh:
        fh.write("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(0, docs, 10)))
    return root


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "HARDNEG_HOME": str(tmp_path / "home"), "HARDNEG_DISABLE_PROGRESS": "1"}


def _wait_for(predicate, timeout: float = 120.0) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.mark.slow
def test_sigkill_during_embed_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    data = _big_beir(tmp_path / "data", docs=6000)
    cmd = [sys.executable, "-m", "hardneg", "embed", str(data), "--model", "hashing", "--shard-size", "400", "--quiet"]
    partial = tmp_path / "emb.partial" / "corpus"
    proc = subprocess.Popen([*cmd, "--out", str(tmp_path / "emb")], env=_env(tmp_path))
    try:
        assert _wait_for(lambda: len(list_shards(partial)) >= 3 or proc.poll() is not None)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = list_shards(partial)
    assert 3 <= len(done) < 15, "the run was not killed mid-way; make the corpus bigger"
    assert not (tmp_path / "emb").exists()  # no half artifact a later stage could accept
    before = {p.name: p.stat().st_mtime_ns for p in done}

    rerun = subprocess.run([*cmd, "--out", str(tmp_path / "emb"), "--json"], env=_env(tmp_path), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    manifest = json.loads(rerun.stdout)["manifest"]
    assert manifest["counts"]["resumed_shards"] >= len(before)
    shards = list_shards(tmp_path / "emb" / "corpus")
    assert all(p.stat().st_mtime_ns == before[p.name] for p in shards if p.name in before)  # not redone

    clean = subprocess.run([*cmd, "--out", str(tmp_path / "clean")], env=_env(tmp_path), capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    for a, b in zip(shards, list_shards(tmp_path / "clean" / "corpus"), strict=True):
        assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
def test_sigterm_during_embed_exits_143_leaves_no_temporary_files_and_the_rerun_resumes(tmp_path):
    data = _big_beir(tmp_path / "data", docs=6000)
    cmd = [sys.executable, "-m", "hardneg", "embed", str(data), "--model", "hashing", "--shard-size", "400", "--quiet",
           "--out", str(tmp_path / "emb")]
    partial = tmp_path / "emb.partial" / "corpus"
    proc = subprocess.Popen(cmd, env=_env(tmp_path), stderr=subprocess.PIPE, text=True)
    try:
        assert _wait_for(lambda: len(list_shards(partial)) >= 2 or proc.poll() is not None)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate()
    assert proc.returncode == 143, err
    assert "Terminated" in err and "Traceback" not in err
    assert not [p for p in tmp_path.rglob("*") if ".tmp-" in p.name]
    kept = len(list_shards(partial))
    assert 2 <= kept < 15
    rerun = subprocess.run([*cmd, "--json"], env=_env(tmp_path), capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert json.loads(rerun.stdout)["manifest"]["counts"]["resumed_shards"] >= kept


def test_sigterm_inside_an_atomic_directory_removes_it(tmp_path):
    """The SIGTERM handler turns the signal into an exception, so `atomic_dir` cleans up."""
    code = (
        "import os, signal, sys, time\n"
        "from pathlib import Path\n"
        "from hardneg.writes import atomic_dir\n"
        "from hardneg._console import on_sigterm as _on_sigterm\n"
        "signal.signal(signal.SIGTERM, _on_sigterm)\n"
        "with atomic_dir(Path(sys.argv[1])) as tmp:\n"
        "    (tmp / 'half-written').write_text('x')\n"
        "    os.kill(os.getpid(), signal.SIGTERM)\n"
        "    time.sleep(30)\n"
    )
    out = tmp_path / "artifact"
    done = subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True, timeout=60)
    assert done.returncode != 0 and "Terminated" in done.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_sigkill_during_mine_resumes_without_redoing_chunks_and_matches(tmp_path):
    data = _big_beir(tmp_path / "data", docs=4000, words=40)
    config = tmp_path / "mine.toml"
    config.write_text("[mine]\nchunk-queries = 40\nquery-batch = 4\n")
    env = _env(tmp_path)
    base = [sys.executable, "-m", "hardneg", "mine", str(data), "--model", "hashing", "--min-rank", "1",
            "--config", str(config), "--quiet"]
    # An uninterrupted reference run (it also warms the embeddings/index cache).
    ref = subprocess.run([*base, "--out", str(tmp_path / "reference")], env=env, capture_output=True, text=True)
    assert ref.returncode == 0, ref.stderr
    chunks = tmp_path / "run.partial" / "chunks"
    proc = subprocess.Popen([*base, "--out", str(tmp_path / "run")], env=env)
    try:
        assert _wait_for(lambda: len(list(chunks.glob("tally-*.json"))) >= 3 or proc.poll() is not None)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    done = {p.name: p.stat().st_mtime_ns for p in chunks.glob("part-*.parquet")}
    assert 3 <= len(done) < 10, "the run was not killed mid-way; make the corpus bigger"
    assert not (tmp_path / "run").exists()
    rerun = subprocess.run([*base, "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    for name in ("candidates.parquet", "queries.parquet"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()
    ref_stats = json.loads((tmp_path / "reference" / "manifest.json").read_text())["stats"]
    run_stats = json.loads((tmp_path / "run" / "manifest.json").read_text())["stats"]
    assert run_stats == ref_stats
    assert not (tmp_path / "run.partial").exists()


def test_resumed_mine_does_not_mine_finished_chunks_again(tmp_path, monkeypatch, tiny_beir):
    from hardneg import mine as mine_module
    from hardneg.config import EmbedConfig, IndexConfig, MineConfig
    from hardneg.pipeline import run_mine

    cfg = MineConfig(min_rank=1, max_rank=20, chunk_queries=2, query_batch=1)
    reference = run_mine(tiny_beir, tmp_path / "reference", EmbedConfig(model="hashing"), IndexConfig(), cfg)
    original = mine_module._Miner._mine_batch
    calls = crash_mining_at_batch(monkeypatch, 3)
    with pytest.raises(KeyboardInterrupt):
        run_mine(tiny_beir, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), cfg)
    calls.clear()
    monkeypatch.setattr(mine_module._Miner, "_mine_batch", lambda self, batch, tally: (calls.append(batch), original(self, batch, tally))[1])
    result = run_mine(tiny_beir, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), cfg)
    assert len(calls) == 8 - 2  # the first chunk (2 queries) was finished before the crash
    assert result.stats.to_dict() == reference.stats.to_dict()
    for name in ("candidates.parquet", "queries.parquet"):
        assert (tmp_path / "run" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes()


def test_full_disk_during_mine_is_a_clear_error_and_keeps_the_previous_run(tmp_path, monkeypatch, tiny_beir):
    from hardneg import writes

    ok = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "1", "--out", "run"])
    assert ok.exit_code == 0, ok.output
    before = {p.name: p.read_bytes() for p in Path("run").iterdir()}

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writes.pq, "write_table", full_disk)
    bad = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "2", "--out", "run"])
    assert bad.exit_code == 1
    assert bad.stderr.strip().splitlines()[-1].startswith("Error: run: write failed (No space left on device)")
    assert {p.name: p.read_bytes() for p in Path("run").iterdir()} == before
    # What is left beside it is the resumable work directory, never an artifact a stage would accept.
    assert sorted(p.name for p in Path(".").iterdir() if p.name.startswith("run")) in (["run"], ["run", "run.partial"])
    assert not Path("run.partial/manifest.json").exists()


def test_output_under_a_file_is_a_clear_error(tmp_path):
    Path("blocker").write_text("x")
    result = runner.invoke(app, ["mine", str(Path(__file__).parent / "data" / "tiny_beir"), "--model", "hashing", "--out", "blocker/run"])
    assert result.exit_code == 1
    assert "blocker/run: cannot create the parent directory" in result.stderr


def test_a_ten_megabyte_line_is_refused_with_its_line_number(tmp_path):
    root = tmp_path / "data"
    (root / "qrels").mkdir(parents=True)
    with open(root / "corpus.jsonl", "w") as fh:
        fh.write(json.dumps({"_id": "d1", "text": "fine"}) + "\n")
        fh.write(json.dumps({"_id": "d2", "text": "x" * (10 * 1024 * 1024)}) + "\n")
    (root / "queries.jsonl").write_text(json.dumps({"_id": "q1", "text": "fine"}) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\nq1\td1\t1\n")
    result = runner.invoke(app, ["mine", str(root), "--model", "hashing", "--out", "run"])
    assert result.exit_code == 1
    assert "corpus.jsonl:2: line is 10.0 MiB long" in result.stderr
    assert not Path("run").exists()


def test_full_disk_during_embed_is_a_clear_error(tmp_path, monkeypatch, tiny_beir):
    from hardneg import writes

    def full_disk(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(writes.pq, "write_table", full_disk)
    result = runner.invoke(app, ["embed", str(tiny_beir), "--model", "hashing", "--out", "emb"])
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines()[-1] == "Error: emb: write failed (No space left on device); the previous output, if any, is untouched"
    assert not Path("emb").exists()
