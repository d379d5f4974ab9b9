"""`hardneg eval`: retrieval quality of a model on a BEIR split, through the embed and index stages.

Exact search over the whole corpus (no ANN error in the number). Bi-encoders go through the embed
and index stages (embeddings cached); ColBERT checkpoints are scored with exact MaxSim against every
document (`hardneg.late_interaction`); both share the one metric implementation below. Metrics follow pytrec_eval /
BEIR: nDCG@10 with the qrels' graded relevance as gain, MRR@10 and Recall@10 / Recall@k over the
documents with relevance > 0. Queries without any relevant document are left out (counted).
Ties in the ranking break by corpus position, as everywhere in hardneg.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hardneg.artifacts import KIND_EMBEDDINGS, artifact_kind, read_manifest, text_key
from hardneg.config import EmbedConfig, EvalConfig, IndexConfig
from hardneg.encoders import Encoder
from hardneg.errors import ConfigError, ModelError
from hardneg.models import resolve_model
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.readers import read_qrels, read_queries, self_documents

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
    rankings: dict[str, list[str]] = field(default_factory=dict, repr=False)
    """Each query's retrieved document ids, best first (not in the summary)."""
    self_matches: int = 0
    """Retrieved documents that are their query (its text; or its id, and its text under a title:
    ArguAna and Quora put every query in the corpus), left out of that query's ranking, as BEIR's
    evaluation leaves out the query's own id."""

    def to_dict(self, per_query: bool = False) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data.pop("rankings")
        data["embeddings"] = str(self.embeddings)
        if not per_query:
            data.pop("per_query")
        return data


def ndcg_at(ranked: Sequence[str], relevance: dict[str, float], k: int = 10) -> float:
    # A negative judgment (Touché's -2: spam) gains nothing, as trec_eval counts it; it takes nothing away.
    dcg = sum(max(relevance.get(d, 0.0), 0.0) / math.log2(i + 2) for i, d in enumerate(ranked[:k]))
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


def relevance_by_query(rows: Iterable[tuple[str, str, float]]) -> dict[str, dict[str, float]]:
    """qrels rows as {query: {document: relevance}}, keeping the highest of repeated judgments."""
    qrels: dict[str, dict[str, float]] = {}
    for qid, did, score in rows:
        qrels.setdefault(qid, {})[did] = max(float(score), qrels.get(qid, {}).get(did, 0.0))
    return qrels


def mean_metrics(per_query: dict[str, dict[str, float]], k: int) -> dict[str, float]:
    """The mean of each metric over the queries (0 when there are none)."""
    names = ["ndcg@10", "mrr@10", "recall@10", f"recall@{k}"]
    return {n: round(float(np.mean([m[n] for m in per_query.values()])), 6) if per_query else 0.0 for n in names}


def without_self(
    labels: Iterable[int], doc_keys: Sequence[int] | np.ndarray, query_key: int, depth: int, judged: Iterable[int] = (),
    self_label: int | None = None,
) -> tuple[list[int], int]:
    """A query's retrieved labels without the query itself where the corpus holds it (ArguAna,
    Quora): the documents whose text is the query's, and ``self_label``, the query under its own id
    behind a title (ArguAna's topic tags; see ``readers.self_documents``), cut at ``depth``; and how
    many were left out. A document judged relevant to the query (``judged``: its labels) stays: the
    qrels say it is an answer. Searches ask for one more than ``depth`` so that a left-out document
    does not shorten the list."""
    keep = set(judged)
    kept = [j for j in labels if j >= 0]
    own = {j for j in kept if (int(doc_keys[j]) == query_key or j == self_label) and j not in keep}
    return [j for j in kept if j not in own][:depth], len(own)


def _ranking(labels: Sequence[int], doc_ids: Sequence[str], doc_keys: Sequence[int] | np.ndarray, query: str,
             relevance: dict[str, float], depth: int, self_label: int | None = None) -> tuple[list[str], int]:
    """One query's ranked document ids (``without_self``, the documents its qrels judge relevant
    kept), and how many documents were left out as the query itself."""
    judged = [j for j in labels if j >= 0 and relevance.get(doc_ids[j], 0.0) > 0]
    kept, dropped = without_self(labels, doc_keys, text_key(query), depth, judged, self_label)
    return [doc_ids[j] for j in kept], dropped


def evaluate_embeddings(
    embeddings: Path, index: Path, k: int, reporter: Reporter = NULL_REPORTER, unavailable: Sequence[tuple[str, str, float]] = ()
) -> EvalResult:
    """Metrics of the queries of an embeddings artifact against its qrels, searching ``index``.
    ``unavailable``: judgments on documents the corpus lacks or holds empty (Dataset.unavailable_qrels),
    counted as pytrec_eval counts them: relevant, never retrieved."""
    from hardneg.search import Searcher, load_doc_ids

    manifest = read_manifest(embeddings, KIND_EMBEDDINGS)
    qrels = relevance_by_query([*read_qrels(embeddings), *unavailable])
    query_ids, query_texts, vectors = read_queries(embeddings)
    wanted = [i for i, q in enumerate(query_ids) if any(r > 0 for r in qrels.get(q, {}).values())]
    searcher = Searcher(index)
    doc_ids, doc_keys = load_doc_ids(index)
    depth = min(max(10, k), searcher.size)
    rankings: dict[str, list[str]] = {}
    self_matches = 0
    own = self_documents(embeddings, doc_ids, {query_ids[i]: query_texts[i] for i in wanted})
    label = "Evaluating"
    reporter.progress(label, 0, len(wanted))
    for start in range(0, len(wanted), QUERY_BATCH):
        batch = wanted[start : start + QUERY_BATCH]
        labels, _ = searcher.search(vectors[batch], min(depth + 1, searcher.size))
        for row, qi in enumerate(batch):
            qid = query_ids[qi]
            rankings[qid], dropped = _ranking(labels[row].tolist(), doc_ids, doc_keys, query_texts[qi], qrels[qid], depth,
                                              own.get(qid))
            self_matches += dropped
        reporter.progress(label, len(batch))
    per_query = score_rankings(rankings, qrels, k)
    return EvalResult(
        metrics=mean_metrics(per_query, k),
        queries=len(wanted),
        skipped=len(query_ids) - len(wanted),
        split=manifest["config"].get("split", "?"),
        k=k,
        model={"name": manifest["model"]["name"], "fingerprint": manifest["model"]["fingerprint"]},
        embeddings=embeddings,
        per_query=per_query,
        rankings=rankings,
        self_matches=self_matches,
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
    if config.rerank:
        if artifact_kind(source) is not None:
            raise ConfigError(f"{source}: --rerank reads the query and document texts; evaluate on the BEIR folder (or pairs file)")
        from hardneg.models import resolve_path_or_hub

        resolve_path_or_hub(config.rerank)  # a missing teacher fails before the retrieval, not after it
        retrieved = evaluate(source, embed_config, dataclasses.replace(config, rerank=None), workdir=workdir,
                             embeddings_out=embeddings_out, encoder=encoder, reuse=reuse, reporter=reporter)
        return rerank(source, retrieved, config, embed_config, reporter=reporter)
    if config.run_file is not None:
        return evaluate_run(source, config, reporter)
    if _architecture(embed_config, config) == "colbert":
        if artifact_kind(source) == KIND_EMBEDDINGS:
            raise ConfigError(f"{source}: an embeddings artifact holds one vector per text; a ColBERT model is evaluated on a BEIR folder")
        return evaluate_colbert(source, embed_config, config, reporter=reporter)
    exact = IndexConfig(backend="exact", recall_sample=0)
    cfg = dataclasses.replace(embed_config, split=config.split, precision=eval_precision(embed_config))
    # Leakage check first, before anything is encoded.
    if artifact_kind(source) == KIND_EMBEDDINGS:
        ids, texts, _ = read_queries(source)
        refuse_seen_queries(read_manifest(source, KIND_EMBEDDINGS)["model"].get("path"), list(zip(ids, texts)), config.split, config)
        index = ensure_index(source, exact, workdir, reporter=reporter)
        return evaluate_embeddings(source, index, config.k, reporter)
    # A model that cannot be found fails before the input is read; the input is read once, for the
    # leakage check, the embeddings and the judgments on documents the corpus lacks.
    model_path = resolve_model(embed_config).path if encoder is None and embed_config.model is not None else None
    dataset = load_input(source, config.split)
    if model_path is not None:
        refuse_seen_queries(model_path, [(q.query_id, q.text) for q in dataset.queries], config.split, config)
    if embeddings_out is not None:
        embeddings = embed(dataset, embeddings_out, cfg, encoder=encoder, reuse=reuse, reporter=reporter).path
        index = build_index(embeddings, embeddings_out.with_name(embeddings_out.name + "-index"), exact, reporter=reporter).path
    else:
        embeddings = ensure_embeddings(source, cfg, workdir, encoder=encoder, reuse=reuse, reporter=reporter, dataset=dataset)
        index = ensure_index(embeddings, exact, workdir, reporter=reporter)
    return evaluate_embeddings(embeddings, index, config.k, reporter, dataset.unavailable_qrels)


def corpus_keys(dataset: Any, query_texts: dict[str, str], doc_ids: list[str], doc_keys: list[int],
                own: dict[str, int]) -> Iterator[str]:
    """Each corpus document's text (title and text) in corpus order, recording on the way what
    ``_ranking`` needs to leave a query itself out of its ranking: the document's id and text key,
    and in ``own`` the row of a query kept in the corpus under its own id behind a title (ArguAna),
    as ``readers.self_documents`` finds it for a model's embeddings."""
    from hardneg.artifacts import doc_text

    query_keys = {qid: text_key(text) for qid, text in query_texts.items()}
    for doc in dataset.iter_corpus():
        if doc.doc_id in query_keys and text_key(doc.text) == query_keys[doc.doc_id]:
            own[doc.doc_id] = len(doc_ids)
        doc_ids.append(doc.doc_id)
        text = doc_text(doc.title, doc.text)
        doc_keys.append(text_key(text))
        yield text


def evaluate_run(source: Path, config: EvalConfig, reporter: Reporter = NULL_REPORTER) -> EvalResult:
    """The metrics of a ranking another retriever wrote (``config.run_file``) on a split, with the
    same metric code as a model's. A query the run does not rank scores 0 (trec_eval's ``-c``). The
    query itself is left out of its ranking by the rule a model's evaluation applies, so that a
    model's ranking written as a run scores what the model scores: a document with the query's text
    (Quora), or the query under its own id behind a title (ArguAna), unless judged relevant. A
    document that only shares the query's id is kept: MS MARCO numbers queries and passages alike,
    where BEIR's ``ignore_identical_ids`` would drop an unrelated passage."""
    from hardneg.artifacts import file_fingerprint
    from hardneg.inputs import load_input, read_run_file

    assert config.run_file is not None
    if artifact_kind(source) is not None:
        raise ConfigError(f"{source}: --run ranks the data's own ids: evaluate on the BEIR folder (or dataset file, pairs file)")
    dataset = load_input(source, config.split)
    qrels = relevance_by_query([*dataset.qrels, *dataset.unavailable_qrels])
    wanted = [q for q in dataset.queries if any(r > 0 for r in qrels.get(q.query_id, {}).values())]
    doc_ids: list[str] = []
    doc_keys: list[int] = []
    own: dict[str, int] = {}
    for _ in corpus_keys(dataset, {q.query_id: q.text for q in wanted}, doc_ids, doc_keys, own):
        pass
    depth = max(10, config.k)
    run = read_run_file(Path(config.run_file), {q.query_id for q in wanted}, {d: i for i, d in enumerate(doc_ids)}, depth + 1,
                        config.run_file)
    rankings: dict[str, list[str]] = {}
    self_matches = 0
    for q in wanted:
        rankings[q.query_id], dropped = _ranking(run.rows.get(q.query_id, []), doc_ids, doc_keys, q.text, qrels[q.query_id], depth,
                                                 own.get(q.query_id))
        self_matches += dropped
    missing = sum(1 for q in wanted if q.query_id not in run.rows)
    if missing:
        reporter.log(f"warning: {missing} of {len(wanted)} queries are not in the run file; each scores 0, as trec_eval -c counts them")
    per_query = score_rankings(rankings, qrels, config.k)
    return EvalResult(
        metrics=mean_metrics(per_query, config.k),
        queries=len(wanted),
        skipped=len(dataset.queries) - len(wanted),
        split=config.split,
        k=config.k,
        model={"name": f"run {config.run_file}", "fingerprint": file_fingerprint(config.run_file)},
        embeddings=Path(config.run_file),
        per_query=per_query,
        rankings=rankings,
        self_matches=self_matches,
    )


def eval_precision(embed_config: EmbedConfig) -> str:
    """The precision an evaluation encodes in: as asked, and for `auto` fp16 on CUDA but fp32 on
    every CPU. Mining's `auto` picks bf16 on CPUs with native bf16 because it was shown not to
    change what the negatives are worth; a metric should measure the model, not the arithmetic."""
    if embed_config.precision != "auto" or embed_config.model is None:
        return embed_config.precision
    from hardneg.encoders import default_device, resolve_precision

    return resolve_precision("auto", embed_config.device or default_device(), cpu_bf16=False)


def refuse_seen_queries(
    model_path: str | Path | None, queries: Sequence[tuple[str, str]], split: str, config: EvalConfig
) -> None:
    """A hardneg checkpoint records the query texts it (and its hardneg ancestors) trained on:
    scoring a split that holds any of them is test leakage, refused unless ``allow_seen_queries``.
    ``queries`` are (id, text) pairs of the split."""
    from hardneg.artifacts import text_hash
    from hardneg.train import seen_queries

    seen = seen_queries(model_path)
    if not seen or config.allow_seen_queries:
        return
    overlap = [qid for qid, text in queries if text_hash(text) in seen]
    if overlap:
        shown = ", ".join(overlap[:5]) + (", ..." if len(overlap) > 5 else "")
        raise ConfigError(
            f"{model_path} was trained on {len(overlap)} of the {len(queries)} queries of split '{split}' (same text; "
            f"ids {shown}): its metrics there would partly measure memory. Evaluate on a split it did not train on, or "
            "pass --allow-seen-queries (and say so where you report the numbers)."
        )


def _architecture(embed_config: EmbedConfig, config: EvalConfig) -> str:
    if config.architecture != "auto":
        return config.architecture
    from hardneg.late_interaction import model_architecture

    if embed_config.model is None:
        return "biencoder"
    arch = model_architecture(resolve_model(embed_config).path)
    if arch == "cross-encoder":
        raise ModelError(
            f"'{embed_config.model}' is a cross-encoder (a reranker); `hardneg eval` evaluates retrievers: "
            f"pass a retriever as --model and this checkpoint as --rerank {embed_config.model}"
        )
    return arch


def evaluate_colbert(
    source: Path, embed_config: EmbedConfig, config: EvalConfig, *, reporter: Reporter = NULL_REPORTER
) -> EvalResult:
    """Exact MaxSim retrieval of a ColBERT checkpoint over the whole corpus of a BEIR split."""
    import torch

    from hardneg.encoders import apply_onednn, default_device, resolve_precision, tune_child_allocators, uses_onednn
    from hardneg.inputs import load_input
    from hardneg.late_interaction import colbert_search
    from hardneg.models import weights_fingerprint
    from hardneg.teachers import load_colbert

    spec = resolve_model(embed_config)
    if spec.path is None:
        raise ModelError(f"'{spec.name}' has no weights; a ColBERT evaluation needs a model directory")
    if embed_config.backend != "torch":
        raise ModelError(f"--backend {embed_config.backend} runs single-vector encoders; ColBERT evaluation runs on torch (use --backend torch)")
    dataset = load_input(source, config.split)
    if line := dataset.left_out_line():
        reporter.log(f"warning: {line}")
    qrels = relevance_by_query([*dataset.qrels, *dataset.unavailable_qrels])  # as pytrec_eval: relevant, never retrieved
    queries = [q for q in dataset.queries if any(r > 0 for r in qrels.get(q.query_id, {}).values())]
    refuse_seen_queries(spec.path, [(q.query_id, q.text) for q in queries], config.split, config)
    tune_child_allocators()
    torch.manual_seed(0)  # a plain sentence-transformers model gets a new projection head: make it the same every time
    device = embed_config.device or default_device()
    model = load_colbert(str(spec.path), device)
    precision = resolve_precision(embed_config.precision, device, cpu_bf16=False)
    if precision != "fp32":  # token vectors in half precision; MaxSim itself runs in float32
        model.to(torch.float16 if precision == "fp16" else torch.bfloat16)
    onednn = apply_onednn(model, uses_onednn(device, precision, "torch"))
    if spec.query_prompt or spec.corpus_prompt:
        model.prompts = {"query": spec.query_prompt, "document": spec.corpus_prompt}
    if embed_config.max_length:
        model.max_seq_length = embed_config.max_length
    doc_ids: list[str] = []
    doc_keys: list[int] = []
    own: dict[str, int] = {}
    texts = corpus_keys(dataset, {q.query_id: q.text for q in queries}, doc_ids, doc_keys, own)
    depth = min(max(10, config.k), dataset.num_docs)
    labels, _ = colbert_search(
        model, [q.text for q in queries], texts, dataset.num_docs, min(depth + 1, dataset.num_docs),
        batch_size=embed_config.batch_size, reporter=reporter,
    )
    rankings: dict[str, list[str]] = {}
    self_matches = 0
    for q, row in zip(queries, labels.tolist()):
        rankings[q.query_id], dropped = _ranking(row, doc_ids, doc_keys, q.text, qrels[q.query_id], depth, own.get(q.query_id))
        self_matches += dropped
    per_query = score_rankings(rankings, qrels, config.k)
    return EvalResult(
        metrics=mean_metrics(per_query, config.k),
        queries=len(queries),
        skipped=len(dataset.queries) - len(queries),
        split=config.split,
        k=config.k,
        model={"name": spec.name, "fingerprint": weights_fingerprint(spec.path), "architecture": "colbert", "precision": precision,
               "onednn": onednn},
        embeddings=source,
        per_query=per_query,
        rankings=rankings,
        self_matches=self_matches,
    )


def rerank(
    source: Path, retrieved: EvalResult, config: EvalConfig, embed_config: EmbedConfig, *, reporter: Reporter = NULL_REPORTER
) -> EvalResult:
    """Re-score each query's top ``config.rerank_depth`` retrieved documents with the teacher
    ``config.rerank`` and score the new order (the documents below the depth keep theirs, so
    Recall@k for k >= the depth is the retriever's). Ties keep the retriever's order."""
    from hardneg.artifacts import doc_text
    from hardneg.inputs import load_input
    from hardneg.models import resolve_path_or_hub
    from hardneg.teachers import load_teacher

    assert config.rerank is not None
    dataset = load_input(source, config.split)
    qrels = relevance_by_query([*dataset.qrels, *dataset.unavailable_qrels])
    texts = {q.query_id: q.text for q in dataset.queries}
    refuse_seen_queries(resolve_path_or_hub(config.rerank), [(q, texts[q]) for q in retrieved.rankings], config.split, config)
    wanted = {d for ranked in retrieved.rankings.values() for d in ranked[: config.rerank_depth]}
    docs = {doc.doc_id: doc_text(doc.title, doc.text) for doc in dataset.iter_corpus() if doc.doc_id in wanted}
    teacher = load_teacher(config.rerank, batch_size=embed_config.batch_size, device=embed_config.device)
    rankings: dict[str, list[str]] = {}
    label = "Reranking"
    reporter.progress(label, 0, len(retrieved.rankings))
    try:
        for query_id, ranked in retrieved.rankings.items():
            top = ranked[: config.rerank_depth]
            scores = teacher.score([(texts[query_id], docs[d]) for d in top]).tolist() if top else []
            order = sorted(range(len(top)), key=lambda i: (-scores[i], i))
            rankings[query_id] = [top[i] for i in order] + ranked[config.rerank_depth :]
            reporter.progress(label, 1)
    finally:
        close = getattr(teacher, "close", None)
        if close is not None:
            close()
    per_query = score_rankings(rankings, qrels, config.k)
    model = {**retrieved.model, "reranker": {"name": config.rerank, "fingerprint": teacher.fingerprint, "depth": config.rerank_depth}}
    return dataclasses.replace(retrieved, metrics=mean_metrics(per_query, config.k), model=model, per_query=per_query, rankings=rankings)
