"""Searching an index artifact: exact chunked top-k or Voyager HNSW, with one distance -> score rule.

Scores are cosine similarities of L2-normalised vectors. Results are ordered by score, highest first,
ties broken by the lower document label, so rankings are deterministic.
"""

from __future__ import annotations

import functools
import re
import sys
import unicodedata
from pathlib import Path
from typing import Any

import numpy as np

from hardneg.artifacts import DOC_IDS_FILE, HNSW_FILE, KIND_INDEX, VECTORS_FILE, hash_key, read_manifest
from hardneg.errors import ArtifactError
from hardneg.readers import gather_rows, load_vectors, read_table, release_pages

DEFAULT_EF_FACTOR = 4
"""HNSW search depth when none is configured: 4 x k. Measured with scripts/benchmark_scale.py on
vectors shaped like MiniLM's (100k documents, M 16): recall@110 is 0.93 at ef 2 x k and 0.98 at
4 x k (docs/benchmarks.md)."""


TUNED_EF_FACTORS = (DEFAULT_EF_FACTOR, 8, 16)
"""Search depths (x k) the index stage tries, shallowest first, to reach its target recall."""


SCORE_ROWS = 128
"""Query rows per exact-scoring slice in ``Searcher.score``."""


def search_ef(k: int, ef_search: int | None, factor: int = DEFAULT_EF_FACTOR) -> int:
    """The HNSW ``query_ef`` for top-``k``: the configured depth (never below k), else ``factor`` x k
    (the index's tuned factor, 4 by default)."""
    return max(ef_search, k) if ef_search else factor * k


def sort_topk(labels: np.ndarray, scores: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort each row by score descending, then label ascending."""
    order = np.lexsort((labels, -scores), axis=-1)
    return np.take_along_axis(labels, order, axis=1), np.take_along_axis(scores, order, axis=1)


def _partial_topk(scores: np.ndarray, labels: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    n = scores.shape[1]
    if n <= k:
        return labels, scores
    idx = np.argpartition(scores, n - k, axis=1)[:, n - k :]  # the k largest, unordered
    return np.take_along_axis(labels, idx, axis=1), np.take_along_axis(scores, idx, axis=1)


CHUNK_ELEMENTS = 1 << 23
"""Upper bound on queries x documents per matrix product in exact search (32 MB of scores, 64 MB of
partition indices), so the working memory of a query batch does not grow with the corpus."""


def exact_topk(matrix: np.ndarray, queries: np.ndarray, k: int, chunk: int = 65536) -> tuple[np.ndarray, np.ndarray]:
    """Top-k by inner product over ``matrix`` (n x d, may be a memmap), streaming it in chunks of at
    most ``chunk`` rows and ``CHUNK_ELEMENTS`` scores.

    Memory is O(len(queries) x chunk), whatever the corpus size; the pages of a memory-mapped matrix
    are released after each chunk, so resident memory does not grow to the whole file either.
    """
    n = matrix.shape[0]
    k = min(k, n)
    b = queries.shape[0]
    chunk = max(k, min(chunk, CHUNK_ELEMENTS // max(1, b)))
    best_labels = np.empty((b, 0), dtype=np.int64)
    best_scores = np.empty((b, 0), dtype=np.float32)
    for start in range(0, n, chunk):
        view = matrix[start : start + chunk]
        block = np.asarray(view, dtype=np.float32)
        scores = queries @ block.T
        release_pages(view)
        labels = np.broadcast_to(np.arange(start, start + block.shape[0], dtype=np.int64), scores.shape)
        top_labels, top_scores = _partial_topk(scores, labels, k)
        best_labels = np.concatenate([best_labels, top_labels], axis=1)
        best_scores = np.concatenate([best_scores, top_scores], axis=1)
        best_labels, best_scores = _partial_topk(best_scores, best_labels, k)
    return sort_topk(best_labels, best_scores)


class Searcher:
    """Loads an index artifact and answers batched top-k queries."""

    def __init__(self, index_dir: str | Path, *, ef_search: int | None = None, chunk: int = 65536) -> None:
        self.path = Path(index_dir)
        self.manifest = read_manifest(self.path, KIND_INDEX)
        vectors_path = self.path / VECTORS_FILE
        if not vectors_path.is_file():
            raise ArtifactError(f"{self.path}: missing {VECTORS_FILE}; rebuild the index with --force")
        self.vectors = load_vectors(vectors_path)
        self.backend: str = self.manifest["backend"]
        self.chunk = chunk
        params = self.manifest.get("params", {})
        self.ef_search = ef_search if ef_search is not None else params.get("ef_search")
        self.ef_factor: int = params.get("ef_factor", DEFAULT_EF_FACTOR)
        self._hnsw: Any = None
        self.fallbacks = 0
        """Queries answered by exact search because HNSW returned fewer than k results."""
        if self.backend == "hnsw":
            import voyager

            try:
                self._hnsw = voyager.Index.load(str(self.path / HNSW_FILE))
            except Exception as exc:
                raise ArtifactError(f"{self.path / HNSW_FILE}: cannot load the HNSW index ({exc})") from None

    @property
    def size(self) -> int:
        return int(self.vectors.shape[0])

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Top-``k`` labels and scores per query row.

        Scores come from ``score`` (one dot product per pair), never from the batched matrix product:
        a matrix product's last bits depend on the batch shape, which would let near-ties flip with
        the batch size or the query order. Exact search therefore over-fetches a margin of candidates
        with the fast product and ranks them by the rescored values.
        """
        # A plain, writable, C-contiguous float32 ndarray: Voyager's bindings reject read-only
        # arrays such as slices of the memory-mapped vectors.
        queries = np.array(queries, dtype=np.float32, order="C", copy=True).view(np.ndarray)
        k = min(k, self.size)
        if self._hnsw is None:
            fetch = min(self.size, k + max(16, k // 4))
            labels, _ = exact_topk(self.vectors, queries, fetch, self.chunk)
        else:
            labels = self._hnsw_query(queries, k)
        # Also makes HNSW scores exact: with e4m3 storage the index's own distances are approximate.
        labels, scores = sort_topk(labels, self.score(queries, labels))
        return labels[:, :k], scores[:, :k]

    def _hnsw_query(self, queries: np.ndarray, k: int) -> np.ndarray:
        """HNSW top-k; when the graph yields fewer than k (spotify/voyager#38), search deeper, and
        as a last resort answer that batch exactly rather than return short rankings."""
        import voyager

        ef = search_ef(k, self.ef_search, self.ef_factor)
        for depth in (ef, max(4 * ef, 1000)):
            try:
                labels, _ = self._hnsw.query(queries, k=k, query_ef=depth)
                return labels.astype(np.int64)
            except voyager.RecallError:
                continue
        self.fallbacks += len(queries)
        labels, _ = exact_topk(self.vectors, queries, k, self.chunk)
        return labels

    def score(self, queries: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Exact scores of ``labels`` (b x m) for each query row (b x d)."""
        flat = np.unique(labels)  # sorted: the mapped file is read in order
        pos = np.searchsorted(flat, labels)
        rows = gather_rows(self.vectors, flat)
        queries = np.asarray(queries, dtype=np.float32)
        out = np.empty(labels.shape, dtype=np.float32)
        # einsum without BLAS: each score is the same loop over d whatever the batch shape, so the
        # query rows go in slices that bound the b x m x d gather (~20 MB at 128 x 110 x 384).
        for start in range(0, len(labels), SCORE_ROWS):
            stop = start + SCORE_ROWS
            out[start:stop] = np.einsum("bmd,bd->bm", rows[pos[start:stop]], queries[start:stop], optimize=False)
        return out


def load_doc_ids(index_dir: str | Path) -> tuple[list[str], np.ndarray]:
    """Document ids by label, and the 64-bit prefix of each document's normalised-text hash."""

    table = read_table(Path(index_dir) / DOC_IDS_FILE, columns=["doc_id", "text_hash"])
    ids = table.column("doc_id").to_pylist()
    hashes = np.array([hash_key(h) for h in table.column("text_hash").to_pylist()], dtype=np.uint64)
    return ids, hashes


# Scripts written without spaces between words: Han, Hiragana, Katakana, Hangul (as Lucene's
# CJKBigramFilter), Thai, Lao, Myanmar and Khmer. A run of them is indexed as overlapping bigrams.
UNSEGMENTED_SCRIPTS = re.compile(
    "([\u0e00-\u0eff\u1000-\u109f\u1780-\u17ff\u1100-\u11ff\u3040-\u30ff\u3130-\u318f\u3400-\u4dbf"
    "\u4e00-\u9fff\ua960-\ua97f\uac00-\ud7af\uf900-\ufaff\U00020000-\U0003134f]+)"
)


@functools.cache
def _word() -> re.Pattern[str]:
    """A word: ``\\w`` characters and combining marks (``\\w`` alone leaves out Devanagari's and
    Thai's vowel signs, cutting नमस्ते into four terms)."""
    marks, start = [], None
    for code in range(sys.maxunicode + 2):
        is_mark = code <= sys.maxunicode and unicodedata.category(chr(code)).startswith("M")
        if is_mark and start is None:
            start = code
        elif not is_mark and start is not None:
            marks.append(f"{re.escape(chr(start))}-{re.escape(chr(code - 1))}")
            start = None
    return re.compile(f"[\\w{''.join(marks)}]+")


LEXICAL_TERMS = "terms-v2"  # v2: lexical_tokens (CJK bigrams, combining marks); v1 was bm25s.tokenize


def lexical_tokens(text: str) -> list[str]:
    """BM25 terms of a text: NFKC, case-folded words of two or more characters (bm25s' own rule),
    and in scripts written without spaces (Chinese, Japanese, Korean, Thai, ...) the overlapping
    character bigrams of each run (a lone character is its own term). bm25s' tokenizer took a whole
    Chinese sentence as one term, so BM25 matched almost nothing in Chinese."""
    terms: list[str] = []
    for word in _word().findall(unicodedata.normalize("NFKC", text).casefold()):
        for i, part in enumerate(UNSEGMENTED_SCRIPTS.split(word)):
            if i % 2:  # a run of an unsegmented script
                terms.extend([part] if len(part) == 1 else [part[j : j + 2] for j in range(len(part) - 1)])
            elif len(part) >= 2:
                terms.append(part)
    return terms


class LexicalSearcher:
    """BM25 (bm25s) over document texts (terms: ``lexical_tokens``), labels = corpus row numbers;
    ties broken by lower label."""

    def __init__(self, texts: list[str]) -> None:
        import bm25s

        self.size = len(texts)
        self.retriever = bm25s.BM25()
        self.retriever.index([lexical_tokens(t) for t in texts], show_progress=False)

    def search(self, queries: list[str], k: int) -> np.ndarray:
        """Top-``k`` labels per query, best first (documents sharing no term with the query follow,
        in label order)."""
        k = min(k, self.size)
        tokens = [lexical_tokens(q) for q in queries]
        labels, scores = self.retriever.retrieve(tokens, k=k, show_progress=False, n_threads=1)
        labels = np.asarray(labels, dtype=np.int64)
        return sort_topk(labels, np.asarray(scores, dtype=np.float32))[0]


def fuse_rrf(first: np.ndarray, second: np.ndarray, k: int, depth: int) -> np.ndarray:
    """Reciprocal-rank fusion of two ranked label lists per row: sum of 1 / (k + rank + 1) over the
    lists a document appears in. Returns the top ``depth`` labels per row, ties by lower label."""
    out = np.empty((first.shape[0], depth), dtype=np.int64)
    for row in range(first.shape[0]):
        fused: dict[int, float] = {}
        for ranking in (first[row], second[row]):
            for rank, label in enumerate(ranking.tolist()):
                fused[label] = fused.get(label, 0.0) + 1.0 / (k + rank + 1)
        order = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:depth]
        out[row, : len(order)] = [label for label, _ in order]
    return out


class Retriever:
    """Whose ranking defines ranks: `dense` (the embeddings), `bm25`, `hybrid` (reciprocal-rank
    fusion of the two top-``depth`` lists), or `run` (``ranking``: each query id's rows, best first,
    from a run file). Scores are always the embedding cosines, so margins, the near-duplicate filter
    and SimANS work the same for every retriever."""

    def __init__(self, searcher: Searcher, kind: str, depth: int, *, texts: list[str] | None = None, rrf_k: int = 60,
                 ranking: dict[str, list[int]] | None = None) -> None:
        self.searcher, self.kind, self.rrf_k, self.ranking = searcher, kind, rrf_k, ranking
        self.depth = min(depth, searcher.size)
        self.lexical = LexicalSearcher(texts) if kind in ("bm25", "hybrid") and texts is not None else None
        if kind in ("bm25", "hybrid") and self.lexical is None:
            raise ValueError(f"retriever {kind!r} needs the corpus texts")
        if (kind == "run") != (ranking is not None):
            raise ValueError("retriever 'run' and a ranking go together")

    def retrieve(self, vectors: np.ndarray, queries: list[str], query_ids: list[str] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(rows, scores) of the top ``depth`` documents per query, best first; a run file's shorter
        list is padded with row -1 (score NaN)."""
        if self.ranking is not None:
            assert query_ids is not None
            rows = np.full((len(query_ids), self.depth), -1, dtype=np.int64)
            for i, qid in enumerate(query_ids):
                ranked = self.ranking.get(qid, [])[: self.depth]
                rows[i, : len(ranked)] = ranked
            scores = self.searcher.score(vectors, np.where(rows >= 0, rows, 0))
            return rows, np.where(rows >= 0, scores, np.nan).astype(np.float32)
        rows, scores = self.searcher.search(vectors, self.depth)
        if self.lexical is not None:
            lexical = self.lexical.search(queries, self.depth)
            rows = lexical if self.kind == "bm25" else fuse_rrf(rows, lexical, self.rrf_k, self.depth)
            scores = self.searcher.score(vectors, rows)
        return rows, scores
