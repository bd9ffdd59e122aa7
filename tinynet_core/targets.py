"""Budgets a deployment has, as one value type: ``flops=100M``, ``params=2.5M``, ``activations=1.2M``,
``latency=8ms``.

A FLOPs ratio ``c`` (the paper's budget) is the FLOPs target ``c * C0``. Parameters and activations (output
elements of every conv and linear layer, Dollar et al.) are counted by the analytic cost model; latency is measured
on the user's machine by a meter the caller supplies (``timm_tinynet.latency.LatencyMeter``), since this package
builds no networks.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Dict, Tuple

COUNT_KINDS: Tuple[str, ...] = ("flops", "params", "activations")
KINDS: Tuple[str, ...] = COUNT_KINDS + ("latency",)
COUNT_UNITS: Dict[str, float] = {"": 1.0, "K": 1e3, "k": 1e3, "M": 1e6, "G": 1e9, "B": 1e9}
TIME_UNITS: Dict[str, float] = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}
DEFAULT_TOLERANCE: Dict[str, float] = {"flops": 0.01, "params": 0.01, "activations": 0.01, "latency": 0.05}
_VALUE = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-zµ]*)\s*$")


class TargetError(ValueError):
    """A target that cannot be parsed or reached, with the reason."""


@dataclass(frozen=True)
class Target:
    """What the shrunk network must cost: ``value`` FLOPs / parameters / activations, or seconds per batch."""

    kind: str
    value: float

    def __str__(self) -> str:
        return f"{self.kind}={format_value(self.kind, self.value)}"

    @property
    def unit_words(self) -> str:
        return "per batch" if self.kind == "latency" else {"flops": "FLOPs", "params": "parameters",
                                                            "activations": "activations"}[self.kind]


def format_value(kind: str, value: float) -> str:
    """8ms, 2.5M: the inverse of the parser, for messages."""
    if kind == "latency":
        if value >= 1:
            return f"{value:.3g}s"
        return f"{value * 1e3:.3g}ms" if value >= 1e-3 else f"{value * 1e6:.3g}us"
    for unit in ("G", "M", "K"):
        if value >= COUNT_UNITS[unit]:
            return f"{value / COUNT_UNITS[unit]:.4g}{unit}"
    return f"{value:.4g}"


def parse_target(text: object) -> Target:
    """``kind=value[unit]``: flops/params/activations take K, M or G (or none: a plain count), latency takes
    s, ms or us and needs one. TargetError naming what is wrong and what is accepted otherwise."""
    if isinstance(text, Target):
        return text
    if not isinstance(text, str) or "=" not in text:
        raise TargetError(f"target must be KIND=VALUE with KIND one of {', '.join(KINDS)} (e.g. latency=8ms, "
                          f"params=2.5M), got {text!r}")
    kind, _, raw = (part.strip() for part in text.partition("="))
    kind = kind.lower()
    if kind not in KINDS:
        raise TargetError(f"unknown target kind {kind!r} in {text!r}; choose from {', '.join(KINDS)}")
    match = _VALUE.match(raw)
    if raw.strip().startswith("-"):
        raise TargetError(f"target {text!r}: the value must be > 0")
    if not match:
        raise TargetError(f"target {text!r}: {raw!r} is not a number with a unit ({_units_words(kind)})")
    number, unit = float(match.group(1)), match.group(2)
    units = TIME_UNITS if kind == "latency" else COUNT_UNITS
    if kind == "latency" and not unit:
        raise TargetError(f"target {text!r}: a latency needs a unit ({_units_words(kind)}), e.g. latency=8ms")
    if unit not in units:
        raise TargetError(f"target {text!r}: unknown unit {unit!r} for {kind} ({_units_words(kind)})")
    value = number * units[unit]
    if not (value > 0 and math.isfinite(value)):
        raise TargetError(f"target {text!r}: the value must be > 0 and finite")
    return Target(kind, value)


def _units_words(kind: str) -> str:
    return "s, ms or us" if kind == "latency" else "K, M or G, or none for a plain count"


def check_target_tolerance(tol: object, kind: str) -> float:
    """The accepted relative error for ``kind`` (None: ``DEFAULT_TOLERANCE[kind]``): a number in (0, 1)."""
    if tol is None:
        return DEFAULT_TOLERANCE[kind]
    if isinstance(tol, bool) or not isinstance(tol, (int, float)):
        raise TargetError(f"tol must be a number in (0, 1), got {tol!r}")
    if not 0.0 < float(tol) < 1.0:  # NaN fails this too
        raise TargetError(f"tol must be in (0, 1), got {tol!r}")
    return float(tol)
