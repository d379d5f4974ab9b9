"""Exceptions the library raises; the CLI maps each to a one-line `Error: ...` and exit code 1."""

from __future__ import annotations

from pathlib import Path


class HardnegError(Exception):
    """Base class: a problem the user can fix, reported without a traceback."""


class InputError(HardnegError):
    """Bad input data. Carries the file and line so the message points at the exact place."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None) -> None:
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = ""
        if self.path is not None:
            where = f"{self.path}:{line}: " if line is not None else f"{self.path}: "
        super().__init__(where + message)


class ConfigError(HardnegError):
    """An invalid configuration value or config file."""


class ArtifactError(HardnegError):
    """A missing, incomplete, stale or incompatible artifact directory."""


class ModelError(HardnegError):
    """A model that cannot be resolved or loaded."""
