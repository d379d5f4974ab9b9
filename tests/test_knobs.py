"""Every config field is one flag, written once: each flag reaches its config field through the real
command (the stage function patched to capture its configs), help shows the dataclass default, and
the same key in a config file reaches the same field."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

import click
import pytest
from typer.main import get_command
from typer.testing import CliRunner

from hardneg import cli
from hardneg.config import SECTIONS

runner = CliRunner()

# Fields with no flag, on purpose: execution details set from a config file (or by the pipeline).
FILE_ONLY = {
    "index.add_chunk": "HNSW insertion batch (memory only)",
    "index.recall_k": "set by mine and loop to --max-rank",
    "index.seed": "HNSW construction seed",
    "mine.search_chunk": "exact-search block size (memory only)",
    "mine.chunk_queries": "queries per resumable unit",
}

# command -> (module attribute the command calls, arguments before the flags)
COMMANDS = {
    "embed": ("hardneg.pipeline.run_embed", ["src", "--out", "o"]),
    "index": ("hardneg.index.build_index", ["emb", "--out", "o"]),
    "mine": ("hardneg.pipeline.run_mine", ["src", "--out", "o"]),
    "export": ("hardneg.export.export", ["run", "--out", "o"]),
    "train": ("hardneg.train.train", ["exp", "--out", "o"]),
    "eval": ("hardneg.evaluate.evaluate", ["src"]),
    "loop": ("hardneg.loop.run_loop", ["src", "--out", "o"]),
    "select": ("hardneg.selection.select", ["run", "--out", "o"]),
    "synth": ("hardneg.synth.synth", ["run", "--out", "o"]),
}

# Flags whose value is only valid next to another one.
COMPANIONS = {
    "mine.ce_max_score": ["--teacher", "t"], "mine.ce_pseudo_positive_score": ["--teacher", "t"], "mine.scores_from": ["--teacher", "t"],
    **{f"mine.{k}": ["--judge", "llm", "--llm-url", "http://localhost:1/v1", "--llm-model", "m"]
       for k in ("judge_top", "judge_action", "llm_concurrency", "judge_sample")},
    "mine.fallback_min_rank": ["--relative-margin", "0.05"],
    "mine.judge": ["--llm-url", "http://localhost:1/v1", "--llm-model", "m"],
    "train.loss": ["--architecture", "colbert"], "train.kd_normalize": ["--architecture", "colbert", "--loss", "distillation"],
    "train.kd_temperature": ["--architecture", "colbert", "--loss", "distillation"],
    "export.triplet_rows": ["--format", "triplets"], "export.synthetic_ratio": ["--synthetic", "syn-dir"],
    "mine.simans_a": ["--sampling", "simans"], "mine.simans_b": ["--sampling", "simans"], "mine.rrf_k": ["--retriever", "hybrid"],
    "mine.ce_batch_size": ["--teacher", "t"], "train.mini_batch_size": ["--loss", "cached-mnrl"],
    "eval.rerank_depth": ["--rerank", "t"],
}
VALUES = {"embed.model": "hashing:8", "embed.device": "cpu", "embed.precision": "fp32", "embed.lang": "fr",
          "train.device": "cpu", "mine.labels": "labels-dir", "mine.kd_depth": 4, "mine.min_score": 0.1, "mine.fallback_min_rank": 20,
          "loop.dev_split": "dev", "eval.split": "dev", "embed.split": "dev", "train.loss": "distillation",
          "mine.cross_encoder": "t", "mine.llm_url": "http://localhost:1/v1", "mine.llm_model": "m",
          "synth.llm_url": "http://localhost:1/v1", "synth.llm_model": "m", "export.synthetic": "syn-dir", "synth.relative_margin": 0.1}


def _table(name: str) -> dict[str, Any]:
    fn = getattr(cli, "eval_" if name == "eval" else name)
    return fn.knob_table


def _default(target: str) -> Any:
    section, name = target.split(".")
    return {f.name: f.default for f in dataclasses.fields(SECTIONS[section])}[name]


def _option(command: str, param: str) -> click.Option:
    group = get_command(cli.app)
    return next(p for p in group.commands[command].params if p.name == param)  # type: ignore[attr-defined]


def _pick(command: str, param: str, target: str) -> tuple[list[str], Any]:
    """Command-line words for a non-default value of the flag, and the value the config should get."""
    opt = _option(command, param)
    default = _default(target)
    kind = str(_table(command)[param].option.__origin__)
    if opt.is_flag or isinstance(default, bool) or target == "index.backend" and param == "exact":
        words = opt.opts if default is not True else opt.secondary_opts
        value = {"exact": "exact"}.get(param, not default if isinstance(default, bool) else True)
        return list(words[:1]), value
    if target in VALUES:
        value = VALUES[target]
    elif opt.metavar and opt.metavar.startswith("["):
        value = next(v for v in opt.metavar.strip("[]").split("|") if v != default)
    elif isinstance(default, float) or "float" in kind:
        value = (default / 2) if default else 0.5
    elif isinstance(default, int) or "int" in kind:
        value = (default + 1) if default is not None else 3
    else:
        value = "x"
    return [opt.opts[0], str(value)], value


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_each_flag_reaches_its_config_field(command, monkeypatch):
    target_fn, head = COMMANDS[command]
    captured: list[Any] = []

    def capture(*args: Any, **kwargs: Any) -> Any:
        captured.extend(a for a in (*args, *kwargs.values()) if dataclasses.is_dataclass(a))
        raise KeyboardInterrupt  # stop here: exit 130, nothing else runs

    module, attr = target_fn.rsplit(".", 1)
    monkeypatch.setattr(module + "." + attr, capture)
    monkeypatch.setattr("hardneg.encoders.load_encoder", lambda *a, **k: pytest.fail("no encoder expected"))
    for param, knob in _table(command).items():
        words, value = _pick(command, param, knob.targets[0])
        captured.clear()
        result = runner.invoke(cli.app, [command, *head, *words, *COMPANIONS.get(knob.targets[0], [])])
        assert result.exit_code == 130, f"{command} {' '.join(words)}: {result.output}"
        configs = {type(c).__name__: c for c in captured}
        for target in knob.targets:
            section, field = target.split(".")
            cls = SECTIONS[section].__name__
            if cls not in configs:
                continue  # the command does not build this section (e.g. --device for train's encoder)
            got = getattr(configs[cls], field)
            assert got == value, f"{command} {' '.join(words)}: {target} = {got!r}, expected {value!r}"


def test_every_config_field_has_a_flag():
    reached = {t for name in COMMANDS for knob in _table(name).values() for t in knob.targets}
    every = {f"{s}.{f.name}" for s, cls in SECTIONS.items() for f in dataclasses.fields(cls)}
    assert every - reached == set(FILE_ONLY), f"no flag for {sorted(every - reached - set(FILE_ONLY))}"


def test_help_defaults_come_from_the_dataclasses():
    for name in COMMANDS:
        for param, knob in _table(name).items():
            default = _default(knob.targets[0])
            shown = re.search(r"\[default: ([^\]]+)\]", _option(name, param).help or "")
            if default is None or isinstance(default, bool) or knob.convert is not None:
                continue  # no default, a switch, or a flag whose values are not the field's (--exact/--hnsw)
            assert shown, f"{name} --{param}: no default in help"
            expected = f"{default:g}" if isinstance(default, float) else str(default)
            assert shown.group(1) == expected, (name, param, shown.group(1), expected)


def test_a_config_file_key_reaches_the_same_field_as_its_flag(tmp_path, monkeypatch):
    captured: list[Any] = []

    def capture(*args: Any, **kwargs: Any) -> Any:
        captured.extend(a for a in (*args, *kwargs.values()) if dataclasses.is_dataclass(a))
        raise KeyboardInterrupt

    monkeypatch.setattr("hardneg.pipeline.run_mine", capture)
    path = tmp_path / "c.toml"
    path.write_text("[mine]\nmax-per-doc = 3\nsampling = 'top'\n[index]\nm = 24\n[embed]\nbatch-size = 7\n")
    runner.invoke(cli.app, ["mine", "src", "--out", "o", "--config", str(path), "--m", "32"])
    configs = {type(c).__name__: c for c in captured}
    assert configs["MineConfig"].max_per_doc == 3 and configs["MineConfig"].sampling == "top"
    assert configs["IndexConfig"].m == 32  # the flag wins over the file
    assert configs["EmbedConfig"].batch_size == 7
