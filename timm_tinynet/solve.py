"""Find the Cube whose counted FLOPs hit ``c * C0`` under a shrinking rule.

Every rule leaves one free scalar that FLOPs grow with:

* ``tiny`` (the paper's tiny formula): r(c) and d(c) from the Gaussian processes of ``formula.py``; the free
  scalar is the width w;
* ``giant``: EfficientNet's compound coefficient phi (r = 1.15^phi, d = 1.2^phi, w = 1.1^phi), solved
  continuously;
* ``r``, ``d``, ``w``: that multiplier alone.

FLOPs are a step function of the free scalar (pixels, blocks and channels are integers), so the solver
brackets the step where the target is crossed and takes the nearer side.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, field, replace
from typing import Callable, Dict, Optional, Tuple

from .baselines import MIN_IMG_SIZE, Baseline, get_baseline
from .cube import GIANT_DEPTH_BASE, GIANT_RESOLUTION_BASE, GIANT_WIDTH_BASE, MIN_MULTIPLIER, Cube, eq5_width
from .flops import cube_cost
from .frontier import check_frontier_path

DEFAULT_TOLERANCE = 0.01
RULES: Tuple[str, ...] = ("tiny", "giant", "r", "d", "w")
DEFAULT_RULE = "tiny"
MAX_WIDTH = 4.0  # the tiny rule's width search range is (0, MAX_WIDTH]
MAX_NUDGE_PX = 8  # the tiny rule may move the input size this far (±4 % of r at 200px) to land within tolerance
_MAX_STEPS = 40
_GOOD_ENOUGH = 2e-3  # stop refining once a side is this close (relative) to the target
_NARROW_ENOUGH = 1e-5  # ... or once the bracket is this narrow (relative): finer steps change no channel


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
    log_x: bool = True  # FLOPs ~ x^power (interpolate log-log); for phi, FLOPs ~ exp(power * phi)
    power: float = 2.0
    guess: Optional[float] = None  # where the scaling law puts the answer; the search starts there


def _min_r(baseline: Baseline) -> float:
    return (MIN_IMG_SIZE + 0.5) / baseline.base_img_size


def _rule(name: str, baseline: Baseline, c: float) -> _Rule:
    if name == "r":
        return _Rule(lambda x: Cube(r=x), _min_r(baseline), 1.0, f"the minimum input size of {MIN_IMG_SIZE}px",
                     "resolution moves in whole pixels", guess=math.sqrt(c))
    if name == "d":
        return _Rule(lambda x: Cube(d=x), MIN_MULTIPLIER, 1.0, "minimum depth (one block per stage)",
                     "depth moves in whole blocks", power=1.0, guess=c)
    if name == "w":
        return _Rule(lambda x: Cube(w=x), MIN_MULTIPLIER, 1.0, "minimum width (every layer at its channel floor)",
                     "width moves in whole channel groups", guess=math.sqrt(c))
    if name == "giant":
        phi_min = math.log(_min_r(baseline)) / math.log(GIANT_RESOLUTION_BASE)
        growth = math.log(GIANT_DEPTH_BASE * GIANT_WIDTH_BASE ** 2 * GIANT_RESOLUTION_BASE ** 2)
        return _Rule(Cube.giant, phi_min, 0.0, f"phi={phi_min:.2f} (the {MIN_IMG_SIZE}px minimum input size)",
                     "resolution, depth and width move in whole pixels, blocks and channel groups", log_x=False,
                     power=growth, guess=math.log(c) / growth)
    raise ValueError(f"unknown rule {name!r}; choose from {', '.join(RULES)}")


def _width_rule(r: float, d: float, c: float) -> _Rule:
    return _Rule(lambda x: Cube(r, d, x), MIN_MULTIPLIER, MAX_WIDTH,
                 "minimum width (every layer at its channel floor)", "width moves in whole channel groups",
                 guess=eq5_width(c, r, d))


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


def bracket(
        flops_of: Callable[[float], int],
        lo: float,
        hi: float,
        target: float,
        log_x: bool = True,
        good_enough: float = _GOOD_ENOUGH,
) -> Tuple[float, float]:
    """(x_below, x_above) with flops_of(x_below) < target <= flops_of(x_above), narrowed onto the step.

    Requires flops_of(lo) < target <= flops_of(hi). Alternates log-log interpolation (FLOPs ~ x^k, so
    it lands near the step in a few counts) with bisection (which guarantees progress on flat steps);
    stops once a side is within ``good_enough`` (relative) of the target or the bracket is narrower than 1e-5.
    """
    f_lo, f_hi = flops_of(lo), flops_of(hi)
    to_t = math.log if log_x else (lambda v: v)
    from_t = math.exp if log_x else (lambda v: v)
    for step in range(_MAX_STEPS):
        if min(target - f_lo, f_hi - target) <= good_enough * target or hi - lo <= _NARROW_ENOUGH * max(1.0, abs(hi)):
            break
        mid = 0.5 * (lo + hi)
        if step % 2 == 0 and f_lo > 0:
            frac = (math.log(target) - math.log(f_lo)) / (math.log(f_hi) - math.log(f_lo))
            guess = from_t(to_t(lo) + frac * (to_t(hi) - to_t(lo)))
            if lo < guess < hi:
                mid = guess
        f_mid = flops_of(mid)
        if f_mid < target:
            lo, f_lo = mid, f_mid
        else:
            hi, f_hi = mid, f_mid
    return lo, hi


def simplest_equivalent(x: float, signature: Callable[[float], tuple]) -> float:
    """The shortest decimal near ``x`` that builds the same network (0.45 rather than 0.4497...).

    ``signature`` must be cheap (architecture key and input size), so no model is built here.
    """
    reference = signature(x)
    for digits in range(2, 8):
        candidate = round(x, digits)
        try:
            if signature(candidate) == reference:
                return candidate
        except ValueError:  # rounded outside the valid range
            continue
    return x


def _signature(base: Baseline, cube: Cube) -> tuple:
    return base.arch_key(cube), base.img_size(cube)


def _step_towards(spec: _Rule, x: float, flops: float, target: float) -> float:
    """One step of the rule's scaling law from (x, flops) towards target, a little past it."""
    if spec.log_x:
        return x * (target / flops) ** (1.0 / spec.power) * (1.005 if flops < target else 0.995)
    return x + math.log(target / flops) / spec.power + (0.005 if flops < target else -0.005)


def _bracket_from_guess(flops_of: Callable[[float], int], spec: _Rule, target: float) -> Optional[Tuple[float, float]]:
    """A tight (below, above) bracket found by stepping the scaling law from the rule's guess, or None."""
    x = min(max(spec.guess, spec.lo), spec.hi)
    f = flops_of(x)
    for _ in range(6):
        nxt = min(max(_step_towards(spec, x, f, target), spec.lo), spec.hi)
        if nxt == x:
            return None
        f_nxt = flops_of(nxt)
        if (f < target) != (f_nxt < target):
            return (x, nxt) if f < target else (nxt, x)
        x, f = nxt, f_nxt
    return None


def solve_free_dimension(
        base: Baseline, spec: _Rule, target: float, lo: float, hi: float, good_enough: float = _GOOD_ENOUGH,
) -> float:
    """The value of the rule's free scalar in [lo, hi] whose network's FLOPs are nearest ``target``."""

    def flops_of(x: float) -> int:
        return cube_cost(base.name, spec.make_cube(x))[0]

    below, above = bracket(flops_of, lo, hi, target, spec.log_x, good_enough)
    f_below, f_above = flops_of(below), flops_of(above)
    best = above if abs(f_above - target) <= abs(target - f_below) else below
    return simplest_equivalent(best, lambda x: _signature(base, spec.make_cube(x)))


def _solve_rule(base: Baseline, spec: _Rule, rule: str, c: float, c0: int, target: float, tol: float) -> float:
    """The free scalar's value for ``target``, or an error when the rule's range cannot reach it."""

    def flops_of(x: float) -> int:
        return cube_cost(base.name, spec.make_cube(x))[0]

    found = _bracket_from_guess(flops_of, spec, target) if spec.guess is not None else None
    if found is None:
        floor = flops_of(spec.lo)
        if floor > target * (1 + tol):
            raise UnreachableTargetError(
                f"rule {rule!r} cannot shrink {base.name} to c={c:g} ({target / 1e6:.1f}M FLOPs): at "
                f"{spec.floor_words} it still has {floor / 1e6:.1f}M FLOPs ({floor / c0:.3f} C0)")
        if floor >= target:
            return spec.lo
        top = flops_of(spec.hi)
        if top < target:
            raise UnreachableTargetError(
                f"rule {rule!r} cannot reach c={c:g} for {base.name}: its largest network has "
                f"{top / 1e6:.1f}M FLOPs ({top / c0:.3f} C0)")
        found = (spec.lo, spec.hi)
    return solve_free_dimension(base, spec, target, *found, good_enough=min(_GOOD_ENOUGH, tol / 4))


def _simplify(base: Baseline, cube: Cube, dims: str) -> Cube:
    """Shorten the given dimensions' decimals without changing the network."""
    for dim in dims:
        value = simplest_equivalent(getattr(cube, dim), lambda x: _signature(base, replace(cube, **{dim: x})))
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
    c0 = cube_cost(base.name, Cube())[0]
    target = c * c0
    extras: Dict[str, float] = {}

    if rule == "tiny":
        r, d = _tiny_r_d(base, c, frontier, extras)
        spec = _width_rule(r, d, c)
        cube = _simplify(base, _tiny_width(base, r, d, rule, c, c0, target, tol, extras), "rdw")
    else:
        spec = _rule(rule, base, c)
        x = _solve_rule(base, spec, rule, c, c0, target, tol)
        cube = spec.make_cube(x)
        if rule == "giant":
            extras["phi"] = x
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


def _tiny_r_d(base: Baseline, c: float, frontier: Optional[str], extras: Dict[str, float]) -> Tuple[float, float]:
    """r(c) and d(c) from the tiny formula, with their standard deviations recorded in ``extras``."""
    from .formula import get_formula

    prediction = get_formula(frontier).predict(c)
    extras.update(r_formula=prediction.r, r_std=prediction.r_std, d_formula=prediction.d, d_std=prediction.d_std,
                  w_eq5=math.sqrt(c / (prediction.r ** 2 * prediction.d)),
                  extrapolating=float(prediction.extrapolating))
    size = int(base.base_img_size * prediction.r)
    if size < MIN_IMG_SIZE:
        raise UnreachableTargetError(
            f"the tiny formula gives r={prediction.r:.3f} at c={c:g}: a {size}px input for {base.name}, below the "
            f"{MIN_IMG_SIZE}px minimum")
    return prediction.r, prediction.d


def _tiny_width(
        base: Baseline, r: float, d: float, rule: str, c: float, c0: int, target: float, tol: float,
        extras: Dict[str, float],
) -> Cube:
    """Solve w for the formula's (r, d).

    Width moves in channel groups (at small widths one group can be 10 % of the FLOPs), so when the nearest
    w misses ``tol`` the search widens, cheapest first: that width with the input size nudged by up to
    ``MAX_NUDGE_PX`` pixels (no new model to count); then each depth within two standard deviations of the
    formula's d, width re-solved, with the same input nudges; then nudged input sizes with width re-solved.
    The first network within ``tol`` wins; otherwise the nearest one is returned (and ``shrink`` reports it).
    """

    def solve_w(r_try: float, d_try: float) -> Cube:
        width = _width_rule(r_try, d_try, c)
        return width.make_cube(_solve_rule(base, width, rule, c, c0, target, tol))

    def error(k: Cube) -> float:
        return abs(cube_cost(base.name, k)[0] / target - 1)

    cube = solve_w(r, d)
    if error(cube) <= tol:
        return cube
    size = int(base.base_img_size * r)
    nudges = [n for step in range(1, MAX_NUDGE_PX + 1) for n in (-step, step) if size + n >= MIN_IMG_SIZE]
    d_std = extras.get("d_std", 0.0)
    depths = [d + k * d_std for step in (0.5, 1.0, 1.5, 2.0) for k in (-step, step) if d + k * d_std > MIN_MULTIPLIER]

    def with_size(k: Cube, nudge: int) -> Cube:
        return replace(k, r=shortest_r_for_size(size + nudge, base.base_img_size)) if nudge else k

    def attempts():
        yield from ((with_size(cube, n), n, 0.0) for n in nudges)
        for d_try in depths:
            try:
                deeper = solve_w(r, d_try)
            except UnreachableTargetError:
                continue
            yield from ((with_size(deeper, n), n, d_try - d) for n in [0] + nudges)
        for n in nudges:
            try:
                yield solve_w(shortest_r_for_size(size + n, base.base_img_size), d), n, 0.0
            except UnreachableTargetError:
                continue

    best = cube
    seen = {_signature(base, cube)}
    for candidate, nudge, d_shift in attempts():
        signature = _signature(base, candidate)
        if signature in seen:
            continue
        seen.add(signature)
        if error(candidate) < error(best):
            best = candidate
        if error(candidate) <= tol:
            if nudge:
                extras["nudged_px"] = nudge
            if d_shift:
                extras["nudged_d"] = d_shift
            return candidate
    return best


def _tune(base: Baseline, cube: Cube, dim: str, target: float) -> Cube:
    """The paper's "calculated and tuned": when the compound path steps over the target (a block is added or
    removed), keep the rule's other two dimensions and move ``dim`` (resolution first, then width) alone."""
    spec = _Rule(lambda x: replace(cube, **{dim: x}), _min_r(base) if dim == "r" else MIN_MULTIPLIER, 1.0, "", "")
    lo, hi = spec.lo, spec.hi
    if cube_cost(base.name, spec.make_cube(lo))[0] >= target or cube_cost(base.name, spec.make_cube(hi))[0] < target:
        return cube
    tuned = spec.make_cube(solve_free_dimension(base, spec, target, lo, hi))
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
    spec = _rule("giant", base, 2.0 ** -phi)
    below, _ = _exact_bracket(lambda x: cube_cost(base.name, Cube.giant(x))[0], spec.lo, spec.hi, target)
    compound = Cube.giant(below)
    img_size = 8 * math.ceil(base.base_img_size * compound.r / 8)
    return Cube(shortest_r_for_size(img_size, base.base_img_size), round(compound.d, 2), round(compound.w, 2))


def _exact_bracket(flops_of: Callable[[float], int], lo: float, hi: float, target: float) -> Tuple[float, float]:
    """Plain bisection to a 2^-30 wide bracket (the B^-phi rule needs the exact step, not a close side)."""
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        if flops_of(mid) < target:
            lo = mid
        else:
            hi = mid
    return lo, hi
