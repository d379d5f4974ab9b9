"""`hardneg train`: fine-tune a sentence-transformers bi-encoder on a sentence-transformers export.

Rows are (query, positive, negative_1..negative_N) from `hardneg export --format
sentence-transformers`; the first ``negatives`` negative columns are used (0: in-batch negatives
only). The loss is MultipleNegativesRankingLoss, or its GradCache variant (`cached-mnrl`) that
decouples the batch size (what the loss sees) from the memory a forward pass needs. Batches never
hold the same text twice (a duplicate would be a false in-batch negative).

The checkpoint is a normal sentence-transformers directory (it loads with
``SentenceTransformer(path)`` and as ``--model path``) plus a manifest. It keeps the base model's
prompts. Its identity for the embedding cache is the sha256 of its weight files, never its path, so
a checkpoint retrained in place is re-embedded. An up-to-date checkpoint (same base weights, same
training data, same config) is reused, not retrained.
"""

from __future__ import annotations

import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from hardneg.artifacts import (
    KIND_EXPORT,
    KIND_MODEL,
    atomic_dir,
    check_existing,
    file_fingerprint,
    fingerprint,
    read_manifest,
    write_manifest,
)
from hardneg.config import EmbedConfig, TrainConfig, as_dict
from hardneg.encoders import resolve_model, tune_child_allocators, weights_fingerprint
from hardneg.errors import ArtifactError, ConfigError, ModelError
from hardneg.export import ST_FILE
from hardneg.progress import NULL_REPORTER, Reporter

TRAIN_VERSION = "train-v1"


@dataclass
class TrainResult:
    path: Path
    manifest: dict[str, Any]
    reused: bool


def training_columns(export_dir: Path, negatives: int) -> tuple[Path, list[str]]:
    """The export's training file and the columns to train on: query, positive, negative_1..N."""
    manifest = read_manifest(export_dir, KIND_EXPORT)
    fmt = manifest.get("config", {}).get("format")
    if fmt != "sentence-transformers":
        raise ArtifactError(
            f"{export_dir}: a '{fmt}' export; `hardneg train` reads a sentence-transformers export "
            f"(hardneg export RUN --format sentence-transformers --out DIR)"
        )
    path = export_dir / ST_FILE
    names = pq.read_schema(path).names
    available = [c for c in names if c.startswith("negative_")]
    if negatives > len(available):
        raise ConfigError(
            f"--negatives-per-row {negatives}: {export_dir} has only {len(available)} negative column(s); "
            "export with a larger --nway or lower --negatives-per-row"
        )
    return path, ["query", "positive"] + available[:negatives]


def train(
    export_dir: str | Path,
    out: str | Path,
    config: TrainConfig,
    model: EmbedConfig,
    *,
    force: bool = False,
    reporter: Reporter = NULL_REPORTER,
) -> TrainResult:
    """Fine-tune ``model`` on an export and save the checkpoint at ``out`` (atomically).

    Args:
        export_dir: a sentence-transformers export (from `hardneg export`).
        out: the checkpoint directory to write.
        config: loss, epochs, batch size, learning rate, negatives per row, seed.
        model: which model to start from (its `model`, prompts and `max_length` are used).
        force: retrain even when an up-to-date checkpoint is at ``out``; replace a foreign directory.
        reporter: progress and status sink.
    """
    export_dir, out = Path(export_dir), Path(out)
    data_path, columns = training_columns(export_dir, config.negatives)
    spec = resolve_model(model)
    if spec.path is None:
        raise ModelError(f"'{spec.name}' has no weights to fine-tune; start from --model minilm or a local model directory")
    base_fp = weights_fingerprint(spec.path)
    data_fp = file_fingerprint(data_path)
    max_length = config.max_length or model.max_length
    fp = fingerprint(
        TRAIN_VERSION, base_fp, spec.query_prompt, spec.corpus_prompt, data_fp, columns, as_dict(config), max_length
    )
    identity = {"base_model_fingerprint": base_fp, "data_fingerprint": data_fp}
    existing = check_existing(out, fp, identity, force)
    if existing is not None:
        reporter.log(f"checkpoint at {out} is up to date; reusing it")
        return TrainResult(out, existing, reused=True)

    table = pq.read_table(data_path, columns=columns)
    if table.num_rows == 0:
        raise ArtifactError(f"{data_path}: no training rows")
    started = time.perf_counter()
    with atomic_dir(out) as tmp:
        st, summary = _fit(spec.path, spec.query_prompt, spec.corpus_prompt, table.to_pydict(), columns, config, max_length, tmp, reporter)
        if spec.query_prompt or spec.corpus_prompt:
            st.prompts = {"query": spec.query_prompt, "document": spec.corpus_prompt}
        st.save(str(tmp), create_model_card=False)
        manifest = write_manifest(
            tmp,
            KIND_MODEL,
            fingerprint=fp,
            identity=identity,
            weights_fingerprint=weights_fingerprint(tmp),
            base_model={"name": spec.name, "path": spec.path, "fingerprint": base_fp},
            prompts={"query": spec.query_prompt, "corpus": spec.corpus_prompt},
            data={"export": str(export_dir.resolve()), "file": ST_FILE, "fingerprint": data_fp, "rows": table.num_rows, "columns": columns},
            config=as_dict(config),
            max_length=max_length,
            training={**summary, "seconds": round(time.perf_counter() - started, 1)},
        )
    return TrainResult(out, manifest, reused=False)


def _fit(
    base: str,
    query_prompt: str,
    corpus_prompt: str,
    data: dict[str, list[str]],
    columns: list[str],
    config: TrainConfig,
    max_length: int | None,
    tmp: Path,
    reporter: Reporter,
) -> tuple[Any, dict[str, Any]]:
    """Run sentence-transformers' Trainer; returns the trained model and a loss/steps summary."""
    import torch
    from datasets import Dataset
    from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    try:  # sentence-transformers >= 6 moved these; the old paths still work there, with a warning
        from sentence_transformers.sentence_transformer.losses import (
            CachedMultipleNegativesRankingLoss,
            MultipleNegativesRankingLoss,
        )
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers
    except ImportError:  # pragma: no cover - sentence-transformers < 6
        from sentence_transformers.losses import CachedMultipleNegativesRankingLoss, MultipleNegativesRankingLoss
        from sentence_transformers.training_args import BatchSamplers
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars; hardneg shows its own progress
    tune_child_allocators()

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)
    device = config.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        st = SentenceTransformer(base, device=device, local_files_only=True)
    except Exception as exc:  # a broken checkpoint directory
        raise ModelError(f"cannot load model '{base}' ({exc.__class__.__name__}: {exc})") from None
    if max_length:
        st.max_seq_length = max_length
    # The model card is not written (save(create_model_card=False)); skip its widget examples.
    st.model_card_data.set_widget_examples = lambda dataset: None
    loss = (
        CachedMultipleNegativesRankingLoss(st, mini_batch_size=config.mini_batch_size)
        if config.loss == "cached-mnrl"
        else MultipleNegativesRankingLoss(st)
    )
    prompts = None
    if query_prompt or corpus_prompt:
        prompts = {c: (query_prompt if c == "query" else corpus_prompt) for c in columns}
    steps_total = -(-len(data["query"]) // config.batch_size) * config.epochs
    label = "Training"

    class _Progress(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            reporter.progress(label, 1)

    args = SentenceTransformerTrainingArguments(
        output_dir=str(tmp / "_trainer"),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=int(config.warmup_ratio * steps_total),  # warmup_ratio is deprecated in transformers 5
        seed=config.seed,
        data_seed=config.seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        logging_steps=max(1, steps_total // 10),
        use_cpu=device == "cpu",
        fp16=device.startswith("cuda"),
        disable_tqdm=True,
        prompts=prompts,
        dataloader_drop_last=False,
    )
    dataset = Dataset.from_dict({c: data[c] for c in columns})
    trainer = SentenceTransformerTrainer(model=st, args=args, train_dataset=dataset, loss=loss)
    # Printing callbacks write to stdout (results go there); the model-card callback embeds widget
    # examples (slow, and the card is not written).
    for callback in (PrinterCallback, ProgressCallback, *_model_card_callbacks()):
        trainer.remove_callback(callback)
    trainer.add_callback(_Progress())
    reporter.progress(label, 0, steps_total)
    output = trainer.train()
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    shutil.rmtree(tmp / "_trainer", ignore_errors=True)
    summary = {
        "steps": int(output.global_step),
        "training_loss": round(float(output.training_loss), 5),
        "loss_curve": [round(float(x), 5) for x in losses],
        "device": device,
        "rows": len(data["query"]),
    }
    return st, summary


def _model_card_callbacks() -> list[Any]:
    try:
        from sentence_transformers.sentence_transformer.model_card import ModelCardCallback
    except ImportError:  # pragma: no cover - sentence-transformers < 6
        try:
            from sentence_transformers.model_card import ModelCardCallback
        except ImportError:
            return []
    return [ModelCardCallback]
