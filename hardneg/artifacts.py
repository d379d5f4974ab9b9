"""The disk contract between stages: artifact layouts, Parquet schemas, manifests and atomic writes.

Every artifact is a directory holding Parquet (or Voyager/NumPy) data plus a ``manifest.json``. A
directory without a manifest of the expected kind is never accepted by a later stage, and artifacts
are written into a sibling temporary directory that is renamed into place only when complete.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import time
import unicodedata
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa

from hardneg import __version__
from hardneg.errors import ArtifactError

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
HIDDEN_DIR = ".hardneg"
"""Where an export keeps its manifest: trainers pointed at an export directory (FlagEmbedding's
``--train_data``, Tevatron's ``--train_dir``, ``datasets.load_dataset(..., data_dir=)``) read every
``*.json``/``*.jsonl``/``*.parquet`` file in it, and skip hidden directories."""


# U+0085, U+2028 and U+2029 are line breaks to str.splitlines() and to JavaScript, but JSON leaves
# them raw: a JSON Lines file holding one would split there for a reader that uses splitlines.
_LINE_BREAKS_IN_JSON = ((b"\xc2\x85", b"\\u0085"), (b"\xe2\x80\xa8", b"\\u2028"), (b"\xe2\x80\xa9", b"\\u2029"))


def json_line(obj: Any, option: int | None = None) -> bytes:
    """One JSON Lines record: compact JSON, the Unicode line breaks escaped (UTF-8 bytes that
    can only encode those characters, so only inside strings), and a newline."""
    data = orjson.dumps(obj, option=option)
    for raw, escaped in _LINE_BREAKS_IN_JSON:
        data = data.replace(raw, escaped)
    return data + b"\n"


def manifest_file(directory: Path) -> Path:
    """The manifest of the artifact at ``directory``: ``manifest.json``, or ``.hardneg/manifest.json``
    for exports."""
    top = Path(directory) / MANIFEST
    return top if top.is_file() else Path(directory) / HIDDEN_DIR / MANIFEST

KIND_EMBEDDINGS = "embeddings"
KIND_INDEX = "index"
KIND_MINE = "mine-run"
KIND_EXPORT = "export"
KIND_MODEL = "model"
KIND_LABELS = "labels"
KIND_SELECTION = "selection"
KIND_LOOP = "loop"
KIND_SYNTHETIC = "synthetic"
SYNTHETIC_FILE = "synthetic.parquet"

# Embeddings artifact
CORPUS_DIR = "corpus"
QUERIES_DIR = "queries"
QRELS_FILE = "qrels.parquet"
# Index artifact
DOC_IDS_FILE = "doc_ids.parquet"
VECTORS_FILE = "vectors.npy"
HNSW_FILE = "hnsw.voyager"
# Mine artifact
RUN_QUERIES_FILE = "queries.parquet"
CANDIDATES_FILE = "candidates.parquet"
# Labels artifact
JUDGMENTS_FILE = "judgments.parquet"
JUDGMENTS_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("label", pa.string()),
        ("source", pa.string()),
        ("line", pa.int64()),
    ]
)


def docs_schema(dim: int) -> pa.Schema:
    """Schema of one corpus shard of an embeddings artifact."""
    return pa.schema(
        [
            ("doc_id", pa.string()),
            ("title", pa.string()),
            ("text", pa.string()),
            ("text_hash", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


def queries_schema(dim: int) -> pa.Schema:
    """Schema of one query shard of an embeddings artifact."""
    return pa.schema(
        [
            ("query_id", pa.string()),
            ("text", pa.string()),
            ("text_hash", pa.string()),
            ("embedding", pa.list_(pa.float32(), dim)),
        ]
    )


QRELS_SCHEMA = pa.schema([("query_id", pa.string()), ("doc_id", pa.string()), ("score", pa.float32())])
DOC_IDS_SCHEMA = pa.schema([("label", pa.int64()), ("doc_id", pa.string()), ("text_hash", pa.string())])
RUN_QUERIES_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("text", pa.string()),
        ("positive_ids", pa.list_(pa.string())),
        ("positive_scores", pa.list_(pa.float32())),
        ("positive_teacher_scores", pa.list_(pa.float32())),
        ("status", pa.string()),
        ("num_selected", pa.int32()),
    ]
)
CANDIDATES_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("doc_id", pa.string()),
        ("rank", pa.int32()),
        ("score", pa.float32()),
        ("teacher_score", pa.float32()),
        ("selected", pa.bool_()),
        ("filter", pa.string()),
        ("confirmed", pa.bool_()),
    ]
)


# --------------------------------------------------------------------------- text helpers

_WS = re.compile(r"\s+")


def normalize_text(text: str) -> str:
    """Canonical form used to detect duplicate texts: NFKC, case-folded, whitespace collapsed."""
    return _WS.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


_INVISIBLE = frozenset({"Cc", "Cf", "Cs", "Zs", "Zl", "Zp"})


def is_blank(text: str) -> bool:
    """True when a text has nothing to read: only whitespace, control and format characters
    (zero-width spaces U+200B, joiners, BOMs, soft hyphens...). Such a text is empty for hardneg."""
    return all(ch.isspace() or unicodedata.category(ch) in _INVISIBLE for ch in text)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def csv_cell(value: str) -> str:
    """A string made safe for a spreadsheet: a cell starting with a formula character (= + - @, tab,
    CR) gets a leading apostrophe, which spreadsheets show as text, as does one that already starts
    with an apostrophe, so that ``csv_value`` reverses it exactly."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def csv_value(cell: str) -> str:
    """The original string of a cell written by ``csv_cell``."""
    return cell[1:] if cell.startswith("'") else cell


def labelling_csv(fh: Any, column: str = "label") -> Any:
    """A ``csv.DictReader`` over a labelling CSV opened as text, its delimiter taken from the header
    row: ``,`` as hardneg writes it, ``;`` as Excel saves CSV where the decimal separator is a comma
    (French, German, ...), or a tab (Excel's 'Text (Tab delimited)'): the first that makes ``column``
    a column."""
    import csv

    header = fh.readline()
    fh.seek(0)  # the decoder restarts too (utf-8-sig leaves the BOM out again)
    delimiter = next((d for d in (",", ";", "\t") if column in next(csv.reader([header], delimiter=d), [])), ",")
    return csv.DictReader(fh, delimiter=delimiter)


def text_hash(text: str) -> str:
    """Stable hash of a text's normalised form (hex, 128 bits)."""
    return hashlib.blake2b(normalize_text(text).encode("utf-8"), digest_size=16).hexdigest()


def hash_key(hex_digest: str) -> int:
    """The 64-bit prefix of a ``text_hash``, as the index keeps each document's (duplicate checks)."""
    return int(hex_digest[:16], 16)


def text_key(text: str) -> int:
    """``hash_key`` of a text's ``text_hash``: equal for texts equal once normalised."""
    return hash_key(text_hash(text))


def doc_text(title: str, text: str) -> str:
    """The text a document is encoded and exported as: ``title text`` (BEIR convention)."""
    title = title.strip()
    return f"{title} {text}".strip() if title else text.strip()


# --------------------------------------------------------------------------- fingerprints


def fingerprint(*parts: Any) -> str:
    """sha256 of the JSON form of ``parts`` (keys sorted), as hex."""
    return hashlib.sha256(orjson.dumps(parts, option=orjson.OPT_SORT_KEYS)).hexdigest()


def file_fingerprint(path: str | Path, chunk_size: int = 1 << 20) -> str:
    """sha256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


@contextlib.contextmanager
def replaced_atomically(path: Path) -> Iterator[Path]:
    """A temporary name beside ``path`` to write to: renamed over ``path`` when the block ends
    without an error, removed otherwise, so ``path`` is either as it was or whole."""
    tmp = path.with_name(path.name + f".tmp-{uuid.uuid4().hex[:8]}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write a small file to a temporary name, then rename it into place."""
    with replaced_atomically(path) as tmp:
        tmp.write_bytes(data)


# --------------------------------------------------------------------------- manifests


def write_manifest(directory: Path, kind: str, **fields: Any) -> dict[str, Any]:
    """Write ``manifest.json`` into ``directory`` (call last, inside the temporary directory)."""
    manifest = {
        "kind": kind,
        "format_version": FORMAT_VERSION,
        "hardneg_version": __version__,
        "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **fields,
    }
    data = orjson.dumps(manifest, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY)
    target = directory / MANIFEST
    if kind == KIND_EXPORT:  # out of the way of trainers that read every data file in the directory
        (directory / HIDDEN_DIR).mkdir(exist_ok=True)
        target = directory / HIDDEN_DIR / MANIFEST
    write_bytes_atomic(target, data + b"\n")  # a manifest is never seen half-written
    return manifest


# Which command writes each kind, and the order the pipeline makes them in (for error hints).
WRITER = {KIND_EMBEDDINGS: "embed", KIND_INDEX: "index", KIND_MINE: "mine", KIND_EXPORT: "export", KIND_MODEL: "train",
          KIND_LABELS: "label import", KIND_SELECTION: "select", KIND_LOOP: "loop",
          KIND_SYNTHETIC: "synth"}
_PIPELINE = [KIND_EMBEDDINGS, KIND_INDEX, KIND_MINE, KIND_EXPORT]


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _how_to_get(kind: str | None, found: str | None = None) -> str:
    """A hint: the commands that turn what is there (``found``; None: raw input) into ``kind``."""
    if kind is None or kind not in WRITER:
        return ""
    if kind in _PIPELINE and (found is None or found in _PIPELINE):
        start = 0 if found is None else _PIPELINE.index(found) + 1
        steps = [WRITER[k] for k in _PIPELINE[start : _PIPELINE.index(kind) + 1]]
        if found is None and kind in (KIND_MINE, KIND_EXPORT):  # the one-liner embeds and indexes itself
            steps = steps[steps.index("mine"):]
        if steps:
            return "; make one with " + " then ".join(f"`hardneg {s} ... --out DIR`" for s in steps)
    return f"; `hardneg {WRITER[kind]}` writes one"


def read_manifest(path: str | Path, kind: str | None = None) -> dict[str, Any]:
    """Load and check an artifact's manifest. Raises ArtifactError naming what is wrong and which
    command makes the artifact that is wanted."""
    directory = Path(path)
    what = f"{_a(kind)} '{kind}' artifact" if kind else "a hardneg artifact"
    if not directory.exists():
        raise ArtifactError(f"{directory}: does not exist; expected {what}{_how_to_get(kind)}")
    if not directory.is_dir():
        raise ArtifactError(f"{directory}: is a file, not {what}{_how_to_get(kind)}")
    manifest_path = manifest_file(directory)
    if not manifest_path.is_file():
        if any((directory / f"{n}{suffix}").is_file() for n in ("corpus.jsonl", "collection.tsv") for suffix in ("", ".gz", ".bz2", ".xz")) or (
            (directory / "corpus").is_dir() and (directory / "queries").is_dir()  # the hub's BEIR layout: a folder per part
        ):
            raise ArtifactError(f"{directory}: is raw input (a BEIR or MS MARCO folder), not {what}{_how_to_get(kind)}")
        raise ArtifactError(
            f"{directory}: no {MANIFEST}; this is not a complete hardneg artifact "
            f"(an interrupted run leaves none){_how_to_get(kind) or '. Re-run the stage that writes it.'}"
        )
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except orjson.JSONDecodeError as exc:
        raise ArtifactError(f"{manifest_path}: unreadable manifest ({exc})") from None
    if not isinstance(manifest, dict) or "kind" not in manifest:
        raise ArtifactError(f"{manifest_path}: not a hardneg manifest")
    if kind is not None and manifest["kind"] != kind:
        raise ArtifactError(
            f"{directory}: expected {_a(kind)} '{kind}' artifact, found {_a(manifest['kind'])} '{manifest['kind']}' artifact"
            f"{_how_to_get(kind, manifest['kind'])}"
        )
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise ArtifactError(
            f"{directory}: artifact format version {version} is not supported "
            f"(this hardneg reads version {FORMAT_VERSION}); rebuild it with --force"
        )
    keys, files = _REQUIRED.get(manifest["kind"], ((), ()))
    missing_keys = [k for k in keys if not isinstance(manifest.get(k), dict | str)]
    if missing_keys:
        raise ArtifactError(
            f"{manifest_path}: lacks {', '.join(repr(k) for k in missing_keys)}; the artifact is damaged: rebuild it (with --force)"
        )
    missing = [name for name in files if not (directory / name).exists()]
    if missing:
        raise ArtifactError(f"{directory}: {', '.join(missing)} missing; the artifact is incomplete: rebuild it (with --force)")
    return manifest


_REQUIRED: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # kind: (manifest fields every reader relies on, files that must be there)
    KIND_EMBEDDINGS: (("fingerprint", "model", "counts", "input"), (QRELS_FILE, CORPUS_DIR, QUERIES_DIR)),
    KIND_INDEX: (("fingerprint", "embeddings", "backend"), (DOC_IDS_FILE, VECTORS_FILE)),
    KIND_MINE: (("fingerprint", "config", "stats", "index", "embeddings", "model"), (RUN_QUERIES_FILE, CANDIDATES_FILE)),
    KIND_EXPORT: (("config",), ()),
}


def input_ref(target: Path, artifact: Path, **extra: Any) -> dict[str, Any]:
    """How an artifact names an input artifact: its absolute path and its path relative to the
    artifact's final location, so a tree of artifacts moved or copied together still resolves."""
    target = Path(target).resolve()
    return {"path": str(target), "relpath": os.path.relpath(target, Path(artifact).resolve()), **extra}


def resolve_ref(artifact: Path, manifest: dict[str, Any], key: str, kind: str, redo: str) -> Path:
    """The input artifact ``manifest[key]`` names: beside us (relative path) first, then at its
    absolute path. Gone from both: an ArtifactError saying where it was looked for and what to re-run."""
    ref = manifest.get(key)
    if not isinstance(ref, dict) or not isinstance(ref.get("path"), str):
        raise ArtifactError(f"{manifest_file(artifact)}: lacks the path of its {key}; the artifact is damaged: {redo}")
    places = ([Path(artifact) / ref["relpath"]] if isinstance(ref.get("relpath"), str) else []) + [Path(ref["path"])]
    for place in places:
        if artifact_kind(place) == kind:
            return place.resolve()
    looked = " or ".join(dict.fromkeys(str(p) for p in places))
    raise ArtifactError(
        f"{artifact}: the {key} it was made from ({kind}) is gone: not at {looked} (moved, or a cleaned cache); {redo}"
    )


@dataclass(frozen=True)
class Artifact:
    """An artifact opened for reading: its directory and its checked manifest (kind, version,
    required fields and files)."""

    path: Path
    manifest: dict[str, Any]

    @property
    def fingerprint(self) -> str:
        return str(self.manifest.get("fingerprint", ""))


def open_artifact(path: str | Path, kind: str) -> Artifact:
    """The artifact of ``kind`` at ``path`` (an ArtifactError naming what is wrong otherwise)."""
    return Artifact(Path(path), read_manifest(path, kind))


def upstream(artifact: Artifact, key: str, kind: str, redo: str) -> Artifact:
    """The input ``artifact`` was made from (``manifest[key]``), found where it was (see
    `resolve_ref`) and checked to be unchanged since: a rebuilt input under the same path is an
    error naming both fingerprints, never silently mixed in."""
    path = resolve_ref(artifact.path, artifact.manifest, key, kind, redo)
    found = open_artifact(path, kind)
    expected = artifact.manifest[key].get("fingerprint")
    if expected and found.fingerprint != expected:
        raise ArtifactError(
            f"{artifact.path}: made from {kind} {expected[:12]}, but {path} now holds {found.fingerprint[:12]}; {redo}"
        )
    return found


def artifact_kind(path: str | Path) -> str | None:
    """The kind of the artifact at ``path``, or None when it is not a hardneg artifact."""
    manifest_path = manifest_file(Path(path))
    if not manifest_path.is_file():
        return None
    try:
        manifest = orjson.loads(manifest_path.read_bytes())
    except orjson.JSONDecodeError:
        return None
    return manifest.get("kind") if isinstance(manifest, dict) else None


def has_damaged_manifest(path: str | Path) -> bool:
    """A directory with a manifest file that is no hardneg manifest: an artifact damaged from
    outside (hardneg's writes are atomic), or another tool's directory."""
    path = Path(path)
    return path.is_dir() and manifest_file(path).is_file() and artifact_kind(path) is None
