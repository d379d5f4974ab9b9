"""Helpers shared by the benchmark scripts: measured subprocesses and table output."""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def measured(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float, str]:
    """(wall seconds, the child's own peak RSS in MB, its stdout). Output goes through files, not
    pipes, so a chatty child cannot block.

    Peak RSS is the child's ``VmHWM`` (/proc/PID/status), polled every 20 ms until it exits. Not
    ``ru_maxrss`` from wait4: Linux folds the high-water mark of the memory the child had before
    ``exec`` (a copy of this parent's, with vfork the parent's own) into the child's maxrss, so a big
    parent inflated every child's figure. VmHWM belongs to the post-exec address space only. Where
    /proc is missing, ru_maxrss is the fallback."""
    env = env or {**os.environ, "HARDNEG_DISABLE_PROGRESS": "1"}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        peak_kb = 0
        status_file = Path(f"/proc/{proc.pid}/status")
        while proc.poll() is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(status_file))
            time.sleep(0.02)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.stderr.write(err.read()[-4000:])
            raise SystemExit(f"failed: {' '.join(cmd)}")
        if peak_kb == 0:
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return wall, peak_kb / 1024, out.read()


def _vm_hwm_kb(status_file: Path) -> int:
    try:
        for line in status_file.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def emit(lines: list[str], write: Path | None) -> None:
    """Print a Markdown table and append it to ``write`` when given."""
    table = "\n".join(lines) + "\n"
    print(table)
    if write:
        with open(write, "a", encoding="utf-8") as fh:
            fh.write("\n" + table)
