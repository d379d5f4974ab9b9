"""`hardneg eval`: retrieval quality of a model on a BEIR split, through the embed and index stages.

Exact search over the whole corpus (no ANN error in the number). Metrics follow pytrec_eval /
BEIR: nDCG@10 with the qrels' graded relevance as gain, MRR@10 and Recall@10 / Recall@k over the
documents with relevance > 0. Queries without any relevant document are left out (counted).
Ties in the ranking break by corpus position, as everywhere in hardneg.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardneg.artifacts import KIND_EMBEDDINGS, artifact_kind, read_manifest, read_qrels, read_queries
from hardneg.config import EmbedConfig, EvalConfig, IndexConfig
from hardneg.encoders import Encoder
from hardneg.progress import NULL_REPORTER, Reporter

QUERY_BATCH = 1024


@dataclass
class EvalResult:
    metrics: dict[str, float]
    queries: int
    skipped: int
    split: str
    k: int
    model: dict[str, Any]
    embeddings: Path
    per_query: dict[str, dict[str, float]] = field(default_factory=dict)

    def to_dict(self, per_query: bool = False) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["embeddings"] = str(self.embeddings)
        if not per_query:
            data.pop("per_query")
        return data


def ndcg_at(ranked: Sequence[str], relevance: dict[str, float], k: int = 10) -> float:
    dcg = sum(relevance.get(d, 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
    ideal = sorted((r for r in relevance.values() if r > 0), reverse=True)[:k]
    idcg = sum(r / math.log2(i + 2) for i, r in enumerate(ideal))
    return dcg / idcg if idcg > 0 else 0.0


def mrr_at(ranked: Sequence[str], relevance: dict[str, float], k: int = 10) -> float:
    return next((1.0 / (i + 1) for i, d in enumerate(ranked[:k]) if relevance.get(d, 0.0) > 0), 0.0)


def recall_at(ranked: Sequence[str], relevance: dict[str, float], k: int) -> float:
    relevant = {d for d, r in relevance.items() if r > 0}
    return len(relevant.intersection(ranked[:k])) / len(relevant) if relevant else 0.0


def score_rankings(rankings: dict[str, list[str]], qrels: dict[str, dict[str, float]], k: int) -> dict[str, dict[str, float]]:
    """Per-query nDCG@10, MRR@10, Recall@10 and Recall@k."""
    return {
        qid: {
            "ndcg@10": ndcg_at(ranked, qrels[qid]),
            "mrr@10": mrr_at(ranked, qrels[qid]),
            "recall@10": recall_at(ranked, qrels[qid], 10),
            f"recall@{k}": recall_at(ranked, qrels[qid], k),
        }
        for qid, ranked in rankings.items()
    }


def evaluate_embeddings(embeddings: Path, index: Path, k: int, reporter: Reporter = NULL_REPORTER) -> EvalResult:
    """Metrics of the queries of an embeddings artifact against its qrels, searching ``index``."""
    from hardneg.search import Searcher, load_doc_ids

    manifest = read_manifest(embeddings, KIND_EMBEDDINGS)
    qrels: dict[str, dict[str, float]] = {}
    for qid, did, score in read_qrels(embeddings):
        qrels.setdefault(qid, {})[did] = max(float(score), qrels.get(qid, {}).get(did, 0.0))
    query_ids, _, vectors = read_queries(embeddings)
    wanted = [i for i, q in enumerate(query_ids) if any(r > 0 for r in qrels.get(q, {}).values())]
    searcher = Searcher(index)
    doc_ids, _ = load_doc_ids(index)
    depth = min(max(10, k), searcher.size)
    rankings: dict[str, list[str]] = {}
    label = "Evaluating"
    reporter.progress(label, 0, len(wanted))
    for start in range(0, len(wanted), QUERY_BATCH):
        batch = wanted[start : start + QUERY_BATCH]
        labels, _ = searcher.search(vectors[batch], depth)
        for row, qi in enumerate(batch):
            rankings[query_ids[qi]] = [doc_ids[j] for j in labels[row] if j >= 0]
        reporter.progress(label, len(batch))
    per_query = score_rankings(rankings, qrels, k)
    names = ["ndcg@10", "mrr@10", "recall@10", f"recall@{k}"]
    metrics = {n: round(float(np.mean([m[n] for m in per_query.values()])), 6) if per_query else 0.0 for n in names}
    return EvalResult(
        metrics=metrics,
        queries=len(wanted),
        skipped=len(query_ids) - len(wanted),
        split=manifest["config"].get("split", "?"),
        k=k,
        model={"name": manifest["model"]["name"], "fingerprint": manifest["model"]["fingerprint"]},
        embeddings=embeddings,
        per_query=per_query,
    )


def evaluate(
    source: str | Path,
    embed_config: EmbedConfig,
    config: EvalConfig,
    *,
    workdir: Path | None = None,
    embeddings_out: Path | None = None,
    encoder: Encoder | None = None,
    reuse: Sequence[Path] = (),
    reporter: Reporter = NULL_REPORTER,
) -> EvalResult:
    """Evaluate a model on a split of a BEIR folder (or on an embeddings artifact as it is).

    Args:
        source: BEIR folder (or pairs file), or an embeddings artifact built for the split to score.
        embed_config: the model and encoding settings; its split is replaced by ``config.split``.
        config: split and k.
        workdir: cache for the embeddings and exact index (default: hardneg's cache).
        embeddings_out: write the embeddings here instead of the workdir cache.
        encoder: an already loaded encoder (tests, the loop).
        reuse: embeddings artifacts whose vectors (same model, same text) are reused.
        reporter: progress and status sink.
    """
    from hardneg.embed import embed
    from hardneg.index import build_index
    from hardneg.inputs import load_input
    from hardneg.pipeline import default_workdir, ensure_embeddings, ensure_index

    workdir = workdir or default_workdir()
    source = Path(source)
    exact = IndexConfig(backend="exact", recall_sample=0)
    cfg = dataclasses.replace(embed_config, split=config.split)
    if artifact_kind(source) == KIND_EMBEDDINGS:
        embeddings, index = source, ensure_index(source, exact, workdir, reporter=reporter)
    elif embeddings_out is not None:
        embeddings = embed(load_input(source, config.split), embeddings_out, cfg, encoder=encoder, reuse=reuse, reporter=reporter).path
        index = build_index(embeddings, embeddings_out.with_name(embeddings_out.name + "-index"), exact, reporter=reporter).path
    else:
        embeddings = ensure_embeddings(source, cfg, workdir, encoder=encoder, reuse=reuse, reporter=reporter)
        index = ensure_index(embeddings, exact, workdir, reporter=reporter)
    return evaluate_embeddings(embeddings, index, config.k, reporter)
