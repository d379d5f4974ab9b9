"""Artifacts: atomic directory writes, manifests, and the distance -> score rule."""

from __future__ import annotations

import numpy as np
import pytest

from hardneg.artifacts import normalize_text, read_manifest, text_hash, write_manifest
from hardneg.errors import ArtifactError
from hardneg.search import exact_topk
from hardneg.writes import atomic_dir


def test_atomic_dir_replaces_only_on_success(tmp_path):
    out = tmp_path / "art"
    with atomic_dir(out) as tmp:
        (tmp / "data.txt").write_text("v1")
        write_manifest(tmp, "mine-run")
    assert (out / "data.txt").read_text() == "v1"
    with pytest.raises(RuntimeError):
        with atomic_dir(out) as tmp:
            (tmp / "data.txt").write_text("v2 half written")
            raise RuntimeError("crash mid-write")
    assert (out / "data.txt").read_text() == "v1"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["art"]  # no temporary directory left


def test_unwritable_parent_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(ArtifactError, match="cannot create the parent directory"):
        with atomic_dir(blocker / "sub" / "out"):
            pass


def test_manifest_kind_and_completeness_are_checked(tmp_path):
    (tmp_path / "half").mkdir()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        read_manifest(tmp_path / "half")
    (tmp_path / "run").mkdir()
    write_manifest(tmp_path / "run", "mine-run")
    with pytest.raises(ArtifactError, match="expected an 'index' artifact, found a 'mine-run' artifact"):
        read_manifest(tmp_path / "run", "index")


def test_duplicate_detection_normalises_case_space_and_unicode():
    assert normalize_text("  Café\u00a0au  LAIT\n") == "café au lait"
    assert text_hash("ﬁne Print") == text_hash("fine print")
    assert text_hash("fine print") != text_hash("fine prints")


def test_exact_topk_is_chunk_size_independent_and_breaks_ties_by_label():
    rng = np.random.default_rng(0)
    matrix = rng.normal(size=(1000, 16)).astype(np.float32)
    matrix[500] = matrix[10]  # an exact tie
    queries = np.concatenate([matrix[10:11], rng.normal(size=(4, 16)).astype(np.float32)])
    a_labels, a_scores = exact_topk(matrix, queries, 20, chunk=64)
    b_labels, b_scores = exact_topk(matrix, queries, 20, chunk=100_000)
    assert np.array_equal(a_labels, b_labels)
    assert list(a_labels[0, :2]) == [10, 500]
    brute = np.argsort(-(queries @ matrix.T), axis=1, kind="stable")[:, :20]
    assert np.array_equal(np.sort(brute, axis=1), np.sort(a_labels, axis=1))


def test_hnsw_short_results_fall_back_instead_of_returning_short_rankings(tmp_path, monkeypatch):
    import voyager

    from hardneg.config import EmbedConfig, IndexConfig
    from hardneg.index import build_index
    from hardneg.pipeline import ensure_embeddings
    from hardneg.search import Searcher
    from tests.conftest import TINY_BEIR

    emb = ensure_embeddings(TINY_BEIR, EmbedConfig(model="hashing"), tmp_path / "wd")
    idx = build_index(emb, tmp_path / "idx", IndexConfig(backend="hnsw")).path
    searcher = Searcher(idx)
    queries = np.asarray(searcher.vectors[:3])
    expected = searcher.search(queries, 30)

    class Short:
        def query(self, *args, **kwargs):
            raise voyager.RecallError("Fewer than expected results were retrieved")

    searcher._hnsw = Short()
    labels, scores = searcher.search(queries, 30)
    assert labels.shape == (3, 30) and searcher.fallbacks == 3
    assert np.array_equal(scores, expected[1]) or np.allclose(np.sort(scores), np.sort(expected[1]), atol=1e-6)


def test_exact_topk_over_a_memmap_matches_in_memory_and_releases_its_pages(tmp_path):
    rng = np.random.default_rng(1)
    matrix = rng.normal(size=(20_000, 32)).astype(np.float32)
    np.save(tmp_path / "v.npy", matrix)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    queries = rng.normal(size=(64, 32)).astype(np.float32)
    a = exact_topk(matrix, queries, 50, chunk=3000)
    b = exact_topk(mapped, queries, 50, chunk=3000)
    assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1])

    def resident_kb() -> int:  # this process's file-backed resident memory
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1])
        return 0

    if not hasattr(mapped, "_mmap") or not __import__("os").path.exists("/proc/self/status"):
        pytest.skip("needs numpy memmaps and /proc")
    before = resident_kb()
    float(np.asarray(mapped).sum())  # touch all 2.4 MB
    assert resident_kb() - before > 1500
    from hardneg.readers import release_pages

    release_pages(mapped)
    assert resident_kb() - before < 500


def test_gather_rows_matches_fancy_indexing_and_never_maps_the_whole_file(tmp_path, monkeypatch):
    import hardneg.readers as artifacts

    rng = np.random.default_rng(2)
    matrix = rng.normal(size=(40_000, 256)).astype(np.float32)  # 40 MB
    np.save(tmp_path / "v.npy", matrix)
    mapped = np.load(tmp_path / "v.npy", mmap_mode="r")
    rows = np.unique(rng.integers(0, len(matrix), 10_000))
    assert np.array_equal(artifacts.gather_rows(matrix, rows), matrix[rows])
    if not hasattr(mapped, "_mmap") or not __import__("os").path.exists("/proc/self/status"):
        pytest.skip("needs numpy memmaps and /proc")
    np.asarray(mapped).sum()  # the file is in the page cache, so every fault maps its neighbours too
    artifacts.release_pages(mapped)

    def resident_mb() -> float:
        for line in open("/proc/self/status"):
            if line.startswith("RssFile:"):
                return int(line.split()[1]) / 1024
        return 0.0

    peaks: list[float] = []
    release = artifacts.release_pages
    monkeypatch.setattr(artifacts, "release_pages", lambda array: (peaks.append(resident_mb()), release(array)))
    monkeypatch.setattr(artifacts, "GATHER_ROWS", 128)
    baseline = resident_mb()
    assert np.array_equal(artifacts.gather_rows(mapped, rows), matrix[rows])
    # One fancy-indexing call over 10k random rows makes nearly all 40 MB resident; slices of 128
    # rows released in between stay near 128 x 64 KiB of fault-around at most.
    assert len(peaks) == -(-len(rows) // 128)
    assert max(peaks) - baseline < 12


def test_exact_scores_do_not_depend_on_how_the_query_rows_are_sliced(tmp_path, monkeypatch):
    import hardneg.search as search
    from hardneg.config import EmbedConfig, IndexConfig
    from hardneg.index import build_index
    from hardneg.pipeline import ensure_embeddings
    from tests.conftest import TINY_BEIR

    emb = ensure_embeddings(TINY_BEIR, EmbedConfig(model="hashing"), tmp_path / "wd")
    searcher = search.Searcher(build_index(emb, tmp_path / "idx", IndexConfig(backend="exact")).path)
    rng = np.random.default_rng(3)
    queries = rng.normal(size=(37, searcher.vectors.shape[1])).astype(np.float32)
    labels = rng.integers(0, searcher.size, size=(37, 25))
    whole = np.einsum("bmd,bd->bm", np.asarray(searcher.vectors)[labels], queries, optimize=False)
    for rows in (1, 5, 128):
        monkeypatch.setattr(search, "SCORE_ROWS", rows)
        assert searcher.score(queries, labels).tobytes() == whole.astype(np.float32).tobytes()


def test_auto_backend_weighs_query_document_pairs_against_an_hnsw_build():
    from hardneg.config import IndexConfig
    from hardneg.index import choose_backend, estimated_seconds

    auto = IndexConfig()
    assert choose_backend(auto, 5_000, 1_000) == "exact"  # SciFact-sized: no build beats a tiny scan
    assert choose_backend(auto, 10_000_000, 1_000) == "exact"  # few queries: scanning is cheaper than building
    assert choose_backend(auto, 10_000_000, 1_000_000) == "hnsw"  # many queries over a big corpus
    # Measured at 1M x 100k with 2 build threads: exact ~2,100 s, tuned HNSW 1,663 s build + 1,180 s mine.
    assert choose_backend(IndexConfig(threads=2), 1_000_000, 100_000) == "exact"
    assert choose_backend(IndexConfig(threads=2), 2_000_000, 200_000) == "hnsw"
    # e4m3 vectors build slower than float32 ones.
    assert estimated_seconds("hnsw", 10**6, 10**5, IndexConfig(storage="e4m3")) > estimated_seconds("hnsw", 10**6, 10**5, auto)
    # More build threads make HNSW cheaper, never dearer; a forced backend is kept as given.
    assert estimated_seconds("hnsw", 10**6, 10**5, IndexConfig(threads=4)) < estimated_seconds("hnsw", 10**6, 10**5, auto)
    assert choose_backend(IndexConfig(backend="hnsw"), 10, 10) == "hnsw"
    assert choose_backend(IndexConfig(backend="exact"), 10**8, 10**7) == "exact"


def test_default_search_depth_is_four_times_k_and_never_below_k():
    from hardneg.search import search_ef

    assert search_ef(110, None) == 440
    assert search_ef(110, 1000) == 1000
    assert search_ef(110, 50) == 110


def _random_embeddings(root, n_docs: int, n_queries: int, dim: int, seed: int = 0):
    """An embeddings artifact of isotropic random vectors: hard for HNSW, so recall depends on depth."""
    import json

    from hardneg.config import EmbedConfig
    from hardneg.embed import embed
    from hardneg.inputs import load_input
    from tests.conftest import TableEncoder

    rng = np.random.default_rng(seed)
    data = root / "data"
    (data / "qrels").mkdir(parents=True)
    (data / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{i}", "text": f"doc {i}"}) + "\n" for i in range(n_docs)))
    (data / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n" for i in range(n_queries)))
    (data / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\n" for i in range(n_queries)))
    vectors = {f"doc {i}": rng.normal(size=dim) for i in range(n_docs)}
    vectors.update({f"query {i}": rng.normal(size=dim) for i in range(n_queries)})
    return embed(load_input(data), root / "emb", EmbedConfig(), encoder=TableEncoder(vectors)).path


def test_hnsw_search_depth_is_tuned_to_the_target_recall(tmp_path):
    from hardneg.config import IndexConfig
    from hardneg.index import build_index
    from hardneg.search import Searcher

    emb = _random_embeddings(tmp_path, 3000, 100, 32)
    # A sparse graph (M 4) over isotropic vectors: recall@50 grows with the search depth.
    base = dict(backend="hnsw", m=4, ef_construction=16, recall_k=50, recall_sample=100)
    strict = build_index(emb, tmp_path / "strict", IndexConfig(**base, target_recall=1.0)).manifest
    tried = strict["recall"]["by_depth"]
    assert [t["query_ef"] for t in tried] == [200, 400, 800]  # 1.0 is never reached: every depth tried
    assert tried[0]["recall"] < tried[-1]["recall"] < 1.0
    assert strict["params"]["ef_factor"] == 16 and strict["recall"]["recall"] == tried[-1]["recall"]
    searcher = Searcher(tmp_path / "strict")
    depths = []
    real_query = searcher._hnsw.query
    searcher._hnsw = type("Spy", (), {"query": lambda self, q, k, query_ef: (depths.append(query_ef), real_query(q, k=k, query_ef=query_ef))[1]})()
    searcher.search(np.asarray(searcher.vectors[:2]), 30)
    assert depths == [16 * 30]  # search uses the tuned factor for its own k

    target = (tried[0]["recall"] + tried[1]["recall"]) / 2  # reached at the second depth, not the first
    tuned = build_index(emb, tmp_path / "tuned", IndexConfig(**base, target_recall=target)).manifest
    assert [t["query_ef"] for t in tuned["recall"]["by_depth"]] == [200, 400]
    assert tuned["params"]["ef_factor"] == 8 and tuned["recall"]["recall"] >= target

    fixed = build_index(emb, tmp_path / "fixed", IndexConfig(**base, ef_search=300)).manifest
    assert "ef_factor" not in fixed["params"] and "by_depth" not in fixed["recall"]
    assert fixed["recall"]["query_ef"] == 300 and Searcher(tmp_path / "fixed").ef_factor == 4
