"""Downstream quality of mined negatives: fine-tune MiniLM on each method's data, evaluate on test.

Usage:
    python scripts/benchmark_quality.py ../shared/data/scifact --write docs/benchmarks.md

For each method the packaged all-MiniLM-L6-v2 is fine-tuned with sentence-transformers
(MultipleNegativesRankingLoss, 1 epoch, batch 32, lr 2e-5, no duplicate texts in a batch, fixed
seed) on the train split: one (query, positive, negative) row per (query, positive) pair, or
(query, positive) rows for in-batch negatives only. Each model is evaluated on the test split
(nDCG@10, Recall@100, MRR@10, exact search over the whole corpus).

False-negative proxy: for train queries with two or more positives, one positive is hidden from the
miner (it stays in the corpus); the proxy counts how often a method selects it as a negative, with
10 negatives per query. Lower is better.

All methods run in one process, in one run (datasets and accelerate come with sentence-transformers[train]).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _bench import emit  # scripts/_bench.py (scripts run as `python scripts/...`)

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("WANDB_DISABLED", "true")


@dataclass
class Data:
    corpus: dict[str, str]
    queries: dict[str, str]
    train: dict[str, list[str]]
    test: dict[str, list[str]]
    path: Path


def load(path: Path) -> Data:
    corpus = {}
    for line in open(path / "corpus.jsonl", encoding="utf-8"):
        d = json.loads(line)
        corpus[str(d["_id"])] = f"{d.get('title', '')} {d['text']}".strip()
    queries = {str(q["_id"]): q["text"] for q in map(json.loads, open(path / "queries.jsonl", encoding="utf-8"))}

    def qrels(split: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for line in (path / "qrels" / f"{split}.tsv").read_text(encoding="utf-8").splitlines()[1:]:
            qid, did, score = line.strip().split("\t")
            if float(score) > 0:
                out.setdefault(qid, []).append(did)
        return out

    return Data(corpus, queries, qrels("train"), qrels("test"), path)


# --------------------------------------------------------------------------- evaluation


def evaluate(model: Any, data: Data, batch_size: int = 64) -> dict[str, float]:
    ids = list(data.corpus)
    docs = model.encode([data.corpus[i] for i in ids], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    qids = list(data.test)
    qs = model.encode([data.queries[q] for q in qids], batch_size=batch_size, normalize_embeddings=True, convert_to_numpy=True)
    scores = qs @ docs.T
    top = np.argsort(-scores, axis=1, kind="stable")[:, :100]
    ndcg, recall, mrr = [], [], []
    for row, qid in enumerate(qids):
        relevant = set(data.test[qid])
        ranked = [ids[j] for j in top[row]]
        gains = [1.0 if d in relevant else 0.0 for d in ranked[:10]]
        dcg = sum(g / np.log2(i + 2) for i, g in enumerate(gains))
        ideal = sum(1.0 / np.log2(i + 2) for i in range(min(10, len(relevant))))
        ndcg.append(dcg / ideal)
        recall.append(len(relevant & set(ranked)) / len(relevant))
        mrr.append(next((1.0 / (i + 1) for i, d in enumerate(ranked[:10]) if d in relevant), 0.0))
    return {"ndcg@10": float(np.mean(ndcg)), "recall@100": float(np.mean(recall)), "mrr@10": float(np.mean(mrr))}


# --------------------------------------------------------------------------- training


def train(base: str, rows: list[tuple[str, ...]], seed: int, work: Path) -> Any:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.losses import MultipleNegativesRankingLoss
    from sentence_transformers.training_args import BatchSamplers

    random.seed(seed)
    np.random.seed(seed)
    import torch

    torch.manual_seed(seed)
    model = SentenceTransformer(base, device="cpu")
    columns = ["anchor", "positive", "negative"][: len(rows[0])]
    dataset = Dataset.from_dict({c: [r[i] for r in rows] for i, c in enumerate(columns)})
    args = SentenceTransformerTrainingArguments(
        output_dir=str(work / "trainer"),
        num_train_epochs=1,
        per_device_train_batch_size=32,
        learning_rate=2e-5,
        warmup_ratio=0.1,
        seed=seed,
        data_seed=seed,
        batch_sampler=BatchSamplers.NO_DUPLICATES,
        save_strategy="no",
        report_to="none",
        logging_steps=1000,
        use_cpu=True,
        disable_tqdm=True,
    )
    trainer = SentenceTransformerTrainer(model=model, args=args, train_dataset=dataset, loss=MultipleNegativesRankingLoss(model))
    trainer.train()
    return model


# --------------------------------------------------------------------------- miners


def pairs_of(data: Data, qrels: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [(q, d) for q, ds in qrels.items() for d in ds]


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
    (dest / "qrels").mkdir(parents=True, exist_ok=True)
    shutil.copy(data.path / "corpus.jsonl", dest / "corpus.jsonl")
    shutil.copy(data.path / "queries.jsonl", dest / "queries.jsonl")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, ds in qrels.items() for d in ds]
    (dest / "qrels" / "train.tsv").write_text("\n".join(lines) + "\n")
    return dest


class HardnegMiner:
    """hardneg through its library API; embeddings are computed once and reused by every method."""

    def __init__(self, data: Data, model: str, work: Path) -> None:
        from hardneg.config import EmbedConfig
        from hardneg.embed import embed
        from hardneg.encoders import load_encoder
        from hardneg.inputs import load_input

        self.data, self.work = data, work
        self.embed_config = EmbedConfig(model=model)
        self.encoder = load_encoder(self.embed_config)
        self.embeddings: dict[str, Path] = {}
        full = write_beir(data, data.train, work / "beir-full")
        self.embeddings["full"] = embed(load_input(full), work / "emb-full", self.embed_config, encoder=self.encoder).path
        kept, _ = hidden_split(data)
        hidden = write_beir(data, kept, work / "beir-hidden")
        # Same model, same texts: a forced rebuild over a copy reuses every vector (no encoding).
        shutil.copytree(self.embeddings["full"], work / "emb-hidden")
        self.embeddings["hidden"] = embed(
            load_input(hidden), work / "emb-hidden", self.embed_config, encoder=self.encoder, force=True
        ).path

    def mine(self, which: str, num_negatives: int, **mine_args: Any) -> dict[str, list[str]]:
        from hardneg.config import IndexConfig, MineConfig
        from hardneg.export import read_run
        from hardneg.index import build_index
        from hardneg.mine import mine

        index = build_index(self.embeddings[which], self.work / f"idx-{which}", IndexConfig(backend="exact")).path
        out = self.work / f"run-{which}"
        mine(index, out, MineConfig(num_negatives=num_negatives, **mine_args), force=True)
        _, queries, _ = read_run(out)
        return {q.query_id: q.negatives for q in queries}


class STMiner:
    """sentence-transformers' mine_hard_negatives, with its embedding cache shared across calls."""

    def __init__(self, data: Data, model_path: str, work: Path) -> None:
        from sentence_transformers import SentenceTransformer

        self.data, self.work = data, work
        self.model = SentenceTransformer(model_path, device="cpu")
        self.corpus_ids = list(data.corpus)
        self.by_text = {}
        for did in self.corpus_ids:
            self.by_text.setdefault(data.corpus[did], did)

    def mine(self, which: str, num_negatives: int, **st_args: Any) -> dict[str, list[str]]:
        from datasets import Dataset
        from sentence_transformers.util import mine_hard_negatives

        qrels = self.data.train if which == "full" else hidden_split(self.data)[0]
        pairs = pairs_of(self.data, qrels)
        dataset = Dataset.from_dict(
            {"query": [self.data.queries[q] for q, _ in pairs], "positive": [self.data.corpus[d] for _, d in pairs]}
        )
        result = mine_hard_negatives(
            dataset, self.model, corpus=[self.data.corpus[d] for d in self.corpus_ids], num_negatives=num_negatives,
            output_format="n-tuple", batch_size=64, cache_folder=str(self.work / "st-cache"), verbose=False, **st_args,
        )
        text_to_qid = {self.data.queries[q]: q for q in qrels}
        out: dict[str, list[str]] = {}
        for row in result:
            negs = [self.by_text[row[k]] for k in row if k.startswith("negative")]
            out.setdefault(text_to_qid[row["query"]], [])
            out[text_to_qid[row["query"]]] += [n for n in negs if n not in out[text_to_qid[row["query"]]]]
        return out


def rows_from(data: Data, negatives: dict[str, list[str]]) -> list[tuple[str, str, str]]:
    """One (query, positive, negative) row per train pair; positive i takes negative i mod N."""
    rows = []
    for q, positives in data.train.items():
        negs = negatives.get(q, [])
        if not negs:
            continue
        rows += [(data.queries[q], data.corpus[p], data.corpus[negs[i % len(negs)]]) for i, p in enumerate(positives)]
    return rows


def proxy(data: Data, negatives: dict[str, list[str]]) -> tuple[int, int]:
    """(hidden positives selected as negatives, queries with a hidden positive)."""
    _, hidden = hidden_split(data)
    return sum(1 for q, d in hidden.items() if d in negatives.get(q, [])), len(hidden)


# --------------------------------------------------------------------------- main


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--methods", default="", help="comma-separated subset of method names")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    from hardneg.config import EmbedConfig
    from hardneg.encoders import resolve_model

    base = resolve_model(EmbedConfig(model=args.model)).path
    assert base is not None
    data = load(args.data)
    started = time.time()
    work = Path(tempfile.mkdtemp(prefix="hardneg-quality-"))
    try:
        hn = HardnegMiner(data, args.model, work / "hn")
        st = STMiner(data, base, work / "st")
        window = {"min_rank": 10, "max_rank": 110}
        methods: dict[str, tuple[str, Callable[[str, int], dict[str, list[str]]] | None]] = {
            "zero-shot (no fine-tuning)": ("-", None),
            "in-batch negatives only": ("-", None),
            "ST mine_hard_negatives, range 10-110, random": (
                "range_min=10, range_max=110, sampling_strategy=random",
                lambda w, n: st.mine(w, n, range_min=10, range_max=110, sampling_strategy="random"),
            ),
            "ST mine_hard_negatives, relative_margin 0.05, top": (
                "relative_margin=0.05, sampling_strategy=top (its docstring's recommendation)",
                lambda w, n: st.mine(w, n, relative_margin=0.05, sampling_strategy="top"),
            ),
            "hardneg random window 10-110": (
                "--min-rank 10 --max-rank 110 --sampling random",
                lambda w, n: hn.mine(w, n, sampling="random", seed=args.seed, **window),
            ),
            "hardneg top + relative margin 0.05": (
                "--min-rank 0 --max-rank 110 --sampling top --relative-margin 0.05",
                lambda w, n: hn.mine(w, n, sampling="top", relative_margin=0.05, min_rank=0, max_rank=110),
            ),
            "hardneg simans 10-110": (
                "--min-rank 10 --max-rank 110 --sampling simans",
                lambda w, n: hn.mine(w, n, sampling="simans", seed=args.seed, **window),
            ),
        }
        wanted = [m.strip() for m in args.methods.split(",") if m.strip()]
        results = []
        for name, (settings, miner) in methods.items():
            if wanted and not any(w in name for w in wanted):
                continue
            t0 = time.time()
            fn_proxy = "-"
            if name.startswith("zero-shot"):
                from sentence_transformers import SentenceTransformer

                model = SentenceTransformer(base, device="cpu")
                rows_count = 0
            else:
                if miner is None:
                    rows: list[tuple[str, ...]] = [(data.queries[q], data.corpus[d]) for q, d in pairs_of(data, data.train)]
                else:
                    rows = list(rows_from(data, miner("full", 1)))
                    hit, total = proxy(data, miner("hidden", 10))
                    fn_proxy = f"{hit}/{total} ({hit / max(1, total):.1%})"
                rows_count = len(rows)
                model = train(base, rows, args.seed, work)
            metrics = evaluate(model, data)
            results.append((name, settings, rows_count, metrics, fn_proxy, time.time() - t0))
            print(f"{name}: {metrics} proxy {fn_proxy} ({time.time() - t0:.0f}s)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    lines = [
        f"### Downstream quality on {args.data.name}: MiniLM fine-tuned on each method's negatives",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}; {time.time() - started:.0f} s in all. "
        f"Command: `python scripts/benchmark_quality.py {args.data} --model {args.model}` (seed {args.seed}).",
        "MNRL, 1 epoch, batch 32, lr 2e-5, no-duplicates batches; one negative per (query, positive) row. "
        "False-negative proxy: hidden positives selected among 10 negatives (lower is better).",
        "",
        "| method | settings | train rows | nDCG@10 | Recall@100 | MRR@10 | false-negative proxy |",
        "|---|---|---:|---:|---:|---:|---|",
    ]
    for name, settings, count, m, fn_proxy, _ in results:
        lines.append(
            f"| {name} | {settings} | {count} | {m['ndcg@10']:.4f} | {m['recall@100']:.4f} | {m['mrr@10']:.4f} | {fn_proxy} |"
        )
    emit(lines, args.write)


if __name__ == "__main__":
    main()
