"""Orchestration, written once: `hardneg mine RAW_INPUT` runs embed and index itself, caching both
under a workdir (`run_mine`, also used by `loop` and `eval` through `ensure_*`); `run_embed` is
`hardneg embed` (stdin spooling, the encoder's lifecycle).

Cached artifacts live at ``<workdir>/embeddings/<fingerprint>`` and ``<workdir>/index/<fingerprint>``,
so a second run with the same model, inputs and index settings reuses them (e.g. to tune the window).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from hardneg.artifacts import KIND_EMBEDDINGS, KIND_INDEX, artifact_kind, read_manifest
from hardneg.config import EmbedConfig, IndexConfig, MineConfig
from hardneg.embed import EmbedResult, embed, embeddings_fingerprint
from hardneg.encoders import Encoder, load_encoder
from hardneg.errors import ArtifactError, ConfigError, InputError
from hardneg.index import build_index, choose_backend, index_fingerprint
from hardneg.inputs import GZIP_MAGIC, PARQUET_MAGIC, Dataset, delimited_kind, is_stream, load_input
from hardneg.mine import MineResult, mine
from hardneg.progress import NULL_REPORTER, Reporter

STDIN = "-"


def default_workdir() -> Path:
    """``$HARDNEG_HOME``, else ``$XDG_CACHE_HOME/hardneg``, else ``~/.cache/hardneg``."""
    if os.environ.get("HARDNEG_HOME"):
        return Path(os.environ["HARDNEG_HOME"])
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "hardneg"


def spool_stdin(stream: IO[bytes], workdir: Path) -> Path:
    """Copy a stream (stdin, a pipe) to a content-addressed file, so it can be validated, hashed
    and re-read. The copy is named by what it holds: ``.parquet`` for Parquet; ``.csv`` or ``.tsv``
    for text whose first line is a header row (``.csv.gz``, ``.tsv.gz`` when gzipped); ``.jsonl``
    (``.jsonl.gz``) otherwise: JSON Lines or one JSON array."""
    spool = workdir / "stdin"
    tmp = spool / f"incoming-{os.getpid()}.jsonl"
    digest = hashlib.sha256()
    head = b""
    try:
        spool.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            while chunk := stream.read(1 << 20):
                head = head or chunk[:4]
                digest.update(chunk)
                fh.write(chunk)
        if head.startswith(PARQUET_MAGIC):
            suffix = ".parquet"
        else:
            suffix = (delimited_kind(tmp, "<stdin>") or ".jsonl") + (".gz" if head.startswith(GZIP_MAGIC) else "")
        final = spool / f"{digest.hexdigest()[:16]}{suffix}"
        os.replace(tmp, final)
    except BaseException as exc:  # interrupted, or failed: no half copy is left behind
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise ArtifactError(
                f"{spool}: cannot keep the piped input there ({exc.strerror}); choose a writable --workdir or set HARDNEG_HOME"
            ) from None
        raise
    return final


def ensure_embeddings(
    input_path: Path,
    config: EmbedConfig,
    workdir: Path,
    *,
    corpus: Path | None = None,
    display: str | None = None,
    corpus_display: str | None = None,
    encoder: Encoder | None = None,
    force: bool = False,
    reuse: Sequence[Path] = (),
    ray_address: str | None = None,
    reporter: Reporter = NULL_REPORTER,
    dataset: Dataset | None = None,
) -> Path:
    """An embeddings artifact for a raw input, from the workdir cache when its fingerprint matches.
    ``reuse``: embeddings artifacts whose vectors (same model, same text) need not be encoded again.
    ``dataset``: the input (split ``config.split``) when the caller has read it already."""
    own = encoder is None
    encoder = encoder or load_encoder(config)  # first: a missing model fails before reading any input
    try:
        if dataset is None:
            dataset = load_input(input_path, config.split, corpus, display, corpus_display)
        reporter.log(f"input: {dataset.description}: {dataset.num_docs} documents, {len(dataset.queries)} queries")
        fp = embeddings_fingerprint(encoder, dataset, config)
        out = workdir / "embeddings" / fp[:16]
        result = embed(dataset, out, config, encoder=encoder, force=force, reuse=reuse, corpus_from=cached_embeddings(workdir, but=out),
                       shared=True, ray_address=ray_address, reporter=reporter)
        _touch(result.path)
    finally:
        if own:
            encoder.close()
    return result.path


def ensure_index(
    embeddings: Path, config: IndexConfig, workdir: Path, *, force: bool = False, reporter: Reporter = NULL_REPORTER
) -> Path:
    """An index artifact for an embeddings artifact, from the workdir cache when its fingerprint matches."""
    emb = read_manifest(embeddings, KIND_EMBEDDINGS)
    counts = emb["counts"]
    backend = choose_backend(config, int(counts["docs"]), int(counts.get("queries", 0)), int(emb["model"]["dim"]))
    out = workdir / "index" / index_fingerprint(emb, backend, config)[:16]
    path = build_index(embeddings, out, config, force=force, shared=True, reporter=reporter).path
    _touch(path)
    return path


def _source(source: str | Path, stdin: IO[bytes] | None, workdir: Path) -> tuple[Path, str | None]:
    """(path, display name): ``-`` is spooled from ``stdin`` into the workdir first, and so is a
    pipe given by name (``<(zcat pairs.jsonl.gz)``): read once, a pipe would be fingerprinted
    empty and another pipe's cached embeddings reused."""
    if str(source) != STDIN:
        return _spooled(Path(source), workdir)
    if stdin is None:
        raise InputError("'-' reads pairs from standard input, but none was given", "<stdin>")
    return spool_stdin(stdin, workdir), "<stdin>"


def _spooled(path: Path, workdir: Path) -> tuple[Path, str | None]:
    """A pipe's copy in the workdir and the pipe's name; any other path as it is."""
    if not is_stream(path):
        return path, None
    try:
        with open(path, "rb") as stream:
            return spool_stdin(stream, workdir), str(path)
    except OSError as exc:
        raise InputError(f"cannot read ({exc.strerror})", path) from None


def run_embed(
    source: str | Path,
    out: str | Path,
    config: EmbedConfig,
    *,
    corpus: Path | None = None,
    stdin: IO[bytes] | None = None,
    workdir: Path | None = None,
    encoder: Encoder | None = None,
    force: bool = False,
    shard: tuple[int, int] | None = None,
    ray_address: str | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> EmbedResult:
    """`hardneg embed`: raw input (or ``-``: pairs on ``stdin``) into the embeddings artifact ``out``."""
    workdir = workdir or default_workdir()
    path, display = _source(source, stdin, workdir)
    corpus, corpus_display = _spooled(corpus, workdir) if corpus is not None else (None, None)
    own = encoder is None
    encoder = encoder or load_encoder(config)  # first: a missing model fails before any input is read
    try:
        dataset = load_input(path, config.split, corpus, display, corpus_display)
        return embed(dataset, out, config, encoder=encoder, force=force, shard=shard, ray_address=ray_address, reporter=reporter,
                     corpus_from=cached_embeddings(workdir))
    finally:
        if own:
            encoder.close()


def cached_embeddings(workdir: Path, but: Path | None = None) -> list[Path]:
    """The workdir's finished embeddings entries, most recently used first (``but`` left out): a
    new entry for the same corpus and model links its corpus shards from one of them (``embed``'s
    ``corpus_from``) instead of encoding the corpus again, e.g. `eval --split test` after `mine`."""
    entries = []
    for entry in (workdir / "embeddings").glob("*") if (workdir / "embeddings").is_dir() else ():
        try:
            entries.append((os.stat(entry / "manifest.json").st_mtime_ns, entry.name, entry))
        except OSError:
            continue  # unfinished (no manifest yet) or removed meanwhile
    return [entry for _, _, entry in sorted(entries, key=lambda e: (-e[0], e[1])) if entry != but]


def _touch(entry: Path) -> None:
    """Mark a cache entry as just used (`hardneg cache prune` removes the least recently used)."""
    try:
        os.utime(entry / "manifest.json")
    except OSError:
        pass


def run_mine(
    source: str | Path,
    out: str | Path,
    embed_config: EmbedConfig,
    index_config: IndexConfig,
    mine_config: MineConfig,
    *,
    workdir: Path | None = None,
    corpus: Path | None = None,
    stdin: IO[bytes] | None = None,
    encoder: Encoder | None = None,
    force: bool = False,
    allow_empty: bool = False,
    shard: tuple[int, int] | None = None,
    ray_address: str | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> MineResult:
    """Mine from whatever ``source`` is: an index artifact, an embeddings artifact, or raw input
    (BEIR folder, pairs file, or ``-`` for pairs on ``stdin``), running the missing stages.
    """
    workdir = workdir or default_workdir()
    index_config = dataclasses.replace(index_config, recall_k=mine_config.max_rank)
    if mine_config.engine == "ray" and index_config.backend == "auto":
        index_config = dataclasses.replace(index_config, backend="exact")  # the Ray engine searches exactly
    source, display = _source(source, stdin, workdir)
    corpus, corpus_display = _spooled(corpus, workdir) if corpus is not None else (None, None)
    kind = artifact_kind(source)
    if mine_config.run_file is not None and kind != KIND_INDEX:
        from hardneg.inputs import read_run_file

        # Before the stages that encode or index, its lines are checked (its ids against the corpus
        # when mining starts, which reads it anyway: from an index, that is at once).
        read_run_file(Path(mine_config.run_file), set(), {}, 1)
    if shard is not None and kind != KIND_INDEX:
        raise ConfigError(
            "--shard-index splits the mining of an index: run `hardneg embed ... --shard-index` jobs, then "
            "`hardneg embed` and `hardneg index` once, then `hardneg mine INDEX ... --shard-index` jobs"
        )
    if kind == KIND_INDEX:
        index_dir = source
    elif kind == KIND_EMBEDDINGS:
        index_dir = ensure_index(source, index_config, workdir, reporter=reporter)
    elif kind is None:
        embeddings = ensure_embeddings(
            source, embed_config, workdir, corpus=corpus, display=display, corpus_display=corpus_display, encoder=encoder,
            ray_address=ray_address,
            reporter=reporter,
        )
        index_dir = ensure_index(embeddings, index_config, workdir, reporter=reporter)
    else:
        raise InputError(f"cannot mine from a '{kind}' artifact; give raw input, embeddings or an index", source)
    return mine(index_dir, out, mine_config, force=force, allow_empty=allow_empty, shard=shard, ray_address=ray_address, reporter=reporter)

