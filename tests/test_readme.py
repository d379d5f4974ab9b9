"""Every `hardneg ...` command shown in the README and in the commands' --help examples parses: the
command exists, every flag exists, every choice is valid (parsed, not run)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
from typer.main import get_command

from hardneg import _examples
from hardneg.cli import app

ROOT = Path(__file__).parents[1]


def _commands(text: str) -> list[str]:
    """`hardneg ...` command lines of fenced code blocks and of inline `hardneg ...` spans that take
    flags, with shell continuations joined and pipes, redirections and comments cut off."""
    found = []
    blocks = [body for lang, body in re.findall(r"```([a-z]*)\n(.*?)```", text, re.S) if lang in ("", "bash", "sh", "console")]
    for block in blocks:
        joined = re.sub(r"\\\n\s*", " ", block)
        for line in joined.splitlines():
            line = line.strip()
            if line.startswith("$ "):
                line = line[2:]
            for part in re.split(r"\s(?:\||&&|;)\s", line):
                part = part.strip()
                part = re.sub(r"^(?:[A-Z_]+=\S+\s+)+", "", part)  # VAR=value hardneg ...
                if part.startswith("hardneg ") or part.startswith(".venv/bin/hardneg "):
                    found.append(part)
    return found


def _examples_text() -> str:
    return "\n".join(v for k, v in vars(_examples).items() if k.endswith("_EXAMPLES"))


def _parse(line: str) -> None:
    line = line.split(" #", 1)[0].split("   (", 1)[0]
    line = re.split(r"\s[<>]\s?|\s2>", line)[0]
    line = re.sub(r"\$\{?[A-Z_]+\}?", "0", line)  # shell variables: $SLURM_ARRAY_TASK_ID -> a number
    words = shlex.split(line)[1:]
    group = get_command(app)
    names = []
    command = group
    while words and hasattr(command, "commands") and words[0] in command.commands:
        names.append(words[0])
        command = command.commands[words.pop(0)]
    assert names, f"not a hardneg command: {line}"
    # Placeholders in capitals (RUN, DIR, ...) stand for values: any value parses the same way.
    command.make_context(" ".join(names), words, resilient_parsing=False)


README_COMMANDS = _commands((ROOT / "README.md").read_text(encoding="utf-8"))
HELP_COMMANDS = _commands("```\n" + _examples_text().replace("\b", "") + "\n```")


def test_the_readme_shows_commands():
    assert len(README_COMMANDS) > 20 and len(HELP_COMMANDS) > 20


@pytest.mark.parametrize("line", README_COMMANDS + HELP_COMMANDS)
def test_every_documented_command_parses(line):
    _parse(line)


def test_every_help_example_fits_piped_help_and_names_only_what_a_clone_has():
    for name, text in vars(_examples).items():
        if name.endswith("_EXAMPLES"):
            for line in text.splitlines():
                assert len(line) <= _examples.HELP_WIDTH - 4, f"{name}: {line}"
                assert "../shared" not in line and "data/scifact" not in line, line


def test_the_walkthrough_never_writes_one_path_with_two_different_commands():
    """The README and --help examples run in one directory (tests/test_examples_run.py): a path one
    command writes and another overwrites (a mining run, then an export, at `runs/sf-kd-colbert`)
    fails there with a refusal, after half an hour of other commands; this catches it in a second."""
    from tests.test_examples_run import _help, _makefile_demo, _readme

    writers: dict[str, set[str]] = {}
    shell = "\n".join(step for kind, step in _makefile_demo() + _readme() + _help() if kind == "shell")
    for line in _commands(f"```\n{shell}\n```"):
        words = shlex.split(line.split(" #", 1)[0])
        if "--out" in words and words[words.index("--out") + 1] != "-":
            writers.setdefault(words[words.index("--out") + 1], set()).add(words[1])
    clashes = {out: sorted(commands) for out, commands in writers.items() if len(commands) > 1}
    assert len(writers) > 40 and not clashes
