"""Helpers shared by the benchmark scripts: measured subprocesses and table output."""

from __future__ import annotations

import os
import re
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
    wall, peak, out, _ = measured_tree(cmd, env, descendants=False)
    return wall, peak, out


def measured_tree(
    cmd: list[str], env: dict[str, str] | None = None, *, descendants: bool = True
) -> tuple[float, float, str, dict[str, float]]:
    """``measured`` plus the peak RSS (MB) of the child's descendants, by process title (the
    largest per title: e.g. each Ray actor class, "raylet", "gcs_server"), polled every 0.5 s."""
    env = env or {**os.environ, "HARDNEG_DISABLE_PROGRESS": "1"}
    tree: dict[str, float] = {}
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=err, env=env, text=True)
        peak_kb = 0
        status_file = Path(f"/proc/{proc.pid}/status")
        polls = 0
        while proc.poll() is None:
            peak_kb = max(peak_kb, _vm_hwm_kb(status_file))
            if descendants and polls % 25 == 0:
                for title, kb in _descendant_peaks(proc.pid):
                    tree[title] = max(tree.get(title, 0.0), kb / 1024)
            polls += 1
            time.sleep(0.02)
        wall = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            sys.stderr.write(err.read()[-4000:])
            raise SystemExit(f"failed: {' '.join(cmd)}")
        if peak_kb == 0:
            peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        return wall, peak_kb / 1024, out.read(), tree


def _descendant_peaks(root: int) -> list[tuple[str, int]]:
    """(title, VmHWM kB) of every live descendant of ``root``; the title is the first word of its
    command line (Ray names its workers ``ray::<Actor>``), or the executable's name."""
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                parent[int(entry.name)] = int(stat[stat.rindex(")") + 2 :].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    found = []
    for pid in parent:
        up, seen = parent.get(pid), 0
        while up and up != root and seen < 64:
            up, seen = parent.get(up), seen + 1
        if up == root:
            try:
                argv = (Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") or [b""])
                title = argv[0].decode(errors="replace").split()[0] if argv[0] else ""
                if title.endswith("python") or title.endswith("python3") or "/" in title:
                    title = Path(argv[1].decode(errors="replace")).name if len(argv) > 1 and argv[1] else Path(title).name
            except (OSError, IndexError):
                continue
            if title.startswith("ray::"):  # Ray retitles a worker with the method it runs: one name per actor
                title = re.sub(r"\.[A-Za-z_]\w*$", "", title)
            found.append((title, _vm_hwm_kb(Path(f"/proc/{pid}/status"))))
    return found


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
