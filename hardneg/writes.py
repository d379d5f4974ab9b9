"""Safe writes: atomic directories and files, the commit that renames a finished artifact into
place with signals deferred, resumable `<out>.partial` work directories, one writer per artifact
(a lock next to it), and the policy for what an output may replace (never what hardneg did not
write). See docs/reliability.md for each guarantee and its test.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hardneg.artifacts import artifact_kind, has_damaged_manifest, manifest_file, read_manifest, replaced_atomically, write_bytes_atomic
from hardneg.errors import ArtifactError, ConfigError

# --------------------------------------------------------------------------- atomic writes


def check_writable_parent(out: Path) -> None:
    """Create ``out``'s parent if needed; a clear ArtifactError when that or writing there fails."""
    parent = out.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ArtifactError(f"{out}: cannot create the parent directory ({exc.strerror})") from None
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ArtifactError(f"{out}: the directory {parent} is not writable")


_COMMIT_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@contextlib.contextmanager
def signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM/SIGHUP back for the duration of the block and deliver them after it.

    Python-level handlers rather than a signal mask: pyarrow's worker threads do not block signals,
    so a masked main thread would just see the kernel deliver the signal to one of them."""
    if not threading_main():
        yield
        return
    pending: list[int] = []
    previous: dict[Any, Any] = {}
    for sig in _COMMIT_SIGNALS:
        handler = signal.getsignal(sig)
        try:
            signal.signal(sig, lambda number, _frame: pending.append(number))
        except (OSError, ValueError):
            continue
        previous[sig] = signal.SIG_DFL if handler is None else handler
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for number in dict.fromkeys(pending):
            os.kill(os.getpid(), number)


def commit_dir(tmp: Path, out: Path) -> None:
    """Move a finished temporary directory into place, replacing ``out`` only at the last moment.

    Two renames on one filesystem, with SIGINT/SIGTERM/SIGHUP held back between them (delivered
    right after), so a stopped run leaves the old or the new artifact at ``out``, never neither.
    Only SIGKILL or a power cut can fall between the renames; the next writer of ``out`` then
    finds ``out.old-*`` and puts it back (see ``writing``).
    """
    old: Path | None = None
    with signals_deferred():
        if out.exists() or out.is_symlink():
            old = out.with_name(f"{out.name}.old-{uuid.uuid4().hex[:8]}")
            out.rename(old)
        try:
            tmp.rename(out)
        except OSError:
            if old is not None:
                old.rename(out)
            raise
    if old is not None:
        remove_path(old)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def remove_path(path: Path) -> None:
    """Remove a file, a symlink (never what it points to) or a directory tree."""
    if path.is_symlink() or path.is_file():
        path.unlink(missing_ok=True)
    else:
        shutil.rmtree(path, ignore_errors=True)


@contextlib.contextmanager
def write_errors(out: Path) -> Iterator[None]:
    """Turn an operating-system write failure (full disk, permissions) into a clear ArtifactError."""
    try:
        yield
    except OSError as exc:
        if exc.errno is not None and exc.strerror:
            raise ArtifactError(
                f"{out}: write failed ({exc.strerror}); the previous output, if any, is untouched"
            ) from exc
        raise


@contextlib.contextmanager
def atomic_dir(out: str | Path) -> Iterator[Path]:
    """Yield a fresh sibling temporary directory; on success it replaces ``out``, on error it is removed.

    Example:
        >>> with atomic_dir(path) as tmp:   # doctest: +SKIP
        ...     write_files(tmp)
        ...     write_manifest(tmp, "mine-run", ...)
    """
    out = Path(out)
    check_writable_parent(out)
    tmp = out.with_name(f"{out.name}.tmp-{uuid.uuid4().hex[:8]}")
    try:
        tmp.mkdir()
    except OSError as exc:
        raise ArtifactError(f"{out}: cannot write here ({exc.strerror})") from None
    try:
        with write_errors(out):
            yield tmp
            commit_dir(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_table(path: Path, table: pa.Table, row_group_size: int = 65536) -> None:
    """Write a Parquet file (zstd) to a temporary name, then rename it into place."""
    with replaced_atomically(path) as tmp:
        pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)


def copy_file_atomic(src: Path, dst: Path) -> None:
    """Hard-link ``src`` (an immutable artifact's file) at ``dst``, or copy it where links are not
    possible, under a temporary name first: ``dst`` is either absent or whole."""
    with replaced_atomically(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)


STATE_FILE = "state.json"


def _is_our_partial(partial: Path) -> bool:
    """A work directory is ours when its state file (written first, removed last) says so."""
    try:
        state = orjson.loads((partial / STATE_FILE).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return False
    return isinstance(state, dict) and isinstance(state.get("fingerprint"), str)


def unit_selector(shard: tuple[int, int] | None) -> Callable[[int], bool] | None:
    """For ``(i, n)`` (a job of an n-way split, ``--shard-index i --num-shards n``): whether unit
    number ``k`` is this job's (k mod n == i). None: every unit."""
    if shard is None:
        return None
    index, count = shard
    if not 0 <= index < count:
        raise ConfigError(f"shard-index must be in [0, num-shards), got {index} of {count}")
    return lambda number: number % count == index


def prepare_partial(partial: Path, fp: str, subdirs: list[str], clean: bool = True) -> bool:
    """Make ``partial`` (a resumable work directory) ready for a run with fingerprint ``fp``.

    Returns True when it holds earlier work of the same run, to resume; otherwise it is emptied.
    A directory at that path that hardneg did not create (no state file of ours) is never deleted.
    The caller holds the artifact's lock (``writing``); with a shared lock (jobs splitting the work)
    ``clean=False`` leaves other jobs' in-flight temporary files alone.
    """
    if partial.is_symlink() or (partial.exists() and not partial.is_dir()):
        raise ArtifactError(f"{partial}: exists and is not hardneg's work directory; move it away or choose another --out")
    if partial.is_dir():
        if not _is_our_partial(partial):
            if any(partial.iterdir()):
                raise ArtifactError(
                    f"{partial}: exists and was not created by hardneg (no {STATE_FILE}; it holds "
                    f"{describe_entries(partial)}); hardneg keeps its resumable work there: move it away "
                    "or choose another --out"
                )
        elif orjson.loads((partial / STATE_FILE).read_bytes()).get("fingerprint") == fp:
            for sub in subdirs:
                (partial / sub).mkdir(parents=True, exist_ok=True)
                for stale in (partial / sub).glob("*.tmp-*") if clean else ():  # a killed writer's half file
                    remove_path(stale)
            return True
        if not clean:
            raise ArtifactError(
                f"{partial}: holds work of another configuration, and other jobs may be using it; finish or remove it first"
            )
        shutil.rmtree(partial)
    # Created whole (state file first) under a temporary name, then renamed: jobs sharing the work
    # never see a work directory without its state file.
    fresh = partial.with_name(f"{partial.name}.tmp-{uuid.uuid4().hex[:8]}")
    fresh.mkdir()
    write_bytes_atomic(fresh / STATE_FILE, orjson.dumps({"fingerprint": fp}))
    for sub in subdirs:
        (fresh / sub).mkdir(parents=True)
    try:
        fresh.rename(partial)
    except OSError:  # another job of the same split created it first
        shutil.rmtree(fresh, ignore_errors=True)
        if clean:
            raise
        return prepare_partial(partial, fp, subdirs, clean)
    return False


def shard_name(index: int) -> str:
    """File name of the ``index``-th shard in a shard directory."""
    return f"part-{index:05d}.parquet"


def list_shards(directory: Path) -> list[Path]:
    """The shard files of a shard directory, in order."""
    return sorted(directory.glob("part-*.parquet"))



# --------------------------------------------------------------------------- what may be replaced


def describe_entries(directory: Path, limit: int = 3) -> str:
    """'a.txt, b/ and 4 more' for the first entries of a directory (sorted), for error messages."""
    try:
        names = sorted(p.name + ("/" if p.is_dir() else "") for p in directory.iterdir())
    except OSError:
        return "entries that cannot be listed"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def refuse_foreign(out: Path, what: str) -> None:
    """Raise unless ``out`` is absent, an empty directory or a hardneg artifact: hardneg replaces
    only what it wrote, with or without --force."""
    if not out.exists() or artifact_kind(out) is not None:
        return
    if out.is_dir() and not any(out.iterdir()):
        return
    found = f"a directory holding {describe_entries(out)}" if out.is_dir() else "a file"
    if has_damaged_manifest(out):  # which of the two, hardneg cannot tell; the user can
        raise ArtifactError(
            f"{out}: holds a {manifest_file(out).name} that is not a hardneg manifest ({found}): a damaged "
            "artifact, or another tool's directory; hardneg never deletes what it did not write, even with "
            f"--force: if hardneg wrote it (a cache entry under --workdir, an earlier --out), remove it (rm -r '{out}') "
            "and run again; otherwise choose another --out"
        )
    raise ArtifactError(
        f"{out}: exists and is not a hardneg {what} ({found}); hardneg never deletes what it did not "
        "write, even with --force: choose another --out, or remove it yourself"
    )


def prepare_out(
    out: Path, kind: str, fp: str | None, force: bool, *, what: str, changed: str = "replace",
    identity: dict[str, str] | None = None,
) -> dict[str, Any] | None:
    """The one policy for what may already be at ``--out``. Returns the manifest of an up-to-date
    ``kind`` artifact to reuse (same fingerprint, no ``force``); None when the stage must write it.

    - absent, or an empty directory: write.
    - not a hardneg artifact (a foreign file or directory): always refused, even with ``force``.
    - a ``kind`` artifact with another fingerprint: ``changed`` says what happens without ``force``:
      ``replace`` (outputs re-run in place: mining runs, exports, selections), ``refuse`` (a loop:
      its rounds would be lost), ``explain`` (cached stages: refused, naming which of ``identity``
      differs).
    - another kind of hardneg artifact: only with ``force``.
    """
    if not out.exists():
        return None
    refuse_foreign(out, what)
    found = artifact_kind(out)
    if found is None:
        return None  # an empty directory
    if found != kind:
        if force:
            return None
        raise ArtifactError(f"{out}: holds a '{found}' artifact, not a hardneg {what}; choose another --out or pass --force")
    manifest = read_manifest(out, kind)
    if fp is not None and manifest.get("fingerprint") == fp and not force:
        return manifest
    if force or changed == "replace":
        return None
    if changed == "refuse":
        raise ArtifactError(f"{out}: holds a {what} with different data or settings; pass --force to start it over, or choose another --out")
    there = manifest.get("identity", {})
    differences = [f"{key}: {there.get(key)!r} there, {value!r} now" for key, value in (identity or {}).items() if there.get(key) != value]
    detail = "; ".join(differences) or "its configuration differs"
    raise ArtifactError(f"{out}: holds a different {kind} artifact ({detail}); pass --force to rebuild it")


def check_replaceable(out: Path, kind: str, what: str, force: bool) -> None:
    """Outputs that are always rewritten (exports, selections, audits): see `prepare_out`."""
    prepare_out(out, kind, None, force, what=what)


# --------------------------------------------------------------------------- one writer per artifact

LOCK_SUFFIX = ".lock"
_HELD: dict[Path, int] = {}
_SIBLING_LITTER = re.compile(r"\.(tmp|old)-[0-9a-f]{8}$")


class LockedError(ArtifactError):
    """Another live process is writing the same artifact."""


def _holder(lock: Path) -> str:
    try:
        info = orjson.loads(lock.read_bytes())
        since = time.strftime("%H:%M:%S", time.localtime(info.get("since", 0)))
        return f"PID {info.get('pid')} on {info.get('host')}, since {since}: {info.get('command', '?')}"
    except (OSError, orjson.JSONDecodeError, AttributeError):
        return "a process that has not written its name, or jobs splitting the work with --shard-index"


def guard_output(out: Path, inputs: Sequence[str | Path] = ()) -> Path:
    """The real path to write ``out`` to, after refusing the places no write may replace: the
    current directory or one of its parents, an input of this stage or a directory holding one.
    A symlinked ``out`` is written through (the artifact replaces the link's target, never the
    link itself)."""
    out = Path(out)
    real = Path(os.path.realpath(out))
    cwd = Path.cwd().resolve()
    if real == cwd or real in cwd.parents:
        raise ArtifactError(f"{out}: is the current directory or one of its parents; choose another --out")
    if real == Path(real.anchor):
        raise ArtifactError(f"{out}: is a filesystem root; choose another --out")
    for source in inputs:
        src = Path(os.path.realpath(source))
        if real == src or real in src.parents:
            raise ArtifactError(f"{out}: would replace this stage's input {source}; choose another --out")
    return real if out.is_symlink() else out


def _clean_siblings(out: Path) -> None:
    """Remove the temporaries that dead writers of ``out`` left beside it (we hold its lock, so no
    live writer owns them), and put back an artifact a SIGKILL caught between the two renames."""
    parent = out.parent
    try:
        siblings = [p for p in parent.iterdir() if p.name.startswith(out.name + ".")
                    and _SIBLING_LITTER.fullmatch(p.name[len(out.name):])]
    except OSError:
        return
    olds = sorted((p for p in siblings if ".old-" in p.name), key=lambda p: p.stat().st_mtime)
    if not out.exists() and olds and artifact_kind(olds[-1]) is not None:
        olds[-1].rename(out)
        siblings.remove(olds[-1])
    for stale in siblings:
        remove_path(stale)


@contextlib.contextmanager
def writing(
    out: str | Path,
    inputs: Sequence[str | Path] = (),
    *,
    wait: bool = False,
    log: Callable[[str], None] | None = None,
    lock: str = "exclusive",
) -> Iterator[Path]:
    """Hold the exclusive right to write the artifact ``out`` (and its ``.partial``) until the block ends.

    ``lock="shared"``: jobs that each write their own units of one artifact (``--shard-index``)
    share it with one another, never with an exclusive writer (the committing call).

    The lock is ``flock`` on ``<out>.lock``: the kernel drops it when its holder dies, so a stale
    lock of a killed process is taken over without any guessing by PID. A second writer raises
    LockedError naming the holder (``wait=False``: a user's ``--out``) or waits for it
    (``wait=True``: cache entries two runs may share, which the second then reuses). Yields the
    path to write (see ``guard_output``). Re-entrant within one process.
    """
    out = guard_output(Path(out), inputs)
    key = Path(os.path.abspath(out))
    if key in _HELD:
        _HELD[key] += 1
        try:
            yield out
        finally:
            _HELD[key] -= 1
        return
    check_writable_parent(out)
    mode = fcntl.LOCK_SH if lock == "shared" else fcntl.LOCK_EX
    lock_path = out.with_name(out.name + LOCK_SUFFIX)
    while True:
        try:
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise ArtifactError(f"{out}: cannot create its lock file {lock_path.name} ({exc.strerror})") from None
        try:
            fcntl.flock(fd, mode | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(lock_path)
            if not wait:
                os.close(fd)
                raise LockedError(
                    f"{out}: another hardneg process is writing it ({holder}); wait for it to finish "
                    "or choose another --out"
                ) from None
            if log is not None:
                log(f"waiting for {holder}, which is writing {out}")
            fcntl.flock(fd, mode)
        # The previous holder removes the lock file when it is done: make sure ours is still the one
        # at that path, or a third process could lock a new file and write alongside us.
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock_path))
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(), "since": time.time(),
                "command": " ".join(["hardneg", *sys.argv[1:]])[:300]}
        if mode == fcntl.LOCK_EX:  # shared holders leave the holder record and the litter alone
            os.ftruncate(fd, 0)
            os.write(fd, orjson.dumps(info))
            _clean_siblings(out)
        _HELD[key] = 1
        yield out
    finally:
        _HELD.pop(key, None)
        if mode == fcntl.LOCK_EX or _no_other_holder(fd):
            with contextlib.suppress(OSError):
                os.unlink(lock_path)
        os.close(fd)


def _no_other_holder(fd: int) -> bool:
    """True when a shared holder is the last one (it may then remove the lock file)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


