"""`hardneg label import`: fold an annotator's judgments back into mining.

A judgments file is what `hardneg select` wrote, with labels filled in: the JSONL form (one query
per line, a ``label`` on each of its ``candidates``) or the CSV form (one candidate per row, a
``label`` column). Flat JSONL rows ``{"query_id", "doc_id", "label"}`` are accepted too.

Labels: ``relevant`` (also 1, yes, y, true, pos), ``not_relevant`` (also not relevant,
not-relevant, 0, no, n, false, neg), ``skip`` or empty (no judgment). Case is ignored.

Judgments are merged into a labels artifact (later judgments of the same pair replace earlier
ones) that `hardneg mine --labels DIR` reads: a candidate judged relevant becomes a positive (never
a negative again, and exported as a positive); one judged not relevant is a confirmed negative,
exempt from the score rules and sampled before any other.

Every row is checked before anything is written: an unknown query or document, a malformed row or
an unknown label is reported as ``file:line: field: problem``, and the import is refused (nothing
changes) unless ``skip_invalid`` is set, in which case those rows are skipped and counted.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from hardneg.artifacts import (
    DOC_IDS_FILE,
    JUDGMENTS_FILE,
    JUDGMENTS_SCHEMA,
    KIND_INDEX,
    KIND_LABELS,
    KIND_MINE,
    RUN_QUERIES_FILE,
    artifact_kind,
    csv_value,
    fingerprint,
    input_ref,
    labelling_csv,
    read_manifest,
    resolve_ref,
    write_manifest,
)
from hardneg.errors import ArtifactError, InputError
from hardneg.inputs import iter_jsonl, refuse_stream
from hardneg.readers import read_table
from hardneg.writes import atomic_dir, write_table, writing

RELEVANT = "relevant"
NOT_RELEVANT = "not_relevant"
SKIP = "skip"
_ALIASES = {
    RELEVANT: RELEVANT, "1": RELEVANT, "yes": RELEVANT, "y": RELEVANT, "true": RELEVANT, "pos": RELEVANT,
    NOT_RELEVANT: NOT_RELEVANT, "not relevant": NOT_RELEVANT, "not-relevant": NOT_RELEVANT, "irrelevant": NOT_RELEVANT,
    "0": NOT_RELEVANT, "no": NOT_RELEVANT, "n": NOT_RELEVANT, "false": NOT_RELEVANT, "neg": NOT_RELEVANT,
    SKIP: SKIP, "": SKIP, "?": SKIP,
}
MAX_REPORTED = 20


@dataclass
class Judgment:
    query_id: str
    doc_id: str
    label: str
    source: str
    line: int


@dataclass
class LabelStats:
    """What an import did."""

    rows: int = 0
    relevant: int = 0
    not_relevant: int = 0
    skipped: int = 0
    invalid: int = 0
    replaced: int = 0
    total_judgments: int = 0
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class LabelsResult:
    path: Path
    manifest: dict[str, Any]
    stats: LabelStats


def parse_label(value: Any) -> str | None:
    """The canonical label for an annotator's value, or None when it is not one we know."""
    if value is None:
        return SKIP
    if isinstance(value, bool):
        return RELEVANT if value else NOT_RELEVANT
    if isinstance(value, int) and value in (0, 1):
        return RELEVANT if value else NOT_RELEVANT
    if not isinstance(value, str):
        return None
    return _ALIASES.get(value.strip().lower())


def _id(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        text = str(value).strip()
        return text or None
    return None


def read_judgment_file(path: Path) -> tuple[list[Judgment], list[str], int]:
    """(judgments, problems as ``file:line: field: message``, rows read). Skips are not returned."""
    refuse_stream(path, path, "write the judgments to a file first")
    if not path.is_file():
        raise InputError("judgments file not found", path)
    if path.suffix.lower() == ".csv":
        return _read_csv(path)
    return _read_jsonl(path)


def _judgment(qid: Any, did: Any, label: Any, where: str, line: int, field_prefix: str, out: list[Judgment], problems: list[str]) -> None:
    query_id, doc_id, parsed = _id(qid), _id(did), parse_label(label)
    if query_id is None:
        problems.append(f"{where}:{line}: query_id: missing or not a string")
    elif doc_id is None:
        problems.append(f"{where}:{line}: {field_prefix}doc_id: missing or not a string")
    elif parsed is None:
        problems.append(
            f"{where}:{line}: {field_prefix}label: {label!r} is not one of {RELEVANT}, {NOT_RELEVANT}, {SKIP}"
        )
    else:
        out.append(Judgment(query_id, doc_id, parsed, where, line))


def _read_jsonl(path: Path) -> tuple[list[Judgment], list[str], int]:
    judgments: list[Judgment] = []
    problems: list[str] = []
    rows = 0
    after = 0
    lines = iter_jsonl(path)
    while True:
        try:
            item = next(lines)
        except StopIteration:
            break
        except InputError as exc:  # a broken line: report it and go on with the next one
            if exc.line is not None and exc.line <= after:
                break  # the same error again: nothing after it can be read (a JSON array broken there)
            problems.append(str(exc))
            if exc.line is None:
                break
            after = exc.line
            lines = iter_jsonl(path, start_after=after)
            continue
        line, obj = item
        rows += 1
        if "candidates" in obj:
            candidates = obj["candidates"]
            if not isinstance(candidates, list):
                problems.append(f"{path}:{line}: candidates: must be a list")
                continue
            for i, cand in enumerate(candidates):
                if not isinstance(cand, dict):
                    problems.append(f"{path}:{line}: candidates[{i}]: must be an object")
                    continue
                _judgment(obj.get("query_id"), cand.get("doc_id"), cand.get("label"), str(path), line, f"candidates[{i}].", judgments, problems)
        elif "doc_id" in obj:
            _judgment(obj.get("query_id"), obj.get("doc_id"), obj.get("label"), str(path), line, "", judgments, problems)
        else:
            problems.append(f"{path}:{line}: expected 'candidates' (a `hardneg select` row) or 'doc_id' and 'label'")
    return judgments, problems, rows


def _read_csv(path: Path) -> tuple[list[Judgment], list[str], int]:
    judgments: list[Judgment] = []
    problems: list[str] = []
    rows = 0
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            reader = labelling_csv(fh)
            missing = [c for c in ("query_id", "doc_id", "label") if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"header: missing column(s) {', '.join(missing)}; found {reader.fieldnames}", path, 1)
            for row in reader:
                rows += 1
                if None in row:  # more fields than the header
                    problems.append(f"{path}:{reader.line_num}: row has more fields than the header")
                    continue
                qid, did, label = (csv_value(v) if isinstance(v, str) else v for v in (row["query_id"], row["doc_id"], row["label"]))
                _judgment(qid, did, label, str(path), reader.line_num, "", judgments, problems)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"not valid UTF-8 ({exc.reason} at byte {exc.start}); a spreadsheet saves UTF-8 as 'CSV UTF-8' "
            "(Excel: File > Save As > CSV UTF-8 (Comma delimited))", path,
        ) from None
    except csv.Error as exc:
        raise InputError(f"malformed CSV ({exc})", path) from None
    return judgments, problems, rows



def _run_ids(run: Path) -> tuple[set[str], dict[str, set[str]], set[str]]:
    """(query ids, known positives per query, corpus doc ids) of a mining run."""
    manifest = read_manifest(run, KIND_MINE)
    queries = read_table(run / RUN_QUERIES_FILE, columns=["query_id", "positive_ids"])
    positives = dict(zip(queries["query_id"].to_pylist(), map(set, queries["positive_ids"].to_pylist())))
    index = resolve_ref(run, manifest, "index", KIND_INDEX, "re-run `hardneg mine`")
    docs = set(read_table(index / DOC_IDS_FILE, columns=["doc_id"])["doc_id"].to_pylist())
    return set(positives), positives, docs


def read_judgments(labels: str | Path) -> tuple[dict[str, dict[str, str]], str]:
    """``{query_id: {doc_id: label}}`` of a labels artifact (skips left out), and its fingerprint."""
    labels = Path(labels)
    manifest = read_manifest(labels, KIND_LABELS)
    table = read_table(labels / JUDGMENTS_FILE, columns=["query_id", "doc_id", "label"])
    out: dict[str, dict[str, str]] = {}
    for qid, did, label in zip(table["query_id"].to_pylist(), table["doc_id"].to_pylist(), table["label"].to_pylist()):
        out.setdefault(qid, {})[did] = label
    return out, manifest["fingerprint"]


def import_labels(
    file: str | Path, run: str | Path, into: str | Path, *, skip_invalid: bool = False
) -> LabelsResult:
    """Validate a judgments file against a mining run and merge it into the labels artifact ``into``.

    Args:
        file: the annotated `hardneg select` output (JSONL or CSV) or flat JSONL judgments.
        run: the mining run the selection came from: its queries and corpus are the valid ids.
        into: labels artifact to create or extend (judgments of the same pair are replaced).
        skip_invalid: skip (and count) malformed rows instead of refusing the whole import.
    """
    file, run, into = Path(file), Path(run), Path(into)
    with writing(into, [file, run]) as into:
        judgments, problems, rows = read_judgment_file(file)
        query_ids, positives, doc_ids = _run_ids(run)
        valid: list[Judgment] = []
        for j in judgments:
            if j.query_id not in query_ids:
                problems.append(f"{j.source}:{j.line}: query_id: {j.query_id!r} is not a query of {run}")
            elif j.doc_id not in doc_ids:
                problems.append(f"{j.source}:{j.line}: doc_id: {j.doc_id!r} is not in the corpus of {run}")
            elif j.label == NOT_RELEVANT and j.doc_id in positives[j.query_id]:
                problems.append(
                    f"{j.source}:{j.line}: label: {j.doc_id!r} is a known positive of query {j.query_id!r}; "
                    "a judgment cannot turn a labelled positive into a negative (fix the qrels instead)"
                )
            else:
                valid.append(j)
        stats = LabelStats(rows=rows, invalid=len(problems), problems=problems[:MAX_REPORTED])
        if problems and not skip_invalid:
            more = f" (and {len(problems) - 1} more invalid row(s))" if len(problems) > 1 else ""
            raise InputError(
                f"{problems[0]}{more}; nothing was imported. Fix the file or pass --skip-invalid to skip such rows"
            )
        existing: dict[tuple[str, str], tuple[str, str, int]] = {}
        kind = artifact_kind(into)
        if kind == KIND_LABELS:
            table = read_table(into / JUDGMENTS_FILE)
            for qid, did, label, source, line in zip(*(table[c].to_pylist() for c in JUDGMENTS_SCHEMA.names)):
                existing[(qid, did)] = (label, source, line)
        elif into.exists() and (kind is not None or not into.is_dir() or any(into.iterdir())):
            raise ArtifactError(f"{into}: exists and is not a labels artifact; choose another --into")
        for j in valid:
            if j.label == SKIP:
                stats.skipped += 1
                continue
            if (j.query_id, j.doc_id) in existing:
                stats.replaced += 1
            existing[(j.query_id, j.doc_id)] = (j.label, j.source, j.line)
            if j.label == RELEVANT:
                stats.relevant += 1
            else:
                stats.not_relevant += 1
        keys = sorted(existing)
        columns = {
            "query_id": [k[0] for k in keys],
            "doc_id": [k[1] for k in keys],
            "label": [existing[k][0] for k in keys],
            "source": [existing[k][1] for k in keys],
            "line": [existing[k][2] for k in keys],
        }
        stats.total_judgments = len(keys)
        counts = {
            RELEVANT: sum(1 for k in keys if existing[k][0] == RELEVANT),
            NOT_RELEVANT: sum(1 for k in keys if existing[k][0] == NOT_RELEVANT),
        }
        fp = fingerprint("labels-v1", [(k[0], k[1], existing[k][0]) for k in keys])
        with atomic_dir(into) as tmp:
            write_table(tmp / JUDGMENTS_FILE, pa.table(columns, schema=JUDGMENTS_SCHEMA))
            manifest = write_manifest(
                tmp, KIND_LABELS, fingerprint=fp, run=input_ref(run, into), counts=counts,
                last_import={"file": str(file), **stats.to_dict()},
            )
        return LabelsResult(into, manifest, stats)


def apply_judgments(
    positives: dict[str, list[str]], judgments: dict[str, dict[str, str]], query_ids: list[str], doc_ids: list[str]
) -> tuple[dict[str, set[str]], dict[str, int]]:
    """Judged-relevant documents join ``positives`` (in place); returns the judged-not-relevant
    documents per query (confirmed negatives) and the counts the mining summary reports."""
    known_queries, known_docs = set(query_ids), set(doc_ids)
    confirmed: dict[str, set[str]] = {}
    counts = {"judgments": 0, "positives_added": 0, "judged_not_relevant": 0, "unmatched": 0}
    for qid, docs in judgments.items():
        for did, label in docs.items():
            counts["judgments"] += 1
            if qid not in known_queries or did not in known_docs:
                counts["unmatched"] += 1
            elif label == RELEVANT:
                if did not in positives.setdefault(qid, []):
                    positives[qid].append(did)
                    counts["positives_added"] += 1
            elif label == NOT_RELEVANT:
                confirmed.setdefault(qid, set()).add(did)
                counts["judged_not_relevant"] += 1
    return confirmed, counts
