"""The `colbert` export through colbert-ai's own training data path (0.2.22: `Examples`,
`Queries`, `Collection` and the `LazyBatcher` its Trainer builds), plain triples and `--scores`.

colbert-ai installs beside hardneg's stack as additions only (it is in the `test` extra); its data
loaders import with transformers 5, although its Trainer and Indexer need a CUDA process group."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from tests.conftest import TINY_BEIR, minilm_available

pytest.importorskip("colbert.training.lazy_batcher", reason="needs colbert-ai (the test extra)")
pytestmark = pytest.mark.skipif(not minilm_available(), reason="the query/document tokenizers are MiniLM's (offline)")
runner = CliRunner()
NWAY = 4


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("colbert-ai")
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--model", "hashing", "--min-rank", "0", "--max-rank", "8",
                                 "--num-negatives", "5", "--out", str(root / "run"), "--quiet"])
    assert result.exit_code == 0, result.output
    return root / "run"


@pytest.mark.parametrize("scores", [False, True])
def test_colbert_ais_lazy_batcher_reads_the_export_as_written(run, tmp_path, scores):
    from colbert.infra.config import ColBERTConfig
    from colbert.training.lazy_batcher import LazyBatcher

    from hardneg.models import _bundled_model_path

    out = tmp_path / "colbert"
    args = ["export", str(run), "--format", "colbert", "--nway", str(NWAY), "--out", str(out), "--json"]
    result = runner.invoke(app, args + (["--scores", "--score-transform", "minmax"] if scores else []))
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["stats"]["rows"]
    config = ColBERTConfig(checkpoint=str(_bundled_model_path()), bsize=2, accumsteps=1, nway=NWAY,
                           query_maxlen=16, doc_maxlen=32)
    batcher = LazyBatcher(config, str(out / "triples.train.colbert.jsonl"), str(out / "queries.train.colbert.tsv"),
                          str(out / "corpus.train.colbert.tsv"))
    assert len(batcher) == rows
    queries = {int(q): t for q, t in (line.split("\t", 1) for line in (out / "queries.train.colbert.tsv").read_text().splitlines())}
    corpus = (out / "corpus.train.colbert.tsv").read_text().splitlines()
    first = json.loads((out / "triples.train.colbert.jsonl").read_text().splitlines()[0])
    # colbert-ai resolves the row's qid and pids to the texts hardneg meant (pid == line number).
    assert batcher.queries[first[0]] == queries[first[0]].rstrip("\n")
    pids = [p[0] if scores else p for p in first[1:]]
    assert [batcher.collection[p] for p in pids] == [corpus[p].split("\t", 1)[1] for p in pids]
    batches = list(batcher)
    assert len(batches) == rows // 2
    (q_ids, _), (d_ids, _), target = batches[0][0]
    assert q_ids.shape[0] == 2 and d_ids.shape[0] == 2 * NWAY  # 2 queries x (positive + 3 negatives)
    # Distillation: one teacher score per passage, in row order (the positive first), as exported.
    expected = [float(p[1]) for p in first[1:]] if scores else []
    assert list(target)[: len(expected)] == pytest.approx(expected) and len(target) == (2 * NWAY if scores else 0)
