"""Sampling the Rubik's cube: random (r, d, w) within ranges, kept when the FLOPs ratio is in range (paper §3.2)."""
from __future__ import annotations

import math
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from ..baselines import MIN_IMG_SIZE, get_baseline
from ..cube import Cube
from ..flops import cube_cost
from . import StudyError

Range = Tuple[float, float]
PAPER_RANGE: Range = (0.35, 2.8)
PAPER_FLOPS_RANGE: Range = (0.03, 1.05)
DIGITS = 4  # multipliers are written with this many decimals, so the plan file rebuilds exactly
_MAX_DRAWS_PER_ROW = 2000
# r^2 d w^2 approximates the FLOPs ratio (paper eq. 5); draws this far outside the range skip the exact count
_APPROX_SLACK = 2.5


def _check_range(name: str, value: Range, low: float = 0.0) -> Range:
    lo, hi = float(value[0]), float(value[1])
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo <= low or hi < lo:
        raise StudyError(f"--{name} must be two numbers with {low} < min <= max, got {lo:g} {hi:g}")
    return lo, hi


def _row(baseline: str, kind: str, cube: Cube, c0: int) -> Dict:
    flops, params = cube_cost(baseline, cube)
    return {"kind": kind, "baseline": baseline, "r": cube.r, "d": cube.d, "w": cube.w,
            "img_size": get_baseline(baseline).img_size(cube), "flops": flops, "params": params,
            "c": round(flops / c0, 6)}


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
    solved so the FLOPs are within ``target_tol`` of ``target_c * C0`` (paper §3.1). Same seed, same plan."""
    from ..solve import UnreachableTargetError, _solve_rule, _width_rule, shrink

    if n < 1:
        raise StudyError(f"--n must be >= 1, got {n}")
    base = get_baseline(baseline)
    r_range, d_range, w_range = (_check_range(k, v) for k, v in (("r-range", r_range), ("d-range", d_range),
                                                                  ("w-range", w_range)))
    flops_range = _check_range("flops-range", flops_range)
    if r_range[1] * base.base_img_size < MIN_IMG_SIZE:
        raise StudyError(f"--r-range max {r_range[1]:g} gives inputs below {MIN_IMG_SIZE}px")
    r_range = (max(r_range[0], (MIN_IMG_SIZE + 0.5) / base.base_img_size), r_range[1])
    c0 = cube_cost(base.name, Cube())[0]
    rng = np.random.default_rng(seed)
    rows: List[Dict] = []
    draws = 0
    while len(rows) < n:
        draws += 1
        if draws > _MAX_DRAWS_PER_ROW * n:
            raise StudyError(f"only {len(rows)} of {n} draws landed in the FLOPs range {flops_range[0]:g}-"
                             f"{flops_range[1]:g} C0; widen --flops-range or narrow the r/d/w ranges")
        r, d, w = (round(float(rng.uniform(*rg)), DIGITS) for rg in (r_range, d_range, w_range))
        if target_c is None:
            approx = r * r * d * w * w
            if not flops_range[0] / _APPROX_SLACK <= approx <= flops_range[1] * _APPROX_SLACK:
                continue
            row = _row(base.name, "random", Cube(r, d, w), c0)
            if flops_range[0] <= row["c"] <= flops_range[1]:
                rows.append(row)
            continue
        target = target_c * c0
        width = _width_rule(r, d, target_c)
        try:
            w = round(width.make_cube(_solve_rule(base, width, "tiny", target_c, c0, target, target_tol)).w, DIGITS)
        except UnreachableTargetError:
            continue
        row = _row(base.name, "target", Cube(r, d, w), c0)
        if abs(row["flops"] / target - 1) <= target_tol:
            rows.append(row)
    for c in giant_c:
        try:
            result = shrink(base.name, c, "giant", tol=0.05)
        except UnreachableTargetError as e:
            raise StudyError(f"--giant-c {c:g}: {e}") from None
        cube = result.cube
        rows.append(_row(base.name, "giant", Cube(round(cube.r, DIGITS), round(cube.d, DIGITS),
                                                  round(cube.w, DIGITS)), c0))
    plan = pd.DataFrame(rows)
    plan.insert(0, "id", [f"{row['kind'][0]}{i:03d}" for i, row in enumerate(rows)])
    return plan
