"""Configuration: defaults file in sync, strict keys, precedence flag > file > default."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hardneg.cli import app
from hardneg.config import SECTIONS, MineConfig, build, load_config_file
from hardneg.errors import ConfigError
from tests.conftest import TINY_BEIR

DEFAULT_TOML = Path(__file__).parents[1] / "configs" / "default.toml"
runner = CliRunner()


def test_default_toml_mirrors_the_dataclass_defaults():
    values = load_config_file(DEFAULT_TOML)
    assert set(values) == set(SECTIONS)
    for section, cls in SECTIONS.items():
        defaults = {f.name: f.default for f in dataclasses.fields(cls)}
        listed = values[section]
        for key, value in listed.items():
            assert defaults[key] == value, f"[{section}] {key}: file {value!r} != default {defaults[key]!r}"
        unlisted = {k: v for k, v in defaults.items() if k not in listed}
        assert all(v is None for v in unlisted.values()), f"[{section}] not in default.toml: {unlisted}"


def test_unknown_key_is_rejected_with_the_known_ones(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[mine]\nmin_rank = 5\nmax-rnak = 50\n")
    with pytest.raises(ConfigError, match="unknown key 'max-rnak'; known keys: .*max-rank"):
        load_config_file(path)


def test_wrong_type_in_file_is_rejected(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[mine]\nmin-rank = "ten"\n')
    with pytest.raises(ConfigError, match="min-rank must be int"):
        build(MineConfig, load_config_file(path), "mine")


def test_a_bad_value_from_a_file_names_the_file_and_its_table(tmp_path):
    """Wrong types and out-of-range values name the file when the file gave them, not when a flag did;
    a key outside any table is told where it belongs; a byte-order mark is no error."""
    path = tmp_path / "c.toml"
    for text, needle in [('[mine]\nmin-rank = "ten"\n', "[mine] min-rank must be int, got 'ten'"),
                         ("[mine]\nmin_rank = -3\n", "[mine] min-rank must be >= 0, got -3"),
                         ("[mine]\nfallback-min-rank = 200\n", "[mine] fallback-min-rank must be inside the window [0, 110)"),
                         ("[mine]\nrelative-margin = nan\n", "[mine] relative-margin must be a finite number")]:
        path.write_text(text)
        with pytest.raises(ConfigError) as failure:
            build(MineConfig, load_config_file(path), "mine")
        assert str(failure.value).startswith(f"{path}: {needle}"), str(failure.value)
    path.write_text("[mine]\nmin-rank = 3\n")
    with pytest.raises(ConfigError) as failure:  # the flag's value is wrong, not the file's
        build(MineConfig, load_config_file(path), "mine", min_rank=-2)
    assert str(failure.value) == "min-rank must be >= 0, got -2"
    for text, needle in [("min_rank = 3\n", "'min_rank' is outside any table; put it under [mine]"),
                         ("batch-size = 8\n", "'batch-size' is outside any table; put it under [embed] (or [train])"),
                         ("colour = 3\n", "'colour' is outside any table; tables: embed, index, mine")]:
        path.write_text(text)
        with pytest.raises(ConfigError, match=re.escape(f"{path}: {needle}")):
            load_config_file(path)
    path.write_bytes("\ufeff[mine]\nmin-rank = 4\n".encode())
    assert build(MineConfig, load_config_file(path), "mine").min_rank == 4


def test_flags_override_file_override_defaults(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[mine]\nmin-rank = 5\nmax-rank = 50\nnum-negatives = 3\n")
    cfg = build(MineConfig, load_config_file(path), "mine", max_rank=40, min_rank=None)
    assert (cfg.min_rank, cfg.max_rank, cfg.num_negatives, cfg.seed) == (5, 40, 3, 42)


def test_config_file_through_the_cli(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[embed]\nmodel = "hashing"\n[mine]\nmin-rank = 3\nmax-rank = 12\nnum-negatives = 2\n')
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--config", str(path), "--num-negatives", "4", "--json", "--out", "run"])
    assert result.exit_code == 0, result.output
    import json

    stats = json.loads(result.stdout)["stats"]
    assert stats["window"] == [3, 12] and stats["num_negatives"] == 4


def test_off_switches_a_rule_off_over_the_file_and_the_default(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[mine]\nrelative-margin = 0.1\nmax-score = "off"\n')
    cfg = build(MineConfig, load_config_file(path), "mine", relative_margin="off", dedup_threshold="OFF")
    assert (cfg.relative_margin, cfg.max_score, cfg.dedup_threshold) == (None, None, None)
    path.write_text('[mine]\nnum-negatives = "off"\n')  # a count has no off state
    with pytest.raises(ConfigError, match="num-negatives must be int"):
        build(MineConfig, load_config_file(path), "mine")
    import json

    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--model", "hashing", "--relative-margin", "0.1", "--dedup-threshold", "off",
                                 "--json", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    config = json.loads(result.stdout)["config"]
    assert (config["relative_margin"], config["dedup_threshold"]) == (0.1, None)
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--model", "hashing", "--dedup-threshold", "high", "--out", str(tmp_path / "r2")])
    assert result.exit_code == 2 and "is not a number or 'off'" in result.output


def test_bad_config_file_is_a_usage_error(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text("[mine\n")
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--config", str(path), "--out", "run"])
    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: {path}: invalid TOML")


RECIPES = sorted(p.stem for p in DEFAULT_TOML.parent.glob("*.toml") if p.stem != "default")


def test_every_recipe_is_checked():
    assert {"ragatouille", "nv-retriever", "simans", "denoised", "window", "colbert-teacher"} <= set(RECIPES)


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipes_load_into_valid_configs(recipe):
    from hardneg.config import ExportConfig, LoopConfig, TrainConfig

    files = load_config_file(DEFAULT_TOML.parent / f"{recipe}.toml")
    flags = {"cross_encoder": "/models/reranker"} if recipe == "denoised" else {}
    cfg = build(MineConfig, files, "mine", **flags)
    build(ExportConfig, files, "export")
    train, loop = build(TrainConfig, files, "train"), build(LoopConfig, files, "loop")
    assert DEFAULT_TOML.parent.joinpath(f"{recipe}.toml").read_text().startswith("#")  # says where it comes from
    if recipe == "nv-retriever":
        assert (cfg.sampling, cfg.relative_margin, cfg.min_rank, cfg.fallback_min_rank) == ("top", 0.05, 0, None)
    elif recipe == "colbert-teacher":  # the default rule, mined by the round-1 teacher for a ColBERT student
        assert (cfg.relative_margin, cfg.fallback_min_rank) == (MineConfig().relative_margin, MineConfig().fallback_min_rank)
        assert (train.architecture, loop.rounds, loop.students) == ("colbert", 1, "final")
    else:  # the recipes without a margin switch the default's off
        assert (cfg.relative_margin, cfg.fallback_min_rank) == (None, None)


def test_denoised_recipe_without_a_cross_encoder_says_what_is_missing():
    files = load_config_file(DEFAULT_TOML.parent / "denoised.toml")
    with pytest.raises(ConfigError, match="need --teacher"):
        build(MineConfig, files, "mine")


def test_a_mining_flag_this_run_would_ignore_is_refused(tmp_path):
    """--simans-a without --sampling simans, --rrf-k without hybrid, --ce-batch-size without a teacher,
    --judge-top without the judge: given on the command line, they used to be silently ignored. A
    config file may hold them all (configs/default.toml does): only flags are checked."""
    from typer.testing import CliRunner

    from hardneg.cli import app
    from tests.conftest import TINY_BEIR

    runner = CliRunner()
    for args, needle in [
        (["--simans-a", "0.9"], "--simans-a shapes --sampling simans; this run would ignore it"),
        (["--rrf-k", "10"], "--rrf-k is reciprocal-rank fusion's constant, for --retriever hybrid"),
        (["--ce-batch-size", "8"], "--ce-batch-size batches the teacher's scoring: it needs --teacher"),
        (["--judge-top", "3"], "--judge-top configures the LLM judge: it needs --judge llm"),
    ]:
        result = runner.invoke(app, ["mine", str(TINY_BEIR), "--model", "hashing", *args, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and needle in result.stderr, (args, result.output)
        assert not (tmp_path / "out").exists()
    for command, needle in [
        (["train", str(TINY_BEIR), "--kd-normalize", "none"], "--kd-normalize shapes --loss distillation"),
        (["train", str(TINY_BEIR), "--mini-batch-size", "8"], "--mini-batch-size sizes --loss cached-mnrl's forward passes"),
        (["eval", str(TINY_BEIR), "--rerank-depth", "5"], "--rerank-depth is how deep --rerank TEACHER re-scores: it needs --rerank"),
    ]:
        result = runner.invoke(app, [*command, "--model", "hashing", *(["--out", str(tmp_path / "out")] if command[0] == "train" else [])])
        assert result.exit_code == 2 and needle in result.stderr, (args, result.output)
        assert not (tmp_path / "out").exists()
    config = Path(__file__).parent.parent / "configs" / "default.toml"
    result = runner.invoke(app, ["mine", str(TINY_BEIR), "--model", "hashing", "--config", str(config), "--out", str(tmp_path / "out"),
                                 "--quiet", "--workdir", str(tmp_path / "wd")])
    assert result.exit_code == 0, result.output
