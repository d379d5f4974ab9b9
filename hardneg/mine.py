"""Stage 3, `hardneg mine`: an index artifact -> candidates and sampled negatives per query.

Rank semantics (documented, tested): a document's rank is its 0-based position in the query's
ranking of the whole corpus by score (ties: lower row first), known positives included, as
RAGatouille and FlagEmbedding count. The ranking is the retriever's (`search.Retriever`: dense,
bm25, hybrid, or a run file another retriever wrote, where a rank is the position in its list).
Candidates are the documents ranked in [min_rank, max_rank).

Inside that window each candidate is removed by the first filter that applies, in the order of
`filters.FILTERS` (positive, duplicate, near-duplicate, score bounds, margins, teacher thresholds,
LLM judge, per-document cap; see `hardneg.filters`). A teacher (`cross_encoder`: a cross-encoder,
bi-encoder or ColBERT checkpoint) scores the candidates and the positives: with ``scores_from =
"retriever"`` what survives the score rules, with ``scores_from = "teacher"`` everything that
survives positive/duplicate/near-duplicate, and the score rules and SimANS then read its scores.

Human judgments (`labels`, from `hardneg label import`) come first: a document judged relevant is a
positive like a qrels one; a candidate judged not relevant is a confirmed negative, exempt from
the guessing filters and sampled before any other candidate. So is a document the qrels score 0 or
below (`qrels_negatives`).

Negatives are then drawn from what is left by a sampler of `sampling.SAMPLERS`, with per-document
seeded draws. Queries are mined in chunks by `mine_runner` (resumable; the unit of every engine).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hardneg.artifacts import (
    CANDIDATES_SCHEMA,
    CORPUS_DIR,
    KIND_EMBEDDINGS,
    KIND_INDEX,
    KIND_MINE,
    file_fingerprint,
    fingerprint,
    is_blank,
    open_artifact,
    text_key,
    upstream,
    write_bytes_atomic,
)
from hardneg.config import MineConfig, identity
from hardneg.errors import ConfigError, HardnegError, InputError
from hardneg.filters import (
    FILTER_LLM,
    FILTER_ORDER,
    FILTER_PSEUDO_POSITIVE,
    MARGIN_FILTERS,
    OVERRIDABLE,
    Candidate,
    apply_confirmed,
    apply_score_rules,
    apply_teacher_rules,
    mark_duplicates,
    mark_near_duplicates,
)
from hardneg.inputs import read_run_file
from hardneg.label import apply_judgments, read_judgments
from hardneg.mine_runner import CHUNKS_DIR, run_chunks
from hardneg.mine_stats import ELIGIBLE_SAMPLE, MineResult, MineStats, Tally
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.readers import DocTextLookup, iter_shard_tables, read_qrels, read_queries, self_documents
from hardneg.sampling import SAMPLERS, doc_keys, sample_negatives, smallest_draws
from hardneg.search import LEXICAL_TERMS, UNSEGMENTED_SCRIPTS, Retriever, Searcher, load_doc_ids
from hardneg.teachers import PairScorer, load_teacher
from hardneg.writes import (
    check_writable_parent,
    prepare_out,
    shard_name,
    unit_selector,
    write_errors,
    write_table,
    writing,
)

__all__ = ["FILTER_ORDER", "MINE_VERSION", "SAMPLERS", "MineResult", "MineStats", "doc_keys", "mine", "mine_fingerprint",
           "sample_negatives"]

MINE_VERSION = "mine-v5"  # v3: per-document sampling draws (doc_keys); v4: the query itself under its own id and a
# title (ArguAna) is a duplicate of the query; v5: qrels rows scored <= 0 are confirmed negatives
# (qrels_negatives). Runs of an older version are re-mined, not reused.
STATUS_MINED = "mined"
STATUS_EMPTY = "empty-text"
STATUS_NO_POSITIVE = "no-positive"
STATUS_NOT_IN_RUN = "not-in-run"


def mine_fingerprint(
    index_manifest: dict[str, Any], config: MineConfig, scorer: PairScorer | None = None, labels: str | None = None
) -> str:
    # What the run computes: execution knobs (batch sizes, chunking) are left out, so changing them
    # reuses the run (the output does not depend on them; see config.EXECUTION_FIELDS).
    # ``labels`` is the judgments' content fingerprint: new judgments at the same path re-mine.
    # A lexical ranking also depends on how texts are cut into terms (LEXICAL_TERMS); dense runs'
    # fingerprints are unchanged by it.
    parts: list[Any] = [MINE_VERSION, index_manifest["fingerprint"], identity(config), scorer.fingerprint if scorer else None, labels]
    if config.retriever in ("bm25", "hybrid"):
        parts.append(LEXICAL_TERMS)
    if config.run_file is not None:
        parts.append(run_file_fingerprint(config.run_file))  # another ranking at the same path re-mines
    return fingerprint(*parts)


def run_file_fingerprint(path: str) -> str:
    """The content of a ``--run`` file; a missing one is an input error naming it."""
    try:
        return file_fingerprint(path)
    except OSError as exc:
        raise InputError(f"cannot read the run file ({exc.strerror or exc})", path) from None


def mine(
    index: str | Path,
    out: str | Path,
    config: MineConfig,
    *,
    scorer: PairScorer | None = None,
    force: bool = False,
    allow_empty: bool = False,
    shard: tuple[int, int] | None = None,
    ray_address: str | None = None,
    reporter: Reporter = NULL_REPORTER,
) -> MineResult:
    """Mine hard negatives for every query of the index's embeddings artifact.

    Args:
        index: an index artifact directory (its manifest names the embeddings it was built from).
        out: the mining-run artifact directory to write.
        config: rank window, filters, number of negatives, sampling, seed.
        scorer: the cross-encoder to use instead of loading ``config.cross_encoder`` (tests inject one).
        force: replace ``out`` even if it is not a mining run; recompute even if up to date.
        allow_empty: write the run even when no query can be mined or no negative is selected
            (otherwise an error: a CI job should not go on to train on nothing).
        shard: ``(i, n)``: mine only every n-th chunk starting at i and return without committing
            (``complete=False``); a last call without it merges and commits (Slurm arrays).
        ray_address: the Ray cluster for ``config.engine == "ray"`` (default ``RAY_ADDRESS``, else local).
        reporter: progress and status sink.

    Returns:
        The run's path, manifest and statistics.
    """
    index = Path(index).resolve()
    out = Path(out)
    index_artifact = open_artifact(index, KIND_INDEX)
    embeddings = upstream(index_artifact, "embeddings", KIND_EMBEDDINGS, "rebuild the index (hardneg index EMBEDDINGS --force)")
    idx, emb_path, emb = index_artifact.manifest, embeddings.path, embeddings.manifest
    check_window(config, int(idx["counts"]["docs"]), allow_empty, reporter)
    if scorer is None and config.cross_encoder:
        scorer = load_teacher(config.cross_encoder, config.ce_batch_size)
    judgments: dict[str, dict[str, str]] = {}
    labels_fp = None
    if config.labels:

        judgments, labels_fp = read_judgments(config.labels)
    fp = mine_fingerprint(idx, config, scorer, labels_fp)
    judge = None
    if config.judge == "llm":
        from hardneg.llm import judge_for

        judge = judge_for(config)
        fp = fingerprint(fp, judge.fingerprint)  # the prompt's version is part of what a verdict means
    select = unit_selector(shard)
    if config.engine == "ray" and idx.get("backend") == "hnsw":
        raise ConfigError("--engine ray searches exactly (an HNSW index is one node's): mine from an exact index (--index exact)")
    with writing(out, [index, emb_path], lock="shared" if shard else "exclusive") as out:
        existing = prepare_out(out, KIND_MINE, fp, force, what="mining run")  # re-mining into the same --out is normal
        if existing is not None:
            reporter.log(f"mining run at {out} is up to date; reusing it")
            return MineResult(out, existing, MineStats(**existing["stats"]), reused=True)
        check_writable_parent(out)  # before any work
        remote = None
        if config.engine == "ray":
            from hardneg.ray_engine import mine_chunks

            args = {"index": index, "idx": idx, "emb_path": emb_path, "emb": emb, "config": config, "scorer": None,
                    "reporter": NULL_REPORTER, "judgments": judgments}
            remote = lambda partial, numbers: mine_chunks(args, partial, numbers, ray_address, reporter)  # noqa: E731
        miner = _Miner(index, idx, emb_path, emb, config, scorer, reporter, judgments, allow_empty, select, remote, judge)
        return miner.run(out, fp)


def check_window(config: MineConfig, docs: int, allow_empty: bool, reporter: Reporter) -> None:
    """A window past the corpus: ranks go 0..docs-1, so --min-rank >= docs can select nothing (an
    error, unless --allow-empty) and --max-rank > docs is clipped (a warning)."""
    if config.min_rank >= docs and not allow_empty:
        raise HardnegError(
            f"--min-rank {config.min_rank} is past the end of the corpus: it has {docs:,} documents, so ranks go "
            f"0-{docs - 1:,} and the window [{config.min_rank}, {config.max_rank}) holds no document. Lower --min-rank "
            f"(for example --min-rank {min(10, docs // 10)} --max-rank {min(config.max_rank - config.min_rank, docs)}), "
            "or pass --allow-empty to write the empty run anyway."
        )
    if config.max_rank > docs:
        reporter.log(f"warning: --max-rank {config.max_rank} is past the end of the corpus ({docs:,} documents): "
                     f"the window is [{min(config.min_rank, docs)}, {docs})")


_ENGLISH_MODELS = re.compile(r"(^|/)(minilm$|all-minilm|bge-[a-z]+-en)", re.I)


def language_hint(query_texts: list[str], model_name: str) -> str | None:
    """A note when most query characters are in a script written without spaces (Chinese, Japanese,
    Korean, Thai) and the model is an English one (the bundled MiniLM, bge-*-en): its dense ranking
    is weak there, and BM25 over character bigrams is not (measured on xquad_zh, README)."""
    if not _ENGLISH_MODELS.search(model_name) or "multilingual" in model_name.lower():
        return None
    sample = query_texts[:: max(1, len(query_texts) // 1000)]
    letters = sum(ch.isalpha() for text in sample for ch in text)
    unsegmented = sum(len(run) for text in sample for run in UNSEGMENTED_SCRIPTS.findall(text))
    if not letters or unsegmented / letters < 0.5:
        return None
    return (f"{unsegmented / letters:.0%} of the queries' letters are Chinese, Japanese, Korean or Thai, and "
            f"'{model_name}' is an English model: its dense ranking is weak on such text (on xquad_zh the positive "
            "ranked in its top 10 for 34% of queries, against 99.6% with --retriever hybrid). Give a model trained "
            "for the language (--model DIR), or add --retriever hybrid.")


class _Miner:
    """One mining run: loads what it needs once, then mines query chunks into ``<out>.partial/``.

    Each finished chunk (candidates Parquet + its Tally) is written atomically, so a killed run
    resumes at the first unfinished chunk; the chunks are merged into candidates.parquet at the end.
    """

    def __init__(
        self,
        index: Path,
        idx: dict[str, Any],
        emb_path: Path,
        emb: dict[str, Any],
        config: MineConfig,
        scorer: PairScorer | None,
        reporter: Reporter,
        judgments: dict[str, dict[str, str]] | None = None,
        allow_empty: bool = False,
        select: Callable[[int], bool] | None = None,
        remote: Callable[[Path, list[int]], None] | None = None,
        judge: Any = None,
    ) -> None:
        self.allow_empty, self.select, self.remote, self.judge = allow_empty, select, remote, judge
        self.index, self.idx, self.emb_path, self.emb = index, idx, emb_path, emb
        self.config, self.scorer, self.reporter = config, scorer, reporter
        self.searcher = Searcher(index, chunk=config.search_chunk)
        self.doc_ids, self.doc_hashes = load_doc_ids(index)
        self.texts = DocTextLookup(emb_path) if scorer is not None or judge is not None else None
        corpus_texts = None
        if config.retriever in ("bm25", "hybrid"):  # the lexical index reads every text (a run file: none)
            lookup = self.texts or DocTextLookup(emb_path)
            corpus_texts = lookup.get(list(range(lookup.size)))
        self.query_ids, self.query_texts, self.query_vectors = read_queries(emb_path)
        ranking, unknown = None, 0
        if config.run_file is not None:
            run = read_run_file(Path(config.run_file), set(self.query_ids), {d: row for row, d in enumerate(self.doc_ids)},
                                min(config.max_rank, len(self.doc_ids)), config.run_file)
            ranking, unknown = run.rows, run.unknown_documents
        self.retriever = Retriever(self.searcher, config.retriever, config.max_rank, texts=corpus_texts, rrf_k=config.rrf_k,
                                   ranking=ranking)
        # The query itself, in the corpus under its own id behind a title (ArguAna): a duplicate.
        self.self_rows = self_documents(emb_path, self.doc_ids, dict(zip(self.query_ids, self.query_texts)))
        self.positives: dict[str, list[str]] = {}
        judged_out: dict[str, set[str]] = {}  # qrels rows scored <= 0: judged not relevant
        for qid, did, score in read_qrels(emb_path):
            if score > 0:
                if did not in self.positives.setdefault(qid, []):
                    self.positives[qid].append(did)
            elif config.qrels_negatives:
                judged_out.setdefault(qid, set()).add(did)
        confirmed, self.label_counts = apply_judgments(self.positives, judgments or {}, self.query_ids, self.doc_ids)
        if judged_out:
            # A document judged relevant anywhere (another qrels row, a label) stays a positive.
            judged_out = {q: ds - set(self.positives.get(q, ())) for q, ds in judged_out.items()}
            for qid, docs in judged_out.items():
                confirmed.setdefault(qid, set()).update(docs)
        wanted = {d for ds in self.positives.values() for d in ds} | {d for ds in confirmed.values() for d in ds}
        self.row_of = {d: row for row, d in enumerate(self.doc_ids) if d in wanted}
        self.confirmed = {q: {self.row_of[d] for d in ds if d in self.row_of} for q, ds in confirmed.items()}
        self.stats = MineStats(
            queries=len(self.query_ids), num_negatives=config.num_negatives,
            window=[min(config.min_rank, len(self.doc_ids)), min(config.max_rank, len(self.doc_ids))],  # ranks stop at the corpus
        )
        self.stats.labels = dict(self.label_counts) if judgments else {}
        if judged_out:
            self.stats.labels["qrels_not_relevant"] = sum(map(len, judged_out.values()))
        if config.retriever == "dense" and (hint := language_hint(self.query_texts, str(emb.get("model", {}).get("name", "")))):
            self.stats.hints.append(hint)
        if unknown:
            self.stats.hints.append(f"{unknown} line{'s' if unknown != 1 else ''} of the run file name{'' if unknown != 1 else 's'} a "
                                    "document the corpus lacks: left out (the documents ranked after it move up one rank).")
        self.tally = Tally()
        self.positive_rows: dict[int, list[int]] = {}
        self.groups: list[str] | None = None
        if config.same_group:
            # Only the title is stored with each document; it is what BEIR corpora group by.
            self.groups = [t or "" for table in iter_shard_tables(emb_path, CORPUS_DIR, ["title"]) for t in table["title"].to_pylist()]
        elif config.same_cluster:
            from hardneg.clusters import kmeans

            self.groups = [f"c{c}" for c in kmeans(self.searcher.vectors, config.same_cluster, config.seed).tolist()]
        self.timings = {"search": 0.0, "filter": 0.0, "write": 0.0}

    def _status(self, qid: str, text: str) -> str:
        if is_blank(text):
            return STATUS_EMPTY
        if not any(d in self.row_of for d in self.positives.get(qid, [])):
            return STATUS_NO_POSITIVE
        if self.retriever.ranking is not None and qid not in self.retriever.ranking:
            return STATUS_NOT_IN_RUN
        return STATUS_MINED

    def run(self, out: Path, fp: str) -> MineResult:
        with write_errors(out):
            return run_chunks(self, out, fp)

    def plan(self) -> list[int]:
        """Each query's status (counted in the stats); the indices of the queries to mine."""
        stats = self.stats
        self.statuses = [self._status(q, t) for q, t in zip(self.query_ids, self.query_texts)]
        stats.queries_skipped, stats.skipped_query_ids = {}, {}
        for qid, status in zip(self.query_ids, self.statuses):
            if status != STATUS_MINED:
                stats.queries_skipped[status] = stats.queries_skipped.get(status, 0) + 1
                ids = stats.skipped_query_ids.setdefault(status, [])
                if len(ids) < 20:
                    ids.append(qid)
        todo = [i for i, s in enumerate(self.statuses) if s == STATUS_MINED]
        stats.queries_mined = len(todo)
        return todo

    def chunk_files(self, partial: Path, number: int) -> tuple[Path, Path]:
        return partial / CHUNKS_DIR / shard_name(number), partial / CHUNKS_DIR / f"tally-{number:05d}.json"

    def mine_chunk(self, partial: Path, number: int, todo: list[int]) -> Tally:
        """Mine chunk ``number`` (queries ``todo[number * chunk_queries : ...]``) and write its
        candidates and tally atomically: the unit every engine runs."""
        size = self.config.chunk_queries
        chunk = todo[number * size : (number + 1) * size]
        tally = Tally()
        tables = []
        spent = self.judge.usage.to_dict() if self.judge is not None else {}
        for batch_start in range(0, len(chunk), self.config.query_batch):
            batch = chunk[batch_start : batch_start + self.config.query_batch]
            tables.append(self._mine_batch(batch, tally))
            self.reporter.progress("Mining", len(batch))
        if self.judge is not None:
            tally.llm_usage = {k: v - spent[k] for k, v in self.judge.usage.to_dict().items()}
        t0 = time.perf_counter()
        part, side = self.chunk_files(partial, number)
        write_table(part, pa.concat_tables(tables) if tables else CANDIDATES_SCHEMA.empty_table())
        write_bytes_atomic(side, tally.dumps())
        self.timings["write"] += time.perf_counter() - t0
        return tally

    def _mine_batch(self, batch: list[int], tally: Tally) -> pa.Table:
        """Search, filter and sample one batch of queries: their candidates as a table."""
        config = self.config
        t0 = time.perf_counter()
        ranked, scores = self.retriever.retrieve(self.query_vectors[batch], [self.query_texts[qi] for qi in batch],
                                                 [self.query_ids[qi] for qi in batch])
        t1 = time.perf_counter()
        self.timings["search"] += t1 - t0
        pos_rows_of = [[self.row_of[d] for d in self.positives[self.query_ids[qi]] if d in self.row_of] for qi in batch]
        self.positive_rows.update(zip(batch, pos_rows_of))
        pos_scores_of = self._positive_scores(batch, pos_rows_of)
        windows: list[list[Candidate]] = []
        for i, qi in enumerate(batch):
            tally.positives += len(pos_rows_of[i])
            tally.positives_in_top += int(np.isin(ranked[i], pos_rows_of[i]).sum())
            tally.positive_scores[qi] = pos_scores_of[i]
            # Judged-not-relevant documents ranked above the window join it: min_rank only exists
            # to keep unverified near-top documents (likely unlabelled positives) out.
            confirmed = self.confirmed.get(self.query_ids[qi], ())
            window = [Candidate(rank, row, score) for rank, (row, score) in enumerate(zip(ranked[i].tolist(), scores[i].tolist()))
                      if row >= 0 and (rank >= config.min_rank or row in confirmed)]  # -1: a run file's list ended
            mark_duplicates(window, pos_rows_of[i], self.doc_hashes, text_key(self.query_texts[qi]),
                            self.self_rows.get(self.query_ids[qi]))
            windows.append(window)
        if config.dedup_threshold is not None:
            mark_near_duplicates(windows, pos_rows_of, self.searcher, config.dedup_threshold)
        by_teacher = config.scores_from == "teacher"
        if by_teacher:
            # The teacher scores every candidate still in (and the positives) first; the score
            # rules then read its scores and its lowest positive score (NV-Retriever's recipe).
            self._teacher_scores(batch, windows, pos_rows_of, tally)
        apply_score_rules(windows, [min(tally.positive_teacher[qi] if by_teacher else tally.positive_scores[qi]) for qi in batch],
                          config, teacher=by_teacher)
        if config.fallback_min_rank is not None:
            self._fallback(batch, windows, config.fallback_min_rank)
        if self.scorer is not None and not by_teacher:
            self._teacher_scores(batch, windows, pos_rows_of, tally)
        if self.scorer is not None:  # the teacher's own thresholds, after the score rules either way
            apply_teacher_rules(windows, config)
        for qi, window in zip(batch, windows):
            tally.confirmed_in_window += apply_confirmed(window, self.confirmed.get(self.query_ids[qi], frozenset()))
        if self.judge is not None:
            self._llm_judge(batch, windows, pos_rows_of)
        table = self._select(batch, windows, tally)
        self.timings["filter"] += time.perf_counter() - t1
        return table

    def _llm_judge(self, batch: list[int], windows: list[list[Candidate]], pos_rows_of: list[list[int]]) -> None:
        """The LLM judges each query's best-ranked survivors (not human-confirmed ones): relevant ones
        are removed (`llm-judge`) or promoted (`pseudo-positive`); unjudged ones are left as they are."""
        assert self.judge is not None and self.texts is not None
        config = self.config
        judged = {qi for qi in batch if config.judge_sample >= 1
                  or doc_keys(config.seed, "judge-sample", [self.query_ids[qi]])[0] < config.judge_sample}
        todo = [(qi, cand, pos) for qi, window, pos in zip(batch, windows, pos_rows_of) if qi in judged
                for cand in [c for c in window if not c.filter and not c.confirmed][: config.judge_top]]
        rows = sorted({c.row for _, c, _ in todo} | {p for _, _, pos in todo for p in pos})
        text_of = dict(zip(rows, self.texts.get(rows)))
        verdicts = self.judge.judge([(self.query_texts[qi], [text_of[p] for p in pos], text_of[c.row]) for qi, c, pos in todo],
                                    progress=lambda n: self.reporter.progress("LLM judge (answers)", n))
        action = FILTER_PSEUDO_POSITIVE if config.judge_action == "promote" else FILTER_LLM
        for (_, cand, _), verdict in zip(todo, verdicts):
            if verdict.relevant:
                cand.filter = action

    def _positive_scores(self, batch: list[int], pos_rows_of: list[list[int]]) -> list[list[float]]:
        """Each query's scores for its positives, from one ``score`` call for the whole batch
        (rows padded with the row's first positive; the padding is cut off again)."""
        width = max(len(p) for p in pos_rows_of)
        padded = np.array([p + [p[0]] * (width - len(p)) for p in pos_rows_of], dtype=np.int64)
        scores = self.searcher.score(self.query_vectors[batch], padded)
        return [row[: len(p)] for row, p in zip(scores.tolist(), pos_rows_of)]

    def _teacher_scores(
        self, batch: list[int], windows: list[list[Candidate]], pos_rows_of: list[list[int]], tally: Tally
    ) -> None:
        """The teacher's scores of the surviving candidates and the positives, in one call per batch
        (recorded only; the caller applies the rules that read them)."""
        assert self.scorer is not None and self.texts is not None
        pairs: list[tuple[str, str]] = []
        targets: list[tuple[int, Candidate | None]] = []
        for qi, window, pos_rows in zip(batch, windows, pos_rows_of):
            query = self.query_texts[qi]
            alive = [c for c in window if not c.filter]
            docs = self.texts.get([c.row for c in alive] + pos_rows)
            pairs += [(query, d) for d in docs]
            targets += [(qi, c) for c in alive] + [(qi, None)] * len(pos_rows)
        values = self.scorer.score(pairs)
        for qi in batch:
            tally.positive_teacher[qi] = []
        for (qi, cand), value in zip(targets, values.tolist()):
            if cand is None:
                tally.positive_teacher[qi].append(value)
            else:
                cand.teacher = value

    def _fallback(self, batch: list[int], windows: list[list[Candidate]], floor: int) -> None:
        """``fallback_min_rank``: a query the margins left short of ``num_negatives`` takes back
        candidates they removed, from that rank on, drawn at random (the ``random`` sampler's
        per-document draws), before the teacher and the LLM judge see the window: their rules hold
        for the revived candidates as for any other. Without a teacher or judge, a query left with
        no survivor gets exactly the negatives ``--min-rank F --sampling random`` would give it."""
        config = self.config
        for qi, window in zip(batch, windows):
            confirmed = self.confirmed.get(self.query_ids[qi], ())  # judged not relevant: they come back anyway
            short = config.num_negatives - sum(1 for c in window if not c.filter or (c.row in confirmed and c.filter in OVERRIDABLE))
            if short <= 0:
                continue
            pool = [c for c in window if c.filter in MARGIN_FILTERS and c.rank >= floor and c.row not in confirmed]
            if not pool:
                continue
            keys = doc_keys(config.seed, self.query_ids[qi], [self.doc_ids[c.row] for c in pool])
            for j in smallest_draws(keys, short):
                pool[j].fallback, pool[j].filter = pool[j].filter, ""

    def _select(self, batch: list[int], windows: list[list[Candidate]], tally: Tally) -> pa.Table:
        columns: dict[str, list[Any]] = {name: [] for name in CANDIDATES_SCHEMA.names}
        for qi, window in zip(batch, windows):
            qid = self.query_ids[qi]
            eligible = [i for i, c in enumerate(window) if not c.filter]
            # Confirmed negatives (judged not relevant) first, in rank order; the rest as configured.
            chosen = set([i for i in eligible if window[i].confirmed][: self.config.num_negatives])
            tally.confirmed_selected += len(chosen)
            rest = [i for i in eligible if not window[i].confirmed]
            if self.groups is not None:
                # Same-topic negatives (--same-group): the survivors that share a positive's group
                # (e.g. the article's title) are sampled first, then the others fill the rest.
                mine_groups = {self.groups[p] for p in self.positive_rows.get(qi, ()) if self.groups[p]}
                same = [i for i in rest if self.groups[window[i].row] in mine_groups]
                if same:
                    picked = sample_negatives(
                        same, [window[i].score for i in same], min(tally.positive_scores[qi]), self.config,
                        limit=self.config.num_negatives - len(chosen), ranks=[window[i].rank for i in same],
                        keys=doc_keys(self.config.seed, qid, [self.doc_ids[window[i].row] for i in same]),
                    )
                    chosen.update(picked)
                    tally.same_group_selected += len(picked)
                    rest = [i for i in rest if i not in chosen]
            by_teacher = self.config.scores_from == "teacher"
            chosen.update(
                sample_negatives(
                    rest,
                    [window[i].teacher if by_teacher else window[i].score for i in rest],  # type: ignore[misc]
                    min(tally.positive_teacher[qi] if by_teacher else tally.positive_scores[qi]),
                    self.config,
                    limit=self.config.num_negatives - len(chosen),
                    ranks=[window[i].rank for i in rest],
                    keys=doc_keys(self.config.seed, qid, [self.doc_ids[window[i].row] for i in rest]),
                )
            )
            fallback = sum(1 for i in chosen if window[i].fallback)
            if fallback:
                tally.fallback_queries += 1
                tally.fallback_selected += fallback
            tally.candidates += len(window)
            tally.eligible += len(eligible)
            # What sampling chose from: up to ELIGIBLE_SAMPLE scores per query, evenly spaced by rank.
            step = max(1, -(-len(eligible) // ELIGIBLE_SAMPLE))
            tally.eligible_scores += [window[i].score for i in eligible[::step]]
            for cand in window:
                if cand.filter:
                    tally.removed[cand.filter] = tally.removed.get(cand.filter, 0) + 1
            tally.per_query[qi] = len(chosen)
            columns["query_id"] += [qid] * len(window)
            columns["doc_id"] += [self.doc_ids[c.row] for c in window]
            columns["rank"] += [c.rank for c in window]
            columns["score"] += [c.score for c in window]
            columns["teacher_score"] += [c.teacher for c in window]
            columns["selected"] += [i in chosen for i in range(len(window))]
            columns["filter"] += [c.filter or c.fallback for c in window]  # a fallback pick names the margin it overrode
            columns["confirmed"] += [c.confirmed for c in window]
            lowest_positive = min(tally.positive_scores.get(qi) or [float("nan")])
            for i in sorted(chosen):
                cand = window[i]
                tally.negative_scores.append(cand.score)
                if lowest_positive == lowest_positive:  # not NaN
                    tally.gaps.append(lowest_positive - cand.score)
                tally.selected_ranks.append(cand.rank)
                if cand.teacher is not None:
                    tally.negative_teacher.append(cand.teacher)
        return pa.table(columns, schema=CANDIDATES_SCHEMA)
