"""How else the encoder could run: torch eager fp32 (hardneg's CPU default) against bf16, torch.compile
and the OpenVINO / ONNX Runtime backends, for speed and for the cosine of each vector to its fp32 twin.

Usage:
    python scripts/benchmark_backends.py ../shared/data/scifact --texts 512 [--repeats 2] [--write docs/benchmarks.md]

Every contender encodes the same texts (the first ``--texts`` documents, title + text) with the same
tokenisation: sorted by length, batches of ``--batch-size``, each padded to a multiple of
``--pad-multiple`` tokens (so torch.compile sees a bounded set of shapes), truncated at 256 tokens,
mean pooling and L2 normalisation as all-MiniLM-L6-v2 does. Each contender runs in a process of its
own (set up, a warm-up pass, a timed pass), so one runtime's thread pool cannot slow another's (in
one process, OpenVINO's spinning workers slowed torch's eager passes ~2x), and the processes run
interleaved (A B C ..., then again), so a change in background load hits them alike; the table
reports each one's best timed pass, its ratio to eager fp32's best, and the min / mean cosine to
the eager fp32 vectors.

torch.compile: ``torch._dynamo.explain`` on one batch reports the graphs and graph breaks; the
first pass over the texts (compilation included) is the warm-up column, later passes are timed.
OpenVINO (``pip install openvino``; not a hardneg dependency) converts the same torch module with
``openvino.convert_model`` and runs with ``INFERENCE_PRECISION_HINT`` f32 (its CPU default on
bf16-capable CPUs is bf16, which is listed separately). ONNX Runtime runs when ``onnxruntime`` is
importable. sentence-transformers' own ``backend="onnx"|"openvino"`` needs ``optimum``, whose
releases cannot be installed beside sentence-transformers 6.2 (see docs/benchmarks.md), so this
script drives the runtimes directly with the same graph.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from _bench import emit  # scripts/_bench.py (scripts run as `python scripts/...`)


def load_texts(data: Path, n: int) -> list[str]:
    texts = []
    with open(data / "corpus.jsonl", encoding="utf-8") as f:
        for line in f:
            doc = json.loads(line)
            texts.append((doc.get("title", "") + " " + doc["text"]).strip())
            if len(texts) == n:
                break
    return texts


def longest_first(texts: list[str]) -> list[int]:
    """The order every contender encodes in (the vectors are compared in this order)."""
    return sorted(range(len(texts)), key=lambda i: -len(texts[i]))


def batches(tokenizer: Any, texts: list[str], batch_size: int, multiple: int) -> list[dict[str, np.ndarray]]:
    order = longest_first(texts)
    out = []
    for start in range(0, len(order), batch_size):
        chunk = [texts[i] for i in order[start:start + batch_size]]
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=256, pad_to_multiple_of=multiple, return_tensors="np")
        out.append({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


def texts_of(texts: list[str], batch_size: int) -> list[dict[str, Any]]:
    """The same batches as raw texts (for contenders that tokenise themselves)."""
    order = longest_first(texts)
    return [{"texts": [texts[i] for i in order[start:start + batch_size]]} for start in range(0, len(order), batch_size)]


def pool(hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    m = mask[..., None].astype(np.float32)
    v = (hidden.astype(np.float32) * m).sum(1) / np.clip(m.sum(1), 1e-9, None)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def torch_runner(module: Any, dtype: Any = None) -> Callable[[dict[str, np.ndarray]], np.ndarray]:
    import torch

    def run(batch: dict[str, np.ndarray]) -> np.ndarray:
        with torch.inference_mode(), torch.autocast("cpu", dtype=dtype, enabled=dtype is not None):
            hidden = module(**{k: torch.from_numpy(v) for k, v in batch.items()}).last_hidden_state
        return pool(hidden.float().numpy(), batch["attention_mask"])

    return run


def build_runner(name: str, path: str, data: list[dict[str, np.ndarray]], pad_multiple: int) -> tuple[Callable[[dict[str, np.ndarray]], np.ndarray], str]:
    """The encode function of one contender, and a note on how it runs."""
    import torch
    from transformers import AutoModel

    if name == "st-encode-fp32":  # what `hardneg embed` runs: SentenceTransformer.encode, its own batching
        from sentence_transformers import SentenceTransformer

        st = SentenceTransformer(path, device="cpu")
        return (lambda batch: st.encode(batch["texts"], batch_size=len(batch["texts"]), normalize_embeddings=True,
                                        convert_to_numpy=True, show_progress_bar=False)), "sentence-transformers encode (hardneg's path)"
    eager = AutoModel.from_pretrained(path).eval()
    if name == "eager-fp32":
        return torch_runner(eager), ""
    if name == "eager-bf16":
        return torch_runner(eager, torch.bfloat16), ""
    if name == "compile-fp32":
        compiled = torch.compile(eager, dynamic=True)
        sample = {k: torch.from_numpy(v) for k, v in data[len(data) // 2].items()}
        with torch.inference_mode():
            explained = torch._dynamo.explain(compiled)(**sample)
        return torch_runner(compiled), (f"dynamo: {explained.graph_count} graph(s), {explained.graph_break_count} break(s), "
                                        f"dynamic shapes, batches padded to multiples of {pad_multiple}")
    if name.startswith("openvino"):
        import openvino as ov

        example = {k: torch.from_numpy(v) for k, v in data[0].items()}
        ov_model = ov.convert_model(eager, example_input=example)
        hint = "f32" if name.endswith("fp32") else "bf16"
        compiled_ov = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
        port = compiled_ov.outputs[0]
        return (lambda batch: pool(compiled_ov(batch)[port], batch["attention_mask"])), f"openvino {ov.__version__.split('-')[0]}, INFERENCE_PRECISION_HINT {hint}"
    if name == "onnxruntime-fp32":
        import tempfile

        import onnxruntime as ort

        names = ("input_ids", "attention_mask", "token_type_ids")
        onnx_path = Path(tempfile.mkdtemp(prefix="hardneg-bench-")) / "model.onnx"
        axes = {k: {0: "batch", 1: "seq"} for k in names}
        class Positional(torch.nn.Module):  # the tracer passes inputs by position; BertModel's order changed in transformers 5
            def __init__(self, inner: Any) -> None:
                super().__init__()
                self.inner = inner

            def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
                return self.inner(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids).last_hidden_state

        torch.onnx.export(Positional(eager), tuple(torch.from_numpy(data[0][k]) for k in names), str(onnx_path), input_names=list(names),
                          output_names=["last_hidden_state"], dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "seq"}},
                          dynamo=False)
        session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
        return (lambda batch: pool(session.run(["last_hidden_state"], batch)[0], batch["attention_mask"])), f"onnxruntime {ort.__version__}"
    raise SystemExit(f"unknown contender {name}")


def child(args: argparse.Namespace, path: str, data: list[dict[str, Any]]) -> None:
    """One contender in this process: setup, a warm-up pass (vectors saved), a timed pass."""
    t0 = time.perf_counter()
    try:
        run, note = build_runner(args.child, path, data, args.pad_multiple)
    except ImportError as exc:
        print(json.dumps({"missing": exc.name}))
        return
    setup = time.perf_counter() - t0
    t0 = time.perf_counter()
    vectors = np.concatenate([run(b) for b in data])
    warmup = time.perf_counter() - t0
    t0 = time.perf_counter()
    for b in data:
        run(b)
    timed = time.perf_counter() - t0
    np.save(args.vectors, vectors)
    print(json.dumps({"setup": setup, "warmup": warmup, "pass": timed, "note": note}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pad-multiple", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--contenders", default="eager-fp32,st-encode-fp32,eager-bf16,compile-fp32,openvino-fp32,openvino-bf16,onnxruntime-fp32")
    parser.add_argument("--write", type=Path)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--vectors", help=argparse.SUPPRESS)
    args = parser.parse_args()

    from transformers import AutoTokenizer

    from hardneg.config import EmbedConfig
    from hardneg.models import resolve_model

    path = resolve_model(EmbedConfig(model=args.model)).path
    if path is None:
        raise SystemExit(f"--model {args.model}: not a transformer checkpoint")
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = load_texts(args.data, args.texts)
    data = batches(tokenizer, texts, args.batch_size, args.pad_multiple)
    if args.child:
        child(args, path, texts_of(texts, args.batch_size) if args.child.startswith("st-") else data)
        return
    import subprocess
    import sys
    import tempfile

    import torch

    tokens = sum(int(b["attention_mask"].sum()) for b in data)
    padded = sum(b["attention_mask"].size for b in data)
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    results: dict[str, list[dict[str, Any]]] = {n: [] for n in wanted}
    vectors: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory(prefix="hardneg-bench-") as tmp:
        for _ in range(args.repeats):
            for name in wanted:
                if results[name] and ("missing" in results[name][0] or "failed" in results[name][0]):
                    continue
                out = Path(tmp) / f"{name}.npy"
                cmd = [sys.executable, __file__, str(args.data), "--model", args.model, "--texts", str(args.texts),
                       "--batch-size", str(args.batch_size), "--pad-multiple", str(args.pad_multiple),
                       "--child", name, "--vectors", str(out)]
                proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
                if proc.returncode != 0:
                    sys.stderr.write(f"{name} failed:\n{proc.stderr[-3000:]}\n")
                    results[name].append({"failed": proc.stderr.strip().splitlines()[-1][:200] if proc.stderr.strip() else "?"})
                    continue
                results[name].append(json.loads(proc.stdout.strip().splitlines()[-1]))
                if out.exists():
                    vectors[name] = np.load(out)

    best = {n: min(r["pass"] for r in runs) for n, runs in results.items() if runs and "pass" in runs[0]}
    base, ref = best.get("eager-fp32"), vectors.get("eager-fp32")
    lines = [
        f"### Encoder backends: {args.model} on the first {len(texts)} documents of {args.data.name}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}. "
        f"Command: `python scripts/benchmark_backends.py {args.data} --texts {args.texts} --repeats {args.repeats}`. "
        f"{len(data)} batches of {args.batch_size}, {tokens:,} tokens padded to {padded:,}; each contender in its own process, "
        f"{args.repeats} interleaved repeats; setup and warm-up are the first repeat's, the timed pass the best.",
        "",
        "| contender | setup (s) | warm-up pass (s) | best timed pass (s) | texts/s | time / eager fp32 | min cosine to fp32 | mean cosine | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in wanted:
        runs = results[name]
        if not runs or "missing" in runs[0] or "failed" in runs[0]:
            why = (f"not run: {runs[0]['missing']} is not installed" if runs and "missing" in runs[0]
                   else f"failed: {runs[0]['failed']}" if runs else "not run")
            lines.append(f"| {name} | | | | | | | | {why} |")
            continue
        first, t = runs[0], best[name]
        ratio = f"{t / base:.2f}" if base else ""
        cos = (vectors[name] * ref).sum(1) if ref is not None and name in vectors else None
        cosines = f"{cos.min():.5f} | {cos.mean():.6f}" if cos is not None else " | "
        lines.append(f"| {name} | {first['setup']:.1f} | {first['warmup']:.1f} | {t:.1f} | {len(texts) / t:.1f} | {ratio} | {cosines} | {first['note']} |")
    emit([*lines, ""], args.write)


if __name__ == "__main__":
    main()
