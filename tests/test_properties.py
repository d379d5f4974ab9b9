"""Property-based mining invariants over random corpora, judgments and options (hypothesis)."""

from __future__ import annotations

import json
import random
import tempfile
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hardneg.artifacts import normalize_text
from hardneg.config import EmbedConfig, IndexConfig, MineConfig
from hardneg.embed import embed
from hardneg.index import build_index
from hardneg.inputs import load_input
from hardneg.mine import mine
from tests.conftest import TableEncoder


@st.composite
def scenarios(draw):
    n_docs = draw(st.integers(3, 30))
    n_queries = draw(st.integers(1, 6))
    seed = draw(st.integers(0, 2**31 - 1))
    rng = np.random.default_rng(seed)
    texts = [f"doc {i}" for i in range(n_docs)]
    # Some documents repeat another's text (different case, so a different vector): duplicates.
    for i in draw(st.lists(st.integers(1, n_docs - 1), max_size=4)):
        texts[i] = texts[draw(st.integers(0, i - 1))].upper()
    qrels = {f"q{q}": draw(st.lists(st.integers(0, n_docs - 1), min_size=1, max_size=3, unique=True)) for q in range(n_queries)}
    min_rank = draw(st.integers(0, 15))
    options = {
        "min_rank": min_rank,
        "max_rank": draw(st.integers(min_rank + 1, min_rank + 30)),
        "num_negatives": draw(st.integers(1, 12)),
        "sampling": draw(st.sampled_from(["random", "top", "simans"])),
        "dedup_threshold": draw(st.sampled_from([None, 0.98, 0.5])),
        "relative_margin": draw(st.sampled_from([None, 0.05])),
        "seed": draw(st.integers(0, 1000)),
    }
    options["fallback_min_rank"] = None
    if options["relative_margin"] is not None and draw(st.booleans()):
        options["fallback_min_rank"] = draw(st.integers(min_rank, options["max_rank"] - 1))
    vectors = {t: rng.normal(size=8) for t in texts}
    vectors.update({f"query {q}": rng.normal(size=8) for q in range(n_queries)})
    return texts, qrels, options, vectors, seed


def _write(root: Path, texts: list[str], qrels: dict[str, list[int]], order_seed: int | None) -> None:
    (root / "qrels").mkdir(parents=True)
    docs = [json.dumps({"_id": f"d{i}", "text": t}) for i, t in enumerate(texts)]
    queries = [json.dumps({"_id": q, "text": f"query {q[1:]}"}) for q in qrels]
    lines = [f"{q}\td{d}\t1" for q, ds in qrels.items() for d in ds]
    if order_seed is not None:
        # Queries and judgments in any order. The corpus keeps its order: exact ties (identical
        # texts have identical vectors) are broken by corpus position, by design.
        shuffler = random.Random(order_seed)
        for part in (queries, lines):
            shuffler.shuffle(part)
    (root / "corpus.jsonl").write_text("\n".join(docs) + "\n")
    (root / "queries.jsonl").write_text("\n".join(queries) + "\n")
    (root / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(lines) + "\n")


def _run(root: Path, vectors: dict, options: dict, query_batch: int) -> list[dict]:
    encoder = TableEncoder(vectors)
    emb = embed(load_input(root), root / "emb", EmbedConfig(), encoder=encoder).path
    idx = build_index(emb, root / "idx", IndexConfig(backend="exact")).path
    mine(idx, root / "run", MineConfig(query_batch=query_batch, **options), allow_empty=True)
    return pq.read_table(root / "run" / "candidates.parquet").to_pylist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_mining_invariants_hold_for_any_corpus_and_options(scenario):
    texts, qrels, options, vectors, seed = scenario
    with tempfile.TemporaryDirectory() as tmp:
        a, b = Path(tmp) / "a", Path(tmp) / "b"
        _write(a, texts, qrels, None)
        _write(b, texts, qrels, seed)  # same data, queries and qrels shuffled
        rows = _run(a, vectors, options, query_batch=64)
        shuffled = _run(b, vectors, options, query_batch=1)

    selected = [r for r in rows if r["selected"]]
    per_query: dict[str, int] = {}
    for r in selected:
        positives = {f"d{d}" for d in qrels[r["query_id"]]}
        positive_texts = {normalize_text(texts[d]) for d in qrels[r["query_id"]]}
        doc = int(r["doc_id"][1:])
        assert 0 <= doc < len(texts)  # ids exist
        assert r["doc_id"] not in positives  # a positive is never a negative
        assert normalize_text(texts[doc]) not in positive_texts  # nor a copy of one
        assert options["min_rank"] <= r["rank"] < options["max_rank"]  # in the window
        if options["dedup_threshold"] is not None:  # nor a near-duplicate of one
            unit = {t: v / np.linalg.norm(v) for t, v in vectors.items()}
            nearest = max(float(unit[texts[doc]] @ unit[texts[d]]) for d in qrels[r["query_id"]])
            assert nearest < options["dedup_threshold"] + 1e-6
        per_query[r["query_id"]] = per_query.get(r["query_id"], 0) + 1
    assert all(n <= options["num_negatives"] for n in per_query.values())
    # A selected row names a filter only when the margin fallback took it back, from its rank on.
    fallback = options.get("fallback_min_rank")
    for r in selected:
        assert not r["filter"] or (fallback is not None and r["filter"] == "relative-margin" and r["rank"] >= fallback)
    if fallback is not None:  # a query short of negatives had nothing left for the fallback to take
        for q in qrels:
            if per_query.get(q, 0) < options["num_negatives"]:
                assert not [r for r in rows if r["query_id"] == q and r["filter"] == "relative-margin"
                            and not r["selected"] and r["rank"] >= fallback]
    # Deterministic whatever the input order and the batch size.
    key = lambda r: (r["query_id"], r["rank"])  # noqa: E731
    assert sorted((r["query_id"], r["doc_id"], r["rank"], r["selected"], r["filter"]) for r in rows) == sorted(
        (r["query_id"], r["doc_id"], r["rank"], r["selected"], r["filter"]) for r in sorted(shuffled, key=key)
    )
