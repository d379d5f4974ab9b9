"""The command groups `hardneg label ...` (judgments back into mining) and `hardneg cache ...` (the
workdir cache); `cli.py` adds them to the app."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from hardneg import _examples
from hardneg import _options as opt
from hardneg import _render as render
from hardneg._console import errors, summary
from hardneg.errors import ConfigError

label_app = typer.Typer(help="Human judgments: import labelled candidates back into mining.", no_args_is_help=True)


@label_app.command("import", epilog=_examples.LABEL_EXAMPLES)
@errors
def label_import(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="Labelled to_label.jsonl / to_label.csv (or JSONL rows query_id, doc_id, label).")],
    run: Annotated[Path, typer.Option("--run", help="The mining run the selection came from (its queries and corpus are the valid ids).")],
    into: Annotated[Optional[Path], typer.Option("--into", help="Labels artifact to create or extend [default: RUN-labels next to the run].")] = None,
    skip_invalid: Annotated[bool, typer.Option("--skip-invalid", help="Skip malformed or unknown rows (reported) instead of refusing the import.")] = False,
    json: opt.JsonOpt = False,
) -> None:
    """Merge judgments: relevant -> positive (never a negative again); not_relevant -> confirmed negative.

    Use the result with `hardneg mine ... --labels DIR` (or `hardneg loop --labels DIR`).
    """
    from hardneg.label import import_labels

    result = import_labels(file, run, into or run.with_name(run.name + "-labels"), skip_invalid=skip_invalid)
    summary(json, {"path": str(result.path), "stats": result.stats.to_dict(), "counts": result.manifest["counts"]},
            lambda c: render.render_label_import(c, result.stats, str(result.path)))


cache_app = typer.Typer(help="The workdir cache the one-liner keeps (embeddings, indexes, piped input): list and prune it.", no_args_is_help=True)


@cache_app.command("list", epilog=_examples.CACHE_LIST_EXAMPLES)
@errors
def cache_list(workdir: opt.WorkdirOpt = None, json: opt.JsonOpt = False) -> None:
    """List the cache entries, least recently used first, with their size."""
    from hardneg.cache import list_entries
    from hardneg.pipeline import default_workdir

    root = workdir or default_workdir()
    entries = list_entries(root)
    summary(json, {"workdir": str(root), "bytes": sum(e.bytes for e in entries), "entries": [e.to_dict() for e in entries]},
            lambda c: render.render_cache(c, entries, str(root)))


@cache_app.command("prune", epilog=_examples.CACHE_PRUNE_EXAMPLES)
@errors
def cache_prune(
    older_than: Annotated[Optional[str], typer.Option("--older-than", help="Remove entries last used longer ago than this (e.g. 7d, 12h).")] = None,
    max_size: Annotated[Optional[str], typer.Option("--max-size", help="Then remove the least recently used entries until the cache is at most this (e.g. 10G).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only list what would be removed.")] = False,
    workdir: opt.WorkdirOpt = None, json: opt.JsonOpt = False,
) -> None:
    """Remove old or excess cache entries (never one a running hardneg is writing). Removed entries are recomputed when needed."""
    from hardneg.cache import parse_age, parse_size, prune
    from hardneg.pipeline import default_workdir

    if older_than is None and max_size is None:
        raise ConfigError("give --older-than AGE and/or --max-size SIZE (see hardneg cache list)")
    root = workdir or default_workdir()
    removed, busy = prune(root, older_than=parse_age(older_than) if older_than else None,
                          max_bytes=parse_size(max_size) if max_size else None, dry_run=dry_run)
    summary(json, {"dry_run": dry_run, "removed": [str(e.path) for e in removed], "bytes": sum(e.bytes for e in removed),
                   "busy": [str(e.path) for e in busy]}, lambda c: render.render_prune(c, removed, busy, str(root), dry_run))
