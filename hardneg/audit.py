"""`hardneg audit RUN`: how many of a run's negatives are false negatives, by rank band and filter.

An LLM judge (`hardneg.llm`) reads a seeded sample of the run's queries: every selected negative,
and every candidate each filter removed (a filter that removes true negatives only costs hardness;
one that keeps false negatives costs correctness). For each group the share judged relevant is the
estimated false-negative rate, with a Wilson 95% interval, so a user can choose a window or a
margin for their data from numbers. The judge's answers are cached like `mine --judge`'s.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hardneg.artifacts import (
    CANDIDATES_FILE,
    KIND_EMBEDDINGS,
    KIND_INDEX,
    KIND_MINE,
    RUN_QUERIES_FILE,
    Artifact,
    input_ref,
    read_manifest,
    upstream,
    write_bytes_atomic,
    write_manifest,
)
from hardneg.errors import ConfigError
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.readers import DocTextLookup, read_table
from hardneg.writes import atomic_dir, check_replaceable, writing

KIND_AUDIT = "audit"
AUDIT_FILE = "audit.json"
NOT_AUDITED = {"positive", "duplicate"}  # the positive itself, or its exact text: relevant by construction


@dataclass
class Group:
    name: str
    judged: int = 0
    relevant: int = 0
    unjudged: int = 0

    def to_dict(self) -> dict[str, Any]:
        low, high = wilson(self.relevant, self.judged)
        rate = self.relevant / self.judged if self.judged else None
        return {"group": self.name, "judged": self.judged, "judged_relevant": self.relevant, "unjudged": self.unjudged,
                "false_negative_rate": None if rate is None else round(rate, 4),
                "ci95": None if rate is None else [round(low, 4), round(high, 4)]}


@dataclass
class AuditResult:
    path: Path
    groups: list[dict[str, Any]]
    queries: int
    usage: dict[str, int] = field(default_factory=dict)


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a proportion (well-behaved at 0 and at small n)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def audit(
    run: str | Path, out: str | Path, judge: Any, *, sample: int = 200, seed: int = 0, bands: int = 5,
    force: bool = False, reporter: Reporter = NULL_REPORTER,
) -> AuditResult:
    """Judge a seeded sample of ``run``'s queries and write ``out/audit.json`` (see the module doc)."""
    if sample < 1 or bands < 1:
        raise ConfigError(f"sample and bands must be >= 1, got {sample} and {bands}")
    run, out = Path(run), Path(out)
    manifest = read_manifest(run, KIND_MINE)
    run_artifact = Artifact(run, manifest)
    emb_path = upstream(run_artifact, "embeddings", KIND_EMBEDDINGS, "re-run `hardneg mine`").path
    index = upstream(run_artifact, "index", KIND_INDEX, "re-run `hardneg mine`").path
    from hardneg.search import load_doc_ids

    queries = read_table(run / RUN_QUERIES_FILE, columns=["query_id", "text", "positive_ids", "status"]).to_pylist()
    mined = sorted(q["query_id"] for q in queries if q["status"] == "mined")
    chosen = set(random.Random(seed).sample(mined, min(sample, len(mined))))
    by_id = {q["query_id"]: q for q in queries if q["query_id"] in chosen}
    candidates = [r for r in read_table(run / CANDIDATES_FILE, columns=["query_id", "doc_id", "rank", "selected", "filter"]).to_pylist()
                  if r["query_id"] in chosen and (r["selected"] or (r["filter"] and r["filter"] not in NOT_AUDITED))]
    low, high = manifest["stats"]["window"]
    width = max(1, math.ceil((high - low) / bands))

    def group_of(row: dict[str, Any]) -> str:
        if row["selected"]:
            start = low + (max(row["rank"], low) - low) // width * width
            return f"selected, ranks [{start}, {min(start + width, high)})"
        return f"removed: {row['filter']}"

    doc_ids, _ = load_doc_ids(index)
    label_of = {d: i for i, d in enumerate(doc_ids)}
    needed = sorted({label_of[r["doc_id"]] for r in candidates} | {label_of[p] for q in by_id.values() for p in q["positive_ids"] if p in label_of})
    text_of = dict(zip(needed, DocTextLookup(emb_path).get(needed)))
    reporter.log(f"audit: {len(candidates)} candidates of {len(chosen)} queries to judge")
    items = [(by_id[r["query_id"]]["text"], [text_of[label_of[p]] for p in by_id[r["query_id"]]["positive_ids"] if p in label_of],
              text_of[label_of[r["doc_id"]]]) for r in candidates]
    verdicts = judge.judge(items, progress=lambda n: reporter.progress("Judging", n, len(items)))
    groups: dict[str, Group] = {}
    for row, verdict in zip(candidates, verdicts):
        group = groups.setdefault(group_of(row), Group(group_of(row)))
        if verdict.relevant is None:
            group.unjudged += 1
        else:
            group.judged += 1
            group.relevant += int(verdict.relevant)
    ordered = sorted(groups.values(), key=lambda g: (not g.name.startswith("selected"), _band_start(g.name), g.name))
    rows = [g.to_dict() for g in ordered]
    with writing(out, [run]) as out:
        check_replaceable(out, KIND_AUDIT, "audit", force)
        with atomic_dir(out) as tmp:
            import orjson

            write_bytes_atomic(tmp / AUDIT_FILE, orjson.dumps({"groups": rows}, option=orjson.OPT_INDENT_2) + b"\n")
            write_manifest(
                tmp, KIND_AUDIT, run=input_ref(run, out, fingerprint=manifest["fingerprint"]),
                judge={"model": judge.model, "prompt": judge.fingerprint, "usage": judge.usage.to_dict()},
                config={"sample": sample, "seed": seed, "bands": bands}, counts={"queries": len(chosen), "candidates": len(candidates)},
            )
    return AuditResult(out, rows, len(chosen), judge.usage.to_dict())


def _band_start(name: str) -> int:
    try:
        return int(name.split("[", 1)[1].split(",", 1)[0])
    except (IndexError, ValueError):
        return 0
