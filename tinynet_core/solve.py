"""Find the Cube whose counted FLOPs hit ``c * C0`` under a shrinking rule.

Every rule leaves one free scalar x that FLOPs grow with:

* ``tiny`` (the paper's tiny formula): r(c) and d(c) from the Gaussian processes of ``formula.py``; x is the
  width w;
* ``giant``: EfficientNet's compound coefficient phi (r = 1.15^phi, d = 1.2^phi, w = 1.1^phi);
* ``r``, ``d``, ``w``: that multiplier alone.

Pixels, blocks and channels are whole numbers, so FLOPs are a non-decreasing step function of x, and every rule is
solved by one search, ``nearest_step``: bisect x to the edge where FLOPs cross the target (``crossing``), keep the
FLOPs count on the nearer side of it and, of the networks with that count, the one with the largest x (a larger
input at the same FLOPs is free), written with the fewest decimals that still build it. Each
evaluation is the analytic cost model (``cost.py``), a few microseconds once an architecture has been seen.

Two explicit steps follow for rules whose steps can be coarser than the tolerance: the giant rule's "calculated and
tuned" (``tune``: resolution, then width, alone), and the tiny rule's neighbours (``tiny_neighbours``: input size
nudged by a few pixels, depth moved within the formula's uncertainty).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Iterator, Optional, Tuple

from .baselines import MIN_IMG_SIZE, Baseline, get_baseline
from .cost import Cost, cube_cost_analytic
from .cube import GIANT_RESOLUTION_BASE, MIN_MULTIPLIER, Cube, eq5_width
from .frontier import check_frontier_path
from .targets import Target

DEFAULT_TOLERANCE = 0.01
RULES: Tuple[str, ...] = ("tiny", "giant", "r", "d", "w")
DEFAULT_RULE = "tiny"
MAX_WIDTH = 4.0  # the tiny rule's width search range is [MIN_MULTIPLIER, MAX_WIDTH]
MAX_NUDGE_PX = 8  # the tiny rule may move the input size this far (±4 % of r at 200px) to land within tolerance
NUDGE_DEPTH_STDS = (0.5, 1.0, 1.5, 2.0)  # ... and the depth this many formula standard deviations either way
EDGE_RESOLUTION = 1e-9  # crossing() narrows x to this (relative) width: far finer than any channel or pixel step


class UnreachableTargetError(ValueError):
    """The rule cannot produce a network within tolerance of the FLOPs target."""


@dataclass(frozen=True)
class Shrunk:
    """A solved shrink: the cube and what it costs (``cost``: FLOPs, parameters, activations, input size)."""

    baseline: str
    rule: str
    c: float
    cube: Cube
    cost: Cost
    target_flops: float
    extras: Dict[str, float] = field(default_factory=dict)
    target: Optional[Target] = None  # the budget when it was not a FLOPs ratio (budget.shrink_to)

    @property
    def img_size(self) -> int:
        return self.cost.img_size

    @property
    def flops(self) -> int:
        return self.cost.flops

    @property
    def params(self) -> int:
        return self.cost.params

    @property
    def activations(self) -> int:
        return self.cost.activations

    @property
    def rel_error(self) -> float:
        return self.flops / self.target_flops - 1.0


@dataclass(frozen=True)
class FreeScalar:
    """A rule's free scalar x in [lo, hi] and the cube it means; FLOPs are non-decreasing in x."""

    make_cube: Callable[[float], Cube]
    lo: float
    hi: float
    floor_words: str  # what the network looks like at x = lo, for the underflow message
    steps_words: str  # why the target may fall between two reachable networks


def _min_r(baseline: Baseline) -> float:
    return (MIN_IMG_SIZE + 0.5) / baseline.base_img_size


def free_scalar(rule: str, baseline: Baseline) -> FreeScalar:
    """The free scalar of rule ``r``, ``d``, ``w`` or ``giant`` (the tiny rule's is ``width_scalar``)."""
    if rule == "r":
        return FreeScalar(lambda x: Cube(r=x), _min_r(baseline), 1.0, f"the minimum input size of {MIN_IMG_SIZE}px",
                          "resolution moves in whole pixels")
    if rule == "d":
        return FreeScalar(lambda x: Cube(d=x), MIN_MULTIPLIER, 1.0, "minimum depth (one block per stage)",
                          "depth moves in whole blocks")
    if rule == "w":
        return FreeScalar(lambda x: Cube(w=x), MIN_MULTIPLIER, 1.0, "minimum width (every layer at its channel floor)",
                          "width moves in whole channel groups")
    if rule == "giant":
        phi_min = math.log(_min_r(baseline)) / math.log(GIANT_RESOLUTION_BASE)
        return FreeScalar(Cube.giant, phi_min, 0.0, f"phi={phi_min:.2f} (the {MIN_IMG_SIZE}px minimum input size)",
                          "resolution, depth and width move in whole pixels, blocks and channel groups")
    raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")


def width_scalar(r: float, d: float, lo: float = MIN_MULTIPLIER, hi: float = MAX_WIDTH) -> FreeScalar:
    """The width at fixed (r, d): the tiny rule's free scalar."""
    return FreeScalar(lambda x: Cube(r, d, x), lo, hi, "minimum width (every layer at its channel floor)",
                      "width moves in whole channel groups")


RATIO_WHAT = "a FLOPs ratio for shrinking"


def fraction_problem(value: object, what: str = "") -> Optional[str]:
    """What is wrong with ``value`` as a number strictly between 0 and 1 (None: nothing). The CLI and the Python
    API word their errors from this one function: ``must be in (0, 1), got nan``."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return f"must be a number in (0, 1), got {value!r}"
    try:
        value = float(value)
    except OverflowError:  # an int beyond float range
        pass
    if not 0.0 < value < 1.0:  # NaN fails this too
        return f"must be in (0, 1){f' ({what})' if what else ''}, got {value!r}"
    return None


def check_fraction(name: str, value: object, what: str = "") -> float:
    """``value`` as a float in (0, 1); ``ValueError('<name> must be in (0, 1), got ...')`` otherwise."""
    problem = fraction_problem(value, what)
    if problem is not None:
        raise ValueError(f"{name} {problem}")
    return float(value)


def check_ratio(c: float) -> float:
    """The FLOPs ratio ``c``: a number in (0, 1) (the rules shrink only)."""
    return check_fraction("c", c, RATIO_WHAT)


def check_tolerance(tol: float) -> float:
    """The accepted relative FLOPs error ``tol``: a number in (0, 1)."""
    return check_fraction("tol", tol)


def check_rule(rule: object) -> str:
    if not isinstance(rule, str) or rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    return rule


def crossing(flops_of: Callable[[float], int], lo: float, hi: float, target: float) -> Tuple[float, float]:
    """(below, above), ``EDGE_RESOLUTION`` apart, with flops_of(below) < target <= flops_of(above): the two sides of
    the step where the target is crossed. Requires flops_of(lo) < target <= flops_of(hi); plain bisection."""
    while hi - lo > EDGE_RESOLUTION * max(1.0, abs(lo), abs(hi)):
        mid = 0.5 * (lo + hi)
        if flops_of(mid) < target:
            lo = mid
        else:
            hi = mid
    return lo, hi


def shortest_in_step(x: float, same_network: Callable[[float], bool], upward: bool) -> float:
    """The decimal with the fewest digits that builds the same network as ``x``, found from the step's edge: ``x``
    sits just above the edge below it (``upward``: try ceilings) or just below the edge above it (floors). 0.45
    rather than 0.44999998; the nearest such decimal to the edge, so the choice does not depend on where x fell."""
    move = math.ceil if upward else math.floor
    for digits in range(1, 13):
        candidate = move(x * 10 ** digits) / 10 ** digits
        try:
            if same_network(candidate):
                return candidate
        except ValueError:  # outside the multipliers' valid range
            continue
    return x


def simplest_equivalent(x: float, network_of: Callable[[float], tuple]) -> float:
    """``x`` rounded to the fewest decimals that build the same network (a formula's r = 0.8437 -> 0.84 when that
    gives the same input size). ``network_of`` must be cheap (``signature``: architecture and input size): no model
    is built."""
    reference = network_of(x)
    for digits in range(2, 8):
        candidate = round(x, digits)
        try:
            if network_of(candidate) == reference:
                return candidate
        except ValueError:  # rounded outside the valid range
            continue
    return x


def signature(base: Baseline, cube: Cube) -> tuple:
    """Equal exactly when two cubes build the same network: its layers and its input size."""
    return base.arch_key(cube), base.img_size(cube)


def _flops(base: Baseline, cube: Cube) -> int:
    return cube_cost_analytic(base.name, cube).flops


def nearest_step(base: Baseline, scalar: FreeScalar, target: float, tol: float, rule: str, c: float, c0: int,
                 value_of: Optional[Callable[[Cube], float]] = None) -> float:
    """The value of the free scalar whose network's FLOPs (or ``value_of``: another metric that grows with x) are
    nearest ``target`` (the upper side on a tie), written short. Raises UnreachableTargetError when even x = lo
    is more than ``tol`` above the target, or x = hi below it (an x = lo network within ``tol`` above the target is
    accepted). Of several networks with the same integer count the one with the largest x is kept; a measured
    metric (floats) has no such plateaus."""
    metric = value_of or (lambda cube: _flops(base, cube))

    def flops_of(x: float) -> float:
        return metric(scalar.make_cube(x))

    floor = flops_of(scalar.lo)
    if floor > target * (1 + tol):
        raise UnreachableTargetError(
            f"rule {rule!r} cannot shrink {base.name} to c={c:g} ({target / 1e6:.1f}M FLOPs): at "
            f"{scalar.floor_words} it still has {floor / 1e6:.1f}M FLOPs ({floor / c0:.3f} C0)")
    if floor >= target:
        return scalar.lo
    top = flops_of(scalar.hi)
    if top < target:
        raise UnreachableTargetError(
            f"rule {rule!r} cannot reach c={c:g} for {base.name}: its largest network has "
            f"{top / 1e6:.1f}M FLOPs ({top / c0:.3f} C0)")
    below, above = crossing(flops_of, scalar.lo, scalar.hi, target)
    upward = False  # x sits just below the edge of the next network
    if flops_of(above) - target <= target - flops_of(below):
        if isinstance(flops_of(above), int):
            x = plateau_end(flops_of, above, scalar.hi)
        else:
            x, upward = above, True  # just above the edge of the previous network
    else:
        x = below
    if x == scalar.hi:
        return x
    reference = signature(base, scalar.make_cube(x))
    return shortest_in_step(x, lambda v: signature(base, scalar.make_cube(v)) == reference, upward)


def plateau_end(flops_of: Callable[[float], int], x: float, hi: float) -> float:
    """The largest x' in [x, hi] with the FLOPs of x. Several networks can share a FLOPs count (an input one pixel
    larger often rounds to the same feature maps after the strided layers); the largest is free resolution."""
    flops = flops_of(x)
    if flops_of(hi) == flops:
        return hi
    return crossing(flops_of, x, hi, flops + 1)[0]


def simplify(base: Baseline, cube: Cube, dims: str) -> Cube:
    """Shorten the given dimensions' decimals without changing the network."""
    for dim in dims:
        value = simplest_equivalent(getattr(cube, dim), lambda x: signature(base, replace(cube, **{dim: x})))
        cube = replace(cube, **{dim: value})
    return cube


def shrink(
        baseline: str,
        c: float,
        rule: str = DEFAULT_RULE,
        tol: float = DEFAULT_TOLERANCE,
        frontier: Optional[str] = None,
) -> Shrunk:
    """The cube of ``baseline`` that ``rule`` gives for the FLOPs budget ``c * C0``.

    ``frontier`` (rule ``tiny`` only) is a frontier CSV for the formula; default: the shipped EfficientNet-B0
    frontier. Every argument is checked first (``ValueError`` naming it, in the words of ``tinynet-formula``'s
    errors: ``tol must be in (0, 1), got nan``). Raises ``UnreachableTargetError`` when the rule cannot get within
    ``tol`` (relative) of the target: below the rule's floor (e.g. EfficientNet-B0 at minimum depth still has 173M
    FLOPs), or when the target falls inside a step of the discrete architecture.
    """
    c = check_ratio(c)
    base = get_baseline(baseline)
    rule = check_rule(rule)
    tol = check_tolerance(tol)
    if frontier is not None:
        check_frontier_path(frontier)
        if rule != "tiny":
            raise ValueError(f"a frontier only applies to rule 'tiny', not {rule!r}")
    c0 = _flops(base, Cube())
    target = c * c0
    extras: Dict[str, float] = {}

    if rule == "tiny":
        r, d = _tiny_r_d(base, c, frontier, extras)
        scalar = width_scalar(r, d)
        cube = simplify(base, _tiny_cube(base, r, d, c, c0, target, tol, extras), "rd")
    else:
        scalar = free_scalar(rule, base)
        x = nearest_step(base, scalar, target, tol, rule, c, c0)
        cube = scalar.make_cube(x)
        if rule == "giant":
            extras["phi"] = x
            for dim in ("r", "w"):
                if _within(base, cube, target, tol):
                    break
                tuned = tune(base, cube, dim, target, tol, c, c0)
                if tuned != cube:
                    cube = tuned
                    extras[f"tuned_{dim}"] = getattr(cube, dim)

    result = Shrunk(base.name, rule, c, cube, cube_cost_analytic(base.name, cube), target, extras=extras)
    if abs(result.rel_error) > tol:
        raise UnreachableTargetError(
            f"rule {rule!r} gets no closer than {result.rel_error:+.1%} to {target / 1e6:.1f}M FLOPs for "
            f"{base.name} at c={c:g} (nearest: {result.flops / 1e6:.1f}M at {cube}): {scalar.steps_words}; "
            f"pass tol={math.ceil(abs(result.rel_error) * 100) / 100:g} to accept it")
    return result


def _within(base: Baseline, cube: Cube, target: float, tol: float) -> bool:
    return abs(_flops(base, cube) / target - 1) <= tol


def _tiny_r_d(base: Baseline, c: float, frontier: Optional[str], extras: Dict[str, float]) -> Tuple[float, float]:
    """r(c) and d(c) from the tiny formula, with their standard deviations recorded in ``extras``."""
    from .formula import get_formula

    prediction = get_formula(frontier).predict(c)
    extras.update(r_formula=prediction.r, r_std=prediction.r_std, d_formula=prediction.d, d_std=prediction.d_std,
                  w_eq5=eq5_width(c, prediction.r, prediction.d),
                  extrapolating=float(prediction.extrapolating))
    size = int(base.base_img_size * prediction.r)
    if size < MIN_IMG_SIZE:
        raise UnreachableTargetError(
            f"the tiny formula gives r={prediction.r:.3f} at c={c:g}: a {size}px input for {base.name}, below the "
            f"{MIN_IMG_SIZE}px minimum")
    return prediction.r, prediction.d


def tiny_neighbours(base: Baseline, cube: Cube, d_std: float, solve_w: Callable[[float, float], Cube],
                    ) -> Iterator[Tuple[Cube, int, float]]:
    """What the tiny rule tries when the formula's (r, d) with its solved width misses the tolerance (width moves
    in channel groups, and at small widths one group can be 10 % of the FLOPs), cheapest first, as
    (cube, input-size nudge in px, depth shift):

    1. the same width with the input size nudged by -1, +1, -2, +2, ... ``MAX_NUDGE_PX`` pixels (no new width);
    2. each depth within ``NUDGE_DEPTH_STDS`` standard deviations of the formula's d, width re-solved, at the
       formula's input size and then nudged;
    3. the formula's depth at each nudged input size, width re-solved;
    4. each depth of step 2 at each nudged input size, width re-solved there (FLOPs jump where the input size
       crosses a multiple of the network's stride, so a width solved at one size can miss at the next).

    Candidates whose width cannot be solved are skipped; the caller keeps the first within tolerance.
    """
    r, d = cube.r, cube.d
    size = int(base.base_img_size * r)
    nudges = [n for step in range(1, MAX_NUDGE_PX + 1) for n in (-step, step) if size + n >= MIN_IMG_SIZE]
    depths = [d + k * d_std for step in NUDGE_DEPTH_STDS for k in (-step, step) if d + k * d_std > MIN_MULTIPLIER]

    def at_size(k: Cube, nudge: int) -> Cube:
        return replace(k, r=shortest_r_for_size(size + nudge, base.base_img_size)) if nudge else k

    yield from ((at_size(cube, n), n, 0.0) for n in nudges)
    for d_try in depths:
        try:
            deeper = solve_w(r, d_try)
        except UnreachableTargetError:
            continue
        yield from ((at_size(deeper, n), n, d_try - d) for n in [0] + nudges)
    for d_try in [d] + depths:
        for n in nudges:
            try:
                yield solve_w(shortest_r_for_size(size + n, base.base_img_size), d_try), n, d_try - d
            except UnreachableTargetError:
                continue


def _tiny_cube(base: Baseline, r: float, d: float, c: float, c0: int, target: float, tol: float,
               extras: Dict[str, float]) -> Cube:
    """The formula's (r, d) with the width solved; when that misses ``tol``, the first of ``tiny_neighbours``
    within it (recorded as ``nudged_px`` / ``nudged_d`` in ``extras``), else the nearest network seen (``shrink``
    then reports how near it got)."""

    def solve_w(r_try: float, d_try: float) -> Cube:
        scalar = width_scalar(r_try, d_try)
        return scalar.make_cube(nearest_step(base, scalar, target, tol, "tiny", c, c0))

    def error(k: Cube) -> float:
        return abs(_flops(base, k) / target - 1)

    cube = solve_w(r, d)
    if error(cube) <= tol:
        return cube
    cube, nudge, d_shift = first_neighbour_within(base, cube, extras.get("d_std", 0.0), solve_w, error, tol)
    if error(cube) <= tol:
        if nudge:
            extras["nudged_px"] = nudge
        if d_shift:
            extras["nudged_d"] = d_shift
    return cube


def first_neighbour_within(base: Baseline, cube: Cube, d_std: float, solve_w: Callable[[float, float], Cube],
                           error: Callable[[Cube], float], tol: float) -> Tuple[Cube, int, float]:
    """The first of ``tiny_neighbours`` whose ``error`` is within ``tol``, else the nearest network seen (``cube``
    itself when none is nearer), with its input-size nudge (px) and depth shift. Each distinct network is judged
    once; the tiny rule's search for a FLOPs budget and for any other target (``budget.py``) both use it."""
    best, seen = (cube, 0, 0.0), {signature(base, cube)}
    for candidate, nudge, d_shift in tiny_neighbours(base, cube, d_std, solve_w):
        key = signature(base, candidate)
        if key in seen:
            continue
        seen.add(key)
        if error(candidate) < error(best[0]):
            best = (candidate, nudge, d_shift)
        if error(candidate) <= tol:
            return candidate, nudge, d_shift
    return best


def tune(base: Baseline, cube: Cube, dim: str, target: float, tol: float, c: float, c0: int,
         value_of: Optional[Callable[[Cube], float]] = None) -> Cube:
    """The paper's "calculated and tuned": when the compound path steps over the target (a block is added or
    removed), keep the rule's other two dimensions and move ``dim`` (resolution first, then width) alone; the
    cube is kept when that gets no nearer. ``value_of``: the metric (default FLOPs), as in ``nearest_step``."""
    metric = value_of or (lambda k: _flops(base, k))
    lo = _min_r(base) if dim == "r" else MIN_MULTIPLIER
    scalar = FreeScalar(lambda x: replace(cube, **{dim: x}), lo, 1.0, "", "")
    try:
        tuned = scalar.make_cube(nearest_step(base, scalar, target, tol, "giant", c, c0, value_of))
    except UnreachableTargetError:
        return cube
    return tuned if abs(metric(tuned) - target) < abs(metric(cube) - target) else cube


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
    coefficient for the largest network with at most 2^-phi * C0 FLOPs (the lower side of ``crossing``); round d
    and w to two decimals; round the input size up to a multiple of 8 px. For phi = 1 this gives the paper's stated
    B^-1 (r .86, d .8, w .89).
    """
    if phi not in (1, 2, 3, 4):
        raise ValueError(f"phi must be 1, 2, 3 or 4, got {phi!r}")
    base = get_baseline("efficientnet_b0_compound")
    target = _flops(base, Cube()) / 2 ** phi
    scalar = free_scalar("giant", base)
    below, _ = crossing(lambda x: _flops(base, Cube.giant(x)), scalar.lo, scalar.hi, target)
    compound = Cube.giant(below)
    img_size = 8 * math.ceil(base.base_img_size * compound.r / 8)
    return Cube(shortest_r_for_size(img_size, base.base_img_size), round(compound.d, 2), round(compound.w, 2))
