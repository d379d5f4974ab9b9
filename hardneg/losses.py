"""What `hardneg train` builds for each architecture: the model, its loss (contrastive, distillation
with min-max normalised scores as PyLate does, MarginMSE, BCE for rerankers), the trainer classes and
the batch sampler; and the (query, document, label) pairs a cross-encoder trains on."""

from __future__ import annotations

import math
from typing import Any

from hardneg.config import TrainConfig
from hardneg.errors import ModelError
from hardneg.teachers import load_colbert, quiet_conversion


def minmax_rows(scores: Any) -> Any:
    """Scale each row of a (rows, candidates) score tensor to [0, 1] (a constant row becomes 0)."""
    low = scores.min(dim=-1, keepdim=True).values
    high = scores.max(dim=-1, keepdim=True).values
    return (scores - low) / (high - low).clamp_min(1e-9)


def minmax_colbert_kd_scores(*args: Any, **kwargs: Any) -> Any:
    """The student's MaxSim scores of each KD row, min-max normalised like the teacher's (PyLate)."""
    from sentence_transformers.multi_vector_encoder.scoring import colbert_kd_scores

    return minmax_rows(colbert_kd_scores(*args, **kwargs))


def model_and_loss(base: str, config: TrainConfig, device: str) -> tuple[Any, Any, Any, Any, Any]:
    """(model, loss, trainer class, training-arguments class, batch sampler) for the architecture."""
    loss_name = config.resolved_loss
    model: Any
    loss: Any
    trainer_cls: Any
    args_cls: Any
    try:
        if config.architecture == "biencoder":
            from sentence_transformers import SentenceTransformer, SentenceTransformerTrainer, SentenceTransformerTrainingArguments

            model = SentenceTransformer(base, device=device, local_files_only=True)
            trainer_cls, args_cls = SentenceTransformerTrainer, SentenceTransformerTrainingArguments
        elif config.architecture == "colbert":
            from sentence_transformers.multi_vector_encoder import MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments

            model = load_colbert(base, device)
            trainer_cls, args_cls = MultiVectorEncoderTrainer, MultiVectorEncoderTrainingArguments
        else:
            from sentence_transformers import CrossEncoder, CrossEncoderTrainer, CrossEncoderTrainingArguments

            with quiet_conversion():
                model = CrossEncoder(base, num_labels=1, device=device, local_files_only=True)
            trainer_cls, args_cls = CrossEncoderTrainer, CrossEncoderTrainingArguments
    except ModelError:
        raise
    except Exception as exc:  # a broken checkpoint directory
        raise ModelError(f"cannot load model '{base}' ({exc.__class__.__name__}: {exc})") from None

    if config.architecture == "biencoder":
        from sentence_transformers.sentence_transformer import losses as st_losses
        from sentence_transformers.sentence_transformer.training_args import BatchSamplers

        if loss_name == "distillation":
            return model, biencoder_distillation_loss(model, config), trainer_cls, args_cls, BatchSamplers.BATCH_SAMPLER
        if loss_name == "margin-mse":
            loss = st_losses.MarginMSELoss(model, similarity_fct=model.similarity_pairwise)
            return model, loss, trainer_cls, args_cls, BatchSamplers.BATCH_SAMPLER
        loss = (
            st_losses.CachedMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size)
            if loss_name == "cached-mnrl"
            else st_losses.MultipleNegativesRankingLoss(model)
        )
        return model, loss, trainer_cls, args_cls, BatchSamplers.NO_DUPLICATES
    if config.architecture == "colbert":
        from sentence_transformers.base.training_args import BatchSamplers
        from sentence_transformers.multi_vector_encoder import losses as mv_losses

        if loss_name == "mnrl":
            loss = mv_losses.MultiVectorMultipleNegativesRankingLoss(model)
        elif loss_name == "cached-mnrl":
            loss = mv_losses.CachedMultiVectorMultipleNegativesRankingLoss(model, mini_batch_size=config.mini_batch_size)
        elif loss_name == "distillation":
            loss = distillation_loss(model, config)
        else:
            loss = mv_losses.MultiVectorMarginMSELoss(model)
        # Distillation rows are scored candidates, not in-batch negatives: duplicates are harmless.
        sampler = BatchSamplers.NO_DUPLICATES if loss_name in ("mnrl", "cached-mnrl") else BatchSamplers.BATCH_SAMPLER
        return model, loss, trainer_cls, args_cls, sampler
    import torch
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    negatives = config.negatives
    loss = BinaryCrossEntropyLoss(model, pos_weight=torch.tensor(float(max(1, negatives))))
    return model, loss, trainer_cls, args_cls, None


def bce_chance_loss(negatives: int) -> float:
    """The cross-encoder loss (`bce`, positives weighted by the number of negatives) of a reranker
    that scores every pair 0.5: where a fresh classifier head starts."""
    n = max(1, negatives)
    return math.log(2) * (n + n) / (n + 1)


def stayed_at_chance(loss_curve: list[float], negatives: int, tolerance: float = 0.9) -> bool:
    """Whether the last third of a cross-encoder's logged losses is still within ``tolerance`` of
    chance level: the reranker learned next to nothing (its scores are ~0.5 for every pair)."""
    if not loss_curve:
        return False
    tail = loss_curve[-max(1, len(loss_curve) // 3):]
    return sum(tail) / len(tail) >= tolerance * bce_chance_loss(negatives)


def distillation_loss(model: Any, config: TrainConfig) -> Any:
    """KL divergence between the teacher's and the student's softmax over each row's candidates;
    with `minmax`, both rows of scores are first scaled to [0, 1] (PyLate's `Distillation`)."""
    import torch
    from sentence_transformers.multi_vector_encoder.losses import MultiVectorDistillKLDivLoss

    if config.kd_normalize == "none":
        return MultiVectorDistillKLDivLoss(model, temperature=config.kd_temperature)

    class NormalisedDistillKLDivLoss(MultiVectorDistillKLDivLoss):
        def forward(self, sentence_features: Any, labels: torch.Tensor) -> torch.Tensor:
            return super().forward(sentence_features, minmax_rows(labels.float()))

    return NormalisedDistillKLDivLoss(model, similarity_fct=minmax_colbert_kd_scores, temperature=config.kd_temperature)


def biencoder_distillation_loss(model: Any, config: TrainConfig) -> Any:
    """`distillation` for a bi-encoder: the KL divergence of :func:`distillation_loss`, with the
    model's own pairwise similarity (cosine for MiniLM) as the student's score of each candidate;
    with `minmax`, the teacher's and the student's rows are scaled to [0, 1] first, as for ColBERT."""
    import torch
    from sentence_transformers.sentence_transformer.losses import DistillKLDivLoss

    similarity = model.similarity_pairwise
    if config.kd_normalize == "none":
        return DistillKLDivLoss(model, similarity_fct=similarity, temperature=config.kd_temperature)

    class NormalisedDistillKLDivLoss(DistillKLDivLoss):
        def compute_loss_from_embeddings(self, embeddings: list[torch.Tensor], labels: torch.Tensor) -> torch.Tensor:
            query = embeddings[0]
            student = torch.stack([self.similarity_fct(query, other) for other in embeddings[1:]], dim=1)
            student = minmax_rows(student) / self.student_temperature
            teacher = minmax_rows(labels.detach().float()) / self.teacher_temperature
            loss = self.loss_fct(torch.log_softmax(student, dim=1), torch.softmax(teacher, dim=1))
            return loss * (self.student_temperature**2)

    return NormalisedDistillKLDivLoss(model, similarity_fct=similarity, temperature=config.kd_temperature)


def labelled_pairs(data: dict[str, list[Any]], columns: list[str]) -> tuple[dict[str, list[Any]], list[str]]:
    """(query, document, label) pairs from (query, positive, negative_1..N) rows: 1 for the
    positive, 0 for each negative, a row's pairs kept together (shuffled by the trainer's seed)."""
    out: dict[str, list[Any]] = {"query": [], "document": [], "label": []}
    for i, query in enumerate(data["query"]):
        for column in columns[1:]:
            out["query"].append(query)
            out["document"].append(data[column][i])
            out["label"].append(1.0 if column == "positive" else 0.0)
    return out, ["query", "document"]
