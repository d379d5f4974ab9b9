"""Progress and status reporting, kept out of the stages: they call a Reporter, the CLI renders it."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import Any, Protocol


class Reporter(Protocol):
    """What a stage may tell its caller while it works."""

    def progress(self, label: str, advance: int, total: int | None = None) -> None:
        """Advance the bar named ``label`` by ``advance`` units (created on first use)."""
        ...

    def log(self, message: str) -> None:
        """A one-line status message (stderr in the CLI)."""
        ...


class NullReporter:
    """Says nothing: the default for library calls."""

    def progress(self, label: str, advance: int, total: int | None = None) -> None:
        return None

    def log(self, message: str) -> None:
        return None


NULL_REPORTER = NullReporter()


class RichReporter:
    """rich progress bars and messages on stderr."""

    def __init__(self, show_bars: bool, quiet: bool) -> None:
        from rich.console import Console

        self.console = Console(stderr=True)
        self.quiet = quiet
        self._progress = None
        self._tasks: dict[str, Any] = {}  # rich TaskIDs
        if show_bars:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("[progress.data.speed]{task.fields[rate]}"),  # items/s, as sentence-transformers' bar
                TimeElapsedColumn(),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                console=self.console,
                transient=False,
            )

    def progress(self, label: str, advance: int, total: int | None = None) -> None:
        if self._progress is None:
            return
        if label not in self._tasks:
            self._tasks[label] = self._progress.add_task(label, total=total, rate="")
        task_id = self._tasks[label]
        self._progress.update(task_id, advance=advance, total=total)
        speed = next((t.speed for t in self._progress.tasks if t.id == task_id), None)
        if speed:
            self._progress.update(task_id, rate=f"{speed:,.1f}/s")

    def log(self, message: str) -> None:
        if not self.quiet:
            self.console.print(message, markup=False, highlight=False, soft_wrap=True)

    def __enter__(self) -> RichReporter:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()


def bars_enabled(quiet: bool) -> bool:
    """Bars only for a person watching: stderr is a TTY, no --quiet, no HARDNEG_DISABLE_PROGRESS."""
    if quiet or os.environ.get("HARDNEG_DISABLE_PROGRESS", "").strip() not in ("", "0"):
        return False
    return sys.stderr.isatty()


@contextlib.contextmanager
def cli_reporter(quiet: bool) -> Iterator[RichReporter]:
    with RichReporter(bars_enabled(quiet), quiet) as reporter:
        yield reporter
