"""Checks every stage config shares (numbers that fit, finite floats, device names)."""

from __future__ import annotations

import math
import re
from dataclasses import fields
from typing import Any

from hardneg.errors import ConfigError


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ConfigError(message)


INT64_MAX = 2**63 - 1
DEVICE_PATTERN = re.compile(r"(cpu|mps|(cuda|xpu|npu)(:\d{1,3})?)")


def _check_numbers(config: Any) -> None:
    """Checks every config shares: integers fit in 64 bits (Parquet, numpy and torch take no more),
    seeds are non-negative (numpy refuses others, so one command must not accept what the next one
    refuses), floats are finite (a NaN threshold compares false with everything), a device is a
    device name (checked before any model loads)."""
    for f in fields(config):
        value = getattr(config, f.name)
        flag = f.name.replace("_", "-")
        if isinstance(value, bool) or value is None:
            continue
        if isinstance(value, int):
            _check(-INT64_MAX - 1 <= value <= INT64_MAX, f"{flag} must fit in 64 bits, got {value}")
            if f.name == "seed" or f.name.endswith("_seed"):
                _check(value >= 0, f"{flag} must be >= 0, got {value}")
        elif isinstance(value, float):
            _check(math.isfinite(value), f"{flag} must be a finite number, got {value}")
        elif f.name == "device" and isinstance(value, str):
            _check(DEVICE_PATTERN.fullmatch(value) is not None, f"device must be cpu, cuda, cuda:N, mps (or xpu/npu[:N]), got {value!r}")


def _one_of(config: Any, name: str, choices: tuple[str, ...], optional: bool = False) -> None:
    value = getattr(config, name)
    if not (optional and value is None):
        _check(value in choices, f"{name.replace('_', '-')} must be one of {', '.join(choices)}, got {value!r}")


def _at_least(config: Any, name: str, minimum: int, optional: bool = False) -> None:
    value = getattr(config, name)
    if not (optional and value is None):
        _check(value >= minimum, f"{name.replace('_', '-')} must be >= {minimum}, got {value}")
