"""Stage 3, `hardneg mine`: an index artifact -> candidates and sampled negatives per query.

Rank semantics (documented, tested): a document's rank is its 0-based position in the query's
ranking of the whole corpus by score (ties: lower label first), known positives included, as
RAGatouille and FlagEmbedding count. Candidates are the documents ranked in [min_rank, max_rank).
Inside that window these are removed, in order: known positives of the query (`positive`), and
documents whose normalised text equals a positive's, the query's, or a better-ranked candidate's
(`duplicate`). Negatives are then sampled from what is left with a per-query seeded RNG.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hardneg.artifacts import (
    CANDIDATES_FILE,
    CANDIDATES_SCHEMA,
    KIND_EMBEDDINGS,
    KIND_INDEX,
    KIND_MINE,
    RUN_QUERIES_FILE,
    RUN_QUERIES_SCHEMA,
    artifact_kind,
    atomic_dir,
    fingerprint,
    read_manifest,
    read_qrels,
    read_queries,
    text_hash,
    write_manifest,
    write_table,
)
from hardneg.config import MineConfig, as_dict
from hardneg.errors import ArtifactError
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.search import Searcher, load_doc_ids

MINE_VERSION = "mine-v1"
FILTER_POSITIVE = "positive"
FILTER_DUPLICATE = "duplicate"
STATUS_MINED = "mined"
STATUS_EMPTY = "empty-text"
STATUS_NO_POSITIVE = "no-positive"
QUANTILES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass
class MineStats:
    """What a mining run did, for the summary table, `--json` and the manifest."""

    queries: int = 0
    queries_mined: int = 0
    queries_skipped: dict[str, int] = field(default_factory=dict)
    skipped_query_ids: dict[str, list[str]] = field(default_factory=dict)
    window: list[int] = field(default_factory=list)
    num_negatives: int = 0
    candidates: int = 0
    removed: dict[str, int] = field(default_factory=dict)
    eligible: int = 0
    selected: int = 0
    negatives_per_query: dict[str, float] = field(default_factory=dict)
    queries_short: int = 0
    positives: int = 0
    positives_in_top: int = 0
    positive_scores: dict[str, float] = field(default_factory=dict)
    negative_scores: dict[str, float] = field(default_factory=dict)
    rank_histogram: list[dict[str, int]] = field(default_factory=list)
    hints: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class MineResult:
    path: Path
    manifest: dict[str, Any]
    stats: MineStats
    reused: bool


def query_rng(seed: int, query_id: str) -> np.random.Generator:
    """The RNG for one query: depends only on the seed and the query id, never on order or workers."""
    digest = hashlib.sha256(f"{seed}\0{query_id}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def _hash64(hex_digest: str) -> int:
    return int(hex_digest[:16], 16)


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    arr = np.asarray(values, dtype=np.float64)
    out = {f"p{int(q * 100)}": round(float(np.quantile(arr, q)), 4) for q in QUANTILES}
    out["mean"] = round(float(arr.mean()), 4)
    return out


def sample_negatives(eligible: list[int], config: MineConfig, rng: np.random.Generator) -> list[int]:
    """Pick up to ``num_negatives`` positions of ``eligible`` (which is in rank order); result in rank order."""
    n = min(config.num_negatives, len(eligible))
    if config.sampling == "top":
        return eligible[:n]
    picked = rng.choice(len(eligible), size=n, replace=False)
    return [eligible[i] for i in sorted(picked.tolist())]


def mine_fingerprint(index_manifest: dict[str, Any], config: MineConfig) -> str:
    # query_batch and search_chunk change speed, not results... except search_chunk can change which
    # of several exactly tied documents make the cut, so both stay in.
    return fingerprint(MINE_VERSION, index_manifest["fingerprint"], as_dict(config))


def _check_out(out: Path, fp: str, force: bool) -> dict[str, Any] | None:
    """An up-to-date run at ``out`` to reuse, or None. A mining run may be overwritten (tuning a
    threshold re-runs into the same directory), anything else only with ``force``."""
    if not out.exists():
        return None
    kind = artifact_kind(out)
    if kind == KIND_MINE:
        manifest = read_manifest(out, KIND_MINE)
        return manifest if manifest.get("fingerprint") == fp and not force else None
    if kind is None and out.is_dir() and not any(out.iterdir()):
        return None
    if not force:
        what = f"a '{kind}' artifact" if kind else "not a hardneg mining run"
        raise ArtifactError(f"{out}: exists and is {what}; choose another --out or pass --force")
    return None


def mine(
    index: str | Path,
    out: str | Path,
    config: MineConfig,
    *,
    force: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> MineResult:
    """Mine hard negatives for every query of the index's embeddings artifact.

    Args:
        index: an index artifact directory (its manifest names the embeddings it was built from).
        out: the mining-run artifact directory to write.
        config: rank window, number of negatives, sampling, seed.
        force: replace ``out`` even if it is not a mining run; recompute even if up to date.
        reporter: progress and status sink.

    Returns:
        The run's path, manifest and statistics.
    """
    index = Path(index).resolve()
    out = Path(out)
    idx = read_manifest(index, KIND_INDEX)
    emb_path = Path(idx["embeddings"]["path"])
    emb = read_manifest(emb_path, KIND_EMBEDDINGS)
    if emb["fingerprint"] != idx["embeddings"]["fingerprint"]:
        raise ArtifactError(
            f"{index}: built from embeddings {idx['embeddings']['fingerprint'][:12]}, but {emb_path} now holds "
            f"{emb['fingerprint'][:12]}; rebuild the index (hardneg index ... --force)"
        )
    fp = mine_fingerprint(idx, config)
    existing = _check_out(out, fp, force)
    if existing is not None:
        reporter.log(f"mining run at {out} is up to date; reusing it")
        return MineResult(out, existing, MineStats(**existing["stats"]), reused=True)

    searcher = Searcher(index, chunk=config.search_chunk)
    doc_ids, doc_hashes = load_doc_ids(index)
    query_ids, query_texts, query_vectors = read_queries(emb_path)
    positives: dict[str, list[str]] = {}
    for qid, did, score in read_qrels(emb_path):
        if score > 0:
            positives.setdefault(qid, [])
            if did not in positives[qid]:
                positives[qid].append(did)
    wanted = {d for ds in positives.values() for d in ds}
    label_of = {d: label for label, d in enumerate(doc_ids) if d in wanted}

    stats = MineStats(queries=len(query_ids), window=[config.min_rank, config.max_rank], num_negatives=config.num_negatives)
    statuses: list[str] = []
    for qid, text in zip(query_ids, query_texts):
        if not text.strip():
            status = STATUS_EMPTY
        elif not any(d in label_of for d in positives.get(qid, [])):
            status = STATUS_NO_POSITIVE
        else:
            status = STATUS_MINED
        statuses.append(status)
        if status != STATUS_MINED:
            stats.queries_skipped[status] = stats.queries_skipped.get(status, 0) + 1
            stats.skipped_query_ids.setdefault(status, [])
            if len(stats.skipped_query_ids[status]) < 20:
                stats.skipped_query_ids[status].append(qid)
    todo = [i for i, s in enumerate(statuses) if s == STATUS_MINED]
    stats.queries_mined = len(todo)

    removed: Counter[str] = Counter()
    per_query = [0] * len(query_ids)
    positive_scores: list[float] = []
    negative_scores: list[float] = []
    selected_ranks: list[int] = []
    k = min(config.max_rank, searcher.size)
    label = "Mining"
    reporter.progress(label, 0, len(todo))

    with atomic_dir(out) as tmp:
        writer = pq.ParquetWriter(tmp / CANDIDATES_FILE, CANDIDATES_SCHEMA, compression="zstd")
        try:
            for start in range(0, len(todo), config.query_batch):
                batch = todo[start : start + config.query_batch]
                labels, scores = searcher.search(query_vectors[batch], k)
                columns: dict[str, list[Any]] = {name: [] for name in CANDIDATES_SCHEMA.names}
                for row, qi in enumerate(batch):
                    qid = query_ids[qi]
                    pos_labels = [label_of[d] for d in positives[qid] if d in label_of]
                    pos_set = set(pos_labels)
                    stats.positives += len(pos_labels)
                    stats.positives_in_top += int(np.isin(labels[row], pos_labels).sum())
                    positive_scores += searcher.score(query_vectors[qi : qi + 1], np.array([pos_labels]))[0].tolist()
                    forbidden = {int(doc_hashes[p]) for p in pos_set}
                    forbidden.add(_hash64(text_hash(query_texts[qi])))
                    window: list[tuple[int, int, float, str]] = []
                    for rank in range(config.min_rank, min(config.max_rank, labels.shape[1])):
                        doc = int(labels[row, rank])
                        h = int(doc_hashes[doc])
                        if doc in pos_set:
                            reason = FILTER_POSITIVE
                        elif h in forbidden:
                            reason = FILTER_DUPLICATE
                        else:
                            reason = ""
                            forbidden.add(h)
                        window.append((rank, doc, float(scores[row, rank]), reason))
                    eligible = [i for i, w in enumerate(window) if not w[3]]
                    chosen = set(sample_negatives(eligible, config, query_rng(config.seed, qid)))
                    stats.candidates += len(window)
                    stats.eligible += len(eligible)
                    removed.update(w[3] for w in window if w[3])
                    per_query[qi] = len(chosen)
                    for i, (rank, doc, score, reason) in enumerate(window):
                        columns["query_id"].append(qid)
                        columns["doc_id"].append(doc_ids[doc])
                        columns["rank"].append(rank)
                        columns["score"].append(score)
                        columns["selected"].append(i in chosen)
                        columns["filter"].append(reason)
                        if i in chosen:
                            negative_scores.append(score)
                            selected_ranks.append(rank)
                writer.write_table(pa.table(columns, schema=CANDIDATES_SCHEMA))
                reporter.progress(label, len(batch))
        finally:
            writer.close()

        write_table(
            tmp / RUN_QUERIES_FILE,
            pa.Table.from_arrays(
                [
                    pa.array(query_ids, pa.string()),
                    pa.array(query_texts, pa.string()),
                    pa.array([positives.get(q, []) for q in query_ids], pa.list_(pa.string())),
                    pa.array(statuses, pa.string()),
                    pa.array(per_query, pa.int32()),
                ],
                schema=RUN_QUERIES_SCHEMA,
            ),
        )
        _finish_stats(stats, config, removed, [per_query[i] for i in todo], positive_scores, negative_scores, selected_ranks)
        manifest = write_manifest(
            tmp,
            KIND_MINE,
            fingerprint=fp,
            index={"path": str(index), "fingerprint": idx["fingerprint"], "backend": idx["backend"], "recall": idx.get("recall")},
            embeddings={"path": str(emb_path), "fingerprint": emb["fingerprint"]},
            model=emb["model"],
            input=emb["input"],
            config=as_dict(config),
            rank_semantics="0-based rank in the full-corpus ranking, known positives included; window [min_rank, max_rank)",
            stats=stats.to_dict(),
        )
    return MineResult(out, manifest, stats, reused=False)


def _finish_stats(
    stats: MineStats,
    config: MineConfig,
    removed: Counter[str],
    per_query: list[int],
    positive_scores: list[float],
    negative_scores: list[float],
    selected_ranks: list[int],
) -> None:
    stats.removed = {FILTER_POSITIVE: removed[FILTER_POSITIVE], FILTER_DUPLICATE: removed[FILTER_DUPLICATE]}
    stats.selected = len(negative_scores)
    if per_query:
        stats.negatives_per_query = {
            "min": int(min(per_query)),
            "median": float(np.median(per_query)),
            "max": int(max(per_query)),
            "mean": round(float(np.mean(per_query)), 3),
        }
    stats.queries_short = sum(1 for n in per_query if n < config.num_negatives)
    stats.positive_scores = _quantiles(positive_scores)
    stats.negative_scores = _quantiles(negative_scores)
    width = max(1, (config.max_rank - config.min_rank + 9) // 10)
    buckets = Counter((r - config.min_rank) // width for r in selected_ranks)
    stats.rank_histogram = [
        {"from": config.min_rank + b * width, "to": min(config.max_rank, config.min_rank + (b + 1) * width), "count": buckets[b]}
        for b in range((config.max_rank - config.min_rank + width - 1) // width)
    ]
    if stats.queries_short:
        share = stats.queries_short / max(1, stats.queries_mined)
        stats.hints.append(
            f"{stats.queries_short} queries ({share:.1%}) got fewer than {config.num_negatives} negatives; "
            "consider raising --max-rank or lowering --min-rank (a small corpus also limits the window)."
        )
    for status, count in stats.queries_skipped.items():
        stats.hints.append(f"{count} queries were not mined ({status}); see queries.parquet for their ids.")
