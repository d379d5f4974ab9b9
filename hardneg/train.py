"""`hardneg train`: fine-tune a bi-encoder, a ColBERT model or a cross-encoder on an export.

Three architectures, all through sentence-transformers (no other training dependency):

- `biencoder`: rows (query, positive, negative_1..negative_N) from `hardneg export --format
  sentence-transformers`; the first ``negatives`` negative columns are used (0: in-batch negatives
  only). MultipleNegativesRankingLoss, or its GradCache variant (`cached-mnrl`) that decouples the
  batch size (what the loss sees) from the memory a forward pass needs. Or knowledge distillation on
  a `pylate-kd` export, as for ColBERT below, with the model's own similarity (cosine for MiniLM) as
  the student's score: a bi-encoder distilled from a stronger ColBERT or cross-encoder teacher
  (TAS-B, RocketQAv2).
- `colbert`: sentence-transformers' native multi-vector encoder (`MultiVectorEncoder`, MaxSim). A
  plain sentence-transformers checkpoint gets a 128-d projection head (seeded); a ColBERT
  checkpoint (ours, PyLate's, Stanford's) is trained as it is. Contrastive (`mnrl`, `cached-mnrl`)
  on the same sentence-transformers export, or knowledge distillation on a `pylate-kd` export:
  `distillation` (KL divergence between the teacher's and the student's score distributions over
  each row's candidates, both min-max normalised per row as PyLate and JaColBERTv2.5 do, no
  in-batch negatives) or `margin-mse`.
- `cross-encoder`: a reranker trained on the sentence-transformers export (RocketQA style): each
  row gives (query, positive) labelled 1 and (query, negative_i) labelled 0, binary cross-entropy
  weighted so positives and negatives count equally. Use it as `hardneg mine --cross-encoder`.

Contrastive batches never hold the same text twice (a duplicate would be a false in-batch negative).

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
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hardneg.artifacts import (
    KIND_EXPORT,
    KIND_MODEL,
    file_fingerprint,
    fingerprint,
    read_manifest,
    text_hash,
    write_manifest,
)
from hardneg.config import EmbedConfig, TrainConfig, as_dict
from hardneg.config import identity as config_identity
from hardneg.encoders import default_device, quiet_transformers, tune_child_allocators
from hardneg.errors import ArtifactError, ConfigError, ModelError
from hardneg.export import PYLATE_DOCUMENTS, PYLATE_QUERIES, PYLATE_TRAIN, ST_FILE
from hardneg.losses import labelled_pairs, minmax_rows, model_and_loss  # noqa: F401 - minmax_rows re-exported
from hardneg.models import require_training_sentence_transformers, resolve_model, weights_fingerprint
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.readers import iter_batches, read_schema, read_table
from hardneg.writes import atomic_dir, prepare_out, prepare_partial, remove_path, writing

TRAIN_VERSION = "train-v2"
SEEN_QUERIES_FILE = "hardneg_seen_queries.txt"
"""Hashes of every query text the checkpoint (and any hardneg checkpoint it started from) trained
on, one per line; `hardneg eval` refuses to score a split whose queries the model has seen."""
KD_LOSSES = ("distillation", "margin-mse")


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
            + (", or distils this one with --loss distillation (or margin-mse)" if fmt == "pylate-kd" else "")
        )
    path = export_dir / ST_FILE
    names = _require_columns(path, ["query", "positive"])
    available = [c for c in names if c.startswith("negative_")]
    if negatives > len(available):
        raise ConfigError(
            f"--negatives-per-row {negatives}: {export_dir} has only {len(available)} negative column(s); "
            "export with a larger --nway or lower --negatives-per-row"
        )
    return path, ["query", "positive"] + available[:negatives]


def _require_columns(path: Path, wanted: list[str]) -> list[str]:
    """The column names of an export's Parquet file; an ArtifactError when one of ``wanted`` is missing
    (a file written by hand, or by another tool, under an export's manifest)."""
    names = read_schema(path).names
    missing = [c for c in wanted if c not in names]
    if missing:
        raise ArtifactError(
            f"{path}: no column {', '.join(repr(c) for c in missing)} (it has {', '.join(names) or 'none'}); "
            "re-export it with hardneg export"
        )
    return list(names)


def seen_queries(model_dir: str | Path | None) -> set[str]:
    """Hashes of the query texts a hardneg checkpoint was trained on (empty for other models)."""
    if model_dir is None:
        return set()
    try:
        return set((Path(model_dir) / SEEN_QUERIES_FILE).read_text(encoding="utf-8").split())
    except OSError:
        return set()


def _export_format(export_dir: Path) -> str | None:
    return read_manifest(export_dir, KIND_EXPORT).get("config", {}).get("format")


def kd_rows(export_dir: Path) -> tuple[dict[str, list[Any]], list[str], dict[str, Any]]:
    """Fixed-width distillation rows from a pylate-kd export: query, document_1..document_N (the
    positive first) and ``label`` (the N teacher scores). N is the widest row; narrower rows (a query
    that was short of negatives) are dropped and counted, since a softmax over a different number of
    candidates is a different target. Returns the columns, their names and a summary."""
    fmt = _export_format(export_dir)
    if fmt != "pylate-kd":
        raise ArtifactError(
            f"{export_dir}: a '{fmt}' export; distillation reads a pylate-kd export "
            f"(hardneg export RUN --format pylate-kd --out DIR)"
        )
    _require_columns(export_dir / PYLATE_TRAIN, ["query_id", "document_ids", "scores"])
    _require_columns(export_dir / PYLATE_QUERIES, ["query_id", "text"])
    _require_columns(export_dir / PYLATE_DOCUMENTS, ["document_id", "text"])
    train_rows = read_table(export_dir / PYLATE_TRAIN, columns=["query_id", "document_ids", "scores"]).to_pylist()
    if not train_rows:
        raise ArtifactError(f"{export_dir / PYLATE_TRAIN}: no training rows")
    queries = {qid: text for qid, text in zip(*read_table(export_dir / PYLATE_QUERIES, columns=["query_id", "text"]).to_pydict().values())
               if isinstance(text, str)}
    for number, row in enumerate(train_rows, 1):
        if not isinstance(row["document_ids"], list) or not isinstance(row["scores"], list):
            raise ArtifactError(f"{export_dir / PYLATE_TRAIN}: row {number}: fields 'document_ids' and 'scores' must be lists")
    wanted = {d for row in train_rows for d in row["document_ids"]}
    documents: dict[str, str] = {}
    for batch in iter_batches(export_dir / PYLATE_DOCUMENTS, columns=["document_id", "text"]):
        for did, text in zip(*batch.to_pydict().values()):
            if did in wanted and isinstance(text, str):  # a null text counts as missing
                documents[did] = text
    width = max(len(row["document_ids"]) for row in train_rows)
    if width < 2:
        raise ArtifactError(f"{export_dir / PYLATE_TRAIN}: rows need a positive and at least one negative")
    names = [f"document_{i}" for i in range(1, width + 1)]
    data: dict[str, list[Any]] = {"query": [], **{n: [] for n in names}, "label": []}
    dropped = 0
    for number, row in enumerate(train_rows, 1):
        ids, scores = row["document_ids"], row["scores"]
        if len(ids) != width:
            dropped += 1
            continue
        missing = [d for d in ids if d not in documents]
        if row["query_id"] not in queries or missing or len(scores) != len(ids):
            raise ArtifactError(f"{export_dir / PYLATE_TRAIN}: row {number}: ids missing from queries/documents (or their text is null), or scores of another length")
        if not all(isinstance(x, (int, float)) and np.isfinite(x) for x in scores):
            raise ArtifactError(f"{export_dir / PYLATE_TRAIN}: row {number}: field 'scores' holds a non-finite value")
        data["query"].append(queries[row["query_id"]])
        for name, did in zip(names, ids):
            data[name].append(documents[did])
        data["label"].append([float(x) for x in scores])
    if not data["query"]:
        raise ArtifactError(f"{export_dir / PYLATE_TRAIN}: no row has the full width of {width} documents")
    return data, ["query", *names], {"width": width, "rows_dropped_short": dropped}


def _training_data(export_dir: Path, config: TrainConfig) -> tuple[Path, dict[str, list[Any]], list[str], dict[str, Any]]:
    """(the file trained on, its columns as lists, the text columns in order, a summary)."""
    loss = config.resolved_loss
    if loss in KD_LOSSES:
        data, columns, summary = kd_rows(export_dir)
        return export_dir / PYLATE_TRAIN, data, columns, summary
    path, columns = training_columns(export_dir, config.negatives)
    if config.architecture == "cross-encoder" and len(columns) < 3:
        raise ConfigError("a cross-encoder learns from negatives: --negatives-per-row must be >= 1")
    table = read_table(path, columns=columns)
    if table.num_rows == 0:
        raise ArtifactError(f"{path}: no training rows")
    for name in columns:
        column = table.column(name)
        if not pa.types.is_string(column.type) and not pa.types.is_large_string(column.type):
            raise ArtifactError(f"{path}: column '{name}' holds {column.type}, not text; re-export it with hardneg export")
        if column.null_count:
            row = column.is_null().to_pylist().index(True) + 1
            raise ArtifactError(f"{path}: row {row}: field '{name}' is null; re-export it with hardneg export")
    return path, table.to_pydict(), columns, {}


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
        export_dir: a sentence-transformers export (from `hardneg export`); a pylate-kd export for
            the distillation losses.
        out: the checkpoint directory to write.
        config: architecture, loss, epochs, batch size, learning rate, negatives per row, seed.
        model: which model to start from (its `model`, prompts and `max_length` are used).
        force: retrain even when an up-to-date checkpoint is at ``out``; replace a foreign directory.
        reporter: progress and status sink.
    """
    require_training_sentence_transformers("hardneg train")
    export_dir, out = Path(export_dir), Path(out)
    data_path, data, columns, data_summary = _training_data(export_dir, config)
    spec = resolve_model(model)
    if spec.path is None:
        raise ModelError(f"'{spec.name}' has no weights to fine-tune; start from --model minilm or a local model directory")
    base_fp = weights_fingerprint(spec.path)
    data_fp = file_fingerprint(data_path)
    max_length = config.max_length or model.max_length
    fp = fingerprint(
        TRAIN_VERSION, base_fp, spec.query_prompt, spec.corpus_prompt, data_fp, columns, config_identity(config), max_length
    )
    identity = {"base_model_fingerprint": base_fp, "data_fingerprint": data_fp}
    with writing(out, [export_dir, *( [spec.path] if spec.path else [])]) as out:
        existing = prepare_out(out, KIND_MODEL, fp, force, what="checkpoint", changed="explain", identity=identity)
        if existing is not None:
            reporter.log(f"checkpoint at {out} is up to date; reusing it")
            return TrainResult(out, existing, reused=True)

        rows = len(data["query"])
        export_manifest = read_manifest(export_dir, KIND_EXPORT)
        started = time.perf_counter()
        # Resumable state of a training that was killed: kept beside --out, named by what it trains.
        partial = out.with_name(out.name + ".partial")
        if config.checkpoint_minutes > 0 or partial.exists():
            prepare_partial(partial, fp, [TRAINER_DIR])
        with atomic_dir(out) as tmp:
            trainer_dir = partial / TRAINER_DIR if partial.exists() else tmp / TRAINER_DIR
            st, summary = _fit(spec.path, spec.query_prompt, spec.corpus_prompt, data, columns, config, max_length, trainer_dir, reporter)
            if (spec.query_prompt or spec.corpus_prompt) and config.architecture != "cross-encoder":
                st.prompts = {"query": spec.query_prompt, "document": spec.corpus_prompt}
            st.save(str(tmp), create_model_card=False)
            seen = seen_queries(spec.path) | {text_hash(q) for q in data["query"]}
            (tmp / SEEN_QUERIES_FILE).write_text("".join(f"{h}\n" for h in sorted(seen)), encoding="utf-8")
            manifest = write_manifest(
                tmp,
                KIND_MODEL,
                fingerprint=fp,
                identity=identity,
                weights_fingerprint=weights_fingerprint(tmp),
                base_model={"name": spec.name, "path": spec.path, "fingerprint": base_fp},
                prompts={"query": spec.query_prompt, "corpus": spec.corpus_prompt},
                data={
                    "export": str(export_dir.resolve()),
                    "file": data_path.name,
                    "fingerprint": data_fp,
                    "rows": rows,
                    "columns": columns,
                    "scores_from": export_manifest.get("scores_from"),
                    "seen_queries": len(seen),
                    **data_summary,
                },
                architecture=config.architecture,
                loss=config.resolved_loss,
                config=as_dict(config),
                max_length=max_length,
                training={**summary, "seconds": round(time.perf_counter() - started, 1)},
            )
        if partial.exists():
            remove_path(partial)
        return TrainResult(out, manifest, reused=False)


TRAINER_DIR = "trainer"
SAVED_MARK = "hardneg-complete"
"""Written into a trainer checkpoint once it is whole: a kill while the trainer writes one leaves it
without the mark, and resuming skips it for the one before (two are kept)."""


def _resumable_checkpoint(trainer_dir: Path) -> Path | None:
    """The latest whole checkpoint (``checkpoint-<step>`` with the mark) under ``trainer_dir``; a
    save the kill cut short is removed, so the trainer's rotation and its next saves never meet it."""
    whole = []
    for path in trainer_dir.glob("checkpoint-*"):
        if (path / SAVED_MARK).is_file() and path.name.split("-")[-1].isdigit():
            whole.append(path)
        else:
            remove_path(path)
    return max(whole, key=lambda p: int(p.name.split("-")[-1]), default=None)


def _fit(
    base: str,
    query_prompt: str,
    corpus_prompt: str,
    data: dict[str, list[Any]],
    columns: list[str],
    config: TrainConfig,
    max_length: int | None,
    trainer_dir: Path,
    reporter: Reporter,
) -> tuple[Any, dict[str, Any]]:
    """Run sentence-transformers' trainer for the architecture; returns the trained model and a
    loss/steps summary. The trainer's state is saved in ``trainer_dir`` every
    ``config.checkpoint_minutes``, and a whole state found there is resumed from."""
    import torch
    from datasets import Dataset
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # weight loading/saving bars; hardneg shows its own progress
    quiet_transformers()  # also the load report of a new head (ColBERT projection, reranker classifier)
    tune_child_allocators()

    random.seed(config.seed)
    np.random.seed(config.seed)
    torch.manual_seed(config.seed)  # also seeds a new ColBERT projection head
    device = config.device or default_device()
    model, loss, trainer_cls, args_cls, batch_sampler = model_and_loss(base, config, device)
    if max_length:
        model.max_seq_length = max_length
    # The model card is not written (save(create_model_card=False)); skip its widget examples.
    if hasattr(model, "model_card_data"):
        model.model_card_data.set_widget_examples = lambda dataset: None
    if config.architecture == "cross-encoder":
        data, columns = labelled_pairs(data, columns)
    prompts = None
    if (query_prompt or corpus_prompt) and config.architecture != "cross-encoder":
        prompts = {c: (query_prompt if c == "query" else corpus_prompt) for c in columns}
    rows = len(data["query"])
    steps_total = -(-rows // config.batch_size) * config.epochs
    label = "Training"

    class _Progress(TrainerCallback):
        """Progress per step; a status line with the loss every tenth of the run (stderr, also when
        it is not a terminal and the bar is off)."""

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            reporter.progress(label, 1)

        def on_log(self, args: Any, state: Any, control: Any, logs: dict[str, Any] | None = None, **kwargs: Any) -> None:
            if logs and "loss" in logs:
                reporter.log(f"training: step {state.global_step}/{steps_total}, loss {float(logs['loss']):.4f}")

    class _Checkpoints(TrainerCallback):
        """A save of the whole training state every ``checkpoint_minutes`` (not at the last step: the
        model itself is saved then), and the mark that says a save is whole."""

        def __init__(self) -> None:
            self.last = time.monotonic()

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            due = time.monotonic() - self.last >= config.checkpoint_minutes * 60
            if config.checkpoint_minutes > 0 and due and state.global_step < state.max_steps:
                control.should_save = True

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            saved = trainer_dir / f"checkpoint-{state.global_step}"
            if saved.is_dir():
                (saved / SAVED_MARK).write_text(f"{state.global_step}\n", encoding="utf-8")
            self.last = time.monotonic()

    # transformers 5 renamed gradient to activation checkpointing, but SentenceTransformer still only
    # has gradient_checkpointing_enable: keep the old name and its deprecation notices off stderr.
    warnings.filterwarnings("ignore", message=".*(gradient|activation)_checkpointing.*", category=FutureWarning)
    checkpointing = config.gradient_checkpointing if config.gradient_checkpointing is not None else device == "cpu"
    extra = {"batch_sampler": batch_sampler} if batch_sampler is not None else {}
    args = args_cls(
        output_dir=str(trainer_dir),
        num_train_epochs=config.epochs,
        per_device_train_batch_size=config.batch_size,
        learning_rate=config.learning_rate,
        warmup_steps=int(config.warmup_ratio * steps_total),  # warmup_ratio is deprecated in transformers 5
        seed=config.seed,
        data_seed=config.seed,
        save_strategy="steps",  # only when _Checkpoints asks
        save_steps=10**12,
        save_total_limit=2,  # the last whole save survives a kill during the next one
        save_only_model=False,
        report_to="none",
        logging_steps=max(1, steps_total // 10),
        use_cpu=device == "cpu",
        fp16=device.startswith("cuda"),
        disable_tqdm=True,
        gradient_checkpointing=checkpointing,
        prompts=prompts,
        dataloader_drop_last=False,
        **extra,
    )
    keep = [*columns, "label"] if "label" in data else columns
    dataset = Dataset.from_dict({c: data[c] for c in keep})
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, loss=loss)
    # Printing callbacks write to stdout (results go there); the model-card callback embeds widget
    # examples (slow, and the card is not written).
    for callback in (PrinterCallback, ProgressCallback, *_model_card_callbacks()):
        trainer.remove_callback(callback)
    trainer.add_callback(_Progress())
    trainer.add_callback(_Checkpoints())
    resume = _resumable_checkpoint(trainer_dir)
    reporter.log(f"training {config.architecture} ({config.resolved_loss}) on {device}: {rows:,} rows, {steps_total:,} steps "
                 f"of {config.batch_size}{', gradient checkpointing' if checkpointing else ''}"
                 f"{f', resuming after step {resume.name.split(chr(45))[-1]} ({resume.parent.parent})' if resume else ''}")
    reporter.progress(label, int(resume.name.split("-")[-1]) if resume else 0, steps_total)
    output = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    losses = [round(float(entry["loss"]), 5) for entry in trainer.state.log_history if "loss" in entry]
    shutil.rmtree(trainer_dir, ignore_errors=True)
    summary = {
        "steps": int(output.global_step),
        "training_loss": round(float(output.training_loss), 5),
        "loss_curve": losses,
        "device": device,
        "rows": rows,
    }
    if resume is not None:
        summary["resumed_after_step"] = int(resume.name.split("-")[-1])
    if config.architecture == "cross-encoder":
        from hardneg.losses import bce_chance_loss, stayed_at_chance

        chance = round(bce_chance_loss(config.negatives), 5)
        summary["chance_loss"] = chance
        if stayed_at_chance(losses, config.negatives):
            reporter.log(
                f"warning: the cross-encoder's training loss stayed at chance level ({losses[-1]:.4f}; {chance:.4f} "
                "for a reranker that scores every pair 0.5): it learned next to nothing, "
                "and as a teacher its scores are noise. Give it more training pairs, more --epochs or a higher "
                "--learning-rate (its new classifier head moves slowly at 2e-5), and check it with "
                "`hardneg eval DATA --model RETRIEVER --rerank CHECKPOINT` before mining with it."
            )
    return model, summary


def _model_card_callbacks() -> list[Any]:
    import importlib

    for module in ("sentence_transformers.sentence_transformer.model_card", "sentence_transformers.model_card"):  # ST 6, ST < 6
        try:
            return [importlib.import_module(module).ModelCardCallback]
        except (ImportError, AttributeError):
            continue
    return []
