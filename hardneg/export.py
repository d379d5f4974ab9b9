"""Stage 4, `hardneg export`: a mining run -> the training files trainers read, from a format registry.

Formats:
- ``colbert``: ``triples.train.colbert.jsonl`` (``[qid, pid_pos, pid_neg, ...]`` integer lines),
  ``queries.train.colbert.tsv`` (``qid\\ttext``), ``corpus.train.colbert.tsv`` (``pid\\ttext``, pid =
  0-based line number), plus ``qid_map.tsv`` / ``pid_map.tsv`` back to the original ids. What
  RAGatouille and colbert-ai train from.
- ``triplets``: JSONL ``{"query", "positive", "negative"}`` texts (``triplet_rows="arrays"``: ``[query, positive, negative]``; ``--out -`` streams it).
- ``sentence-transformers``: Parquet with ``query, positive, negative_1..negative_N`` (sentence-
  transformers and PyLate contrastive training).
- ``colbert`` with ``scores``: ColBERTv2 distillation lines ``[qid, [pid, score], [pid, score], ...]``,
  positive first.
- ``pylate-kd``: ``train.parquet`` (query_id, document_ids, scores), ``queries.parquet``,
  ``documents.parquet``: PyLate's knowledge-distillation datasets.
- ``flagembedding``: JSONL ``{"query", "pos", "neg", "pos_scores", "neg_scores"}``.
- ``msmarco-triples``: ``triples.train.tsv``, ``query<TAB>positive<TAB>negative`` texts (MS MARCO's
  training-triples layout, read by several trainers; ``--out -`` streams it).
- ``tevatron``: JSONL ``{"query_id", "query", "positive_passages", "negative_passages"}`` with
  ``{"docid", "title", "text"}`` passages.
- ``nemo``: JSONL ``{"question_id", "query", "pos_doc", "neg_doc"}`` texts, NeMo Automodel's inline
  retrieval rows.
- ``labeled-pair`` / ``labeled-list``: Parquet with ``query, positive, label`` (one row per document,
  1 for a positive, 0 for a negative) or ``query, positive (a list), labels`` (one row per positive):
  sentence-transformers' cross-encoder formats; ``--scores`` writes scores instead of labels.

Scores are the teacher's (`mine --teacher`) when the run was mined with one, else the embedding
model's cosine scores; the export manifest says which. Pseudo-positives promoted by the
cross-encoder are exported as positives.

Pairing rule: with nway = 2, a query with P positives and N negatives gives max(P, N) rows, row i
pairing positive i mod P with negative i mod N, so every negative and every positive is used. With
nway > 2, each positive gets one row holding the first nway - 1 negatives; queries with fewer
negatives are dropped (counted), since these formats need a fixed row width.
"""

from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pyarrow as pa

from hardneg.artifacts import (
    KIND_EXPORT,
    input_ref,
    manifest_file,
    write_manifest,
)
from hardneg.config import ExportConfig, as_dict
from hardneg.errors import ConfigError, HardnegError
from hardneg.formats import (  # noqa: F401 - re-exported: the file names and helpers tests and users import
    EXPORTERS,
    FLAG_FILE,
    ONE_NEGATIVE_FORMATS,
    PYLATE_DOCUMENTS,
    PYLATE_QUERIES,
    PYLATE_TRAIN,
    ST_FILE,
    STREAMERS,
    ExportStats,
    clean_tsv_text,
    pair_rows,
    validate_colbert,
    validate_pylate_kd,
)
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.runs import RunQuery, extra_texts, read_run  # noqa: F401 - re-exported
from hardneg.writes import atomic_dir, check_replaceable, write_table, writing


@dataclass
class ExportResult:
    path: Path | None
    stats: ExportStats


SOURCES_FILE = "negative_sources.parquet"
TEXT_FORMATS = frozenset({"triplets", "sentence-transformers", "msmarco-triples", "flagembedding", "tevatron", "nemo",
                          "labeled-pair", "labeled-list"})
LABELED_FORMATS = frozenset({"labeled-pair", "labeled-list"})
"""sentence-transformers' cross-encoder rows: 0/1 labels, or with --scores the scores instead."""


def mix_synthetic(queries: list[RunQuery], manifest: dict[str, Any], config: ExportConfig) -> tuple[list[RunQuery], dict[str, str]]:
    """Each query's negatives with a share of the mined ones (the last, easiest-ranked) replaced by
    the query's kept generated negatives: ``floor(n x ratio + u)`` of them, u a per-query draw
    from (seed, query), so the share is ``ratio`` on average and the choice is deterministic.
    Returns the queries and the generated texts by id."""
    from hardneg.synth import read_synthetic

    if config.format not in TEXT_FORMATS:
        raise ConfigError(f"--synthetic mixes generated passages, which have no corpus id: use a text format "
                          f"({', '.join(sorted(TEXT_FORMATS))}), not {config.format}")
    if manifest.get("cross_encoder") and config.format in KD_FORMATS:
        raise ConfigError(f"--synthetic: this run's scores are its teacher's, generated passages have the retriever's only; "
                          f"{config.format} would mix the two scales")
    synthetic = read_synthetic(str(config.synthetic), manifest["fingerprint"])
    texts: dict[str, str] = {}
    mixed = []
    for q in queries:
        extra, n = synthetic.get(q.query_id, []), len(q.negatives)
        draw = int.from_bytes(hashlib.blake2b(f"{config.seed}\0{q.query_id}".encode(), digest_size=8).digest(), "little") / 2.0**64
        take = min(len(extra), int(n * config.synthetic_ratio + draw))
        if not take:
            mixed.append(q)
            continue
        chosen = extra[:take]
        texts.update((d, t) for d, t, _ in chosen)
        mixed.append(dataclasses.replace(q, negatives=q.negatives[: n - take] + [d for d, _, _ in chosen],
                                         negative_scores=q.negative_scores[: n - take] + [s for _, _, s in chosen]))
    return mixed, texts


def _refuse_empty(run: Path, queries: list[RunQuery], stats: ExportStats, allow_empty: bool) -> None:
    """An export with no training row is an error: a CI job would go on to train on nothing."""
    if stats.rows or allow_empty:
        return
    widest = max((len(q.negatives) for q in queries), default=0)
    if not queries or widest == 0:
        why = f"{run} has no mined query with a negative; mine with a wider window or looser filters"
    else:
        why = (f"every query has fewer negatives than --nway {stats.nway} needs ({stats.rows_dropped_short} rows dropped "
               f"as short); the widest that gives rows is --nway {widest + 1}")
    raise HardnegError(f"0 training rows: {why}. Pass --allow-empty to write an empty export anyway.")


KD_FORMATS = frozenset({"pylate-kd", "flagembedding", "tevatron"})


def transform_scores(queries: list[RunQuery], how: str) -> list[RunQuery]:
    """Each query's positive and negative scores transformed together (see ExportConfig.score_transform)."""
    if how == "none":
        return queries
    out = []
    for q in queries:
        scores = np.asarray([*q.positive_scores, *q.negative_scores], dtype=np.float64)
        if len(scores) == 0:
            out.append(q)
            continue
        if how == "minmax":
            low, span = scores.min(), scores.max() - scores.min()
            scores = (scores - low) / span if span > 0 else np.full_like(scores, 0.5)
        else:  # zscore
            std = scores.std()
            scores = (scores - scores.mean()) / std if std > 0 else np.zeros_like(scores)
        n = len(q.positive_scores)
        out.append(RunQuery(q.query_id, q.text, q.positives, q.negatives, scores[:n].tolist(), scores[n:].tolist()))
    return out


def positive_softmax_share(queries: list[RunQuery], nway: int) -> tuple[float | None, float | None]:
    """The positive's mean softmax share over rows of the first positive + nway - 1 negatives, and
    the uniform share 1 / nway for comparison."""
    shares, widths = [], []
    for q in queries:
        negs = q.negative_scores[: nway - 1] if nway else q.negative_scores
        if not q.positive_scores or not negs:
            continue
        row = np.asarray([q.positive_scores[0], *negs], dtype=np.float64)
        weights = np.exp(row - row.max())
        shares.append(weights[0] / weights.sum())
        widths.append(len(row))
    if not shares:
        return None, None
    return round(float(np.mean(shares)), 4), round(float(np.mean([1 / w for w in widths])), 4)


def resolve_nway(config: ExportConfig, run_manifest: dict[str, Any]) -> int:
    if config.scores and config.format != "colbert" and config.format not in LABELED_FORMATS:
        raise ConfigError("--scores applies to the colbert, labeled-pair and labeled-list formats; pylate-kd, flagembedding and "
                          "tevatron always carry scores")
    if config.format in ONE_NEGATIVE_FORMATS:
        if config.nway not in (None, 2):
            raise ConfigError(f"the {config.format} format holds one negative per row; --nway must be 2 (or unset)")
        return 2
    if config.format == "labeled-pair":
        if config.nway not in (None, 0):
            raise ConfigError("labeled-pair writes one row per (query, document); --nway does not apply (labeled-list has rows of N)")
        return 0
    if config.nway is not None:
        return config.nway
    kd_depth = run_manifest["config"].get("kd_depth")
    if kd_depth and config.format in ("pylate-kd", "flagembedding"):
        return int(kd_depth)  # fixed width: the positive + kd_depth - 1 candidates (short queries dropped)
    if config.format in ("sentence-transformers", "pylate-kd", "flagembedding") or (config.format == "colbert" and config.scores):
        # Fixed width, the negatives asked for + the positive: PyLate's collator and every
        # distillation loss need equal rows; queries short of negatives are dropped and counted.
        return 1 + int(run_manifest["config"]["num_negatives"])
    if config.format in ("tevatron", "nemo", "labeled-list"):
        return 0  # variable: Tevatron samples its train_n_passages from each query's lists, NeMo takes n_passages - 1
    return 2


def export(
    run: str | Path,
    out: str | Path | None,
    config: ExportConfig,
    *,
    stream: IO[bytes] | None = None,
    force: bool = False,
    allow_empty: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> ExportResult:
    """Write training files for a mining run.

    Args:
        run: a mining-run artifact directory.
        out: the output directory (replaced atomically). None with ``stream`` for stdout streaming.
        config: format, nway, shuffling.
        stream: a binary stream to write JSONL triplets to instead of a directory (``--out -``).
        force: replace ``out`` even if it is not an earlier export.
        allow_empty: write the export even when it has no training row (otherwise an error, with the
            widest --nway that would give rows).
        reporter: progress and status sink.

    Returns:
        The output path (None when streaming) and what was written.
    """
    run = Path(run)
    config = dataclasses.replace(config, score_transform=config.resolved_score_transform)  # the manifest names what ran
    mined = read_run(run)
    manifest, queries, emb_path = mined.manifest, mined.queries, mined.emb_path
    nway = resolve_nway(config, manifest)
    stats = ExportStats(format=config.format, nway=nway, score_transform=config.score_transform)
    generated: dict[str, str] = {}
    if config.synthetic:
        queries, generated = mix_synthetic(queries, manifest, config)
        stats.synthetic_negatives = sum(1 for q in queries for d in q.negatives if d in generated)
    with extra_texts(generated):
        return _export(run, out, config, manifest, queries, emb_path, stats, generated, stream, force, allow_empty)


def _export(run: Path, out: str | Path | None, config: ExportConfig, manifest: dict[str, Any], queries: list[RunQuery],
            emb_path: Path, stats: ExportStats, generated: dict[str, str], stream: IO[bytes] | None, force: bool,
            allow_empty: bool) -> ExportResult:
    nway = stats.nway
    carries_scores = config.format in KD_FORMATS or (config.format in ("colbert", *LABELED_FORMATS) and config.scores)
    if carries_scores:
        queries = transform_scores(queries, config.score_transform)
        stats.positive_softmax_share, stats.uniform_share = positive_softmax_share(queries, nway)
        teacher, model = (manifest.get("cross_encoder") or {}).get("name"), manifest.get("model") or {}
        stats.score_source = (f"teacher {teacher} (the run's --teacher / --cross-encoder)" if teacher else
                              f"embedding {model.get('metric', 'cosine')} of {model.get('name', '?')}, no --cross-encoder")
    elif config.score_transform != "none":
        raise ConfigError(f"--score-transform applies to formats with scores (pylate-kd, flagembedding, tevatron, colbert, labeled-pair "
                          f"or labeled-list --scores), not {config.format}")
    if stream is not None:
        if config.format not in STREAMERS:
            raise ConfigError(f"--out - streams one row per line: use --format {' or '.join(sorted(STREAMERS))} (got {config.format})")
        for line in STREAMERS[config.format](queries, emb_path, config, stats):
            stream.write(line)
        stream.flush()
        _refuse_empty(run, queries, stats, allow_empty)
        return ExportResult(None, stats)
    assert out is not None
    out = Path(out)
    with writing(out, [run]) as out:
        check_replaceable(out, KIND_EXPORT, "export", force)
        with atomic_dir(out) as tmp:
            EXPORTERS[config.format](queries, emb_path, tmp, config, stats)
            _refuse_empty(run, queries, stats, allow_empty)  # before the commit: nothing is written
            if generated:  # which exported negatives are generated, for trainers that balance sources
                pairs = [(q.query_id, d) for q in queries for d in q.negatives if d in generated]
                manifest_file(tmp).parent.mkdir(exist_ok=True)
                write_table(manifest_file(tmp).parent / SOURCES_FILE, pa.table(
                    {"query_id": [q for q, _ in pairs], "doc_id": [d for _, d in pairs], "source": ["synthetic"] * len(pairs)}))
            write_manifest(
                tmp,
                KIND_EXPORT,
                run=input_ref(run, out, fingerprint=manifest["fingerprint"]),
                scores_from="teacher" if manifest.get("cross_encoder") else "embedding",
                teacher=manifest.get("cross_encoder"),
                model=manifest["model"],
                config=as_dict(config),
                stats=stats.to_dict(),
            )
        return ExportResult(out, stats)
