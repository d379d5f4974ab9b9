"""Encoder runtimes: `--backend openvino` runs a sentence-transformers model's transformer graph
with OpenVINO on the CPU, and `onednn_linears` runs torch's own fp32 linear layers through oneDNN.

oneDNN: on a CPU in fp32, torch computes `nn.Linear` with its BLAS (MKL in the x86 wheels), while its
bf16 path and OpenVINO already use oneDNN's GEMM with pre-packed weights. Running the fp32 linear
layers (about 80% of a small transformer's arithmetic) through `torch._C._nn.mkldnn_linear` with the
weights packed once took 0.75-0.85x the encode time of MiniLM on SciFact passages on this machine's
AMD EPYC, every vector within 2e-7 of the BLAS path (docs/benchmarks.md). Not bit-identical, so it
is part of the embeddings' fingerprint (`:onednn`); `HARDNEG_ONEDNN=0` turns it off.

sentence-transformers' own `backend="openvino"` needs optimum-intel, whose releases pin an older
transformers and huggingface_hub than sentence-transformers 6 needs (and pull a CUDA torch), so it
cannot be installed beside hardneg. This module needs only the `openvino` wheel: it converts the
loaded model's transformer (`openvino.convert_model`, dynamic batch and sequence axes), caches the
converted graph on disk, and puts a thin module in the transformer's place; tokenisation, pooling
and normalisation stay sentence-transformers'. The vectors match torch's fp32 ones to ~1e-6
(cosine 1.00000 on SciFact passages, docs/benchmarks.md) but not bit for bit, so the backend is
part of the embeddings' fingerprint.

OpenVINO's model converter sends usage telemetry unless the user opted out with its own tool;
hardneg points the converter at its built-in no-op telemetry stub, so it sends nothing.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch

from hardneg.errors import ModelError

INSTALL_HINT = "pip install 'hardneg[openvino]'"


_OVC_TELEMETRY_USERS = ("convert_impl", "telemetry_utils", "utils", "main")
"""The converter modules that bind `openvino_telemetry` (as `tm`) when they are imported."""


def _openvino() -> Any:
    """`import openvino` with `openvino_telemetry` hidden, so its converter binds its own no-op stub
    (what it uses when the package is not installed): importing OpenVINO sends an "import" event
    and every conversion sends more unless the user opted out with OpenVINO's own tool. If
    OpenVINO was imported before hardneg, its converter modules are pointed at the stub."""
    first = "openvino" not in sys.modules
    hidden = first and "openvino_telemetry" not in sys.modules
    if hidden:
        sys.modules["openvino_telemetry"] = None  # type: ignore[assignment]
    try:
        import openvino
        from openvino.tools.ovc import telemetry_stub
    except ImportError:
        raise ModelError(f"--backend openvino needs OpenVINO, which is not installed: {INSTALL_HINT}") from None
    finally:
        if hidden:
            del sys.modules["openvino_telemetry"]
    for name in _OVC_TELEMETRY_USERS:
        module = sys.modules.get(f"openvino.tools.ovc.{name}")
        if module is not None and hasattr(module, "tm"):
            setattr(module, "tm", telemetry_stub)  # noqa: B010 (a module attribute)
    return openvino


class OneDNNLinear(torch.nn.Module):
    """An `nn.Linear` for inference on the CPU in fp32 through oneDNN's GEMM. It keeps the dense
    parameters (so `state_dict`, pickling into a `--workers` pool and `.to()` see a plain layer) and
    packs them into oneDNN's layout on its first call in each process."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.weight = linear.weight
        self.bias = linear.bias
        self._packed: tuple[Any, Any] | None = None

    def forward(self, x: Any) -> Any:
        if x.dtype != torch.float32 or x.device.type != "cpu" or torch.is_grad_enabled():
            return torch.nn.functional.linear(x, self.weight, self.bias)  # training, or another dtype/device
        if self._packed is None:
            bias = self.bias if self.bias is not None else torch.zeros(self.out_features)
            self._packed = (self.weight.detach().to_mkldnn(), bias.detach().float().to_mkldnn())
        return torch._C._nn.mkldnn_linear(x.contiguous().to_mkldnn(), *self._packed).to_dense()

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_packed"] = None  # oneDNN tensors do not pickle; repacked in the receiving process
        return state

    def _apply(self, fn: Any, recurse: bool = True) -> Any:
        self._packed = None  # `.to()`, `.half()`, ...: the packed copy is stale
        return super()._apply(fn, recurse)


def onednn_linears(model: Any) -> int:
    """Put `OneDNNLinear` in place of every `nn.Linear` of ``model`` (in place); the number replaced."""
    if not torch.backends.mkldnn.is_available():
        raise ModelError("this torch build has no oneDNN (mkldnn); set HARDNEG_ONEDNN=0 to encode with its default kernels")
    replaced = 0
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if type(child) is torch.nn.Linear:
                setattr(module, name, OneDNNLinear(child))
                replaced += 1
    return replaced


class OpenVINOTransformer(torch.nn.Module):
    """Stands in for a Hugging Face model inside sentence-transformers' Transformer module: called
    with the tokenizer's tensors, returns `last_hidden_state` computed by OpenVINO."""

    def __init__(self, compiled: Any, inputs: list[str], config: Any) -> None:
        super().__init__()
        self.compiled = compiled
        self.inputs = inputs
        self.config = config
        self.port = compiled.outputs[0]

    def forward(self, **features: Any) -> dict[str, Any]:
        feed = {name: features[name].cpu().numpy() for name in self.inputs if name in features}
        out = self.compiled(feed)[self.port]
        return {"last_hidden_state": torch.from_numpy(out.copy())}


def _transformer_slot(model: Any) -> tuple[Any, str]:
    """The sentence-transformers module holding the Hugging Face model, and the attribute it is
    held in (`model`; `auto_model` before sentence-transformers 6)."""
    for module in model:
        for attr in ("model", "auto_model"):
            if hasattr(getattr(module, attr, None), "config"):
                return module, attr
    raise ModelError("--backend openvino: this model has no transformer module to convert; use --backend torch")


def to_openvino(model: Any, *, precision: str, weights: str, cache_root: Path) -> None:
    """Replace ``model``'s transformer with its OpenVINO-compiled graph (``precision`` fp32 or
    bf16, as OpenVINO's inference precision hint). The converted graph is cached under
    ``cache_root/openvino/<weights>-<openvino version>`` and reused."""
    ov = _openvino()
    if precision not in ("fp32", "bf16"):
        raise ModelError(f"--backend openvino runs on the CPU in fp32 or bf16, not {precision}")
    module, attr = _transformer_slot(model)
    hf_model = getattr(module, attr)
    preprocess = getattr(model, "preprocess", None) or model.tokenize  # `tokenize` before sentence-transformers 6
    features = preprocess(["hardneg openvino conversion example", "a second, longer example text for the sequence axis"])
    names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in features]
    import transformers

    key = f"{weights[:24]}-ov{ov.__version__.split('-')[0]}-tf{transformers.__version__}"
    target = cache_root / "openvino" / key
    xml = target / "model.xml"
    core = ov.Core()
    if xml.exists():
        graph = core.read_model(str(xml))
    else:
        with torch.inference_mode(), warnings.catch_warnings():
            # The tracer notes that two mask checks become constants; both are shape-independent for an encoder
            # (no padding of the key axis, an attention mask always given), which the tests check against torch.
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            warnings.simplefilter("ignore", FutureWarning)  # transformers' deprecations hit by the tracer, not by us
            warnings.simplefilter("ignore", DeprecationWarning)
            graph = ov.convert_model(hf_model.eval(), example_input={n: features[n] for n in names})
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f"{key}.tmp-", dir=target.parent))
        try:
            ov.save_model(graph, str(tmp / "model.xml"), compress_to_fp16=False)
            os.replace(tmp, target)
        except OSError:
            shutil.rmtree(tmp, ignore_errors=True)  # another process cached it first, or the disk is read-only
    hint = {"fp32": "f32", "bf16": "bf16"}[precision]
    compiled = core.compile_model(graph, "CPU", {"INFERENCE_PRECISION_HINT": hint})
    setattr(module, attr, OpenVINOTransformer(compiled, names, hf_model.config))
