"""How else the encoder could run: torch eager fp32 (hardneg's CPU default) against bf16, torch.compile
and the OpenVINO / ONNX Runtime backends, for speed and for the cosine of each vector to its fp32 twin.

Usage:
    python scripts/benchmark_backends.py ../shared/data/scifact --texts 512 [--repeats 2] [--write docs/benchmarks.md]

Every contender encodes the same texts (the first ``--texts`` documents, title + text) with the same
tokenisation: sorted by length, batches of ``--batch-size``, each padded to a multiple of
``--pad-multiple`` tokens (so torch.compile sees a bounded set of shapes), truncated at 256 tokens,
mean pooling and L2 normalisation as all-MiniLM-L6-v2 does. Contenders run interleaved (A B C ...,
then again), so a change in background load hits them alike; the table reports each one's best
repeat, its ratio to eager fp32's best, and the min / mean cosine to the eager fp32 vectors.

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


def batches(tokenizer: Any, texts: list[str], batch_size: int, multiple: int) -> list[dict[str, np.ndarray]]:
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    out = []
    for start in range(0, len(order), batch_size):
        chunk = [texts[i] for i in order[start:start + batch_size]]
        enc = tokenizer(chunk, padding=True, truncation=True, max_length=256, pad_to_multiple_of=multiple, return_tensors="np")
        out.append({k: enc[k].astype(np.int64) for k in ("input_ids", "attention_mask", "token_type_ids")})
    return out


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--texts", type=int, default=512)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--pad-multiple", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--contenders", default="eager-fp32,eager-bf16,compile-fp32,openvino-fp32,openvino-bf16,onnxruntime-fp32")
    parser.add_argument("--write", type=Path)
    args = parser.parse_args()

    import torch
    from transformers import AutoModel, AutoTokenizer

    from hardneg.config import EmbedConfig
    from hardneg.models import resolve_model

    path = resolve_model(EmbedConfig(model=args.model)).path
    if path is None:
        raise SystemExit(f"--model {args.model}: not a transformer checkpoint")
    tokenizer = AutoTokenizer.from_pretrained(path)
    texts = load_texts(args.data, args.texts)
    data = batches(tokenizer, texts, args.batch_size, args.pad_multiple)
    tokens = sum(int(b["attention_mask"].sum()) for b in data)
    padded = sum(b["attention_mask"].size for b in data)
    eager = AutoModel.from_pretrained(path).eval()
    wanted = [c.strip() for c in args.contenders.split(",") if c.strip()]
    runners: dict[str, Callable[[dict[str, np.ndarray]], np.ndarray]] = {}
    notes: dict[str, str] = {}
    setup: dict[str, float] = {}
    for name in wanted:
        t0 = time.perf_counter()
        try:
            if name == "eager-fp32":
                runners[name] = torch_runner(eager)
            elif name == "eager-bf16":
                runners[name] = torch_runner(eager, torch.bfloat16)
            elif name == "compile-fp32":
                compiled = torch.compile(AutoModel.from_pretrained(path).eval(), dynamic=True)
                sample = {k: torch.from_numpy(v) for k, v in data[len(data) // 2].items()}
                with torch.inference_mode():
                    explained = torch._dynamo.explain(compiled)(**sample)
                notes[name] = (f"dynamo: {explained.graph_count} graph(s), {explained.graph_break_count} break(s), "
                               f"dynamic shapes, batches padded to multiples of {args.pad_multiple}")
                runners[name] = torch_runner(compiled)
            elif name.startswith("openvino"):
                import openvino as ov

                ov_example = {k: torch.from_numpy(v) for k, v in data[0].items()}
                ov_model = ov.convert_model(eager, example_input=ov_example)
                hint = "f32" if name.endswith("fp32") else "bf16"
                compiled_ov = ov.Core().compile_model(ov_model, "CPU", {"INFERENCE_PRECISION_HINT": hint})
                out_port = compiled_ov.outputs[0]

                def run_ov(batch: dict[str, np.ndarray], c: Any = compiled_ov, o: Any = out_port) -> np.ndarray:
                    return pool(c(batch)[o], batch["attention_mask"])

                runners[name] = run_ov
                notes[name] = f"openvino {ov.__version__}, INFERENCE_PRECISION_HINT {hint}"
            elif name == "onnxruntime-fp32":
                import onnxruntime as ort

                onnx_path = Path(os.environ.get("TMPDIR", "/tmp")) / "hardneg-bench-minilm.onnx"
                example = tuple(torch.from_numpy(data[0][k]) for k in ("input_ids", "attention_mask", "token_type_ids"))
                axes = {k: {0: "batch", 1: "seq"} for k in ("input_ids", "attention_mask", "token_type_ids")}
                torch.onnx.export(eager, example, str(onnx_path), input_names=list(axes), output_names=["last_hidden_state"],
                                  dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "seq"}}, dynamo=False)
                session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])

                def run_ort(batch: dict[str, np.ndarray], s: Any = session) -> np.ndarray:
                    return pool(s.run(["last_hidden_state"], batch)[0], batch["attention_mask"])

                runners[name] = run_ort
                notes[name] = f"onnxruntime {ort.__version__}"
            else:
                raise SystemExit(f"unknown contender {name}")
        except ImportError as exc:
            notes[name] = f"not run: {exc.name} is not installed"
        setup[name] = time.perf_counter() - t0

    times: dict[str, list[float]] = {n: [] for n in runners}
    vectors: dict[str, np.ndarray] = {}
    warmup: dict[str, float] = {}
    for name, run in runners.items():  # warm-up pass: compilation, first-touch allocations
        t0 = time.perf_counter()
        vectors[name] = np.concatenate([run(b) for b in data])
        warmup[name] = time.perf_counter() - t0
    for _ in range(args.repeats):
        for name, run in runners.items():
            t0 = time.perf_counter()
            for b in data:
                run(b)
            times[name].append(time.perf_counter() - t0)

    base = min(times["eager-fp32"]) if "eager-fp32" in times else None
    ref = vectors.get("eager-fp32")
    lines = [
        f"### Encoder backends: {args.model} on the first {len(texts)} documents of {args.data.name}",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}, {time.strftime('%Y-%m-%d')}. "
        f"Command: `python scripts/benchmark_backends.py {args.data} --texts {args.texts} --repeats {args.repeats}`. "
        f"{len(data)} batches of {args.batch_size}, {tokens:,} tokens padded to {padded:,}; best of {args.repeats} interleaved repeats.",
        "",
        "| contender | setup (s) | warm-up pass (s) | best pass (s) | texts/s | time / eager fp32 | min cosine to fp32 | mean cosine | notes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name in wanted:
        if name not in runners:
            lines.append(f"| {name} | | | | | | | | {notes.get(name, '')} |")
            continue
        best = min(times[name])
        cos = (vectors[name] * ref).sum(1) if ref is not None else None
        lines.append(
            f"| {name} | {setup[name]:.1f} | {warmup[name]:.1f} | {best:.1f} | {len(texts) / best:.1f} | "
            f"{best / base:.2f} | {cos.min():.5f} | {cos.mean():.6f} | {notes.get(name, '')} |" if base and cos is not None else
            f"| {name} | {setup[name]:.1f} | {warmup[name]:.1f} | {best:.1f} | {len(texts) / best:.1f} | | | | {notes.get(name, '')} |"
        )
    emit([*lines, ""], args.write)


if __name__ == "__main__":
    main()
