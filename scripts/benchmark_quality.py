"""Downstream quality of mined negatives: train a student on each method's data, evaluate on test.

Usage:
    python scripts/benchmark_quality.py ../shared/data/scifact --student colbert --seeds 42,43,44
    python scripts/benchmark_quality.py ../shared/data/scifact --student biencoder --table --write docs/benchmarks.md

Everything a user would run goes through the product: negatives are mined with hardneg's library
(or with sentence-transformers' `mine_hard_negatives` for the anchor rows), written as a
sentence-transformers / pylate-kd export, trained with `hardneg train --architecture STUDENT` and
evaluated with `hardneg eval --per-query` (exact search over the whole corpus; ColBERT: exact
MaxSim). Training: the packaged all-MiniLM-L6-v2 (ColBERT: plus a seeded 128-d head), 1 epoch,
batch 32, lr 2e-5, one mined negative per (query, positive) row (contrastive rows), or 8 scored
candidates per query (KD rows; 32 in the `-32` rows, at batch 4).

Resumable: each unit (method, student, seed) writes one JSON file under ``--results`` (metrics,
per-query nDCG@10, false-negative proxy, seconds per stage) and is skipped when that file exists,
so the table fills over several runs. Mined negatives are cached per (method, seed) in ``--work``.

Seeds: the seed drives both the sampling of negatives (random/SimANS rows; `top` rows are
deterministic) and training (data order, head initialisation). Confidence intervals: the difference
between two rows (each averaged over its seeds) is bootstrapped over seeds and test queries: each of
10,000 resamples draws each row's seeds with replacement (one draw for both rows when they have the
same seeds: paired), then the test queries (paired); percentile 95% interval. A bootstrap over queries
alone leaves training noise out, and a replication on other hardware moved rows by more than it allowed.

False-negative proxy: for train queries with two or more positives, one positive is hidden from
the miner (it stays in the corpus); the proxy counts how often a method selects it among 10
negatives. Lower is better.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")

HARDNEG = [sys.executable, "-m", "hardneg"]
KD_DEPTH = 8
# Distillation rows are KD_DEPTH documents wide: a KD step encodes batch x KD_DEPTH documents, so
# the batch is smaller and documents are cut at ColBERTv2's doc_maxlen to fit 2 CPU cores and
# 24 GB (32-way rows at batch 32 were killed for memory; 8-way at batch 8 peaks at ~7 GB).
MULTI_NEGATIVES = 4  # hard negatives per row of the n-way rows (ColBERT recipes train n-way, not on triples)
KD_TRAIN_ARGS = ["--batch-size", "8", "--max-length", "180"]
# The depth ColBERT recipes distil over (PyLate's public recipes: 32 scored candidates a query).
# A 32-way step at batch 8 would hold ~25 GB of activations here; batch 4 holds ~12 GB, so those
# rows train 4 queries a step (twice the steps of an 8-way row for the same epoch).
KD_DEEP = 32
KD_DEEP_TRAIN_ARGS = ["--batch-size", "4", "--max-length", "180"]
PROXY_NEGATIVES = 10
LOOP_ROUNDS = 3
# RocketQA-style denoising: candidates from the top of the ranking, minus those the cross-encoder
# scores at least as high as the query's lowest positive (a margin on the teacher's own scale: a
# cross-encoder trained on ~1k pairs is not calibrated, so a fixed probability threshold is not
# meaningful). The window is the top 10, as hardneg-nv-sample's (whose guard is the retriever's
# margin instead): a MiniLM cross-encoder reads SciFact's (query, abstract) pairs at up to 512
# tokens, a few pairs a second on 2 cores, so ~10 pairs a query is what a session can afford.
CE_WINDOW = 10


@dataclass
class Data:
    corpus: dict[str, str]
    queries: dict[str, str]
    train: dict[str, list[str]]
    """Every judged positive of each training query: the miner excludes all of them."""
    test: dict[str, list[str]]
    path: Path
    train_rows: dict[str, list[str]] = field(default_factory=dict)
    """The (query, positive) pairs that become training rows: all of ``train`` unless subsampled."""
    sample: str = ""
    """How the training pairs were subsampled ("" when they were not)."""

    @property
    def subsampled(self) -> bool:
        return self.train_rows != self.train


def subsample(data: Data, queries: int | None, positives: int | None, seed: int = 0) -> Data:
    """Seeded, per query: ``queries`` training queries drawn uniformly, and for each of them
    ``positives`` of its positives as training rows. The miner still sees every positive of a
    kept query (so none becomes a negative); the seed is fixed, so every method and training seed
    trains on the same pairs and the paired comparison holds."""
    if not queries and not positives:
        return data
    rng = random.Random(seed)
    qids = sorted(data.train)
    if queries and queries < len(qids):
        qids = sorted(rng.sample(qids, queries))
    train = {q: data.train[q] for q in qids}
    rows = {q: sorted(rng.sample(ds, positives)) if positives and positives < len(ds) else list(ds) for q, ds in train.items()}
    n_pairs = sum(map(len, rows.values()))
    how = (f"{len(qids)} of {len(data.train)} training queries and {positives or 'all'} positive(s) per query drawn "
           f"with random.Random({seed}) (sorted ids, then sample): {n_pairs} training pairs; the miner still "
           f"excludes all {sum(map(len, train.values()))} judged positives of those queries")
    return Data(data.corpus, data.queries, train, data.test, data.path, rows, how)


def load(path: Path) -> Data:
    corpus = {}
    for line in open(path / "corpus.jsonl", encoding="utf-8"):
        d = json.loads(line)
        title = (d.get("title") or "").strip()
        corpus[str(d["_id"])] = f"{title} {d['text'].strip()}".strip() if title else d["text"].strip()
    queries = {str(q["_id"]): q["text"] for q in map(json.loads, open(path / "queries.jsonl", encoding="utf-8"))}

    def qrels(split: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in (path / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]:
            qid, did, score = line.strip().split("\t")
            if float(score) > 0:
                out.setdefault(qid, []).append(did)
        return out

    train = qrels("train")
    return Data(corpus, queries, train, qrels("test"), path, train)


def hidden_split(data: Data) -> tuple[dict[str, list[str]], dict[str, str]]:
    """Train qrels with one positive hidden per query that has two or more, and the hidden ids."""
    kept, hidden = {}, {}
    for q, ds in data.train.items():
        if len(ds) >= 2:
            hidden[q] = ds[-1]
            kept[q] = ds[:-1]
        else:
            kept[q] = ds
    return kept, hidden


def write_beir(data: Data, qrels: dict[str, list[str]], dest: Path) -> Path:
    """A BEIR folder with only the train split's qrels (the miner never sees the test qrels)."""
    if (dest / "qrels" / "train.tsv").exists():
        return dest
    (dest / "qrels").mkdir(parents=True, exist_ok=True)
    shutil.copy(data.path / "corpus.jsonl", dest / "corpus.jsonl")
    shutil.copy(data.path / "queries.jsonl", dest / "queries.jsonl")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, ds in qrels.items() for d in ds]
    (dest / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    return dest


# --------------------------------------------------------------------------- miners


WINDOW_RECIPE = {"min_rank": 10, "max_rank": 110, "sampling": "random", "relative_margin": None, "fallback_min_rank": None}
"""What a row leaves unsaid means the window recipe, whatever the product's defaults become: a row
is one recipe, and its cached units stay what they measured."""


class HardnegMiner:
    """hardneg through its library API; embeddings are computed once and reused by every method."""

    def __init__(self, data: Data, model: str, work: Path, precision: str = "fp32") -> None:
        # fp32 unless a row says otherwise: every row before --precision auto started picking bf16
        # on CPUs with native bf16 was mined in fp32, and rows must stay comparable (and cached).
        self.data, self.work, self.model, self.precision = data, work, model, precision
        self._ready = False

    def _setup(self) -> None:
        if self._ready:
            return
        from hardneg.config import EmbedConfig
        from hardneg.embed import embed
        from hardneg.inputs import load_input

        self.embed_config = EmbedConfig(model=self.model, precision=self.precision)
        self.embeddings: dict[str, Path] = {}
        full = write_beir(self.data, self.data.train, self.work / "beir-full")
        self.embeddings["full"] = embed(load_input(full), self.work / "emb-full", self.embed_config).path
        kept, _ = hidden_split(self.data)
        hidden = write_beir(self.data, kept, self.work / "beir-hidden")
        # Same model, same texts: the hidden-positive embeddings reuse every vector (no encoding).
        self.embeddings["hidden"] = embed(
            load_input(hidden), self.work / "emb-hidden", self.embed_config, reuse=[self.embeddings["full"]]
        ).path
        self._ready = True

    def run(self, which: str, name: str, **mine_args: Any) -> Path:
        from hardneg.config import IndexConfig, MineConfig
        from hardneg.index import build_index
        from hardneg.mine import mine

        self._setup()
        index = self.work / f"idx-{which}"
        if not index.exists():
            build_index(self.embeddings[which], index, IndexConfig(backend="exact", recall_sample=0))
        out = self.work / f"run-{which}-{name}"
        mine(index, out, MineConfig(**{**WINDOW_RECIPE, **mine_args}))  # an up-to-date run is reused
        return out

    def negatives(self, which: str, name: str, **mine_args: Any) -> dict[str, list[str]]:
        from hardneg.export import read_run

        return {q.query_id: q.negatives for q in read_run(self.run(which, name, **mine_args)).queries}


class STMiner:
    """sentence-transformers' mine_hard_negatives, with its embedding cache shared across calls."""

    def __init__(self, data: Data, model_path: str, work: Path) -> None:
        self.data, self.work, self.model_path = data, work, model_path
        self._model: Any = None

    def _mine(self, which: str, num_negatives: int, seed: int, **st_args: Any) -> tuple[Any, dict[str, str], dict[str, str]]:
        from datasets import Dataset
        from sentence_transformers import SentenceTransformer
        from sentence_transformers.util import mine_hard_negatives

        if self._model is None:
            # The device hardneg's own encoders pick (CUDA when present), so both miners encode alike.
            from hardneg.encoders import default_device

            self._model = SentenceTransformer(self.model_path, device=default_device())
        corpus_ids = list(self.data.corpus)
        by_text: dict[str, str] = {}
        for did in corpus_ids:
            by_text.setdefault(self.data.corpus[did], did)
        # Every judged positive goes in (ST excludes a query's positives from its negatives), as a
        # user with these qrels would call it; only the training pairs are kept as rows afterwards.
        qrels = self.data.train if which == "full" else hidden_split(self.data)[0]
        pairs = [(q, d) for q, ds in qrels.items() for d in ds]
        dataset = Dataset.from_dict(
            {"query": [self.data.queries[q] for q, _ in pairs], "positive": [self.data.corpus[d] for _, d in pairs]}
        )
        random.seed(seed)  # mine_hard_negatives samples with the global `random`
        result = mine_hard_negatives(
            dataset, self._model, corpus=[self.data.corpus[d] for d in corpus_ids], num_negatives=num_negatives,
            output_format="n-tuple", batch_size=64, cache_folder=str(self.work / "st-cache"), verbose=False, **st_args,
        )
        return result, by_text, {self.data.queries[q]: q for q in qrels}

    def negatives(self, which: str, num_negatives: int, seed: int, **st_args: Any) -> dict[str, list[str]]:
        """Every negative ST picked for each query, over all of its (query, positive) rows."""
        result, by_text, text_to_qid = self._mine(which, num_negatives, seed, **st_args)
        out: dict[str, list[str]] = {}
        for row in result:
            got = out.setdefault(text_to_qid[row["query"]], [])
            got += [by_text[row[k]] for k in row if k.startswith("negative") and by_text[row[k]] not in got]
        return out

    def pair_negatives(self, seed: int, num_negatives: int = 1, **st_args: Any) -> dict[tuple[str, str], list[str]]:
        """The negatives ST picked for each (query text, positive text) training row (its n-tuple
        rows: ST keeps a row only with all ``num_negatives``)."""
        result, _, _ = self._mine("full", num_negatives, seed, **st_args)
        return {(row["query"], row["positive"]): [row[f"negative_{i + 1}"] for i in range(num_negatives)] for row in result}


# --------------------------------------------------------------------------- exports


def write_st_export(data: Data, negative_for: Callable[[str, int, str], list[str] | None] | None, dest: Path) -> Path:
    """A sentence-transformers export (hardneg's format and manifest) of one row per training
    (query, positive) pair: ``negative_for(query id, positive index, positive id)`` gives the row's
    negative texts, all rows as many (None: the row is dropped, as the miner found none); no
    ``negative_for``: (query, positive) rows only, for in-batch negatives."""
    import pyarrow as pa

    from hardneg.artifacts import KIND_EXPORT, artifact_kind, write_manifest
    from hardneg.writes import atomic_dir, write_table

    if artifact_kind(dest) is not None:
        return dest
    columns: dict[str, list[str]] = {"query": [], "positive": []}
    for q, positives in sorted(data.train_rows.items()):
        for i, p in enumerate(positives):
            negatives = negative_for(q, i, p) if negative_for else None
            if negative_for and negatives is None:
                continue
            columns["query"].append(data.queries[q])
            columns["positive"].append(data.corpus[p])
            for k, negative in enumerate(negatives or []):
                columns.setdefault(f"negative_{k + 1}", []).append(negative)
    if len({len(v) for v in columns.values()}) > 1:
        raise SystemExit(f"{dest}: rows with different numbers of negatives")
    with atomic_dir(dest) as tmp:
        write_table(tmp / "train.parquet", pa.table(columns))
        write_manifest(tmp, KIND_EXPORT, config={"format": "sentence-transformers", "sample": data.sample},
                       stats={"rows": len(columns["query"])})
    return dest


def restrict_export(data: Data, full: Path, dest: Path) -> Path:
    """The rows of a product export whose (query, positive) pair is a training pair (subsampling)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from hardneg.artifacts import KIND_EXPORT, artifact_kind, write_manifest
    from hardneg.writes import atomic_dir, write_table

    if artifact_kind(dest) is not None:
        return dest
    wanted = {(data.queries[q], data.corpus[p]) for q, ps in data.train_rows.items() for p in ps}
    table = pq.read_table(full / "train.parquet")
    keep = [(q, p) in wanted for q, p in zip(table["query"].to_pylist(), table["positive"].to_pylist())]
    table = table.filter(pa.array(keep))
    with atomic_dir(dest) as tmp:
        write_table(tmp / "train.parquet", table)
        write_manifest(tmp, KIND_EXPORT, config={"format": "sentence-transformers", "restricted_from": str(full),
                       "sample": data.sample}, stats={"rows": table.num_rows})
    return dest


def hardneg_export(run: Path, dest: Path, fmt: str, nway: int | None, seed: int, data: Data | None = None) -> Path:
    """The product's export of a run; with subsampled training pairs, restricted to those pairs."""
    from hardneg.artifacts import artifact_kind
    from hardneg.config import ExportConfig
    from hardneg.export import export

    if data is not None and data.subsampled:
        if fmt != "sentence-transformers":
            raise SystemExit(f"subsampled training pairs are implemented for sentence-transformers rows, not {fmt}")
        return restrict_export(data, hardneg_export(run, dest.with_name(dest.name + "-all"), fmt, nway, seed), dest)
    if artifact_kind(dest) is None:
        # Raw scores: each KD row says how its trainer normalises them (`--kd-normalize`).
        export(run, dest, ExportConfig(format=fmt, nway=nway, seed=seed, score_transform="none"))
    return dest


# --------------------------------------------------------------------------- train + eval (the CLI)


def code_version() -> dict[str, str]:
    """The commit and mining version a unit was measured with (the sampler changed between them)."""
    from hardneg.mine import MINE_VERSION

    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = ""
    return {"commit": commit, "mine": MINE_VERSION}


def machine() -> str:
    """Where a unit ran: CPU architecture, cores and the accelerator its training and evaluation used."""
    import torch

    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ""
    return f"{platform.machine()}, {os.cpu_count()} cores{gpu}"


def cli(args: list[str]) -> str:
    env = {**os.environ, "HARDNEG_DISABLE_PROGRESS": "1"}
    proc = subprocess.run([*HARDNEG, *args], capture_output=True, text=True, env=env)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"failed: hardneg {' '.join(args)}")
    return proc.stdout


def train_and_eval(
    data: Path, export_dir: Path | None, student: str, seed: int, negatives: int, loss: str | None, work: Path, base: str,
    extra: list[str] | None = None,
) -> tuple[dict[str, Any], float, float]:
    model = base
    trained_s = 0.0
    if export_dir is not None:
        # Rows that share an export but not the training arguments (epochs, --kd-normalize) get
        # their own checkpoint directory, so a killed unit's leftovers never meet another row's.
        tag = "-" + hashlib.sha256(" ".join(extra).encode()).hexdigest()[:8] if extra else ""
        model_dir = work / "models" / f"{export_dir.name}-{student}-{loss or 'default'}-s{seed}{tag}"
        args = ["train", str(export_dir), "--out", str(model_dir), "--model", base, "--architecture", student,
                "--negatives-per-row", str(negatives), "--seed", str(seed), "--quiet",
                # The same weights either way (tested); 24 GB here, so the faster setting.
                "--no-gradient-checkpointing"]  # an up-to-date model is reused
        if loss:
            args += ["--loss", loss]
        cli(args + list(extra or []))
        model = str(model_dir)
        # The training's own clock: honest even when an up-to-date checkpoint was reused.
        trained_s = json.loads((model_dir / "manifest.json").read_text())["training"]["seconds"]
    t1 = time.time()
    # --allow-seen-queries: SciFact's test claims 870 and 1292 have the same text as train claims 871
    # and 1291, so every trained model has seen 2 of the 300 test queries (the same 2 for every
    # method); hardneg eval refuses that unless told, and we report it here.
    # The evaluation cache is the unit's own: removing it must never pull the files from under another
    # unit evaluating at the same time with the same --work (a shared one did, and failed that unit).
    eval_cache = work / "eval-cache" / Path(model).name
    out = cli(["eval", str(data), "--model", model, "--split", "test", "--architecture", student, "--json", "--per-query",
               "--allow-seen-queries", "--workdir", str(eval_cache)])
    result = json.loads(out)
    if export_dir is not None:
        shutil.rmtree(model, ignore_errors=True)  # checkpoints are large; the result is what is kept
        shutil.rmtree(eval_cache, ignore_errors=True)
    return result, trained_s, time.time() - t1


# --------------------------------------------------------------------------- methods


@dataclass
class Method:
    name: str
    settings: str
    students: tuple[str, ...]
    prepare: Callable[[int], tuple[Path | None, str | None, int]] | None
    """seed -> (export, loss, negatives per row); None: zero-shot."""
    proxy: Callable[[int], dict[str, list[str]]] | None = None
    seeded_mining: bool = True
    train_args: tuple[str, ...] = ()
    trained: Callable[[int], tuple[Path, float, float]] | None = None
    """seed -> (a checkpoint the method trained itself, its training seconds, all its seconds): the loop rows, which
    train inside `hardneg loop`; evaluated as they are (``prepare`` is then unused)."""
    rounds: int = 1
    """Trainings the student went through in a row (the warm-started loop: one epoch per round)."""
    width: int = 1
    """Hard negatives per training row (the n-way rows: several; 2-3x the training time)."""

    @property
    def epochs(self) -> int:
        """The student's training budget in epochs: a row is compared with the best ST row of the same budget."""
        args = self.train_args
        return (int(args[args.index("--epochs") + 1]) if "--epochs" in args else 1) * self.rounds

    @property
    def budget(self) -> tuple[int, int]:
        """(epochs, negatives per row): a row is compared with the best ST row of the same budget."""
        return self.epochs, self.width


def methods_for(data: Data, base: str, model: str, work: Path) -> list[Method]:
    hn = HardnegMiner(data, model, work / "hn")
    st = STMiner(data, base, work / "st")
    exports = work / "exports"

    hn_bf16 = HardnegMiner(data, model, work / "hn-bf16", precision="bf16")

    def hn_rows(name: str, miner: HardnegMiner = hn, negatives: int = 1, **mine: Any) -> Callable[[int], tuple[Path, None, int]]:
        def prepare(seed: int) -> tuple[Path, None, int]:
            run = miner.run("full", f"{name}-s{seed}", num_negatives=negatives, seed=seed, **mine)
            return (hardneg_export(run, exports / f"{name}-s{seed}", "sentence-transformers", negatives + 1, seed, data),
                    None, negatives)
        return prepare

    def hn_proxy(name: str, miner: HardnegMiner = hn, **mine: Any) -> Callable[[int], dict[str, list[str]]]:
        return lambda seed: miner.negatives("hidden", f"{name}-proxy-s{seed}", num_negatives=PROXY_NEGATIVES, seed=seed, **mine)

    def st_rows(name: str, negatives: int = 1, **st_args: Any) -> Callable[[int], tuple[Path, None, int]]:
        def prepare(seed: int) -> tuple[Path, None, int]:
            picked = st.pair_negatives(seed, negatives, **st_args)
            return write_st_export(
                data, lambda q, i, p: picked.get((data.queries[q], data.corpus[p])), exports / f"{name}-s{seed}"
            ), None, negatives
        return prepare

    def st_proxy(**st_args: Any) -> Callable[[int], dict[str, list[str]]]:
        return lambda seed: st.negatives("hidden", PROXY_NEGATIVES, seed, **st_args)

    def in_batch(seed: int) -> tuple[Path, None, int]:
        return write_st_export(data, None, exports / "in-batch"), None, 0

    window = {"min_rank": 10, "max_rank": 110}
    nv = {"min_rank": 0, "max_rank": 110, "sampling": "top", "relative_margin": 0.05}
    nv_sample = {"min_rank": 0, "max_rank": 10, "sampling": "random", "relative_margin": 0.05}
    # Adaptive candidates of the defaults issue: keep the top-ranked choice that wins on SciFact and
    # the held-out QA set, but guard it the way PIAF needs (its best-ranked candidates are often
    # other answers): a wider positive-relative margin, or a rank floor under the NV margin.
    margin15 = {"min_rank": 0, "max_rank": 110, "sampling": "top", "relative_margin": 0.15}
    floor_nv = {"min_rank": 10, "max_rank": 110, "sampling": "top", "relative_margin": 0.05}
    # The NV rule, and a query it empties takes the default window's random negative
    # (`--fallback-min-rank`; the same negatives as joining the NV and default runs per query).
    nv_fallback = {**nv, "fallback_min_rank": 10}
    # Top sampling from twice the depth: every query gets KD_DEPTH - 1 candidates after positives
    # and duplicates are removed (a KD row needs its full width).
    kd = {"min_rank": 0, "max_rank": 2 * KD_DEPTH, "sampling": "top"}
    ce_window = {"min_rank": 0, "max_rank": CE_WINDOW, "sampling": "random", "scores_from": "teacher", "absolute_margin": 0.0}

    def kd_rows(seed: int) -> tuple[Path, str, int]:
        # The KD depth: the positive plus the KD_DEPTH - 1 best-ranked non-positive candidates,
        # scored by the bi-encoder that mined them (the teacher here is MiniLM itself).
        run = hn.run("full", f"kd{KD_DEPTH}", num_negatives=KD_DEPTH - 1, seed=42, kd_depth=KD_DEPTH, **kd)
        return hardneg_export(run, exports / f"kd{KD_DEPTH}", "pylate-kd", None, 42, data), "distillation", 1

    teacher = TeacherModel(data, hn, work, model)

    def teacher_rows(name: str, **mine: Any) -> Callable[[int], tuple[Path, None, int]]:
        def prepare(seed: int) -> tuple[Path, None, int]:
            run = teacher.miner().run("full", f"{name}-s{seed}", num_negatives=1, seed=seed, **mine)
            return hardneg_export(run, exports / f"{name}-s{seed}", "sentence-transformers", 2, seed, data), None, 1
        return prepare

    def teacher_proxy(name: str, **mine: Any) -> Callable[[int], dict[str, list[str]]]:
        return lambda seed: teacher.miner().negatives("hidden", f"{name}-proxy-s{seed}", num_negatives=PROXY_NEGATIVES, seed=seed, **mine)

    def kd_teacher_rows(seed: int) -> tuple[Path, str, int]:
        run = teacher.miner().run("full", f"kd{KD_DEPTH}", num_negatives=KD_DEPTH - 1, seed=42, kd_depth=KD_DEPTH, **kd)
        return hardneg_export(run, exports / f"kd{KD_DEPTH}-teacher", "pylate-kd", None, 42, data), "distillation", 1

    ce = TrainedTeacher(data, hn, work, base, "cross-encoder")
    colbert_teacher = TrainedTeacher(data, hn, work, base, "colbert")

    def scored_rows(teacher: TrainedTeacher, name: str, **mine: Any) -> Callable[[int], tuple[Path, None, int]]:
        """One negative per pair from the base retriever's candidates, with ``teacher`` scoring them."""
        def prepare(seed: int) -> tuple[Path, None, int]:
            run = hn.run("full", f"{name}-s{seed}", num_negatives=1, seed=seed, cross_encoder=str(teacher.path()), **mine)
            return hardneg_export(run, exports / f"{name}-s{seed}", "sentence-transformers", 2, seed, data), None, 1
        return prepare

    def scored_proxy(teacher: TrainedTeacher, name: str, **mine: Any) -> Callable[[int], dict[str, list[str]]]:
        return lambda seed: hn.negatives("hidden", f"{name}-proxy-s{seed}", num_negatives=PROXY_NEGATIVES, seed=seed,
                                         cross_encoder=str(teacher.path()), **mine)

    def kd_scored_rows(teacher: TrainedTeacher, tag: str, depth: int = KD_DEPTH) -> Callable[[int], tuple[Path, str, int]]:
        """ColBERTv2 / TAS-B style at this scale: the positive and the ``depth`` - 1 best-ranked
        candidates of the base retriever, every one scored by ``teacher`` (a cross-encoder's sigmoid
        outputs, a ColBERT model's MaxSim sums) as the distillation targets."""
        window = {"min_rank": 0, "max_rank": 2 * depth, "sampling": "top"}

        def prepare(seed: int) -> tuple[Path, str, int]:
            run = hn.run("full", f"kd{depth}-{tag}", num_negatives=depth - 1, seed=42, kd_depth=depth,
                         cross_encoder=str(teacher.path()), scores_from="teacher", **window)
            return hardneg_export(run, exports / f"kd{depth}-{tag}", "pylate-kd", None, 42, data), "distillation", 1
        return prepare

    kd_ce_rows, kd_colbert_rows = kd_scored_rows(ce, "ce"), kd_scored_rows(colbert_teacher, "colbert")
    colbert_nv = {**nv, "scores_from": "teacher"}
    colbert_nv_fallback = {**colbert_nv, "fallback_min_rank": 10}

    def loop_model(name: str, warm_start: bool, rounds: int = LOOP_ROUNDS, architecture: str = "biencoder",
                   recipe: dict[str, Any] | None = None, students: str = "every") -> Callable[[int], tuple[Path, float, float]]:
        """`hardneg loop --rounds ROUNDS` on the train split (``recipe``'s mining, the window unless
        given; the benchmark's training settings in every round); the last round's checkpoint is
        the student (with ``architecture="colbert"``, the ColBERT student the loop trains from the
        base model on the last round's negatives)."""
        def trained(seed: int) -> tuple[Path, float, float]:
            from hardneg.config import EmbedConfig, IndexConfig, LoopConfig, MineConfig, TrainConfig
            from hardneg.errors import ArtifactError
            from hardneg.loop import run_loop

            if data.subsampled:
                raise SystemExit("the loop rows train on every training pair: run them without --train-queries")
            out = work / f"{name}-s{seed}"
            mining = MineConfig(**{**(WINDOW_RECIPE if recipe is None else recipe), "num_negatives": 1, "seed": seed})
            args = (write_beir(data, data.train, work / "hn" / "beir-full"), out, EmbedConfig(model=model, precision="fp32"),
                    IndexConfig(backend="exact", recall_sample=0), mining,
                    TrainConfig(architecture=architecture, negatives=1, seed=seed, gradient_checkpointing=False),
                    LoopConfig(rounds=rounds, warm_start=warm_start, students=students))
            try:
                result = run_loop(*args)  # resumes a killed loop of the same settings
            except ArtifactError as exc:  # scratch from other code or settings: start over
                if "different data or settings" not in str(exc):
                    raise
                result = run_loop(*args, force=True)
            # Each round records its own wall time and trainings, so a resumed loop is costed whole.
            train_s = sum(float((r.get("train") or {}).get("seconds", 0.0))
                          + float(((r.get("student") or {}).get("train") or {}).get("seconds", 0.0)) for r in result.rounds)
            loop_s = sum(float(r.get("seconds", 0.0)) for r in result.rounds)
            if result.student:  # students = "final": the one student, trained after the rounds
                train_s += float(result.student["train"].get("seconds", 0.0))
                loop_s += float(result.student.get("seconds", 0.0))
            if result.student:  # wherever the loop put it (the best round with a dev split)
                return Path(result.student["path"]), train_s, loop_s
            last = out / "rounds" / str(rounds)
            return (last / "student" if architecture == "colbert" else last / "model"), train_s, loop_s
        return trained

    both = ("biencoder", "colbert")
    return [
        Method("zero-shot", "no fine-tuning (ColBERT: MiniLM + a seeded random 128-d head)", both, None, seeded_mining=False),
        Method("in-batch", "(query, positive) rows; in-batch negatives only", both, in_batch, seeded_mining=False),
        Method("st-random-10-110", "ST range_min=10, range_max=110, sampling_strategy=random", both,
               st_rows("st-random", range_min=10, range_max=110, sampling_strategy="random"),
               st_proxy(range_min=10, range_max=110, sampling_strategy="random")),
        Method("st-relmargin-top", "ST relative_margin=0.05, sampling_strategy=top (its docstring's recommendation; ST's "
               "default range_max = 11 here)", both,
               st_rows("st-relmargin", relative_margin=0.05, sampling_strategy="top"),
               st_proxy(relative_margin=0.05, sampling_strategy="top"), seeded_mining=False),
        Method("st-relmargin-top-100", "ST relative_margin=0.05, sampling_strategy=top, range_min=0, range_max=100 (the "
               "defaults issue's harness; without range_max, ST searches only the top range_min + 10 x num_negatives + "
               "max_positives = 11 here)", both,
               st_rows("st-relmargin-100", relative_margin=0.05, sampling_strategy="top", range_min=0, range_max=100),
               st_proxy(relative_margin=0.05, sampling_strategy="top", range_min=0, range_max=100), seeded_mining=False),
        Method("hardneg-default", "--min-rank 10 --max-rank 110 --sampling random", both,
               hn_rows("default", sampling="random", **window), hn_proxy("default", sampling="random", **window)),
        Method("hardneg-default-bf16", "--min-rank 10 --max-rank 110 --sampling random, corpus and queries encoded with "
               "--precision bf16 (the fast-defaults issue: does bf16 mining train as well as fp32?)", both,
               hn_rows("default-bf16", hn_bf16, sampling="random", **window),
               hn_proxy("default-bf16", hn_bf16, sampling="random", **window)),
        Method("hardneg-nv", "--min-rank 0 --max-rank 110 --sampling top --relative-margin 0.05 (configs/nv-retriever.toml)", both,
               hn_rows("nv", **nv), hn_proxy("nv", **nv), seeded_mining=False),
        Method("hardneg-nv-sample", "--min-rank 0 --max-rank 10 --sampling random --relative-margin 0.05 (a negative "
               "drawn from the margin-guarded top 10, as NV-Retriever's sampled variant)", both,
               hn_rows("nv-sample", **nv_sample), hn_proxy("nv-sample", **nv_sample)),
        Method("hardneg-margin-15", "--min-rank 0 --max-rank 110 --sampling top --relative-margin 0.15 (the NV rule with a "
               "wider positive-relative margin: the best-ranked candidate scoring under 85% of the lowest positive)", both,
               hn_rows("margin-15", **margin15), hn_proxy("margin-15", **margin15), seeded_mining=False),
        Method("hardneg-floor-nv", "--min-rank 10 --max-rank 110 --sampling top --relative-margin 0.05 (the NV rule "
               "under a rank floor: the best-ranked candidate from rank 10 on that passes the 5% margin)", both,
               hn_rows("floor-nv", **floor_nv), hn_proxy("floor-nv", **floor_nv), seeded_mining=False),
        Method("hardneg-nv-fallback", "--min-rank 0 --max-rank 110 --sampling top --relative-margin 0.05 --fallback-min-rank 10 "
               "(the NV recipe; a query the margin leaves without a negative takes a random one from ranks [10, 110) instead "
               "of losing its training pairs: the margin empties 26% of PIAF's queries)", both,
               hn_rows("nv-fallback", **nv_fallback), hn_proxy("nv-fallback", **nv_fallback), seeded_mining=True),
        Method("hardneg-hybrid-nv-fallback", "--retriever hybrid --min-rank 0 --max-rank 110 --sampling top --relative-margin 0.05 "
               "--fallback-min-rank 10 (the default recipe over candidates that BM25 and the dense model find together, "
               "reciprocal-rank fusion; the margins still read the embedding cosine): lexical negatives that "
               "mine_hard_negatives, dense only, cannot find", both,
               hn_rows("hybrid-nv-fallback", retriever="hybrid", **nv_fallback),
               hn_proxy("hybrid-nv-fallback", retriever="hybrid", **nv_fallback), seeded_mining=True),
        Method("hardneg-same-group", "--min-rank 10 --max-rank 110 --sampling random --same-group title (same-article "
               "negatives first: PIAF's passages share their article's title; SciFact's titles are one per document)", both,
               hn_rows("same-group", sampling="random", same_group="title", **window),
               hn_proxy("same-group", sampling="random", same_group="title", **window)),
        Method("hardneg-same-cluster", "--min-rank 10 --max-rank 110 --sampling random --same-cluster 200 (same-topic "
               "negatives first: the positive's k-means cluster over the corpus embeddings)", both,
               hn_rows("same-cluster", sampling="random", same_cluster=200, **window),
               hn_proxy("same-cluster", sampling="random", same_cluster=200, **window)),
        Method("hardneg-simans", "--min-rank 10 --max-rank 110 --sampling simans", both,
               hn_rows("simans", sampling="simans", **window), hn_proxy("simans", sampling="simans", **window)),
        Method(f"hardneg-kd-{KD_DEPTH}", f"`--kd-depth {KD_DEPTH}` pylate-kd rows (positive + {KD_DEPTH - 1} best-ranked "
               "candidates), MiniLM's cosines as teacher scores, `--loss distillation` (min-max normalised KL), "
               f"`{' '.join(KD_TRAIN_ARGS)}`; proxy n/a: candidates are scored, not labelled negative",
               ("colbert",), kd_rows, None, seeded_mining=False, train_args=tuple(KD_TRAIN_ARGS)),
        Method("hardneg-teacher-nv", "teacher-mined: --model TEACHER --min-rank 0 --max-rank 110 --sampling top "
               "--relative-margin 0.05 (TEACHER: MiniLM fine-tuned on hardneg-default negatives of the train split, "
               "hidden positives held out; the student starts from the base model)", both,
               teacher_rows("teacher-nv", **nv), teacher_proxy("teacher-nv", **nv), seeded_mining=False),
        Method("hardneg-teacher-default", "teacher-mined: --model TEACHER --min-rank 10 --max-rank 110 --sampling random", both,
               teacher_rows("teacher-default", sampling="random", **window), teacher_proxy("teacher-default", sampling="random", **window)),
        Method(f"hardneg-kd-teacher-{KD_DEPTH}", f"pylate-kd from `--model TEACHER --kd-depth {KD_DEPTH}` (the teacher's cosines), "
               f"`--loss distillation {' '.join(KD_TRAIN_ARGS)}`", ("colbert",), kd_teacher_rows, None, seeded_mining=False,
               train_args=tuple(KD_TRAIN_ARGS)),
        Method("hardneg-ce-denoised", f"--min-rank 0 --max-rank {CE_WINDOW} --sampling random --teacher CE --scores-from teacher "
               f"--absolute-margin 0 (RocketQA-style denoising: a negative drawn from the top {CE_WINDOW}, minus those the "
               "cross-encoder scores at least as high as the positive; CE: MiniLM trained by `hardneg train --architecture "
               "cross-encoder` on 5 hardneg-default negatives per train pair, hidden positives held out)", both,
               scored_rows(ce, "ce-denoised", **ce_window), scored_proxy(ce, "ce-denoised", **ce_window)),
        Method(f"hardneg-kd-ce-{KD_DEPTH}", f"pylate-kd from `--kd-depth {KD_DEPTH} --teacher CE --scores-from teacher` "
               "(ColBERTv2-style: the base retriever's candidates, the cross-encoder's scores as targets; CE as in "
               f"hardneg-ce-denoised), `--loss distillation {' '.join(KD_TRAIN_ARGS)}`", ("colbert",), kd_ce_rows, None,
               seeded_mining=False, train_args=tuple(KD_TRAIN_ARGS)),
        Method(f"hardneg-kd-ce-{KD_DEPTH}-raw", f"hardneg-kd-ce-{KD_DEPTH}'s rows distilled with `--kd-normalize none`: the "
               "softmax over the cross-encoder's scores as mined (its sigmoid outputs, in [0, 1]), as a trainer that does not "
               "normalise reads an export with `--score-transform none` (the export-default question of the exports issue)", ("colbert",), kd_ce_rows, None,
               seeded_mining=False, train_args=(*KD_TRAIN_ARGS, "--kd-normalize", "none")),
        Method("hardneg-colbert-teacher-nv", "--min-rank 0 --max-rank 110 --sampling top --relative-margin 0.05 --teacher "
               "COLBERT --scores-from teacher (the NV rule on a stronger teacher's scores: the base retriever's best-ranked "
               "candidate that the ColBERT teacher scores under 95% of the positive; COLBERT: MiniLM + ColBERT head trained "
               "by `hardneg train --architecture colbert` on hardneg-default negatives of the train split, hidden positives "
               "held out)", both, scored_rows(colbert_teacher, "colbert-teacher-nv", **colbert_nv),
               scored_proxy(colbert_teacher, "colbert-teacher-nv", **colbert_nv), seeded_mining=False),
        Method("hardneg-colbert-teacher-nv-fallback", "the default rule (NV margin + fallback) on the ColBERT teacher's "
               "scores: --min-rank 0 --max-rank 110 --sampling top --relative-margin 0.05 --fallback-min-rank 10 --teacher "
               "COLBERT --scores-from teacher (a query the teacher's margin empties takes random candidates from rank 10 on "
               "instead of losing its pairs; COLBERT as in hardneg-colbert-teacher-nv)", both,
               scored_rows(colbert_teacher, "colbert-teacher-nv-fallback", **colbert_nv_fallback),
               scored_proxy(colbert_teacher, "colbert-teacher-nv-fallback", **colbert_nv_fallback), seeded_mining=True),
        Method(f"hardneg-kd-colbert-{KD_DEPTH}", f"pylate-kd from `--kd-depth {KD_DEPTH} --teacher COLBERT --scores-from "
               "teacher` (the base retriever's candidates, the ColBERT teacher's MaxSim scores as targets; COLBERT as in "
               f"hardneg-colbert-teacher-nv), `--loss distillation {' '.join(KD_TRAIN_ARGS)}` (min-max "
               "normalised KL, no in-batch negatives); proxy n/a", both, kd_colbert_rows, None,
               seeded_mining=False, train_args=tuple(KD_TRAIN_ARGS)),
        Method(f"hardneg-kd-colbert-{KD_DEPTH}-raw", f"hardneg-kd-colbert-{KD_DEPTH}'s rows distilled with `--kd-normalize "
               "none`: the softmax over the ColBERT teacher's raw MaxSim sums against the student's own MaxSim sums (the "
               "same scale), as a trainer that does not normalise reads an export with `--score-transform none` (colbert-ai; "
               "the export-default question of the exports issue)", ("colbert",), kd_colbert_rows, None,
               seeded_mining=False, train_args=(*KD_TRAIN_ARGS, "--kd-normalize", "none")),
        Method(f"hardneg-kd-colbert-{KD_DEEP}", f"hardneg-kd-colbert-{KD_DEPTH} at the depth ColBERT recipes distil over: "
               f"pylate-kd from `--kd-depth {KD_DEEP} --teacher COLBERT --scores-from teacher` (the positive and the base "
               f"retriever's {KD_DEEP - 1} best-ranked candidates, the ColBERT teacher's MaxSim scores as targets), `--loss "
               f"distillation {' '.join(KD_DEEP_TRAIN_ARGS)}` (batch 4: a 32-way step at batch 8 does not fit 24 GB); proxy n/a",
               ("colbert",), kd_scored_rows(colbert_teacher, "colbert", KD_DEEP), None,
               seeded_mining=False, train_args=tuple(KD_DEEP_TRAIN_ARGS)),
        Method(f"st-random-10-110-n{MULTI_NEGATIVES}", f"st-random-10-110 with num_negatives={MULTI_NEGATIVES}: each "
               f"(query, positive) row carries {MULTI_NEGATIVES} hard negatives (n-tuple output; ST keeps only full rows), "
               f"MNRL over {MULTI_NEGATIVES + 1} documents per row plus in-batch negatives", both,
               st_rows(f"st-random-n{MULTI_NEGATIVES}", MULTI_NEGATIVES, range_min=10, range_max=110, sampling_strategy="random"),
               st_proxy(range_min=10, range_max=110, sampling_strategy="random"), width=MULTI_NEGATIVES),
        Method(f"hardneg-nv-fallback-n{MULTI_NEGATIVES}", f"the default recipe (hardneg-nv-fallback) with --num-negatives "
               f"{MULTI_NEGATIVES}, exported --nway {MULTI_NEGATIVES + 1}: {MULTI_NEGATIVES} hard negatives per row as "
               "ColBERT recipes train (n-way), against st-random-10-110-n4 at the same width", both,
               hn_rows(f"nv-fallback-n{MULTI_NEGATIVES}", negatives=MULTI_NEGATIVES, **nv_fallback),
               hn_proxy("nv-fallback", **nv_fallback), seeded_mining=True, width=MULTI_NEGATIVES),
        Method(f"hardneg-epochs-{LOOP_ROUNDS}", f"hardneg-default negatives (round 0), trained {LOOP_ROUNDS} epochs: the "
               "loop's control (as many epochs, no re-mining)", both, hn_rows("default", sampling="random", **window),
               hn_proxy("default", sampling="random", **window), train_args=("--epochs", str(LOOP_ROUNDS))),
        Method(f"hardneg-nv-fallback-epochs-{LOOP_ROUNDS}", f"hardneg-nv-fallback's rows (the default recipe) trained "
               f"{LOOP_ROUNDS} epochs: the default against st-relmargin-top-100-epochs-{LOOP_ROUNDS} at an equal budget", both,
               hn_rows("nv-fallback", **nv_fallback), hn_proxy("nv-fallback", **nv_fallback), seeded_mining=True,
               train_args=("--epochs", str(LOOP_ROUNDS))),
        Method(f"st-relmargin-top-100-epochs-{LOOP_ROUNDS}", f"st-relmargin-top-100's rows trained {LOOP_ROUNDS} epochs: "
               f"the best sentence-transformers row at hardneg-epochs-{LOOP_ROUNDS}'s training budget", both,
               st_rows("st-relmargin-100", relative_margin=0.05, sampling_strategy="top", range_min=0, range_max=100),
               st_proxy(relative_margin=0.05, sampling_strategy="top", range_min=0, range_max=100), seeded_mining=False,
               train_args=("--epochs", str(LOOP_ROUNDS))),
        Method(f"hardneg-loop-{LOOP_ROUNDS}", f"`hardneg loop --rounds {LOOP_ROUNDS}`: re-mine with each round's "
               "checkpoint, continue training from it (ANCE); default window and sampling", ("biencoder",), None,
               trained=loop_model("loop", True), rounds=LOOP_ROUNDS),
        Method("hardneg-teacher-loop", "`hardneg loop --config configs/colbert-teacher.toml` (the documented ColBERT recipe, "
               "one command): round 0 mines with the base model under the default rule (NV margin + fallback), round 1 "
               "fine-tunes the bi-encoder teacher on those negatives and re-mines with it under the same rule; the ColBERT "
               "student is then trained once, from the base model, on the teacher's negatives (`students = \"final\"`); "
               "train qrels as they are (no proxy)", ("colbert",), None,
               trained=loop_model("teacher-loop", False, rounds=1, architecture="colbert", recipe=nv_fallback, students="final")),
        Method(f"hardneg-loop-{LOOP_ROUNDS}-from-base", f"`hardneg loop --rounds {LOOP_ROUNDS} --from-base`: re-mine "
               "with each round's checkpoint, train the base model on the last round's negatives (a teacher-mined "
               "control)", ("biencoder",), None, trained=loop_model("loop-from-base", False)),
    ]


class TeacherModel:
    """A stronger miner than the student's starting point, trained offline on the train split only:
    MiniLM fine-tuned (`hardneg train`, seed 42) on hardneg-default negatives mined with the train
    qrels minus the hidden positives, so the false-negative proxy stays honest (the teacher never
    saw the positives the proxy hides). Trained once; its embeddings are cached like any model's."""

    def __init__(self, data: Data, hn: HardnegMiner, work: Path, base: str) -> None:
        self.data, self.hn, self.work, self.base = data, hn, work, base
        self._miner: HardnegMiner | None = None

    def path(self) -> Path:
        out = self.work / "teacher-biencoder"
        if not (out / "manifest.json").exists():
            window = {"min_rank": 10, "max_rank": 110}
            run = self.hn.run("hidden", "teacher-data", num_negatives=1, seed=42, sampling="random", **window)
            export_dir = hardneg_export(run, self.work / "exports" / "teacher-data", "sentence-transformers", 2, 42, self.data)
            cli(["train", str(export_dir), "--out", str(out), "--model", self.base, "--architecture", "biencoder",
                 "--negatives-per-row", "1", "--seed", "42", "--quiet"])
        return out

    def miner(self) -> HardnegMiner:
        if self._miner is None:
            self._miner = HardnegMiner(self.data, str(self.path()), self.work / "hn-teacher")
        return self._miner


class TrainedTeacher:
    """A teacher trained offline on the train split only, by `hardneg train` (seed 42), on
    hardneg-default negatives mined with the hidden positives held out (the proxy stays honest):

    - ``cross-encoder`` (RocketQA-style): MiniLM as a reranker, BCE on each train pair's positive
      and 5 negatives, stored as ``teacher-cross-encoder``;
    - ``colbert``: MiniLM with a ColBERT head, MNRL on one negative per pair (TeacherModel's data),
      stored as ``teacher-colbert``. As a student on that recipe ColBERT reaches ~0.71 nDCG@10 on
      SciFact where the bi-encoder reaches ~0.68: a teacher stronger than the bi-encoder student,
      trainable here (TAS-B distils a bi-encoder from ColBERT)."""

    def __init__(self, data: Data, hn: HardnegMiner, work: Path, base: str, architecture: str) -> None:
        self.data, self.hn, self.work, self.base, self.architecture = data, hn, work, base, architecture
        self.negatives, self.run_name = (5, "ce-data") if architecture == "cross-encoder" else (1, "teacher-data")

    def path(self) -> Path:
        out = self.work / f"teacher-{self.architecture}"
        if not (out / "manifest.json").exists():
            run = self.hn.run("hidden", self.run_name, num_negatives=self.negatives, seed=42, sampling="random",
                              min_rank=10, max_rank=110)
            export_dir = hardneg_export(run, self.work / "exports" / self.run_name, "sentence-transformers",
                                        self.negatives + 1, 42, self.data)
            cli(["train", str(export_dir), "--out", str(out), "--model", self.base, "--architecture", self.architecture,
                 "--negatives-per-row", str(self.negatives), "--seed", "42", "--quiet", "--no-gradient-checkpointing"])
        return out


# --------------------------------------------------------------------------- results and table


def unit_path(results: Path, dataset: str, student: str, method: str, seed: int) -> Path:
    return results / dataset / student / method / f"seed{seed}.json"


def load_results(results: Path, dataset: str, student: str) -> dict[str, dict[int, dict[str, Any]]]:
    out: dict[str, dict[int, dict[str, Any]]] = {}
    root = results / dataset / student
    for file in sorted(root.glob("*/seed*.json")):
        out.setdefault(file.parent.name, {})[int(file.stem[4:])] = json.loads(file.read_text())
    return out


def paired_bootstrap(a: dict[str, float], b: dict[str, float], resamples: int = 10_000, seed: int = 0) -> tuple[float, float, float]:
    """Mean of a - b over shared queries and its percentile 95% interval (queries resampled, paired)."""
    qids = sorted(set(a) & set(b))
    diff = np.array([a[q] - b[q] for q in qids])
    rng = np.random.default_rng(seed)
    means = diff[rng.integers(0, len(diff), size=(resamples, len(diff)))].mean(axis=1)
    return float(diff.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def seed_bootstrap(a: dict[int, dict[str, float]], b: dict[int, dict[str, float]], resamples: int = 10_000,
                   seed: int = 0) -> tuple[float, float, float]:
    """Mean of row a - row b (each averaged over its seeds, on shared queries) and a percentile 95%
    interval that holds both sources of noise: each resample draws the rows' seeds with replacement
    (the same draw for both rows when they have the same seeds: a seed's head initialisation and
    data order are shared across methods, so its effect is paired), then the test queries (paired).

    A bootstrap over queries alone (``paired_bootstrap`` of the seed-averaged scores) treats the
    trained models as fixed, so training noise never widens it. It does not stay fixed: the same
    rows trained again on another machine (the H200 replication in docs/benchmarks.md) moved by
    more than those intervals allowed. With one seed on a side, that side's training noise is not
    in the interval (the table says so)."""
    qids = sorted(set.intersection(*(set(u) for u in [*a.values(), *b.values()])))
    sa = np.array([[a[s][q] for q in qids] for s in sorted(a)], dtype=np.float64)
    sb = np.array([[b[s][q] for q in qids] for s in sorted(b)], dtype=np.float64)
    rng = np.random.default_rng(seed)
    n_q = len(qids)
    paired = sorted(a) == sorted(b)
    means = np.empty(resamples)
    for start in range(0, resamples, 1000):  # blocks bound memory to 1000 x seeds x queries
        r = min(1000, resamples - start)
        ia = rng.integers(0, len(sa), size=(r, len(sa)))
        ib = ia if paired else rng.integers(0, len(sb), size=(r, len(sb)))
        diff = sa[ia].mean(axis=1) - sb[ib].mean(axis=1)  # (r, queries): per-query difference of the drawn seeds
        qs = rng.integers(0, n_q, size=(r, n_q))
        means[start:start + r] = np.take_along_axis(diff, qs, axis=1).mean(axis=1)
    return float(sa.mean() - sb.mean()), float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def table(results: Path, dataset: str, student: str, methods: list[Method], command: str, sample: str = "") -> list[str]:
    units = load_results(results, dataset, student)
    settings = {m.name: m.settings for m in methods}
    rows = {name: u for name, u in units.items() if u}
    if not rows:
        return [f"(no results for {student} on {dataset} yet)"]
    st_rows = [n for n in rows if n.startswith("st-")]
    # Each row against the best ST row of its own training budget (epochs, negatives per row): more
    # epochs moved every recipe by more than the recipes differ, so a 3-epoch row against 1-epoch ST
    # rows says nothing; an n-way row costs 2-3x the training of a triple.
    budget = {m.name: m.budget for m in methods}
    best_st_at: dict[tuple[int, int], str] = {}
    for n in sorted(st_rows, key=lambda n: -np.mean([u["metrics"]["ndcg@10"] for u in rows[n].values()])):
        best_st_at.setdefault(budget.get(n, (1, 1)), n)
    best_st = best_st_at.get((1, 1))
    others = ", ".join(f"rows trained {e} epoch{'s' if e != 1 else ''}{f' on {w} negatives a row' if w != 1 else ''}: `{n}`"
                       for (e, w), n in sorted(best_st_at.items()) if (e, w) != (1, 1))

    def ci(name: str, ref: str | None) -> str:
        if ref is None or ref not in rows or name == ref:
            return "-"
        a = {s: u["per_query_ndcg"] for s, u in rows[name].items()}
        b = {s: u["per_query_ndcg"] for s, u in rows[ref].items()}
        d, lo, hi = seed_bootstrap(a, b)
        mark = " *" if lo > 0 or hi < 0 else ""
        single = " (1 seed)" if min(len(a), len(b)) == 1 else ""
        return f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]{mark}{single}"

    seeds = sorted({int(seed) for u in rows.values() for seed in u})
    machines = sorted({str(x.get("machine", "")) for u in rows.values() for x in u.values()} - {""}) or [
        f"{platform.machine()}, {os.cpu_count()} cores"]
    command = re.sub(r"--seeds [\d,]+", "--seeds " + ",".join(map(str, seeds)), command) if "--seeds" in command else (
        f"{command} --seeds {','.join(map(str, seeds))}")
    lines = [
        f"### {student} student on {dataset}",
        "",
        f"Command: `{command}`. Machine: {'; '.join(machines)}. nDCG@10 is the mean over seeds "
        "(± the standard deviation across seeds when there are several); Δ columns: the difference of the rows' "
        "nDCG@10 and its 95% interval from a bootstrap over seeds and test queries (each resample draws each row's seeds, "
        "the same draw for rows with the same seeds, then the queries, paired), `*` when it excludes 0; `(1 seed)`: a "
        "side has one seed, so training noise is not in that interval. "
        f"Best sentence-transformers row: `{best_st}`" + (f" ({others})" if others else "") + "."
        + (f" Training pairs: {sample}." if sample else ""),
        "",
        "| method | seeds | nDCG@10 | Recall@100 | MRR@10 | Δ vs best ST | Δ vs in-batch | false-negative proxy | minutes (mine + train + eval) | settings |",
        "|---|---|---:|---:|---:|---|---|---|---:|---|",
    ]
    order = [m.name for m in methods if m.name in rows] + sorted(set(rows) - {m.name for m in methods})
    for name in order:
        u = rows[name]
        nd = [x["metrics"]["ndcg@10"] for x in u.values()]
        rec = np.mean([x["metrics"]["recall@100"] for x in u.values()])
        mrr = np.mean([x["metrics"]["mrr@10"] for x in u.values()])
        sd = f" ± {np.std(nd, ddof=1):.4f}" if len(nd) > 1 else ""
        proxies = [x["proxy"] for x in u.values() if x.get("proxy")]
        # Seeded mining draws other negatives per seed: the proxy is summed over the seeds then.
        hits, total = (sum(p[0] for p in proxies), sum(p[1] for p in proxies)) if len({tuple(p) for p in proxies}) > 1 else (
            proxies[0] if proxies else (0, 0))
        proxy = f"{hits}/{total} ({hits / max(1, total):.1%})" if proxies else "-"
        timed = [x for x in u.values() if not x.get("train_time_unknown")] or list(u.values())
        minutes = np.mean([sum(x["seconds"].values()) for x in timed]) / 60
        lines.append(
            f"| {name} | {','.join(map(str, sorted(u)))} | {np.mean(nd):.4f}{sd} | {rec:.4f} | {mrr:.4f} | {ci(name, best_st_at.get(budget.get(name, (1, 1))))} | "
            f"{ci(name, 'in-batch')} | {proxy} | {minutes:.1f} | {settings.get(name, '')} |"
        )
    return lines


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--student", choices=["biencoder", "colbert"], default="biencoder")
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--seeds", default="42", help="comma-separated training (and sampling) seeds")
    parser.add_argument("--methods", default="", help="comma-separated method names, run in this order (default: all)")
    parser.add_argument("--results", type=Path, default=Path("docs/results/quality"), help="one JSON per finished unit")
    parser.add_argument("--work", type=Path, default=Path("runs/benchmark-quality"), help="mined runs, exports, model scratch")
    parser.add_argument("--train-queries", type=int, help="subsample this many training queries (seeded, fixed seed 0)")
    parser.add_argument("--positives-per-query", type=int, help="training rows per query: this many of its positives "
                        "(seeded; the miner still excludes all of them)")
    parser.add_argument("--table", action="store_true", help="only print the table from the results so far")
    parser.add_argument("--write", type=Path, help="append the table to this Markdown file")
    args = parser.parse_args()

    from hardneg.config import EmbedConfig
    from hardneg.errors import HardnegError
    from hardneg.models import resolve_model

    base = resolve_model(EmbedConfig(model=args.model)).path
    assert base is not None
    data = subsample(load(args.data), args.train_queries, args.positives_per_query)
    dataset = args.data.resolve().name
    tag = "".join(f"-{k}{v}" for k, v in (("q", args.train_queries), ("p", args.positives_per_query)) if v)
    work = args.work / f"{dataset}{tag}"
    methods = methods_for(data, str(base), args.model, work)
    wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
    unknown = set(wanted) - {m.name for m in methods}
    if unknown:
        raise SystemExit(f"unknown method(s): {', '.join(sorted(unknown))}; known: {', '.join(m.name for m in methods)}")
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    command = f"python scripts/benchmark_quality.py {args.data} --student {args.student} --seeds {args.seeds}"
    command += "".join(f" --{k} {v}" for k, v in (("train-queries", args.train_queries),
                                                  ("positives-per-query", args.positives_per_query)) if v)

    if not args.table:
        for seed in seeds:
            order = sorted((m for m in methods if m.name in wanted), key=lambda m: wanted.index(m.name)) if wanted else methods
            for method in order:
                if (wanted and method.name not in wanted) or args.student not in method.students:
                    continue
                if method.prepare is None and method.trained is None and seed != seeds[0]:
                    continue  # zero-shot has nothing to seed
                path = unit_path(args.results, dataset, args.student, method.name, seed)
                if path.exists():
                    cached_sample = json.loads(path.read_text()).get("sample", "")
                    if cached_sample != data.sample:
                        raise SystemExit(f"{path} was trained on other pairs ({cached_sample or 'all pairs'}); "
                                         f"this run asks for {data.sample or 'all pairs'}: use another --results")
                    print(f"{method.name} seed {seed}: cached ({path})", flush=True)
                    continue
                t0 = time.time()
                try:
                    if method.trained is not None:  # the loop rows: the method trains its own checkpoint
                        model_dir, train_s, loop_s = method.trained(seed)
                        mine_s = loop_s - train_s  # embedding, mining and exporting in every round
                        result, _, eval_s = train_and_eval(args.data, None, args.student, seed, 0, None, work, str(model_dir))
                        proxy = None
                    else:
                        export_dir, loss, negatives = method.prepare(seed) if method.prepare else (None, None, 0)
                        proxy = None
                        if method.proxy is not None:
                            negs = method.proxy(seed)
                            _, hidden = hidden_split(data)
                            proxy = [sum(1 for q, d in hidden.items() if d in negs.get(q, [])), len(hidden)]
                        mine_s = time.time() - t0
                        result, train_s, eval_s = train_and_eval(
                            args.data, export_dir, args.student, seed, negatives, loss, work, args.model, list(method.train_args)
                        )
                except (SystemExit, HardnegError) as exc:  # one failed unit (e.g. killed for memory) does not stop the others
                    print(f"{method.name} seed {seed}: FAILED ({exc}); not cached, will be retried next run", flush=True)
                    continue
                unit = {
                    "method": method.name,
                    "student": args.student,
                    "seed": seed,
                    "settings": method.settings,
                    "sample": data.sample,
                    "metrics": {k: result["metrics"][k] for k in ("ndcg@10", "mrr@10", "recall@10", "recall@100")},
                    "per_query_ndcg": {q: round(m["ndcg@10"], 6) for q, m in sorted(result["per_query"].items())},
                    "proxy": proxy,
                    "seconds": {"mine": round(mine_s, 1), "train": round(train_s, 1), "eval": round(eval_s, 1)},
                    "date": time.strftime("%Y-%m-%d"),
                    "code": code_version(),
                    "machine": machine(),
                }
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                tmp.write_text(json.dumps(unit, indent=1, sort_keys=True) + "\n")
                tmp.replace(path)
                print(f"{method.name} seed {seed}: nDCG@10 {unit['metrics']['ndcg@10']:.4f} proxy {proxy} "
                      f"({sum(unit['seconds'].values()):.0f}s)", flush=True)

    lines = table(args.results, dataset, args.student, methods, command, data.sample)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.write:
        with open(args.write, "a", encoding="utf-8") as fh:
            fh.write("\n" + text)


if __name__ == "__main__":
    main()
