"""`hardneg loop`: train -> re-embed -> re-mine, round after round (ANCE-style), with early stopping.

Round 0 embeds, indexes and mines with the base model (and evaluates it on the dev split, if
given). Round k >= 1 fine-tunes on round k-1's negatives (from round k-1's checkpoint, or from the
base model with ``warm_start = false``), re-embeds the corpus with the new checkpoint (the cache
tells checkpoints apart by their weights), re-mines, and evaluates. The loop stops early when the
dev metric has not improved by more than ``min_delta`` for ``patience`` rounds.

With ``architecture = "colbert"`` in the train config, mining stays with the bi-encoder (ColBERT's
own recipes mine with a bi-encoder or a teacher): every round also trains a ColBERT student from the
base model on that round's negatives (``rounds/K/student/``), evaluates it on the dev split, and
early stopping follows the student's metric. With ``students = "final"`` only one student is trained,
after the rounds, on the negatives of the round whose bi-encoder miner scored best on the dev split
(the last round without a dev split); early stopping then follows the miner, as without a student.

Layout::

    OUT/manifest.json           the loop: config, per-round summaries, best round, state
    OUT/rounds/K/model/         checkpoint trained in round K (K >= 1)
    OUT/rounds/K/embeddings/    corpus + train queries, embedded by round K's model
    OUT/rounds/K/index/
    OUT/rounds/K/run/           the mining run (candidates, negatives)
    OUT/rounds/K/export/        sentence-transformers export the next round trains on
    OUT/rounds/K/dev-embeddings/, dev-embeddings-index/   dev split (corpus vectors reused)
    OUT/rounds/K/round.json     written last: the round is complete
    OUT/rounds/K/student/       the ColBERT student trained on round K's negatives (architecture colbert)
    OUT/rounds/K/student.json   students = "final": written last, the student is complete

Every stage is resumable and skipped when up to date, so a killed loop, run again with the same
command, goes on in the round it was in (a training interrupted mid-way starts that training over).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from hardneg.artifacts import (
    CANDIDATES_FILE,
    KIND_LOOP,
    artifact_kind,
    fingerprint,
    write_bytes_atomic,
    write_manifest,
)
from hardneg.config import (
    EmbedConfig,
    EvalConfig,
    ExportConfig,
    IndexConfig,
    LoopConfig,
    MineConfig,
    TrainConfig,
    as_dict,
)
from hardneg.config import (
    identity as config_identity,
)
from hardneg.errors import ConfigError, InputError
from hardneg.models import BUNDLED_MODEL, require_training_sentence_transformers
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.readers import read_table
from hardneg.writes import check_writable_parent, prepare_out, writing

LOOP_VERSION = "loop-v1"
ROUNDS_DIR = "rounds"
ROUND_FILE = "round.json"
STUDENT_FILE = "student.json"


@dataclass
class LoopResult:
    path: Path
    rounds: list[dict[str, Any]]
    best_round: int | None
    stopped_early: bool
    manifest: dict[str, Any] = field(default_factory=dict)
    student: dict[str, Any] | None = None
    """students = "final": the one ColBERT student (its round, path, training and dev metrics)."""


def selected_pairs(run: Path) -> set[tuple[str, str]]:
    table = read_table(run / CANDIDATES_FILE, columns=["query_id", "doc_id", "selected"])
    return {(q, d) for q, d, s in zip(*(table[c].to_pylist() for c in ("query_id", "doc_id", "selected"))) if s}


def negatives_overlap(current: set[tuple[str, str]], previous: set[tuple[str, str]]) -> float | None:
    """Share of this round's (query, negative) pairs that were negatives in the previous round too."""
    return round(len(current & previous) / len(current), 4) if current else None


def loop_fingerprint(source_fp: str, configs: dict[str, Any]) -> str:
    return fingerprint(LOOP_VERSION, source_fp, configs)


def run_loop(
    source: str | Path,
    out: str | Path,
    embed_config: EmbedConfig,
    index_config: IndexConfig,
    mine_config: MineConfig,
    train_config: TrainConfig,
    loop_config: LoopConfig,
    eval_config: EvalConfig = EvalConfig(),
    *,
    force: bool = False,
    reporter: Reporter = NULL_REPORTER,
    trainer: Callable[..., Any] | None = None,
    encoder_factory: Callable[[EmbedConfig], Any] | None = None,
) -> LoopResult:
    """Run (or resume) the loop on a BEIR folder or pairs file; see the module docstring.

    ``trainer`` (default `hardneg.train.train`) and ``encoder_factory`` (default
    `hardneg.encoders.load_encoder`) are seams: tests pass fakes so a loop runs in seconds."""
    from hardneg.inputs import load_input

    source, out = Path(source), Path(out)
    if train_config.architecture == "cross-encoder":
        raise ConfigError(
            "[train] architecture = 'cross-encoder': the loop trains retrievers; train a reranker on a round's export "
            "with `hardneg train --architecture cross-encoder` and mine with `--teacher`"
        )
    if train_config.architecture == "colbert" and train_config.resolved_loss not in ("mnrl", "cached-mnrl"):
        raise ConfigError(
            f"loop --architecture colbert trains contrastively on each round's negatives (mnrl, cached-mnrl), not with "
            f"{train_config.resolved_loss!r}; distil with `hardneg mine --teacher ... --kd-depth N` and `hardneg train --loss distillation`"
        )
    if mine_config.run_file is not None:
        raise ConfigError(
            "[mine] run_file: the loop re-ranks the corpus with each round's model, and a run file's ranking never changes; "
            "mine once with `hardneg mine --run FILE` instead"
        )
    if trainer is None:
        require_training_sentence_transformers("hardneg loop (it trains every round)")
    # One policy with the one-liner (pipeline.run_mine): the index's recall check is at the mining
    # depth, and the Ray engine searches exactly.
    index_config = dataclasses.replace(index_config, recall_k=mine_config.max_rank)
    if mine_config.engine == "ray" and index_config.backend == "auto":
        index_config = dataclasses.replace(index_config, backend="exact")
    if eval_config.rerank:
        reporter.log("note: [eval] rerank is for `hardneg eval`; the loop's dev metrics measure each round's model alone")
        eval_config = dataclasses.replace(eval_config, rerank=None)
    if artifact_kind(source) is not None:
        raise InputError("the loop needs raw data (a BEIR folder or a pairs file), not an artifact", source)
    dataset = load_input(source, embed_config.split)  # validates the input before any work
    if loop_config.dev_split:
        load_input(source, loop_config.dev_split)
        if loop_config.dev_split == embed_config.split:
            reporter.log(
                f"warning: --dev-split {loop_config.dev_split} is the split the loop trains on; its dev metrics "
                "and early stopping then measure training queries (use a held-out split, e.g. dev)"
            )
    configs = {
        "embed": as_dict(embed_config), "index": as_dict(index_config), "mine": {**as_dict(mine_config), "llm_url": None},
        "train": as_dict(train_config), "loop": as_dict(loop_config), "eval": as_dict(eval_config),
    }
    # How many rounds and when to stop do not change what a round computes: a finished loop can be
    # extended with a larger --rounds, or resumed with another patience, without starting over.
    # Execution knobs (batch sizes, workers, device) do not either (config.EXECUTION_FIELDS).
    # No --model and no --lang means the bundled model: `minilm` named or not is one identity.
    named = embed_config.model == BUNDLED_MODEL and not embed_config.lang
    identity = {
        "embed": config_identity(dataclasses.replace(embed_config, model=None) if named else embed_config), "index": config_identity(index_config), "mine": config_identity(mine_config),
        "train": config_identity(train_config), "eval": config_identity(eval_config),
        "loop": {k: v for k, v in configs["loop"].items() if k not in ("rounds", "patience", "min_delta")},
    }
    fp = loop_fingerprint(dataset.fingerprint, identity)
    with writing(out, [source]) as out:
        _check_out(out, fp, force)
        check_writable_parent(out / ROUNDS_DIR / "x")
        loop = _Loop(source, out, fp, configs, embed_config, index_config, mine_config, train_config, loop_config, eval_config, reporter)
        loop.trainer, loop.encoder_factory = trainer, encoder_factory
        return loop.run()


def _check_out(out: Path, fp: str, force: bool) -> None:
    """Resume a loop of the same data and settings; start over only with ``force`` (see `prepare_out`)."""
    if prepare_out(out, KIND_LOOP, fp, force, what="loop", changed="refuse") is None and out.is_dir():
        import shutil

        shutil.rmtree(out)


class _Loop:
    def __init__(
        self,
        source: Path,
        out: Path,
        fp: str,
        configs: dict[str, Any],
        embed_config: EmbedConfig,
        index_config: IndexConfig,
        mine_config: MineConfig,
        train_config: TrainConfig,
        loop_config: LoopConfig,
        eval_config: EvalConfig,
        reporter: Reporter,
    ) -> None:
        self.source, self.out, self.fp, self.configs = source, out, fp, configs
        self.embed_config, self.index_config, self.mine_config = embed_config, index_config, mine_config
        self.train_config, self.loop_config, self.eval_config = train_config, loop_config, eval_config
        self.reporter = reporter
        self.trainer: Callable[..., Any] | None = None
        self.encoder_factory: Callable[[EmbedConfig], Any] | None = None
        self.rounds: list[dict[str, Any]] = []
        # Mining stays with a bi-encoder (as ColBERT's own recipes mine with one): with a ColBERT
        # student, each round trains the bi-encoder miner as usual and a ColBERT student, from the
        # base model, on the same negatives; early stopping then follows the student.
        self.student = train_config.architecture == "colbert"
        self.student_every_round = self.student and loop_config.students == "every"
        self.final_student: dict[str, Any] | None = None
        self.miner_train_config = dataclasses.replace(train_config, architecture="biencoder")

    def round_dir(self, k: int) -> Path:
        return self.out / ROUNDS_DIR / str(k)

    def metric_of(self, summary: dict[str, Any]) -> float | None:
        dev = (summary.get("student") or {}).get("dev") if self.student_every_round else summary.get("dev")
        if not dev:
            return None
        name = self.loop_config.metric
        if name == "recall@k":
            name = f"recall@{self.eval_config.k}"
        return float(dev["metrics"][name])

    def run(self) -> LoopResult:
        self.out.mkdir(parents=True, exist_ok=True)
        best: float | None = None
        best_round: int | None = None
        stale = 0
        stopped_early = False
        self._write_manifest(best_round, "running", stopped_early)
        for k in range(self.loop_config.rounds + 1):
            summary = self._completed(k) or self._run_round(k)
            self.rounds.append(summary)
            metric = self.metric_of(summary)
            if metric is not None:
                if best is None or metric > best + self.loop_config.min_delta:
                    best, best_round, stale = metric, k, 0
                else:
                    stale += 1
            self._write_manifest(best_round, "running", stopped_early)
            if stale >= self.loop_config.patience and k < self.loop_config.rounds:
                stopped_early = True
                self.reporter.log(
                    f"stopping after round {k}: {self.loop_config.metric} has not improved for {stale} round(s)"
                )
                break
        if self.student and not self.student_every_round:
            k = self.rounds[-1]["round"] if best_round is None else best_round
            self.final_student = (
                self._completed(k, STUDENT_FILE, f"the ColBERT student on round {k}'s negatives is already trained; reusing it")
                or self._final_student(k)
            )
        manifest = self._write_manifest(best_round, "finished", stopped_early)
        return LoopResult(self.out, self.rounds, best_round, stopped_early, manifest, self.final_student)

    def _final_student(self, k: int) -> dict[str, Any]:
        rdir = self.round_dir(k)
        started = time.perf_counter()
        trained = self._train_student(k, rdir)
        summary = {"round": k, "loop_fingerprint": self.fp, **trained, "seconds": round(time.perf_counter() - started, 1)}
        write_bytes_atomic(rdir / STUDENT_FILE, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
        return summary

    def _completed(self, k: int, marker: str = ROUND_FILE, message: str | None = None) -> dict[str, Any] | None:
        """The summary in round k's ``marker`` file (written last) if this loop wrote it, else None."""
        path = self.round_dir(k) / marker
        if not path.is_file():
            return None
        summary = orjson.loads(path.read_bytes())
        if summary.get("loop_fingerprint") != self.fp:
            return None
        self.reporter.log(message or f"round {k}: already complete; reusing it")
        return summary

    def _model_config(self, k: int) -> EmbedConfig:
        if k == 0:
            return self.embed_config
        return dataclasses.replace(self.embed_config, model=str(self.round_dir(k) / "model"))

    def _run_round(self, k: int) -> dict[str, Any]:
        from hardneg import encoders
        from hardneg import train as training
        from hardneg.embed import embed
        from hardneg.evaluate import evaluate
        from hardneg.export import export
        from hardneg.index import build_index
        from hardneg.inputs import load_input
        from hardneg.mine import mine

        train = self.trainer or training.train
        load_encoder = self.encoder_factory or encoders.load_encoder
        started = time.perf_counter()
        rdir = self.round_dir(k)
        rdir.mkdir(parents=True, exist_ok=True)
        log = self.reporter.log
        train_summary = None
        if k > 0:
            start_from = self._model_config(k - 1 if self.loop_config.warm_start else 0)
            log(f"round {k}: training from {start_from.model or 'the base model'} on round {k - 1}'s negatives")
            result = train(self.round_dir(k - 1) / "export", rdir / "model", self.miner_train_config, start_from, reporter=self.reporter)
            train_summary = {**result.manifest["training"], "weights_fingerprint": result.manifest["weights_fingerprint"]}
        model_config = self._model_config(k)
        encoder = load_encoder(model_config)
        try:
            log(f"round {k}: embedding with {model_config.model or 'the base model'}")
            emb = embed(load_input(self.source, self.embed_config.split), rdir / "embeddings", model_config, encoder=encoder, reporter=self.reporter)
            index = build_index(emb.path, rdir / "index", self.index_config, reporter=self.reporter)
            log(f"round {k}: mining")
            mined = mine(index.path, rdir / "run", self.mine_config, reporter=self.reporter)
            # One row per (query, positive) with all its negatives; training takes the first
            # `negatives` of them (the best-ranked selected ones). Queries mined short of
            # num_negatives are left out of the export and counted in its manifest.
            exported = export(rdir / "run", rdir / "export", ExportConfig(format="sentence-transformers", seed=self.mine_config.seed), reporter=self.reporter)
            dev = None
            if self.loop_config.dev_split:
                log(f"round {k}: evaluating on {self.loop_config.dev_split}")
                cfg = dataclasses.replace(self.eval_config, split=self.loop_config.dev_split)
                result_eval = evaluate(
                    self.source, model_config, cfg, embeddings_out=rdir / "dev-embeddings", encoder=encoder,
                    reuse=[emb.path], reporter=self.reporter,
                )
                dev = {"split": cfg.split, "metrics": result_eval.metrics, "queries": result_eval.queries}
        finally:
            encoder.close()
        student = self._train_student(k, rdir) if self.student_every_round else None
        current = selected_pairs(rdir / "run")
        overlap = negatives_overlap(current, selected_pairs(self.round_dir(k - 1) / "run")) if k > 0 else None
        stats = mined.stats
        summary = {
            "round": k,
            "loop_fingerprint": self.fp,
            "model": model_config.model or "(base: " + (self.embed_config.lang or "minilm") + ")",
            "model_fingerprint": emb.manifest["model"]["fingerprint"],
            "dev": dev,
            "negatives": stats.selected,
            "queries_mined": stats.queries_mined,
            "overlap_with_previous": overlap,
            "negative_scores": stats.negative_scores,
            "positive_scores": stats.positive_scores,
            "removed": stats.removed,
            "train_rows": exported.stats.rows,
            "train_rows_dropped_short": exported.stats.rows_dropped_short,
            "train": train_summary,
            "student": student,
            "seconds": round(time.perf_counter() - started, 1),
        }
        write_bytes_atomic(rdir / ROUND_FILE, orjson.dumps(summary, option=orjson.OPT_INDENT_2) + b"\n")
        return summary

    def _train_student(self, k: int, rdir: Path) -> dict[str, Any]:
        """A ColBERT student trained from the base model on this round's negatives (and its dev metrics)."""
        from hardneg import train as training
        from hardneg.evaluate import evaluate

        train = self.trainer or training.train
        self.reporter.log(f"round {k}: training the ColBERT student on round {k}'s negatives")
        result = train(rdir / "export", rdir / "student", self.train_config, self.embed_config, reporter=self.reporter)
        student: dict[str, Any] = {
            "path": str(rdir / "student"),
            "train": {**result.manifest["training"], "weights_fingerprint": result.manifest["weights_fingerprint"]},
            "dev": None,
        }
        if self.loop_config.dev_split:
            cfg = dataclasses.replace(self.eval_config, split=self.loop_config.dev_split, architecture="colbert")
            model = dataclasses.replace(self.embed_config, model=str(rdir / "student"))
            evaluated = evaluate(self.source, model, cfg, reporter=self.reporter)
            student["dev"] = {"split": cfg.split, "metrics": evaluated.metrics, "queries": evaluated.queries}
        return student

    def _write_manifest(self, best_round: int | None, state: str, stopped_early: bool) -> dict[str, Any]:
        return write_manifest(
            self.out,
            KIND_LOOP,
            fingerprint=self.fp,
            source=str(self.source.resolve()),
            config=self.configs,
            state=state,
            rounds=self.rounds,
            best_round=best_round,
            stopped_early=stopped_early,
            student=self.final_student,
        )


