"""`mine --judge llm` against a scripted OpenAI-compatible server: verdicts, cache, and every fault."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.llm import parse_verdict
from tests.conftest import ChatScript, chat_server, crash_mining_at_batch

runner = CliRunner()
RELEVANT_WORD = "capital"  # the scripted judge calls a candidate relevant when it mentions a capital


def _judge(prompt: str, behaviour: str) -> str:
    candidate = prompt.split("Candidate passage:", 1)[1].split("Does the candidate", 1)[0]
    relevant = RELEVANT_WORD in candidate
    return {"ok": json.dumps({"relevant": relevant, "score": 0.9 if relevant else 0.1}),
            "garbage": "I think it might be relevant, hard to say.",
            "truncated": '{"relevant": tr'}[behaviour]


@pytest.fixture
def server(monkeypatch) -> Iterator[tuple[str, ChatScript]]:
    monkeypatch.setenv("HARDNEG_LLM_BACKOFF", "0.01")
    monkeypatch.setenv("HARDNEG_LLM_API_KEY", "sk-test-secret")
    with chat_server(_judge) as served:
        yield served


def _mine(tiny_beir: Path, out: Path, url: str, *extra: str) -> object:
    return runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "15",
                               "--num-negatives", "5", "--judge", "llm", "--llm-url", url, "--llm-model", "scripted",
                               "--judge-top", "4", "--out", str(out), "--quiet", "--json", *extra])


def _rows(run: Path) -> list[dict]:
    return pq.read_table(run / "candidates.parquet").to_pylist()


def _word_docs(tiny_beir: Path) -> set[str]:
    docs = [json.loads(line) for line in (tiny_beir / "corpus.jsonl").read_text().splitlines()]
    return {d["_id"] for d in docs if RELEVANT_WORD in (d.get("title", "") + " " + d["text"])}


def test_judged_relevant_candidates_are_dropped_and_answers_are_cached(tmp_path, tiny_beir, server):
    url, script = server
    result = _mine(tiny_beir, tmp_path / "run", url)
    assert result.exit_code == 0, result.output
    rows = _rows(tmp_path / "run")
    judged = [r for r in rows if r["filter"] == "llm-judge"]
    assert judged and all(r["doc_id"] in _word_docs(tiny_beir) for r in judged)
    assert not any(r["selected"] and r["doc_id"] in _word_docs(tiny_beir) for r in rows if r["filter"] != "positive"
                   and r["rank"] < 4 and r["filter"] == "")
    manifest = json.loads((tmp_path / "run" / "manifest.json").read_text())
    usage = manifest["llm"]["usage"]
    assert usage["requests"] == script.requests > 0 and usage["prompt_tokens"] == 100 * usage["requests"]
    assert "sk-test-secret" not in (tmp_path / "run" / "manifest.json").read_text() and url not in json.dumps(manifest)
    # A re-run (another output, same judgments) pays nothing: every answer comes from the cache.
    before = script.requests
    again = _mine(tiny_beir, tmp_path / "run2", url)
    assert again.exit_code == 0 and script.requests == before
    assert json.loads((tmp_path / "run2" / "manifest.json").read_text())["llm"]["usage"]["cached"] == usage["requests"]
    assert _rows(tmp_path / "run2") == rows


def test_promote_turns_judged_relevant_candidates_into_exported_positives(tmp_path, tiny_beir, server):
    url, _ = server
    assert _mine(tiny_beir, tmp_path / "run", url, "--judge-action", "promote").exit_code == 0
    promoted = [r for r in _rows(tmp_path / "run") if r["filter"] == "pseudo-positive"]
    assert promoted
    out = runner.invoke(app, ["export", str(tmp_path / "run"), "--format", "tevatron", "--out", str(tmp_path / "t")])
    assert out.exit_code == 0, out.output
    positives = {p["docid"] for line in (tmp_path / "t" / "train.jsonl").read_text().splitlines()
                 for p in json.loads(line)["positive_passages"]}
    assert {r["doc_id"] for r in promoted} <= positives


@pytest.mark.parametrize("faults", [["500"], ["429"], ["500", "500", "429"]])
def test_server_errors_and_rate_limits_are_retried(tmp_path, tiny_beir, server, faults):
    url, script = server
    reference = _mine(tiny_beir, tmp_path / "ref", url)
    assert reference.exit_code == 0
    script.queue = list(faults)
    result = _mine(tiny_beir, tmp_path / "run", url, "--force")
    assert result.exit_code == 0, result.output


def test_garbage_answers_are_asked_again_once_then_left_unjudged_never_guessed(tmp_path, tiny_beir, server):
    url, script = server
    script.default = "garbage"
    result = _mine(tiny_beir, tmp_path / "run", url)
    assert result.exit_code == 0, result.output
    usage = json.loads((tmp_path / "run" / "manifest.json").read_text())["llm"]["usage"]
    assert usage["unjudged"] > 0 and usage["malformed"] == 2 * usage["unjudged"]
    assert not any(r["filter"] == "llm-judge" for r in _rows(tmp_path / "run"))


def test_a_truncated_answer_then_a_good_one_is_judged(tmp_path, tiny_beir, server):
    url, script = server
    script.queue = ["truncated"]
    assert _mine(tiny_beir, tmp_path / "run", url).exit_code == 0
    usage = json.loads((tmp_path / "run" / "manifest.json").read_text())["llm"]["usage"]
    assert usage["malformed"] == 1 and usage["unjudged"] == 0


def test_a_server_that_is_down_is_one_error_and_no_run(tmp_path, tiny_beir, monkeypatch):
    monkeypatch.setenv("HARDNEG_LLM_BACKOFF", "0.01")
    result = _mine(tiny_beir, tmp_path / "run", "http://127.0.0.1:9/v1")  # the discard port: refused
    assert result.exit_code == 1 and "no answer after" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "run").exists()


def test_a_judge_needs_a_model_and_an_endpoint(tmp_path, tiny_beir, monkeypatch):
    monkeypatch.delenv("HARDNEG_LLM_URL", raising=False)
    base = ["mine", str(tiny_beir), "--model", "hashing", "--judge", "llm", "--out", str(tmp_path / "r")]
    assert runner.invoke(app, base).exit_code == 2
    assert "--llm-url" in runner.invoke(app, [*base, "--llm-model", "m"]).output


def test_verdicts_are_parsed_strictly():
    assert parse_verdict('{"relevant": true, "score": 0.8}').relevant is True
    assert parse_verdict('Sure! {"relevant": false, "score": 0.1} Hope that helps').relevant is False
    assert parse_verdict('{"relevant": "yes"}') is None and parse_verdict("no json") is None
    assert parse_verdict('{"relevant": true, "score": 7}').score is None


def test_audit_estimates_false_negative_rates_per_rank_band_and_filter(tmp_path, tiny_beir, server):
    from hardneg.audit import wilson

    url, _ = server
    mined = runner.invoke(app, ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "15",
                                "--num-negatives", "5", "--relative-margin", "0.05", "--out", str(tmp_path / "run"), "--quiet"])
    assert mined.exit_code == 0, mined.output
    result = runner.invoke(app, ["audit", str(tmp_path / "run"), "--llm-url", url, "--llm-model", "scripted", "--sample", "5",
                                 "--bands", "3", "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["queries"] == 5
    names = [g["group"] for g in data["groups"]]
    assert any(n.startswith("selected, ranks [0, 5)") for n in names) and "removed: relative-margin" in names
    # The scripted judge's rule, recomputed from the run: a candidate is relevant when it mentions a capital.
    for group in data["groups"]:
        assert group["judged"] > 0 and 0 <= group["false_negative_rate"] <= 1
        low, high = wilson(group["judged_relevant"], group["judged"])
        assert group["ci95"] == [round(low, 4), round(high, 4)]
    assert json.loads((tmp_path / "run-audit" / "audit.json").read_text())["groups"] == data["groups"]
    # Same sample again, one request at a time: every answer from the cache.
    again = runner.invoke(app, ["audit", str(tmp_path / "run"), "--llm-url", url, "--llm-model", "scripted", "--sample", "5",
                                "--bands", "3", "--json", "--force", "--llm-concurrency", "1"])
    assert json.loads(again.stdout)["usage"]["requests"] == 0
    # Without --json the status line goes to stderr; --quiet silences it; the results stay on stdout.
    loud = runner.invoke(app, ["audit", str(tmp_path / "run"), "--llm-url", url, "--llm-model", "scripted", "--sample", "5", "--force"])
    quiet = runner.invoke(app, ["audit", str(tmp_path / "run"), "--llm-url", url, "--llm-model", "scripted", "--sample", "5", "--force", "-q"])
    assert loud.exit_code == quiet.exit_code == 0, loud.output + quiet.output
    assert "candidates of 5 queries to judge" in loud.stderr and quiet.stderr == "" and quiet.stdout == loud.stdout
    bad = runner.invoke(app, ["audit", str(tmp_path / "run"), "--llm-url", url, "--llm-model", "scripted", "--llm-concurrency", "0"])
    assert bad.exit_code != 0 and "--llm-concurrency must be >= 1" in bad.output


def test_llm_answers_come_back_in_order_with_one_progress_tick_each():
    """Answers finish out of order on the threads; they are returned in the items' order, and
    progress (for the bar of audit, synth) is called on the calling thread once per answer."""
    import threading
    import time

    from hardneg.llm import _ordered_map

    caller, ticks = threading.get_ident(), []

    def slow_first(item: int) -> int:
        time.sleep(0.02 * (5 - item))  # the first items finish last
        return item * 10

    def tick(n: int) -> None:
        assert threading.get_ident() == caller
        ticks.append(n)

    assert _ordered_map(slow_first, list(range(6)), 6, tick) == [0, 10, 20, 30, 40, 50]
    assert ticks == [1] * 6
    assert _ordered_map(slow_first, [], 2, tick) == [] and ticks == [1] * 6


def test_wilson_interval():
    from hardneg.audit import wilson

    assert wilson(0, 0) == (0.0, 1.0)
    low, high = wilson(0, 20)
    assert low == 0.0 and 0.1 < high < 0.2
    low, high = wilson(10, 20)
    assert low < 0.5 < high and abs((low + high) / 2 - 0.5) < 1e-9


def test_judge_sample_judges_a_fixed_share_of_the_queries(tmp_path, tiny_beir, server):
    url, script = server
    assert _mine(tiny_beir, tmp_path / "all", url).exit_code == 0
    everything = script.requests
    assert _mine(tiny_beir, tmp_path / "some", url, "--judge-sample", "0.4").exit_code == 0
    usage = json.loads((tmp_path / "some" / "manifest.json").read_text())["llm"]["usage"]
    judged = usage.get("requests", 0) + usage.get("cached", 0)
    assert 0 < judged < everything  # fewer queries asked about, all from the cache
    assert _mine(tiny_beir, tmp_path / "again", url, "--judge-sample", "0.4").exit_code == 0
    assert _rows(tmp_path / "again") == _rows(tmp_path / "some")  # the same queries every time


def test_a_resumed_judged_run_counts_the_requests_its_killed_invocation_spent(tmp_path, tiny_beir, server, monkeypatch):
    from hardneg import mine as mine_module

    url, script = server
    small = tmp_path / "chunks.toml"
    small.write_text("[mine]\nchunk-queries = 2\nquery-batch = 1\n")
    assert _mine(tiny_beir, tmp_path / "ref", url, "--config", str(small)).exit_code == 0
    reference = json.loads((tmp_path / "ref" / "manifest.json").read_text())["llm"]["usage"]
    assert reference["requests"] > 0 and reference["cached"] == 0
    # A second endpoint model: nothing cached, so each invocation's requests are its own.
    original = mine_module._Miner._mine_batch
    crash_mining_at_batch(monkeypatch, 3)
    run = ["mine", str(tiny_beir), "--model", "hashing", "--min-rank", "0", "--max-rank", "15", "--num-negatives", "5",
           "--judge", "llm", "--llm-url", url, "--llm-model", "other", "--judge-top", "4", "--config", str(small),
           "--out", str(tmp_path / "run"), "--quiet"]
    runner.invoke(app, run)
    assert (tmp_path / "run.partial").exists() and not (tmp_path / "run").exists()
    monkeypatch.setattr(mine_module._Miner, "_mine_batch", original)
    before = script.requests
    assert runner.invoke(app, run).exit_code == 0
    usage = json.loads((tmp_path / "run" / "manifest.json").read_text())["llm"]["usage"]
    assert script.requests - before < usage["requests"]  # the resumed invocation asked only for the rest
    assert usage == reference  # yet the run reports everything it cost


def test_cache_lists_and_prunes_the_local_llm(tmp_path):
    """The converted smoke-test model of scripts/local_llm.py (1 GB) is a cache entry like any other."""
    from hardneg.cache import list_entries, prune

    model = tmp_path / "local-llm" / "gemma-3-270m"
    model.mkdir(parents=True)
    (model / "model.safetensors").write_bytes(b"x" * 1000)
    entries = list_entries(tmp_path)
    assert [(e.kind, e.bytes) for e in entries] == [("local-llm", 1000)]
    prune(tmp_path, max_bytes=0)
    assert not list_entries(tmp_path) and not model.exists()
