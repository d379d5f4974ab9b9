"""Config files and flags: a TOML file (one table per stage, keys = flag names) read strictly,
then merged into a stage config with the flags the user passed (flag > file > default).
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Callable
from dataclasses import fields
from pathlib import Path
from typing import Any, TypeVar

from hardneg.errors import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib


C = TypeVar("C")


def apply_kd_depth(values: dict[str, Any], explicit: set[str]) -> dict[str, Any]:
    """The `kd_depth` preset: window from rank 0, `top` sampling, kd_depth - 1 negatives and a
    max_rank of 2 x kd_depth unless given. ``explicit`` holds the keys the user set."""
    depth = values.get("kd_depth")
    if depth is None or not isinstance(depth, int) or isinstance(depth, bool):
        return values
    if depth < 2:
        raise ConfigError(f"kd-depth must be >= 2 (a positive and a candidate), got {depth}")  # before the preset sets num-negatives from it
    preset = {"min_rank": 0, "sampling": "top", "num_negatives": depth - 1}
    clash = sorted(k for k in preset if k in explicit and values[k] != preset[k])
    # A KD row is the positive and the kd_depth - 1 best-ranked candidates, all of them: the default
    # margin and its fallback stay off unless asked for.
    unset = {k: None for k in ("relative_margin", "fallback_min_rank") if k not in explicit}
    if clash:
        raise ConfigError(
            f"kd-depth {depth} sets {', '.join(k.replace('_', '-') for k in clash)}; leave "
            f"{'it' if len(clash) == 1 else 'them'} unset (it takes min-rank 0, sampling top, num-negatives {depth - 1})"
        )
    out = {**values, **preset, **unset}
    if "max_rank" not in explicit:
        out["max_rank"] = 2 * depth
    return out


class ConfigFile(dict[str, dict[str, Any]]):
    """A config file's ``{section: {field: value}}``, and where it was read (``path``), so that an
    error in one of its values names the file."""

    path: Path | None = None


def load_config_file(path: str | Path | None) -> dict[str, dict[str, Any]]:
    """Read a TOML config file into ``{section: {field: value}}``, rejecting unknown sections and keys."""
    if path is None:
        return {}
    path = Path(path)
    try:
        # A byte-order mark (Windows editors write one) is no TOML, but says nothing either.
        raw = tomllib.loads(path.read_text(encoding="utf-8").removeprefix("\ufeff"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML ({exc})") from None
    result = ConfigFile()
    result.path = path
    for section, values in raw.items():
        if not isinstance(values, dict):
            name = section.replace("-", "_")
            owners = [s for s, cls in _sections().items() if name in {f.name for f in fields(cls)}]
            raise ConfigError(
                f"{path}: '{section}' is outside any table"
                + (f"; put it under [{owners[0]}]" + (f" (or [{'], ['.join(owners[1:])}])" if owners[1:] else "")
                   if owners else f"; tables: {', '.join(_sections())}")
            )
        if section not in _sections():
            raise ConfigError(f"{path}: unknown section [{section}]; expected one of {', '.join(_sections())}")
        known = {f.name for f in fields(_sections()[section])}
        section_values: dict[str, Any] = {}
        for key, value in values.items():
            name = key.replace("-", "_")
            if name not in known:
                options = ", ".join(sorted(k.replace("_", "-") for k in known))
                raise ConfigError(f"{path}: [{section}] unknown key '{key}'; known keys: {options}")
            section_values[name] = value
        result[section] = section_values
    return result


def build(cls: type[C], file_values: dict[str, dict[str, Any]], section: str, **flags: Any) -> C:
    """Build a stage config: defaults, overridden by the file's section, overridden by non-None flags.
    An error in a value the file gave names the file and its table."""
    values = dict(file_values.get(section, {}))
    given = {k for k, v in flags.items() if v is not None}
    values.update({k: flags[k] for k in given})
    try:
        for f in fields(cls):  # type: ignore[arg-type]
            if f.name in values:
                values[f.name] = _coerce(section, f, values[f.name])
        if section == "mine":
            values = apply_kd_depth(values, set(values))
        try:
            config = cls(**values)
        except TypeError as exc:
            raise ConfigError(f"[{section}] {exc}") from None
        if section == "mine" and values.get("fallback_min_rank") is not None:
            check_fallback(values["fallback_min_rank"], config)
        if section in UNUSED_UNLESS:
            check_flags_used(given, config, UNUSED_UNLESS[section])
    except ConfigError as exc:
        path = getattr(file_values, "path", None)
        message = str(exc).removeprefix(f"[{section}] ")
        key = message.split(" ", 1)[0].replace("-", "_")
        if path is not None and key in file_values.get(section, {}) and key not in given:
            raise ConfigError(f"{path}: [{section}] {message}") from None
        raise
    return config


def check_fallback(given: int, config: Any) -> None:
    """A fallback rank given in a flag or a file must do something (the default's adapts silently)."""
    if config.relative_margin is None and config.absolute_margin is None:
        raise ConfigError("fallback-min-rank fills what the margins remove: set --relative-margin or --absolute-margin with it")
    if not config.min_rank <= given < config.max_rank:
        raise ConfigError(f"fallback-min-rank must be inside the window [{config.min_rank}, {config.max_rank}), got {given}")


Used = tuple[Callable[[Any], bool], str]
UNUSED_UNLESS: dict[str, dict[str, Used]] = {
    "mine": {
        "simans_a": (lambda c: c.sampling == "simans", "shapes --sampling simans"),
        "simans_b": (lambda c: c.sampling == "simans", "shapes --sampling simans"),
        "rrf_k": (lambda c: c.retriever == "hybrid", "is reciprocal-rank fusion's constant, for --retriever hybrid"),
        "ce_batch_size": (lambda c: c.cross_encoder is not None, "batches the teacher's scoring: it needs --teacher"),
        **{name: (lambda c: c.judge is not None, "configures the LLM judge: it needs --judge llm")
           for name in ("judge_top", "judge_action", "judge_sample", "llm_concurrency")},
    },
    "train": {
        "kd_normalize": (lambda c: c.resolved_loss == "distillation", "shapes --loss distillation"),
        "kd_temperature": (lambda c: c.resolved_loss == "distillation", "shapes --loss distillation"),
        "mini_batch_size": (lambda c: c.resolved_loss == "cached-mnrl", "sizes --loss cached-mnrl's forward passes"),
    },
    "eval": {"rerank_depth": (lambda c: c.rerank is not None, "is how deep --rerank TEACHER re-scores: it needs --rerank")},
}
"""Flags that only one setting reads: given on the command line without it, they would be ignored
(a config file may hold them all, as configs/default.toml does: only flags are checked)."""


def check_flags_used(given: set[str], config: Any, rules: dict[str, Used]) -> None:
    for name in sorted(given):
        if name in rules and not rules[name][0](config):
            raise ConfigError(f"--{name.replace('_', '-')} {rules[name][1]}; this run would ignore it")


OFF = "off"
"""A rule's value meaning "not applied" (None), for a field whose default or config file sets one:
`--relative-margin off` on the command line, `relative-margin = "off"` in a file."""


def _coerce(section: str, f: dataclasses.Field[Any], value: Any) -> Any:
    """Type-check one value from a file against the field's annotation (flags are already typed)."""
    annotation = str(f.type)
    if value is None:
        return None
    if isinstance(value, str) and value.strip().lower() == OFF and annotation.endswith("| None"):
        return None
    expected: tuple[type, ...]
    if annotation.startswith("int"):
        expected = (int,)
    elif annotation.startswith("float"):
        if isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        expected = (float,)
    elif annotation.startswith("bool"):
        expected = (bool,)
    elif annotation.startswith("str"):
        expected = (str,)
    else:  # pragma: no cover - all fields are int/bool/str
        return value
    if isinstance(value, bool) and expected != (bool,):
        raise ConfigError(f"[{section}] {f.name.replace('_', '-')} must be {expected[0].__name__}, got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(f"[{section}] {f.name.replace('_', '-')} must be {expected[0].__name__}, got {value!r}")
    return value


def _sections() -> dict[str, type]:
    from hardneg.config import SECTIONS

    return SECTIONS


def as_dict(config: Any) -> dict[str, Any]:
    """A config as a plain dict, for manifests and `--json`."""
    return dataclasses.asdict(config)


EXECUTION_FIELDS: dict[str, frozenset[str]] = {
    "EmbedConfig": frozenset({"batch_size", "workers", "device", "engine"}),
    "SynthConfig": frozenset({"llm_url", "llm_concurrency"}),
    "TrainConfig": frozenset({"device", "gradient_checkpointing", "checkpoint_minutes"}),
    "MineConfig": frozenset({"query_batch", "search_chunk", "chunk_queries", "ce_batch_size", "engine", "llm_url", "llm_concurrency"}),
}
"""Per config class (by name), the fields that say how a stage runs, not what it computes (batch
sizes, chunking, workers, device, engine). They never enter a fingerprint, so changing them reuses
the cache; every stage's output is independent of them (the property tests mine with query batches
of 1 and 64 and compare; exact top-k is chunk-size independent)."""


def identity(config: Any) -> dict[str, Any]:
    """The fields of a config that define what its stage computes (for fingerprints)."""
    skip = EXECUTION_FIELDS.get(type(config).__name__, frozenset())
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in skip}
