"""Sampling the Rubik's cube: random (r, d, w) within ranges, kept when the FLOPs ratio is in range (paper §3.2)."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..baselines import MIN_IMG_SIZE, get_baseline
from ..cube import MAX_MULTIPLIER, MIN_MULTIPLIER, Cube
from ..cost import cube_cost_analytic
from . import StudyError

Range = Tuple[float, float]
Point = Tuple[float, float, float]
PAPER_RANGE: Range = (0.35, 2.8)
PAPER_FLOPS_RANGE: Range = (0.03, 1.05)
MAX_FLOPS_RATIO = 1.5  # the study samples shrunk networks; the frontier CSV schema allows c <= 1.5
DIGITS = 4  # multipliers are written with this many decimals, so the plan file rebuilds exactly
_JUDGE_AFTER = 100  # draws that needed a FLOPs count before the sampler judges whether the request is feasible
_MAX_COUNTED = 5000  # give up when n rows would need more counted draws than this at the rate seen so far
_MAX_DRAWS = 200_000  # draws in all, whatever n (draws decided without counting are cheap, not free)


class _Known:
    """Cubes whose FLOPs are known to be above or below what is wanted.

    FLOPs never decrease when r, d or w grows (pixels, blocks and channel groups are all rounded monotonically),
    so a cube that dominates one known to be too big is too big, and one dominated by a cube known to be too
    small is too small: both are decided exactly without counting. (An r^2 d w^2 estimate is off by up to
    ~4x on small networks, so a filter built on it discards valid draws.)"""

    def __init__(self) -> None:
        self._big: List[Point] = []
        self._small: List[Point] = []

    def too_big(self, point: Point) -> bool:
        return bool(self._big) and bool((np.asarray(point) >= np.asarray(self._big)).all(axis=1).any())

    def too_small(self, point: Point) -> bool:
        return bool(self._small) and bool((np.asarray(point) <= np.asarray(self._small)).all(axis=1).any())

    def add(self, point: Point, big: bool) -> None:
        (self._big if big else self._small).append(point)


def _check_range(name: str, value: Range, low: float = 0.0, high: float = math.inf) -> Range:
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= low or hi < lo or hi > high:
        bounds = f"{low:g} < MIN <= MAX" + ("" if high == math.inf else f" <= {high:g}")
        raise StudyError(f"--{name} must be two numbers with {bounds}, got {lo:g} {hi:g}")
    return lo, hi


def _check_ratio(option: str, c: float, high: float = MAX_FLOPS_RATIO, high_open: bool = False) -> float:
    c = float(c)
    if not (math.isfinite(c) and 0 < c and (c < high if high_open else c <= high)):
        raise StudyError(f"{option} must be a FLOPs ratio in (0, {high:g}{')' if high_open else ']'}, got {c:g}")
    return c


def _row(baseline: str, kind: str, cube: Cube, c0: int) -> Dict:
    cost = cube_cost_analytic(baseline, cube)
    flops, params = cost.flops, cost.params
    return {"kind": kind, "baseline": baseline, "r": cube.r, "d": cube.d, "w": cube.w,
            "img_size": get_baseline(baseline).img_size(cube), "flops": flops, "params": params,
            "c": round(flops / c0, 6)}


def _hopeless(found: int, counted: int, n: int) -> bool:
    """After enough counted draws: nothing found, or n rows would take more than _MAX_COUNTED at this rate."""
    return counted >= _JUDGE_AFTER and (found == 0 or counted * n / found > _MAX_COUNTED)


def _giant_rows(baseline: str, giant_c: Sequence[float], c0: int) -> List[Dict]:
    from tinynet_core.solve import UnreachableTargetError, shrink

    rows = []
    for c in giant_c:
        try:
            cube = shrink(baseline, c, "giant", tol=0.05).cube
        except UnreachableTargetError as e:
            raise StudyError(f"--giant-c {c:g}: {e}") from None
        rows.append(_row(baseline, "giant", cube.rounded(DIGITS), c0))
    return rows


def _target_row(base, r: float, d: float, w_range: Range, target_c: float, tol: float, c0: int,
                known: _Known) -> Optional[Dict]:
    """The model at (r, d) whose w, solved within ``w_range``, puts it within ``tol`` of ``target_c``; None when
    there is none (what was learnt goes into ``known``)."""
    from tinynet_core.solve import UnreachableTargetError, nearest_step, width_scalar

    target = target_c * c0
    w_lo, w_hi = w_range
    if cube_cost_analytic(base.name, Cube(r, d, w_lo)).flops > target * (1 + tol):
        known.add((r, d, w_lo), big=True)
        return None
    if cube_cost_analytic(base.name, Cube(r, d, w_hi)).flops < target * (1 - tol):
        known.add((r, d, w_hi), big=False)
        return None
    try:
        w = round(nearest_step(base, width_scalar(r, d, w_lo, w_hi), target, tol, "tiny", target_c, c0), DIGITS)
    except UnreachableTargetError:  # the target falls inside a step of the discrete architecture
        return None
    if not w_lo <= w <= w_hi:  # simplifying w's decimals may step just outside the range
        return None
    row = _row(base.name, "target", Cube(r, d, w), c0)
    return row if abs(row["flops"] / target - 1) <= tol else None


def sample_plan(
        baseline: str,
        n: int,
        seed: int = 0,
        r_range: Range = PAPER_RANGE,
        d_range: Range = PAPER_RANGE,
        w_range: Range = PAPER_RANGE,
        flops_range: Range = PAPER_FLOPS_RANGE,
        target_c: Optional[float] = None,
        target_tol: float = 0.03,
        giant_c: Sequence[float] = (),
) -> pd.DataFrame:
    """A plan of exactly ``n`` sampled models (draws outside ``flops_range`` are redrawn), plus one
    inverse-giant-formula model per ``giant_c`` for reference. With ``target_c``, r and d are drawn and w is
    solved within ``w_range`` so the FLOPs are within ``target_tol`` of ``target_c * C0`` (paper §3.1).
    Same seed, same plan. Raises StudyError up front when the ranges cannot reach the FLOPs wanted, and after
    a bounded search when too few draws land there."""
    if n < 1:
        raise StudyError(f"--n must be >= 1, got {n}")
    if seed < 0:
        raise StudyError(f"--seed must be >= 0, got {seed}")
    base = get_baseline(baseline)
    r_range, d_range, w_range = (_check_range(k, v, MIN_MULTIPLIER, MAX_MULTIPLIER)
                                 for k, v in (("r-range", r_range), ("d-range", d_range), ("w-range", w_range)))
    flops_range = _check_range("flops-range", flops_range, high=MAX_FLOPS_RATIO)
    if target_c is not None:
        target_c = _check_ratio("--target-c", target_c)
    giant_c = [_check_ratio("--giant-c", c, high=1.0, high_open=True) for c in giant_c]  # shrinking only
    r_range = (max(r_range[0], (MIN_IMG_SIZE + 0.5) / base.base_img_size), r_range[1])
    if int(r_range[1] * base.base_img_size) < MIN_IMG_SIZE or r_range[0] > r_range[1]:
        raise StudyError(f"--r-range max {r_range[1]:g} gives inputs below {MIN_IMG_SIZE}px")
    ranges = [(round(lo, DIGITS), round(hi, DIGITS)) for lo, hi in (r_range, d_range, w_range)]
    c0 = cube_cost_analytic(base.name, Cube()).flops
    giants = _giant_rows(base.name, giant_c, c0)  # before sampling: a bad --giant-c fails at once
    reach = tuple(cube_cost_analytic(base.name, Cube(*corner)).flops / c0 for corner in zip(*ranges))
    if target_c is None:
        want, lo, hi = f"in --flops-range {flops_range[0]:.10g} {flops_range[1]:.10g}", *flops_range
    else:
        want = f"within {target_tol:.0%} of --target-c {target_c:g} with w in --w-range {w_range[0]:g} {w_range[1]:g}"
        lo, hi = target_c * (1 - target_tol), target_c * (1 + target_tol)
    if reach[1] < lo or reach[0] > hi:
        raise StudyError(f"the r/d/w ranges give FLOPs ratios {reach[0]:.3g}-{reach[1]:.3g} C0, none {want}")

    rng = np.random.default_rng(seed)
    known = _Known()
    rows: List[Dict] = []
    draws = counted = 0
    while len(rows) < n:
        if _hopeless(len(rows), counted, n) or draws >= _MAX_DRAWS:
            raise StudyError(f"gave up after {draws} draws ({counted} counted): {len(rows)} of {n} models {want} "
                             f"(the r/d/w ranges reach {reach[0]:.3g}-{reach[1]:.3g} C0); widen the range wanted "
                             f"or narrow the r/d/w ranges around it")
        draws += 1
        if target_c is None:
            r, d, w = (round(float(rng.uniform(*rg)), DIGITS) for rg in ranges)
            if known.too_big((r, d, w)) or known.too_small((r, d, w)):
                continue
            counted += 1
            row = _row(base.name, "random", Cube(r, d, w), c0)
            if lo <= row["c"] <= hi:
                rows.append(row)
            else:
                known.add((r, d, w), big=row["c"] > hi)
            continue
        r, d = (round(float(rng.uniform(*rg)), DIGITS) for rg in ranges[:2])
        w_lo, w_hi = ranges[2]
        if known.too_big((r, d, w_lo)) or known.too_small((r, d, w_hi)):
            continue
        counted += 1
        row = _target_row(base, r, d, ranges[2], target_c, target_tol, c0, known)
        if row is not None:
            rows.append(row)
    plan = pd.DataFrame(rows + giants)
    plan.insert(0, "id", [f"{row['kind'][0]}{i:03d}" for i, row in enumerate(rows + giants)])
    return plan
