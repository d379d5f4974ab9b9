"""ColBERT scoring and search: MaxSim against a brute-force loop, tie order, architecture detection."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hardneg.late_interaction import TopK, maxsim_scores, model_architecture

torch = pytest.importorskip("torch")


def _brute_maxsim(q: np.ndarray, d: np.ndarray) -> float:
    return float(sum(max(float(qt @ dt) for dt in d) for qt in q))


def test_maxsim_matches_a_brute_force_loop_with_padding_on_both_sides():
    rng = np.random.default_rng(0)
    queries = [rng.normal(size=(n, 8)).astype(np.float32) for n in (3, 5, 1)]
    docs = [rng.normal(size=(n, 8)).astype(np.float32) for n in (7, 2, 4, 9)]
    from hardneg.late_interaction import _padded

    q, qm = _padded(queries, torch)
    d, dm = _padded(docs, torch)
    got = maxsim_scores(q, qm, d, dm).numpy()
    want = np.array([[_brute_maxsim(a, b) for b in docs] for a in queries])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_running_top_k_keeps_the_best_and_breaks_ties_by_corpus_position():
    top = TopK(queries=2, k=3)
    top.add(np.array([[0.5, 0.9, 0.5], [0.1, 0.2, 0.3]], dtype=np.float32), 0)
    top.add(np.array([[0.5, 0.95], [0.3, 0.0]], dtype=np.float32), 3)
    assert top.labels.tolist() == [[4, 1, 0], [2, 3, 1]]
    # Chunking does not change the answer.
    one = TopK(queries=2, k=3)
    one.add(np.array([[0.5, 0.9, 0.5, 0.5, 0.95], [0.1, 0.2, 0.3, 0.3, 0.0]], dtype=np.float32), 0)
    assert one.labels.tolist() == top.labels.tolist()


def test_architecture_is_read_from_the_checkpoint(tmp_path):
    def checkpoint(name: str, model_type: str | None) -> str:
        path = tmp_path / name
        path.mkdir()
        config = {"__version__": {}} | ({"model_type": model_type} if model_type else {})
        (path / "config_sentence_transformers.json").write_text(json.dumps(config))
        return str(path)

    assert model_architecture(checkpoint("mve", "MultiVectorEncoder")) == "colbert"
    assert model_architecture(checkpoint("pylate", "ColBERT")) == "colbert"
    assert model_architecture(checkpoint("ce", "CrossEncoder")) == "cross-encoder"
    assert model_architecture(checkpoint("st", None)) == "biencoder"
    stanford = tmp_path / "stanford"
    stanford.mkdir()
    (stanford / "artifact.metadata").write_text("{}")
    assert model_architecture(str(stanford)) == "colbert"
    assert model_architecture(None) == "biencoder"
    assert model_architecture(str(tmp_path / "missing")) == "biencoder"
