"""Find the Cube whose counted FLOPs hit ``c * C0`` under a shrinking rule.

Every rule is one free scalar that FLOPs grow with: the resolution, depth or width multiplier alone, or
EfficientNet's compound coefficient phi (``giant``: r = 1.15^phi, d = 1.2^phi, w = 1.1^phi, phi solved
continuously). FLOPs are a step function of that scalar (pixels, blocks and channels are integers), so the
solver brackets the step where the target is crossed and takes the nearer side.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Tuple

from .baselines import MIN_IMG_SIZE, Baseline, get_baseline
from .cube import GIANT_RESOLUTION_BASE, MIN_MULTIPLIER, Cube
from .flops import cube_cost

DEFAULT_TOLERANCE = 0.01
_BISECT_STEPS = 24


class UnreachableTargetError(ValueError):
    """The rule cannot produce a network within tolerance of the FLOPs target."""


@dataclass(frozen=True)
class Shrunk:
    """A solved shrink: the cube and what it costs."""

    baseline: str
    rule: str
    c: float
    cube: Cube
    img_size: int
    flops: int
    params: int
    target_flops: float
    extras: Dict[str, float] = field(default_factory=dict)

    @property
    def rel_error(self) -> float:
        return self.flops / self.target_flops - 1.0


@dataclass(frozen=True)
class _Rule:
    """One free scalar x in [lo, hi] and the cube it means; FLOPs are non-decreasing in x."""

    make_cube: Callable[[float], Cube]
    lo: float
    hi: float
    floor_words: str  # what the network looks like at x = lo, for the underflow message
    steps_words: str  # why the target may fall between two reachable networks


def _rule(name: str, baseline: Baseline) -> _Rule:
    min_r = (MIN_IMG_SIZE + 0.5) / baseline.base_img_size
    if name == "r":
        return _Rule(lambda x: Cube(r=x), min_r, 1.0, f"the minimum input size of {MIN_IMG_SIZE}px",
                     "resolution moves in whole pixels")
    if name == "d":
        return _Rule(lambda x: Cube(d=x), MIN_MULTIPLIER, 1.0, "minimum depth (one block per stage)",
                     "depth moves in whole blocks")
    if name == "w":
        return _Rule(lambda x: Cube(w=x), MIN_MULTIPLIER, 1.0, "minimum width (every layer at its channel floor)",
                     "width moves in whole channel groups")
    if name == "giant":
        phi_min = math.log(min_r) / math.log(GIANT_RESOLUTION_BASE)
        return _Rule(Cube.giant, phi_min, 0.0, f"phi={phi_min:.2f} (the {MIN_IMG_SIZE}px minimum input size)",
                     "resolution, depth and width move in whole pixels, blocks and channel groups")
    raise ValueError(f"unknown rule {name!r}; choose from {', '.join(RULES)}")


RULES: Tuple[str, ...] = ("giant", "r", "d", "w")


def check_ratio(c: float) -> float:
    if isinstance(c, bool) or not isinstance(c, (int, float)) or math.isnan(c):
        raise ValueError(f"c must be a number in (0, 1), got {c!r}")
    if not 0.0 < c < 1.0:
        raise ValueError(f"c must be in (0, 1) (shrinking only), got {c}")
    return float(c)


def bracket(flops_of: Callable[[float], int], lo: float, hi: float, target: float) -> Tuple[float, float]:
    """(x_below, x_above): flops_of(x_below) < target <= flops_of(x_above), x_above - x_below tiny.

    Requires flops_of(lo) < target <= flops_of(hi).
    """
    for _ in range(_BISECT_STEPS):
        mid = 0.5 * (lo + hi)
        if flops_of(mid) < target:
            lo = mid
        else:
            hi = mid
    return lo, hi


def simplest_equivalent(x: float, flops_of: Callable[[float], int]) -> float:
    """The shortest decimal near ``x`` that builds the same-cost network (0.45 rather than 0.4497...)."""
    cost = flops_of(x)
    for digits in range(2, 7):
        candidate = round(x, digits)
        try:
            if flops_of(candidate) == cost:
                return candidate
        except ValueError:  # rounded outside the valid range
            continue
    return x


def solve_free_dimension(
        baseline_name: str,
        make_cube: Callable[[float], Cube],
        lo: float,
        hi: float,
        target: float,
) -> float:
    """The value of the free scalar whose network's FLOPs are nearest ``target``."""

    def flops_of(x: float) -> int:
        return cube_cost(baseline_name, make_cube(x))[0]

    below, above = bracket(flops_of, lo, hi, target)
    f_below, f_above = flops_of(below), flops_of(above)
    best = above if abs(f_above - target) <= abs(target - f_below) else below
    return simplest_equivalent(best, flops_of)


def shrink(baseline: str, c: float, rule: str = "giant", tol: float = DEFAULT_TOLERANCE) -> Shrunk:
    """The cube of ``baseline`` that ``rule`` gives for the FLOPs budget ``c * C0``.

    Raises ``UnreachableTargetError`` when the rule cannot get within ``tol`` (relative) of the target:
    below the rule's floor (e.g. EfficientNet-B0 at minimum depth still has 173M FLOPs), or when the
    target falls inside a step of the discrete architecture.
    """
    c = check_ratio(c)
    base = get_baseline(baseline)
    spec = _rule(rule, base)
    c0 = cube_cost(base.name, Cube())[0]
    target = c * c0

    floor = cube_cost(base.name, spec.make_cube(spec.lo))[0]
    if floor > target * (1 + tol):
        raise UnreachableTargetError(
            f"rule {rule!r} cannot shrink {base.name} to c={c:g} ({target / 1e6:.1f}M FLOPs): at "
            f"{spec.floor_words} it still has {floor / 1e6:.1f}M FLOPs ({floor / c0:.3f} C0)")
    if floor >= target:
        x = spec.lo
    else:
        x = solve_free_dimension(base.name, spec.make_cube, spec.lo, spec.hi, target)
    cube = spec.make_cube(x)
    extras = {"phi": x} if rule == "giant" else {}
    if rule == "giant":
        for dim in ("r", "w"):
            if abs(cube_cost(base.name, cube)[0] / target - 1) <= tol:
                break
            tuned = _tune(base, cube, dim, target)
            if tuned != cube:
                cube = tuned
                extras[f"tuned_{dim}"] = getattr(cube, dim)
    flops, params = cube_cost(base.name, cube)
    result = Shrunk(base.name, rule, c, cube, base.img_size(cube), flops, params, target, extras=extras)
    if abs(result.rel_error) > tol:
        raise UnreachableTargetError(
            f"rule {rule!r} gets no closer than {result.rel_error:+.1%} to {target / 1e6:.1f}M FLOPs for "
            f"{base.name} at c={c:g} (nearest: {flops / 1e6:.1f}M at {cube}): {spec.steps_words}; "
            f"pass tol={math.ceil(abs(result.rel_error) * 100) / 100:g} to accept it")
    return result


def _tune(base: Baseline, cube: Cube, dim: str, target: float) -> Cube:
    """The paper's "calculated and tuned": when the compound path steps over the target (a block is added or
    removed), keep the rule's other two dimensions and move ``dim`` (resolution first, then width) alone."""
    lo = (MIN_IMG_SIZE + 0.5) / base.base_img_size if dim == "r" else MIN_MULTIPLIER

    def make(x: float) -> Cube:
        return replace(cube, **{dim: x})

    if cube_cost(base.name, make(lo))[0] >= target or cube_cost(base.name, make(1.0))[0] < target:
        return cube
    tuned = make(solve_free_dimension(base.name, make, lo, 1.0, target))
    before, after = (abs(cube_cost(base.name, k)[0] - target) for k in (cube, tuned))
    return tuned if after < before else cube


def shortest_r_for_size(img_size: int, base_img_size: int) -> float:
    """The shortest decimal r with ``int(base_img_size * r) == img_size`` (192px of 224 -> 0.86)."""
    for digits in range(2, 8):
        r = math.ceil(img_size / base_img_size * 10 ** digits) / 10 ** digits
        if int(base_img_size * r) == img_size:
            return r
    raise ValueError(f"no multiplier gives {img_size}px from {base_img_size}px")


def efficientnet_b_minus(phi: int) -> Cube:
    """The paper's EfficientNet-B^-phi, "calculated and tuned" from the inverse giant formula.

    Rule: on EfficientNet's own builder (stem and head scale with w, depth rounded), solve the compound
    coefficient continuously for the largest network with at most 2^-phi * C0 FLOPs; round d and w to two
    decimals; round the input size up to a multiple of 8 px. For phi = 1 this gives the paper's stated
    B^-1 (r .86, d .8, w .89).
    """
    if phi not in (1, 2, 3, 4):
        raise ValueError(f"phi must be 1, 2, 3 or 4, got {phi!r}")
    base = get_baseline("efficientnet_b0_compound")
    target = cube_cost(base.name, Cube())[0] / 2 ** phi
    spec = _rule("giant", base)
    below, _ = bracket(lambda x: cube_cost(base.name, Cube.giant(x))[0], spec.lo, spec.hi, target)
    compound = Cube.giant(below)
    img_size = 8 * math.ceil(base.base_img_size * compound.r / 8)
    return Cube(shortest_r_for_size(img_size, base.base_img_size), round(compound.d, 2), round(compound.w, 2))
