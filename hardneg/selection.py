"""`hardneg select`: the queries most worth a human's time, written as a labelling file.

Uncertainty is read off the retriever's own ranking of the whole corpus (from rank 0, not only the
mining window): for each mined query, the best-ranked documents that are not known positives (nor
exact copies of one, nor already judged by labels or by a qrels row scored 0) are its candidates.

- ``margin``: lowest positive score - best candidate score. Smallest first: a candidate scored
  like (or above) a positive is either a hard negative worth confirming or an unlabelled positive.
- ``entropy``: entropy of softmax(scores / temperature) over the positives and the candidates,
  normalised to [0, 1]. Highest first.

With ``diversity`` > 0 queries are picked by maximal marginal relevance: (1 - diversity) x
uncertainty (as a rank percentile) - diversity x the highest cosine to a query already picked, so a
budget is not spent on twenty paraphrases of one question.

Output (a `selection` artifact): ``to_label.jsonl`` (one query per line, its positives and its
candidates, each with an empty ``label``) and ``to_label.csv`` (one candidate per row, for a
spreadsheet). Fill ``label`` with relevant / not_relevant / skip and run `hardneg label import`.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow.compute as pc

from hardneg.artifacts import (
    CANDIDATES_FILE,
    KIND_EMBEDDINGS,
    KIND_INDEX,
    KIND_MINE,
    KIND_SELECTION,
    RUN_QUERIES_FILE,
    Artifact,
    csv_cell,
    input_ref,
    json_line,
    labelling_csv,
    read_manifest,
    upstream,
    write_manifest,
)
from hardneg.config import SelectConfig, as_dict
from hardneg.errors import ArtifactError
from hardneg.readers import DocTextLookup, read_qrels, read_queries, read_table
from hardneg.writes import atomic_dir, check_replaceable, writing

JSONL_FILE = "to_label.jsonl"
CSV_FILE = "to_label.csv"
CSV_COLUMNS = ["query_id", "query", "rank", "doc_id", "score", "in_run", "document", "positive", "label"]


@dataclass
class SelectResult:
    path: Path
    manifest: dict[str, Any]
    chosen: list[dict[str, Any]]


def margin_uncertainty(positive_scores: list[float], candidate_scores: list[float]) -> float:
    """Lowest positive score minus best candidate score (smaller = more uncertain)."""
    return float(min(positive_scores) - max(candidate_scores))


def entropy_uncertainty(positive_scores: list[float], candidate_scores: list[float], temperature: float) -> float:
    """Normalised entropy of softmax over positive and candidate scores (higher = more uncertain)."""
    logits = np.asarray(list(positive_scores) + list(candidate_scores), dtype=np.float64) / temperature
    p = np.exp(logits - logits.max())
    p /= p.sum()
    h = float(-(p * np.log(np.maximum(p, 1e-300))).sum())
    return float(h / np.log(len(p))) if len(p) > 1 else 0.0


def mmr_order(uncertainty_rank: np.ndarray, vectors: np.ndarray, budget: int, diversity: float) -> list[int]:
    """Pick ``budget`` rows: (1 - diversity) x relevance - diversity x max cosine to the picked ones.

    ``uncertainty_rank``: 0 for the most uncertain row, n - 1 for the least (ties already broken).
    """
    n = len(uncertainty_rank)
    budget = min(budget, n)
    if diversity == 0 or n == 0:
        return [int(i) for i in np.argsort(uncertainty_rank, kind="stable")[:budget]]
    relevance = 1.0 - uncertainty_rank / max(1, n - 1)
    nearest = np.full(n, -1.0)
    picked: list[int] = []
    available = np.ones(n, dtype=bool)
    for _ in range(budget):
        gain = np.where(available, (1 - diversity) * relevance - diversity * np.maximum(nearest, 0.0), -np.inf)
        best = int(np.argmax(gain))  # first maximum: ties go to the more uncertain row
        picked.append(best)
        available[best] = False
        nearest = np.maximum(nearest, vectors @ vectors[best])
    return picked


def count_annotations(out: Path) -> int:
    """How many candidates an annotator labelled in an existing selection's files (CSV or JSONL,
    whichever holds more: either may be the one that was edited)."""
    in_csv = in_jsonl = 0
    try:
        with open(out / CSV_FILE, encoding="utf-8-sig", newline="") as fh:
            # As label import reads it: a file re-saved by a spreadsheet counts too.
            in_csv = sum(1 for row in labelling_csv(fh) if (row.get("label") or "").strip())
    except (OSError, csv.Error, UnicodeDecodeError):
        pass
    try:
        with open(out / JSONL_FILE, "rb") as fh:
            for line in fh:
                try:
                    item = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                in_jsonl += sum(1 for c in item.get("candidates", []) if str(c.get("label") or "").strip())
    except OSError:
        pass
    return max(in_csv, in_jsonl)


def select(run: str | Path, out: str | Path, config: SelectConfig, *, force: bool = False) -> SelectResult:
    """Rank a mining run's queries by uncertainty and write the labelling files for the top ``budget``."""
    from hardneg.search import Searcher, load_doc_ids

    run, out = Path(run), Path(out)
    manifest = read_manifest(run, KIND_MINE)
    with writing(out, [run]) as out:
        check_replaceable(out, KIND_SELECTION, "selection", force)
        annotated = count_annotations(out)
        if annotated and not force:
            raise ArtifactError(
                f"{out}: its labelling files hold {annotated} annotation(s) someone filled in; re-selecting would "
                f"wipe them. Import them first (hardneg label import {out / CSV_FILE} --run {run}), or choose "
                "another --out; --force discards them"
            )
        run_artifact = Artifact(Path(run), manifest)
        emb_path = upstream(run_artifact, "embeddings", KIND_EMBEDDINGS, "re-run `hardneg mine`").path
        index = upstream(run_artifact, "index", KIND_INDEX, "re-run `hardneg mine`").path
        judged: dict[str, dict[str, str]] = {}
        if manifest["config"].get("labels"):
            from hardneg.label import read_judgments

            judged, _ = read_judgments(manifest["config"]["labels"])
        for qid, did, score in read_qrels(emb_path):  # the input's own "not relevant" rows are judged too
            if score <= 0:
                judged.setdefault(qid, {})[did] = "not_relevant"

        queries = read_table(run / RUN_QUERIES_FILE).to_pydict()
        query_ids, query_texts, vectors = read_queries(emb_path)
        row_of = {q: i for i, q in enumerate(query_ids)}
        searcher = Searcher(index)
        doc_ids, doc_hashes = load_doc_ids(index)
        label_of = {d: i for i, d in enumerate(doc_ids)}
        texts = DocTextLookup(emb_path)

        mined = [i for i, s in enumerate(queries["status"]) if s == "mined"]
        positives = {queries["query_id"][i]: queries["positive_ids"][i] for i in mined}
        depth = min(searcher.size, config.candidates + max((len(p) for p in positives.values()), default=0) + 64)
        rows: list[dict[str, Any]] = []
        for start in range(0, len(mined), 1024):
            batch = [queries["query_id"][i] for i in mined[start : start + 1024]]
            vecs = vectors[[row_of[q] for q in batch]]
            labels, scores = searcher.search(vecs, depth)
            for r, qid in enumerate(batch):
                pos_labels = [label_of[d] for d in positives[qid] if d in label_of]
                if not pos_labels:
                    continue
                pos_scores = searcher.score(vecs[r : r + 1], np.array([pos_labels]))[0].tolist()
                forbidden = {int(doc_hashes[p]) for p in pos_labels}
                seen_judged = judged.get(qid, {})
                cands = []
                for rank, (lab, sc) in enumerate(zip(labels[r].tolist(), scores[r].tolist())):
                    if lab < 0 or lab in pos_labels or int(doc_hashes[lab]) in forbidden or doc_ids[lab] in seen_judged:
                        continue
                    cands.append((rank, lab, float(sc)))
                    if len(cands) == config.candidates:
                        break
                if not cands:
                    continue
                cand_scores = [c[2] for c in cands]
                margin = margin_uncertainty(pos_scores, cand_scores)
                entropy = entropy_uncertainty(pos_scores, cand_scores, config.temperature)
                rows.append(
                    {"query_id": qid, "pos_labels": pos_labels, "pos_scores": pos_scores, "cands": cands,
                     "margin": margin, "entropy": entropy}
                )
        key = (lambda x: (x["margin"], x["query_id"])) if config.strategy == "margin" else (lambda x: (-x["entropy"], x["query_id"]))
        ordered = sorted(rows, key=key)
        qvecs = vectors[[row_of[r["query_id"]] for r in ordered]] if ordered else np.zeros((0, vectors.shape[1]), np.float32)
        picked = [ordered[i] for i in mmr_order(np.arange(len(ordered), dtype=np.float64), qvecs, config.budget, config.diversity)]
        in_run = _run_status(run, {row["query_id"] for row in picked})

        chosen = []
        for row in picked:
            qid = row["query_id"]
            cand_texts = texts.get([c[1] for c in row["cands"]])
            pos_texts = texts.get(row["pos_labels"])
            chosen.append(
                {
                    "query_id": qid,
                    "query": query_texts[row_of[qid]],
                    "uncertainty": {
                        "strategy": config.strategy,
                        "margin": round(float(row["margin"]), 6),
                        "entropy": round(float(row["entropy"]), 6),
                    },
                    "positives": [
                        {"doc_id": doc_ids[lab], "score": round(s, 6), "text": t}
                        for lab, s, t in zip(row["pos_labels"], row["pos_scores"], pos_texts)
                    ],
                    "candidates": [
                        {"doc_id": doc_ids[lab], "rank": rank, "score": round(sc, 6),
                         "in_run": in_run.get((qid, doc_ids[lab]), "outside window"), "text": t, "label": ""}
                        for (rank, lab, sc), t in zip(row["cands"], cand_texts)
                    ],
                }
            )
        with atomic_dir(out) as tmp:
            with open(tmp / JSONL_FILE, "wb") as fh:
                for item in chosen:
                    fh.write(json_line(item, option=orjson.OPT_SERIALIZE_NUMPY))
            # With a BOM: Excel reads a CSV without one in the system code page (accents, CJK garbled).
            with open(tmp / CSV_FILE, "w", encoding="utf-8-sig", newline="") as fh:
                writer = csv.writer(fh)
                writer.writerow(CSV_COLUMNS)
                for item in chosen:
                    first_positive = item["positives"][0]["text"]
                    for cand in item["candidates"]:
                        # Corpus text is hostile input for a spreadsheet: every string cell is
                        # neutralised (`label import` reverses it, so ids round-trip exactly).
                        writer.writerow(
                            [csv_cell(item["query_id"]), csv_cell(item["query"]), cand["rank"], csv_cell(cand["doc_id"]),
                             cand["score"], csv_cell(cand["in_run"]), csv_cell(cand["text"]), csv_cell(first_positive), ""]
                        )
            result_manifest = write_manifest(
                tmp,
                KIND_SELECTION,
                run=input_ref(run, out, fingerprint=manifest["fingerprint"]),
                config=as_dict(config),
                counts={"queries_considered": len(rows), "queries_chosen": len(chosen),
                        "candidates": sum(len(c["candidates"]) for c in chosen)},
                files=[JSONL_FILE, CSV_FILE],
            )
        return SelectResult(out, result_manifest, chosen)


def _run_status(run: Path, query_ids: set[str]) -> dict[tuple[str, str], str]:
    """(query, doc) -> what the run did with that candidate: selected, or the filter that removed it."""
    table = read_table(
        run / CANDIDATES_FILE,
        columns=["query_id", "doc_id", "selected", "filter"],
        filters=pc.field("query_id").isin(sorted(query_ids)) if query_ids else None,
    )
    out = {}
    for qid, did, selected, name in zip(*(table[c].to_pylist() for c in ("query_id", "doc_id", "selected", "filter"))):
        out[(qid, did)] = "selected" if selected else (f"removed: {name}" if name else "not sampled")
    return out
