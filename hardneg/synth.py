"""`hardneg synth`: counterfactual negatives written by an LLM for a mining run (CausalNeg).

For each sampled mined query and each of its first positives, the LLM is asked (through any
OpenAI-compatible endpoint, answers cached) for passages on the positive's topic that each break one
requirement of the query; its reasoning stays out of the passages. Each passage is then embedded
with the run's own model and kept only if

- it is not empty and not the positive's, the query's or an earlier passage's text (`duplicate`),
- its cosine to the positive is below ``dedup_threshold`` (`near-duplicate`: a paraphrase),
- its score for the query is at most the positive's - |positive's| x ``relative_margin``
  (`relative-margin`: a passage the retriever ranks with the positive may still answer the query).

The artifact (`synthetic.parquet`: every passage with its fate, id ``synthetic:<hash>``) is mixed
into exports by `hardneg export RUN --synthetic DIR --synthetic-ratio R`, which also writes which
negatives are generated, so a trainer can balance them. Known failure mode: generated passages
differ from corpus passages in style (length, fluency, no title), and a model can learn to reject
them by that alone ("shortcuts by source"); generated negatives used alone, or as the majority,
trained worse than mined ones in the studies this follows. So they replace only a share of the
mined negatives (default 25%), the prompt asks for the positive's style and length, and the export
records the source of each negative.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hardneg.artifacts import KIND_EMBEDDINGS, KIND_SYNTHETIC, SYNTHETIC_FILE, fingerprint, input_ref, normalize_text, read_manifest, write_manifest
from hardneg.config import EmbedConfig, SynthConfig, as_dict, identity
from hardneg.errors import ArtifactError, ConfigError
from hardneg.progress import NULL_REPORTER, Reporter
from hardneg.readers import read_table
from hardneg.runs import RunQuery, doc_texts, read_run
from hardneg.writes import atomic_dir, prepare_out, writing

SYNTH_VERSION = "synth-v1"
SYNTHETIC_PREFIX = "synthetic:"
SYNTHETIC_SCHEMA = pa.schema([
    ("query_id", pa.string()), ("positive_id", pa.string()), ("doc_id", pa.string()), ("text", pa.string()),
    ("violates", pa.string()), ("score", pa.float32()), ("positive_score", pa.float32()), ("kept", pa.bool_()),
    ("reason", pa.string()),
])


@dataclass
class SynthResult:
    path: Path | None
    manifest: dict[str, Any]
    reused: bool = False
    plan: dict[str, Any] = field(default_factory=dict)


def run_encoder(emb_manifest: dict[str, Any]) -> Any:
    """The encoder that embedded the run, loaded again (refused if it no longer computes the same)."""
    from hardneg.encoders import load_encoder

    model = emb_manifest["model"]
    # The manifest records the max length in effect (the model's own when none was given), and the
    # identity was computed from what was asked: try both, at the precision the run used.
    for max_length in dict.fromkeys([None, model.get("max_length")]):
        encoder = load_encoder(EmbedConfig(model=model.get("path") or model["name"], query_prompt=model.get("query_prompt"),
                                           corpus_prompt=model.get("corpus_prompt"), max_length=max_length,
                                           precision=model.get("precision") or "auto"))
        if encoder.fingerprint == model["fingerprint"]:
            return encoder
        encoder.close()
    raise ArtifactError(f"the run was embedded by {model['name']} ({model['fingerprint'][:12]}), which is no longer "
                        "the model at that name or path; embed and mine again")


def _pairs(queries: list[RunQuery], config: SynthConfig) -> list[tuple[RunQuery, str]]:
    """(query, positive id) pairs to generate for: a seeded sample of mined queries, first positives."""
    mined = sorted(queries, key=lambda q: q.query_id)
    if config.queries is not None and config.queries < len(mined):
        mined = sorted(random.Random(config.seed).sample(mined, config.queries), key=lambda q: q.query_id)
    return [(q, p) for q in mined for p in q.positives[: config.positives_per_query]]


def synth(
    run: str | Path, out: str | Path | None, config: SynthConfig, *, synthesizer: Any = None, encoder: Any = None,
    force: bool = False, dry_run: bool = False, reporter: Reporter = NULL_REPORTER,
) -> SynthResult:
    """Generate, embed, filter and write counterfactual negatives for a mining run (see the module
    docstring). ``dry_run``: only count the LLM calls and estimate their tokens (no call, no output)."""
    run = Path(run)
    mined = read_run(run)
    run_manifest, queries, emb_path = mined.manifest, mined.queries, mined.emb_path
    pairs = _pairs(queries, config)
    texts = doc_texts(emb_path, {p for _, p in pairs})
    if dry_run:
        from hardneg.llm import SYNTH_PROMPT, prompt_template

        chars = len(prompt_template(SYNTH_PROMPT)) * len(pairs) + sum(len(q.text) + len(texts[p]) for q, p in pairs)
        plan = {"requests": len(pairs), "prompt_tokens_estimate": chars // 4,
                "completion_tokens_max": len(pairs) * config.max_tokens}
        return SynthResult(None, {}, plan=plan)
    if out is None:
        raise ConfigError("synth needs --out (or --dry-run)")
    if synthesizer is None:
        synthesizer = synthesizer_for(config)
    emb_manifest = read_manifest(emb_path, KIND_EMBEDDINGS)
    fp = fingerprint(SYNTH_VERSION, run_manifest["fingerprint"], identity(config), synthesizer.fingerprint)
    out = Path(out)
    with writing(out, [run]) as out:
        existing = prepare_out(out, KIND_SYNTHETIC, fp, force, what="synthetic-negatives artifact", changed="explain",
                               identity={"run": run_manifest["fingerprint"], "llm": synthesizer.fingerprint})
        if existing is not None:
            reporter.log(f"synthetic negatives at {out} are up to date; reusing them")
            return SynthResult(out, existing, reused=True)
        reporter.log(f"synth: {len(pairs)} (query, positive) pairs, {config.per_positive} passage(s) each")
        generated = synthesizer.generate([(q.text, texts[p]) for q, p in pairs], config.per_positive,
                                         progress=lambda n: reporter.progress("Generating", n, len(pairs)))
        own = encoder is None
        encoder = encoder or run_encoder(emb_manifest)
        try:
            rows = _filter(pairs, texts, generated, encoder, config)
        finally:
            if own:
                encoder.close()
        kept = sum(rows["kept"])
        reasons = {r: rows["reason"].count(r) for r in ("duplicate", "near-duplicate", "relative-margin") if r in rows["reason"]}
        with atomic_dir(out) as tmp:
            from hardneg.writes import write_table

            write_table(tmp / SYNTHETIC_FILE, pa.table(rows, schema=SYNTHETIC_SCHEMA))
            manifest = write_manifest(
                tmp, KIND_SYNTHETIC, fingerprint=fp,
                identity={"run": run_manifest["fingerprint"], "llm": synthesizer.fingerprint},
                run=input_ref(run, out, fingerprint=run_manifest["fingerprint"]), model=emb_manifest["model"],
                llm={"model": synthesizer.model, "prompt": synthesizer.fingerprint, "usage": synthesizer.usage.to_dict()},
                config={**as_dict(config), "llm_url": None},
                stats={"pairs": len(pairs), "generated": len(rows["doc_id"]), "kept": kept, "removed": reasons,
                       "pairs_without_answer": sum(1 for g in generated if not g)},
            )
        return SynthResult(out, manifest)


def _filter(pairs: list[tuple[RunQuery, str]], texts: dict[str, str], generated: list[list[tuple[str, str]]], encoder: Any,
            config: SynthConfig) -> dict[str, list[Any]]:
    rows: dict[str, list[Any]] = {name: [] for name in SYNTHETIC_SCHEMA.names}
    flat = [(q, p, violates, text) for (q, p), items in zip(pairs, generated) for violates, text in items]
    if not flat:
        return rows
    # Each (query, positive) pair is encoded once, however many passages were generated for it.
    pair_of = [i for i, items in enumerate(generated) for _ in items]
    query_vectors = encoder.encode([q.text for q, _ in pairs], "query")[pair_of]
    positive_vectors = encoder.encode([texts[p] for _, p in pairs], "document")[pair_of]
    vectors = encoder.encode([t for _, _, _, t in flat], "document")
    scores = np.einsum("ij,ij->i", query_vectors, vectors)
    positive_scores = np.einsum("ij,ij->i", query_vectors, positive_vectors)
    to_positive = np.einsum("ij,ij->i", positive_vectors, vectors)
    seen: dict[tuple[str, str], set[str]] = {}
    for i, (q, p, violates, text) in enumerate(flat):
        norm = normalize_text(text)
        taken = seen.setdefault((q.query_id, p), {normalize_text(texts[p]), normalize_text(q.text)})
        pos = float(positive_scores[i])
        if norm in taken:
            reason = "duplicate"
        elif to_positive[i] >= config.dedup_threshold:
            reason = "near-duplicate"
        elif scores[i] > pos - abs(pos) * config.relative_margin:
            reason = "relative-margin"
        else:
            reason = ""
        taken.add(norm)
        digest = hashlib.sha256(f"{q.query_id}\0{p}\0{text}".encode()).hexdigest()[:16]
        for name, value in (("query_id", q.query_id), ("positive_id", p), ("doc_id", SYNTHETIC_PREFIX + digest), ("text", text),
                            ("violates", violates), ("score", float(scores[i])), ("positive_score", pos),
                            ("kept", not reason), ("reason", reason)):
            rows[name].append(value)
    return rows


def synthesizer_for(config: SynthConfig) -> Any:
    import os

    from hardneg.llm import Synthesizer
    from hardneg.pipeline import default_workdir

    url = config.llm_url or os.environ.get("HARDNEG_LLM_URL")
    if not url or not config.llm_model:
        raise ConfigError("synth needs an LLM: --llm-url URL (or HARDNEG_LLM_URL) and --llm-model NAME")
    backoff = float(os.environ.get("HARDNEG_LLM_BACKOFF", "1.0"))
    return Synthesizer(url, config.llm_model, default_workdir() / "llm", concurrency=config.llm_concurrency,
                       max_tokens=config.max_tokens, backoff=backoff)


def read_synthetic(path: str | Path, run_fingerprint: str) -> dict[str, list[tuple[str, str, float]]]:
    """The kept generated negatives of a `synth` artifact made for this run: query id ->
    [(doc id, text, score)], in generation order."""
    path = Path(path)
    manifest = read_manifest(path, KIND_SYNTHETIC)
    if manifest["identity"]["run"] != run_fingerprint:
        raise ArtifactError(f"{path}: generated for another mining run ({manifest['identity']['run'][:12]}, this run is "
                            f"{run_fingerprint[:12]}); run hardneg synth on this run")
    table = read_table(path / SYNTHETIC_FILE, columns=["query_id", "doc_id", "text", "score", "kept"])
    out: dict[str, list[tuple[str, str, float]]] = {}
    for qid, did, text, score, kept in zip(*(table[c].to_pylist() for c in ("query_id", "doc_id", "text", "score", "kept"))):
        if kept:
            out.setdefault(qid, []).append((did, text, float(score)))
    return out


