"""The model Rubik's cube: one value type for (resolution, depth, width) multipliers."""
from __future__ import annotations

import math
from dataclasses import dataclass

# Multipliers outside this range describe no sensible network (a 0.01x ResNet, a 100x EfficientNet);
# they are almost always a unit mistake (pixels or percent instead of a ratio), so they are rejected.
MIN_MULTIPLIER = 1e-3
MAX_MULTIPLIER = 10.0

# EfficientNet's compound-scaling bases (Tan & Le 2019): d = alpha^phi, w = beta^phi, r = gamma^phi.
GIANT_DEPTH_BASE = 1.2
GIANT_WIDTH_BASE = 1.1
GIANT_RESOLUTION_BASE = 1.15


def check_multiplier(name: str, value: float) -> float:
    """Return ``value`` as a float, or raise ``ValueError`` naming ``name`` when it is not a usable multiplier."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if math.isnan(value) or math.isinf(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if value <= 0:
        raise ValueError(f"{name} must be > 0, got {value}")
    if not MIN_MULTIPLIER <= value <= MAX_MULTIPLIER:
        raise ValueError(f"{name}={value} is outside the supported range [{MIN_MULTIPLIER}, {MAX_MULTIPLIER}]")
    return value


@dataclass(frozen=True)
class Cube:
    """Resolution, depth and width multipliers relative to a baseline network (all 1.0 = the baseline)."""

    r: float = 1.0
    d: float = 1.0
    w: float = 1.0

    def __post_init__(self) -> None:
        for name in ("r", "d", "w"):
            object.__setattr__(self, name, check_multiplier(name, getattr(self, name)))

    @classmethod
    def giant(cls, phi: float) -> "Cube":
        """EfficientNet's compound scaling; negative ``phi`` shrinks (the 'inverse giant formula')."""
        return cls(r=GIANT_RESOLUTION_BASE ** phi, d=GIANT_DEPTH_BASE ** phi, w=GIANT_WIDTH_BASE ** phi)

    def rounded(self, digits: int) -> "Cube":
        return Cube(round(self.r, digits), round(self.d, digits), round(self.w, digits))

    def as_dict(self) -> dict:
        return {"r": self.r, "d": self.d, "w": self.w}

    def __str__(self) -> str:
        return f"Cube(r={self.r:.6g}, d={self.d:.6g}, w={self.w:.6g})"


def eq5_width(c: float, r: float, d: float) -> float:
    """Paper eq. 5: the width that keeps FLOPs ~ r^2 * d * w^2 at ``c`` (ignores rounding and fixed layers)."""
    return math.sqrt(c / (r * r * d))
