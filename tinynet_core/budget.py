"""Shrink to the budget a deployment has: FLOPs, parameters, activations or latency (``targets.py``).

The rules stay what they are: the tiny formula sets r and d from c, the giant rule walks its compound path, and
so on (``solve.shrink``). What a target adds is the search for the FLOPs ratio c whose network meets it: every
rule is a path of networks indexed by c, and the target's metric grows along it, so ``shrink_to`` bisects c
(on a log scale) until the two networks either side of the target are adjacent, and keeps the nearest.

Counted metrics (FLOPs, parameters, activations) come from the cost model and are exact. Latency comes from the
caller's meter (``timm_tinynet.latency.LatencyMeter``: measured, cached per device fingerprint), so it is noisy:
the candidates whose measurements cannot be told apart from the target within their spread are measured again,
interleaved and with more repeats, before one is chosen.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Callable, Dict, List, Optional, Protocol, Sequence, Tuple

from .baselines import Baseline, get_baseline
from .cost import cube_cost_analytic
from .cube import GIANT_DEPTH_BASE, Cube
from .solve import (DEFAULT_RULE, DEFAULT_TOLERANCE, FreeScalar, Shrunk, UnreachableTargetError, check_rule,
                    first_neighbour_within, free_scalar, nearest_step, shrink, signature, simplify, tune, width_scalar)
from .targets import Target, TargetError, check_target_tolerance, format_value, parse_target

PATH_TOL = 0.5  # the FLOPs tolerance of the rule's path: any network the rule reaches near c, not only exact ones
C_HIGHEST = 0.999  # the path's top end: the rules shrink (c < 1); the baseline itself is the cube (1, 1, 1)
C_LOWEST = 1e-4
C_RESOLUTION = 1e-4  # bisection stops once the bracket on c is this narrow (relative) ...
MAX_STEPS = 40  # ... or after this many steps
REMEASURE_REPEATS = 30  # more timed runs per candidate when candidates near the target are measured again
SETTLED_REPEATS = 60  # a network with this many timed runs (a first measurement and a second) is not measured again


class Measured(Protocol):
    median_s: float
    spread_s: float
    repeats: int


class Meter(Protocol):
    """What ``timm_tinynet.latency.LatencyMeter`` provides."""

    def __call__(self, baseline: str, cube: Cube) -> Measured: ...

    def remeasure(self, items: Sequence[Tuple[str, Cube]], repeats: int) -> List[Measured]: ...

    def describe(self) -> str: ...


Metric = Callable[[Cube], float]


class _Path:
    """The rule's networks by c, each solved once (and, for latency, measured once)."""

    def __init__(self, base: Baseline, rule: str, frontier: Optional[str], metric: Metric) -> None:
        self.base, self.rule, self.frontier, self.metric = base, rule, frontier, metric
        self.by_c: Dict[float, Optional[Shrunk]] = {}
        self.by_network: Dict[tuple, float] = {}
        self.cubes: Dict[tuple, Cube] = {}

    def at(self, c: float) -> Optional[Shrunk]:
        """The rule's network for c, or None below the rule's floor."""
        if c not in self.by_c:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # a formula extrapolating along the search is expected
                    self.by_c[c] = shrink(self.base.name, c, self.rule, tol=PATH_TOL, frontier=self.frontier)
            except UnreachableTargetError:
                self.by_c[c] = None
        return self.by_c[c]

    def value(self, shrunk: Shrunk) -> float:
        return self.value_of_cube(shrunk.cube)

    def value_of_cube(self, cube: Cube) -> float:
        """The target's metric of a network, each distinct network evaluated (measured) once."""
        key = signature(self.base, cube)
        if key not in self.by_network:
            self.by_network[key] = self.metric(cube)
            self.cubes[key] = cube
        return self.by_network[key]

    def extras_at(self, c: float) -> Dict[str, float]:
        """What the rule recorded for its network at c (the formula's r, d and their stds for the tiny rule)."""
        shrunk = self.by_c.get(c)
        if self.rule != "tiny" or shrunk is None:
            return {}
        keep = ("r_formula", "r_std", "d_formula", "d_std", "extrapolating")
        return dict({key: shrunk.extras[key] for key in keep if key in shrunk.extras}, c_formula=c)

    def lowest_c(self) -> float:
        """The smallest c (to ``C_RESOLUTION``) for which the rule still gives a network."""
        if self.at(C_LOWEST) is not None:
            return C_LOWEST
        return _log_bisect(lambda c: self.at(c) is None, C_LOWEST, C_HIGHEST)[1]


def _log_bisect(below: Callable[[float], bool], lo: float, hi: float) -> Tuple[float, float]:
    """(lo, hi) narrowed by halving on a log scale (c spans four decades) until hi / lo <= 1 + ``C_RESOLUTION`` or
    after ``MAX_STEPS`` halvings; a midpoint where ``below`` holds becomes the new lo."""
    for _ in range(MAX_STEPS):
        if hi / lo <= 1 + C_RESOLUTION:
            break
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if below(mid) else (lo, mid)
    return lo, hi


def _metric(base: Baseline, target: Target, meter: Optional[Meter]) -> Metric:
    if target.kind == "latency":
        if meter is None:
            raise TargetError("a latency target needs a meter that measures on this machine: use "
                              "timm_tinynet.shrink(..., target='latency=8ms') or tinynet-formula --target")
        return lambda cube: meter(base.name, cube).median_s
    return lambda cube: int(getattr(cube_cost_analytic(base.name, cube), target.kind))


def shrink_to(
        baseline: str,
        target: object,
        rule: str = "tiny",
        tol: Optional[float] = None,
        frontier: Optional[str] = None,
        meter: Optional[Meter] = None,
) -> Shrunk:
    """The network of ``rule``'s path whose metric is nearest ``target`` (a ``Target`` or text such as
    ``'params=2.5M'``, ``'latency=8ms'``), within ``tol`` (relative; default 1 %, latency 5 %).

    The result is the rule's network for the FLOPs ratio ``c`` the search settled on (``Shrunk.c``), with the
    target, its metric and (latency) the measurement in ``extras``. TargetError when the target is outside what
    the rule reaches (the message gives the range) or falls between two adjacent networks beyond ``tol``.
    """
    target = parse_target(target)
    base = get_baseline(baseline)
    rule = check_rule(rule)
    tol = check_target_tolerance(tol, target.kind)
    if target.kind == "flops":
        return _to_flops(base, target, rule, tol, frontier)
    path = _Path(base, rule, frontier, _metric(base, target, meter))
    query = _query(base.name, rule, target, tol, frontier) if target.kind == "latency" else ""
    recalled = _recalled(path, meter, query, target, tol)
    if recalled is not None:
        return recalled
    low, whole = path.value(path.at(path.lowest_c())), path.metric(Cube())
    if not low * (1 - tol) <= target.value <= whole * (1 + tol):
        raise TargetError(
            f"{target} is outside what rule {rule!r} reaches for {base.name}: from "
            f"{format_value(target.kind, low)} (its smallest network) to {format_value(target.kind, whole)} (the "
            f"baseline itself)")

    scalar, c_path = _free_scalar(path, target)
    c0 = cube_cost_analytic(base.name, Cube()).flops
    try:
        x = nearest_step(base, scalar, target.value, tol, rule, c_path, c0, value_of=path.value_of_cube)
    except UnreachableTargetError:  # the rule's own scalar cannot move far enough (a coarse step at its bound)
        x = scalar.lo if path.value_of_cube(scalar.make_cube(scalar.lo)) > target.value else scalar.hi
    cube = scalar.make_cube(x)
    if rule == "tiny" and abs(path.value_of_cube(cube) / target.value - 1) > tol:
        cube = _neighbour_within(path, cube, target, tol, c_path, c0)
    for dim in ("r", "w") if rule == "giant" else ():  # "calculated and tuned", as for a FLOPs budget
        if abs(path.value_of_cube(cube) / target.value - 1) <= tol:
            break
        cube = tune(base, cube, dim, target.value, tol, c_path, c0, path.value_of_cube)
    if target.kind == "latency":
        cube = _remeasured(path, meter, cube, target)
    if rule != "giant":  # the giant rule's cube is Cube.giant(phi) exactly; others are written short
        cube = simplify(base, cube, "rdw")
    value = path.value_of_cube(cube)
    error = value / target.value - 1
    if abs(error) > tol:
        raise TargetError(
            f"rule {rule!r} gets no closer than {error:+.1%} to {target} for {base.name} (nearest: "
            f"{format_value(target.kind, value)} at {cube}): the networks either side are adjacent; pass "
            f"tol={math.ceil(abs(error) * 100) / 100:g} to accept it")
    extras = _giant_extras(cube) if rule == "giant" else {}
    if target.kind == "latency":
        remember = getattr(meter, "remember", None)
        if remember is not None:
            remember(query, cube, c_path)
    return _result(path, cube, c_path, target, meter, extras)


def _result(path: _Path, cube: Cube, c_path: float, target: Target, meter: Optional[Meter],
            extras: Dict[str, float]) -> Shrunk:
    base = path.base
    value = path.value_of_cube(cube)
    cost = cube_cost_analytic(base.name, cube)
    extras = dict(path.extras_at(c_path), **extras, target_value=target.value, target_metric=value,
                  target_rel_error=value / target.value - 1)
    if target.kind == "latency":
        measured = meter(base.name, cube)
        extras.update(latency_s=measured.median_s, latency_spread_s=measured.spread_s,
                      latency_repeats=float(measured.repeats))
    c0 = cube_cost_analytic(base.name, Cube()).flops
    c = cost.flops / c0
    return Shrunk(base.name, path.rule, c, cube, cost, c * c0, extras=extras, target=target)


def _query(baseline: str, rule: str, target: Target, tol: float, frontier: Optional[str]) -> str:
    """What decides a latency search's answer besides the meter's setting: the path and the target (the frontier
    by its content, so an edited file is a new query)."""
    from .formula import frontier_key
    from .frontier import load_frontier

    fitted = None if frontier is None or rule != "tiny" else frontier_key(load_frontier(frontier))
    return repr((baseline, rule, str(target), tol, fitted))


def _recalled(path: _Path, meter: Optional[Meter], query: str, target: Target, tol: float) -> Optional[Shrunk]:
    """The answer the meter kept for this query, when its network still measures within ``tol`` of the target
    (the meter's cache holds its runs: nothing is measured)."""
    recall = getattr(meter, "recall", None)
    found = recall(query) if recall is not None and query else None
    if found is None:
        return None
    cube, c_path = found
    if abs(path.value_of_cube(cube) / target.value - 1) > tol:
        return None
    if path.rule == "tiny":
        path.at(c_path)  # the formula's r, d and their stds for the extras (solved, not measured)
    extras = _giant_extras(cube) if path.rule == "giant" else {}
    return _result(path, cube, c_path, target, meter, extras)


def _giant_extras(cube: Cube) -> Dict[str, float]:
    """The compound coefficient of the giant rule's network, read from its depth (``tune`` moves r and w, never
    d), and the dimensions tuned off the compound path."""
    phi = round(math.log(cube.d) / math.log(GIANT_DEPTH_BASE), 9)
    on_path = Cube.giant(phi)
    tuned = {f"tuned_{dim}": getattr(cube, dim) for dim in "rw"
             if not math.isclose(getattr(cube, dim), getattr(on_path, dim), rel_tol=1e-8)}
    return {"phi": phi, **tuned}


def _free_scalar(path: _Path, target: Target) -> Tuple[FreeScalar, float]:
    """The scalar the target is solved along, and the FLOPs ratio that set the rest of the cube.

    Rules r, d, w and giant have one free scalar, solved for the target directly (their c is the network's
    FLOPs ratio, reported afterwards). The tiny rule's (r, d) come from the formula at a budget c: the budget
    whose formula network is nearest the target is found first (bisection on log c along the path), then the
    width at that (r, d) is solved for the target itself.
    """
    if path.rule != "tiny":
        return free_scalar(path.rule, path.base), 1.0

    def short_of_target(c: float) -> bool:
        shrunk = path.at(c)
        return shrunk is None or path.value(shrunk) < target.value

    lo, hi = _log_bisect(short_of_target, path.lowest_c(), C_HIGHEST)
    below, above = path.at(lo), path.at(hi)
    c = hi if below is None or abs(path.value(above) - target.value) <= abs(path.value(below) - target.value) else lo
    cube = path.at(c).cube
    return width_scalar(cube.r, cube.d), c


def _neighbour_within(path: _Path, cube: Cube, target: Target, tol: float, c: float, c0: int) -> Cube:
    """When the width alone cannot hit the target at the formula's (r, d) (channel groups step together: at
    w = 13/16 several of B0's stages widen at once), the tiny rule's neighbours as for a FLOPs budget
    (``solve.tiny_neighbours``: input size nudged, depth moved within the formula's uncertainty, width solved for
    the target): the first within ``tol``, else the nearest."""
    base = path.base

    def solve_w(r: float, d: float) -> Cube:
        scalar = width_scalar(r, d)
        return scalar.make_cube(nearest_step(base, scalar, target.value, tol, "tiny", c, c0,
                                             value_of=path.value_of_cube))

    def error(k: Cube) -> float:
        return abs(path.value_of_cube(k) / target.value - 1)

    d_std = path.extras_at(c).get("d_std", 0.0)
    return first_neighbour_within(base, cube, d_std, solve_w, error, tol)[0]


def _to_flops(base: Baseline, target: Target, rule: str, tol: float, frontier: Optional[str]) -> Shrunk:
    """A FLOPs target is the FLOPs ratio c = target / C0 that every rule solves directly."""
    c0 = cube_cost_analytic(base.name, Cube()).flops
    c = target.value / c0
    if c >= 1:
        raise TargetError(f"{target} is not below {base.name}'s own {format_value('flops', c0)} FLOPs: the rules "
                          f"shrink")
    result = shrink(base.name, c, rule, tol=tol, frontier=frontier)
    extras = dict(result.extras, target_value=target.value, target_metric=float(result.flops),
                  target_rel_error=result.rel_error)
    return replace(result, extras=extras, target=target)


AUTO_TOLERANCE = "auto"  # 1 % for a FLOPs ratio or a counted target, 5 % for latency (targets.DEFAULT_TOLERANCE)


def shrink_for(baseline: str, c: Optional[float] = None, target: object = None, rule: str = DEFAULT_RULE,
               tol: object = AUTO_TOLERANCE, frontier: Optional[str] = None, meter: Optional[Meter] = None) -> Shrunk:
    """``shrink`` to a FLOPs ratio ``c`` (the paper's budget) or ``shrink_to`` a ``target``: not both."""
    if c is not None and target is not None:
        raise ValueError("give either c (a FLOPs ratio) or target (e.g. 'latency=8ms', 'params=2.5M', "
                         "'activations=1.2M', 'flops=100M'), not both")
    auto = isinstance(tol, str) and tol == AUTO_TOLERANCE
    if target is None:  # c is checked there, with the message for a missing c too
        return shrink(baseline, c, rule, DEFAULT_TOLERANCE if auto else tol, frontier)
    return shrink_to(baseline, target, rule, None if auto else tol, frontier, meter)


def _remeasured(path: _Path, meter: Meter, cube: Cube, target: Target) -> Cube:
    """Of the measured networks nearest the target, the one nearest after measuring again: those a single
    measurement cannot tell apart from ``cube`` (distance to the target within both spreads) are measured again,
    interleaved, with ``REMEASURE_REPEATS`` more runs each (unless the cache already holds ``SETTLED_REPEATS``), and
    the nearest by the medians of all their runs is kept."""
    chosen = meter(path.base.name, cube)
    distance = abs(chosen.median_s - target.value)
    close = [cube]
    for key, other in path.cubes.items():
        if key == signature(path.base, cube):
            continue
        measured = meter(path.base.name, other)
        if abs(abs(measured.median_s - target.value) - distance) <= chosen.spread_s + measured.spread_s:
            close.append(other)
    if len(close) < 2:
        return cube
    close = sorted(close, key=lambda k: abs(path.by_network[signature(path.base, k)] - target.value))[:4]
    unsettled = [k for k in close if meter(path.base.name, k).repeats < SETTLED_REPEATS]
    if unsettled:  # a network measured this thoroughly before (the cache keeps its runs) is not measured again
        meter.remeasure([(path.base.name, k) for k in unsettled], REMEASURE_REPEATS)
    for k in close:
        path.by_network[signature(path.base, k)] = meter(path.base.name, k).median_s
    return min(close, key=lambda k: abs(path.by_network[signature(path.base, k)] - target.value))
