"""The resumable chunk runner of `hardneg mine`: query chunks are the unit every engine runs (the
local loop here, Ray actors, split jobs); each finished chunk is a Parquet file plus its `Tally`,
written atomically. When all are there, they are merged (with the run-wide `max_per_doc` cap),
and the run is committed with its queries, statistics and manifest.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
import uuid
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hardneg.artifacts import (
    CANDIDATES_FILE,
    CANDIDATES_SCHEMA,
    KIND_MINE,
    RUN_QUERIES_FILE,
    RUN_QUERIES_SCHEMA,
    fingerprint,
    input_ref,
    write_manifest,
)
from hardneg.config import as_dict
from hardneg.errors import HardnegError
from hardneg.filters import FILTER_MAX_PER_DOC, MARGIN_FILTERS
from hardneg.mine_stats import MineResult, Tally, finish_stats
from hardneg.readers import read_table
from hardneg.writes import STATE_FILE, commit_dir, list_shards, prepare_partial, write_table

CHUNKS_DIR = "chunks"


def run_chunks(miner: Any, out: Path, fp: str) -> MineResult:
    """Mine every unfinished chunk into ``<out>.partial/`` (resuming the finished ones), then merge
    them, apply the run-wide cap, write the queries, the statistics and the manifest, and commit."""
    config, stats = miner.config, miner.stats
    todo = miner.plan()
    statuses = miner.statuses
    if not todo and not miner.allow_empty:
        why = "; ".join(
            f"{n} with {status} (e.g. {', '.join(stats.skipped_query_ids.get(status, [])[:3])})"
            for status, n in sorted(stats.queries_skipped.items())
        ) or "the input has no queries"
        raise HardnegError(
            f"no query can be mined from {miner.emb_path}: {len(miner.query_ids)} queries, {why}. "
            "Check the qrels and the split, or pass --allow-empty to write an empty run."
        )
    partial = out.with_name(out.name + ".partial")
    # Resumed chunks are numbered by chunk_queries: the work directory is tied to it too.
    if prepare_partial(partial, fingerprint(fp, config.chunk_queries), [CHUNKS_DIR], clean=miner.select is None):
        miner.reporter.log(f"resuming from {partial}")
    numbers = list(range(-(-len(todo) // config.chunk_queries)))
    if miner.remote is not None:
        missing = [n for n in numbers if not all(f.is_file() for f in miner.chunk_files(partial, n))]
        miner.remote(partial, missing)
    label = "Mining"
    miner.reporter.progress(label, 0, len(todo))
    left = 0
    for number in numbers:
        part, side = miner.chunk_files(partial, number)
        size = len(todo[number * config.chunk_queries : (number + 1) * config.chunk_queries])
        if part.is_file() and side.is_file():
            miner.tally.merge(Tally.loads(side.read_bytes()))
            miner.reporter.progress(label, size)
        elif miner.select is not None and not miner.select(number):
            left += 1
        else:
            miner.tally.merge(miner.mine_chunk(partial, number, todo))
    if miner.select is not None:
        # A job of a split (--shard-index): its chunks are written; the call without the flags
        # commits (a job holds a shared lock, and other jobs may still be writing).
        return MineResult(out, {"partial": str(partial), "chunks_left_to_others": left}, stats, reused=False, complete=False)

    t0 = time.perf_counter()
    changes = cap_per_doc(miner, partial) if config.max_per_doc is not None else {}
    merged = partial / f"{CANDIDATES_FILE}.tmp-{uuid.uuid4().hex[:8]}"
    with pq.ParquetWriter(merged, CANDIDATES_SCHEMA, compression="zstd") as writer:
        written = 0
        for part in list_shards(partial / CHUNKS_DIR):  # one chunk in memory at a time
            table = read_table(part, schema=CANDIDATES_SCHEMA)
            if changes:
                table = apply_changes(table, changes)
            if table.num_rows:  # no empty row groups (datasets' Parquet reader rejects them)
                writer.write_table(table)
                written += table.num_rows
        if not written:
            writer.write_table(CANDIDATES_SCHEMA.empty_table())
    os.replace(merged, partial / CANDIDATES_FILE)  # never a half-merged file under the final name
    n = len(miner.query_ids)
    write_table(
        partial / RUN_QUERIES_FILE,
        pa.Table.from_arrays(
            [
                pa.array(miner.query_ids, pa.string()),
                pa.array(miner.query_texts, pa.string()),
                pa.array([miner.positives.get(q, []) for q in miner.query_ids], pa.list_(pa.string())),
                pa.array([miner.tally.positive_scores.get(i, []) for i in range(n)], pa.list_(pa.float32())),
                pa.array([miner.tally.positive_teacher.get(i, []) for i in range(n)], pa.list_(pa.float32())),
                pa.array(statuses, pa.string()),
                pa.array([miner.tally.per_query.get(i, 0) for i in range(n)], pa.int32()),
            ],
            schema=RUN_QUERIES_SCHEMA,
        ),
    )
    miner.timings["write"] += time.perf_counter() - t0
    finish_stats(stats, miner.tally, config, [miner.tally.per_query.get(i, 0) for i in todo], teacher=miner.scorer is not None)
    if stats.selected == 0 and todo and not miner.allow_empty:
        shutil.rmtree(partial, ignore_errors=True)  # nothing worth resuming
        advice = " ".join(stats.hints) or "Widen the window (--min-rank/--max-rank) or relax the score rules."
        raise HardnegError(
            f"0 negatives selected for {len(todo)} queries (window [{config.min_rank}, {config.max_rank}), "
            f"{stats.candidates} candidates in it, {stats.eligible} left after the filters). {advice} "
            "Pass --allow-empty to write the empty run anyway."
        )
    manifest = write_manifest(
        partial,
        KIND_MINE,
        fingerprint=fp,
        index={
            **input_ref(miner.index, out),
            "fingerprint": miner.idx["fingerprint"],
            "backend": miner.idx["backend"],
            "recall": miner.idx.get("recall"),
            # Queries of this invocation answered exactly because HNSW returned fewer than k.
            "exact_fallback_queries": miner.searcher.fallbacks,
        },
        embeddings=input_ref(miner.emb_path, out, fingerprint=miner.emb["fingerprint"]),
        model=miner.emb["model"],
        input=miner.emb["input"],
        cross_encoder=(
            {"name": miner.scorer.name, "fingerprint": miner.scorer.fingerprint} if miner.scorer is not None else None
        ),
        # The judge: model, prompt version, calls and tokens (never the endpoint's address or key).
        llm=(
            # summed over the chunks, so a resumed run counts what its earlier invocations spent
            {"model": miner.judge.model, "prompt": miner.judge.fingerprint,
             "usage": {k: miner.tally.llm_usage.get(k, 0) for k in miner.judge.usage.to_dict()}}
            if miner.judge is not None else None
        ),
        # The endpoint's address is an execution setting and may carry credentials: not recorded.
        config={**as_dict(config), "llm_url": None},
        rank_semantics="0-based rank in the full-corpus ranking, known positives included; window [min_rank, max_rank)",
        stats=stats.to_dict(),
        timings={k: round(v, 3) for k, v in miner.timings.items()},
    )
    shutil.rmtree(partial / CHUNKS_DIR)
    (partial / STATE_FILE).unlink()
    commit_dir(partial, out)
    return MineResult(out, manifest, stats, reused=False)


def cap_per_doc(miner: Any, partial: Path) -> dict[tuple[str, str], tuple[bool, str]]:
    """``max_per_doc``: a document is a negative of at most N queries. Over-used documents stay
    with the N queries whose hash of (seed, document, query) is lowest, the others lose them
    (filter ``max-per-doc``); each query then refills from its eligible, unselected candidates
    in rank order, in query-id order, while documents have room. Depends only on the ids and
    the seed, never on the order of the queries or the chunking. Returns the changed
    (query, document) -> (selected, filter), and updates the tally to the final selection."""
    config, tally = miner.config, miner.tally
    cap = int(config.max_per_doc)
    columns = ["query_id", "doc_id", "rank", "score", "selected", "filter"]
    rows = [r for part in list_shards(partial / CHUNKS_DIR) for r in read_table(part, columns=columns).to_pylist()]
    users: dict[str, list[str]] = {}
    for r in rows:
        if r["selected"]:
            users.setdefault(r["doc_id"], []).append(r["query_id"])

    def priority(doc: str, query: str) -> str:
        return hashlib.blake2b(f"{config.seed}\0{doc}\0{query}".encode(), digest_size=8).hexdigest()

    changes: dict[tuple[str, str], tuple[bool, str]] = {}
    count: dict[str, int] = {}
    for doc, queries in users.items():
        ranked = sorted(queries, key=lambda q: (priority(doc, q), q))
        count[doc] = min(cap, len(ranked))
        for query in ranked[cap:]:
            changes[(query, doc)] = (False, FILTER_MAX_PER_DOC)
    lost: dict[str, int] = {}
    for query, _ in changes:
        lost[query] = lost.get(query, 0) + 1
    by_query: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r["query_id"] in lost and not r["selected"] and not r["filter"]:
            by_query.setdefault(r["query_id"], []).append(r)
    for query in sorted(lost):
        need = lost[query]
        for r in sorted(by_query.get(query, []), key=lambda r: r["rank"]):
            if need == 0:
                break
            if count.get(r["doc_id"], 0) < cap:
                changes[(query, r["doc_id"])] = (True, "")
                count[r["doc_id"]] = count.get(r["doc_id"], 0) + 1
                need -= 1
    # The statistics describe the final selection.
    index_of = {q: i for i, q in enumerate(miner.query_ids)}
    final = [r for r in rows if changes.get((r["query_id"], r["doc_id"]), (r["selected"], ""))[0]]
    tally.per_query = {}
    for r in final:
        qi = index_of[r["query_id"]]
        tally.per_query[qi] = tally.per_query.get(qi, 0) + 1
    tally.negative_scores = [r["score"] for r in final]
    tally.selected_ranks = [r["rank"] for r in final]
    tally.gaps = [min(tally.positive_scores[index_of[r["query_id"]]]) - r["score"] for r in final
                  if tally.positive_scores.get(index_of[r["query_id"]])]
    tally.removed[FILTER_MAX_PER_DOC] = sum(1 for selected, _ in changes.values() if not selected)
    fallback = [r["query_id"] for r in final if r["filter"] in MARGIN_FILTERS]  # fallback picks the cap kept
    tally.fallback_selected, tally.fallback_queries = len(fallback), len(set(fallback))
    return changes


def apply_changes(table: pa.Table, changes: dict[tuple[str, str], tuple[bool, str]]) -> pa.Table:
    """``table`` with the (query, document) rows in ``changes`` given their new selected flag and filter."""
    selected, filters = table["selected"].to_pylist(), table["filter"].to_pylist()
    for i, key in enumerate(zip(table["query_id"].to_pylist(), table["doc_id"].to_pylist())):
        if key in changes:
            selected[i], filters[i] = changes[key]
    table = table.set_column(table.schema.get_field_index("selected"), "selected", pa.array(selected, pa.bool_()))
    return table.set_column(table.schema.get_field_index("filter"), "filter", pa.array(filters, pa.string()))
