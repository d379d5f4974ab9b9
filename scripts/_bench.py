"""Helpers shared by the benchmark scripts: measured subprocesses and table output."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, the child's own peak RSS in MB, its stdout). Output goes through files, not
    pipes, so a chatty child cannot block; ru_maxrss comes from wait4 (KB on Linux)."""
    env = env or {**os.environ, "HARDNEG_DISABLE_PROGRESS": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            sys.stderr.write(err.read()[-4000:])
            raise SystemExit(f"failed: {' '.join(cmd)}")
        return wall, usage.ru_maxrss / 1024, out.read()


def emit(lines: list[str], write: Path | None) -> None:
    """Print a Markdown table and append it to ``write`` when given."""
    table = "\n".join(lines) + "\n"
    print(table)
    if write:
        with open(write, "a", encoding="utf-8") as fh:
            fh.write("\n" + table)
