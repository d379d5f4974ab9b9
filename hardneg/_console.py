"""What every command shares around its body: the error and signal mapping, stdin/stdout handling
(a reader that leaves early is a normal end), JSON output, split-job flags, the allocator restart."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from contextvars import ContextVar
from typing import Any, TypeVar

import typer

from hardneg.errors import ConfigError, HardnegError

F = TypeVar("F", bound=Callable[..., Any])


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where Python is so that cleanup runs: temporary directories are removed and
    resumable work is kept, as for Ctrl-C. (The default SIGTERM action kills the process without
    running any ``finally``, leaving ``*.tmp-*`` directories behind.)"""


def on_sigterm(signum: int, frame: Any) -> None:
    raise Terminated()


def _debug() -> bool:
    return os.environ.get("HARDNEG_DEBUG", "") not in ("", "0")


def errors(fn: F) -> F:
    """Map library errors to one `Error: ...` line on stderr: exit 1 (2 for configuration/usage)."""

    name = fn.__name__.rstrip("_").replace("_", " ")  # eval_ -> eval, cache_list -> cache list

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _COMMAND.set(name)
        if sys.stdout is None:  # started with stdout closed (`>&-`): results go nowhere, as with EPIPE
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
        try:
            return fn(*args, **kwargs)
        except HardnegError as exc:
            if _debug():
                raise
            sys.stderr.write("Error: " + " ".join(str(exc).split("\n")) + "\n")  # always one line
            raise typer.Exit(2 if isinstance(exc, ConfigError) else 1) from None
        except KeyboardInterrupt as exc:
            terminated = isinstance(exc, Terminated)
            sys.stderr.write(
                f"{'Terminated' if terminated else 'Interrupted'}. Finished shards are kept; "
                "run the same command again to resume.\n"
            )
            raise typer.Exit(143 if terminated else 130) from None
        except BrokenPipeError:
            # `hardneg export ... --out - | head`: the reader left; not an error.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(0) from None
        except (typer.Exit, typer.Abort, SystemExit):
            raise
        except Exception as exc:  # a bug: still one line, with the way to the traceback
            if _debug():
                raise
            message = " ".join(str(exc).split("\n"))[:500]
            sys.stderr.write(
                f"Error: unexpected {exc.__class__.__name__}: {message} (a bug in hardneg: please report it; "
                "set HARDNEG_DEBUG=1 for a traceback)\n"
            )
            raise typer.Exit(1) from None

    return wrapper  # type: ignore[return-value]


def shard(num_shards: int | None, shard_index: int | None) -> tuple[int, int] | None:
    """--num-shards/--shard-index as (index, count); both or neither."""
    if num_shards is None and shard_index is None:
        return None
    if num_shards is None or shard_index is None:
        raise ConfigError("--num-shards and --shard-index go together (e.g. --num-shards 8 --shard-index $SLURM_ARRAY_TASK_ID)")
    if num_shards < 1 or not 0 <= shard_index < num_shards:
        raise ConfigError(f"--shard-index must be in [0, --num-shards), got {shard_index} of {num_shards}")
    return shard_index, num_shards


def stdin() -> Any:
    """Standard input as bytes; an error when the process was started with it closed (`<&-`)."""
    from hardneg.errors import InputError

    if sys.stdin is None:
        raise InputError("'-' reads pairs from standard input, but standard input is closed", "<stdin>")
    return sys.stdin.buffer


def stdout() -> Any:
    """The console results are printed to. A reader that leaves early (`hardneg mine ... | head -1`)
    is a normal end, exit 0, for every command (rich's default would exit 1)."""
    from rich.console import Console

    class _Stdout(Console):
        def on_broken_pipe(self) -> None:
            self.quiet = True
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise SystemExit(0)

    return _Stdout(highlight=False, soft_wrap=False, width=None if sys.stdout.isatty() else 240)  # pipes and logs: no wrapped tables or commands


def say(text: str) -> None:
    """Plain text on stdout (no markup, no highlighting)."""
    stdout().print(text, markup=False, highlight=False)


def print_json(data: Any, stream: Any = None) -> None:
    import orjson

    (stream or sys.stdout).write(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode() + "\n")


_COMMAND: ContextVar[str | None] = ContextVar("_COMMAND", default=None)


def _command_name() -> str | None:
    """`mine`, `cache list`, ...: the command being run (set by `errors` from the function name)."""
    return _COMMAND.get()


def summary(json: bool, data: dict[str, Any], render: Callable[[Any], None]) -> None:
    """A command's result: with --json one envelope for every command (`command`, `path`, `reused`,
    `config`, `stats`, `timings`, then the command's own keys), else ``render(console)``."""
    if json:
        print_json(envelope(data))
    else:
        render(stdout())


def envelope(data: dict[str, Any]) -> dict[str, Any]:
    manifest: dict[str, Any] = data["manifest"] if isinstance(data.get("manifest"), dict) else {}
    head = {
        "command": _command_name(), "path": data.get("path"), "reused": data.get("reused", False),
        "config": data.get("config", manifest.get("config")), "stats": data.get("stats", manifest.get("stats")),
        "timings": data.get("timings", manifest.get("timings")),
    }
    return head | data


def partial(result: Any, json: bool) -> None:
    """A job of a split wrote its share: say how the artifact gets finished."""
    if json:
        print_json({"path": str(result.path), "complete": False, "manifest": result.manifest})
        return
    say(f"wrote this job's share into {result.manifest['partial']}; when every job is done, run the same "
        "command without --num-shards/--shard-index to finish and commit it")


MODEL_COMMANDS = frozenset({"embed", "mine", "train", "eval", "loop", "select"})


def restart_with_allocator_tunables() -> None:
    """Commands that run a model re-execute this process once with `encoders.ALLOCATOR_TUNABLES`
    in the environment: glibc reads them only at start, and they cut the encoder's peak memory by a
    quarter at no cost in speed. Same PID, same arguments; skipped where they do not apply."""
    command = next((arg for arg in sys.argv[1:] if not arg.startswith("-")), None)
    if command not in MODEL_COMMANDS:
        return
    from hardneg.encoders import allocator_tunables

    value = allocator_tunables()
    if value is None:
        return
    try:
        os.execve(sys.executable, [sys.executable, *sys.orig_argv[1:]], {**os.environ, "GLIBC_TUNABLES": value})
    except OSError:  # pragma: no cover - carry on with the default allocator
        pass


def markdown_epilogs(*apps: typer.Typer) -> None:
    """Help is rendered as Markdown (for the option panels); click's ``\\b`` verbatim blocks of
    examples become fenced code so each example stays on its own line."""
    for group in apps:
        for info in group.registered_commands:
            if info.epilog and "\b\n" in info.epilog:
                head, body = info.epilog.split("\b\n", 1)
                lines = "\n".join(line.strip() for line in body.strip("\n").splitlines())
                info.epilog = f"{head}```\n{lines}\n```\n"
