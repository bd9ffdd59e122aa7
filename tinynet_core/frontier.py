"""Frontier tables: the Pareto-frontier models the tiny formula is fitted to.

CSV schema (one row per model; extra columns are kept and ignored):

| column   | required | meaning |
|----------|----------|---------|
| c        | yes      | FLOPs ratio to the baseline, flops / C0 (0 < c <= 1.5) |
| r, d, w  | yes      | resolution, depth and width multipliers (> 0) |
| flops    | yes      | counted FLOPs (multiply-adds, paper convention) |
| top1     | no       | accuracy that put the model on the frontier |
| source   | no       | where the row comes from |
| baseline | no       | the network it was twisted from |

Limits and merges, all checked when a file is read:

* the file must be a regular file of at most ``MAX_FRONTIER_BYTES`` (1 MB): a pipe or a device (``/dev/zero``)
  is refused at once instead of being read for ever, and 1 MB holds far more rows than the fit accepts;
* exact duplicates, rows with the same ``c, r, d, w, flops`` (the same model listed twice, even with a different
  ``top1`` or ``source``), are merged into the first one with a ``FrontierWarning`` that says how many: the fit
  then sees each model once, so a frontier pasted twice gives the same network as the original;
* at most ``MAX_POINTS`` (200) rows after merging: an exact GP's fit grows with the cube of the rows (200 rows fit
  in about a second on one core, 800 take half a minute);
* rows with the same ``c`` but a different ``r`` or ``d`` (two different networks at exactly the same FLOPs,
  which a study that keeps several fronts can produce) are kept: the GP treats them as two noisy measurements at
  that ``c`` and its mean passes between them.
"""
from __future__ import annotations

import math
import os
import warnings
from pathlib import Path
from typing import Union

import pandas as pd

from .guard import MB, GuardError, check_input_file

REQUIRED_COLUMNS = ("c", "r", "d", "w", "flops")
NUMERIC_COLUMNS = REQUIRED_COLUMNS + ("top1",)
MIN_POINTS = 3
MAX_POINTS = 200  # rows the GP fit accepts (after merging duplicates): its cost grows with the cube of the rows
MAX_FRONTIER_BYTES = 1 * MB  # a frontier file is read whole; 200 rows with long source notes are well under 100 kB
DEFAULT_FRONTIER = Path(__file__).parent / "frontiers" / "efficientnet_b0.csv"


class FrontierError(ValueError):
    """A frontier table that cannot be used, with the reason."""


class FrontierWarning(UserWarning):
    """A frontier table that was used after a repair (duplicate rows merged)."""


def check_frontier_path(path: object) -> Path:
    """``path`` as a Path when it is one (str or os.PathLike); FrontierError naming what was given otherwise."""
    if isinstance(path, bool) or not isinstance(path, (str, os.PathLike)):
        raise FrontierError(f"frontier must be the path of a frontier CSV file, got {type(path).__name__} "
                            f"{_short_repr(path)}")
    return Path(path)


def _short_repr(value: object, limit: int = 60) -> str:
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[:limit - 3] + "..."


def validate_frontier(df: pd.DataFrame, name: str = "frontier") -> pd.DataFrame:
    """Check a frontier table and return it with numeric columns as floats, sorted by c."""
    if len(df) == 0:
        raise FrontierError(f"{name} has no rows")
    missing = [col for col in REQUIRED_COLUMNS if col not in df.columns]
    if missing:
        raise FrontierError(f"{name} lacks column(s) {', '.join(missing)} (needs {', '.join(REQUIRED_COLUMNS)})")
    df = df.copy()
    for col in NUMERIC_COLUMNS:
        if col not in df.columns:
            continue
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & ~(df[col].isna() & (col == "top1"))
        if bad.any():
            row = int(bad.idxmax())
            raise FrontierError(f"{name}: column {col!r}, row {row + 1} is not a number: {df[col].iloc[row]!r}")
        df[col] = values.astype(float)
    for col in ("c", "r", "d", "w", "flops"):
        if not (df[col] > 0).all() or not df[col].map(math.isfinite).all():
            raise FrontierError(f"{name}: column {col!r} must be finite and > 0")
    duplicated = df.duplicated(subset=list(REQUIRED_COLUMNS), keep="first")
    if duplicated.any():
        n = int(duplicated.sum())
        warnings.warn(f"{name}: {n} duplicate row(s) merged (the same c, r, d, w and flops as an earlier row); "
                      f"{len(df) - n} distinct model(s) fitted", FrontierWarning, stacklevel=3)
        df = df[~duplicated]
    if len(df) > MAX_POINTS:
        raise FrontierError(f"{name} has {len(df)} distinct rows; the formula accepts at most {MAX_POINTS} (the "
                            f"fit's cost grows with the cube of the rows): keep the frontier models only")
    if len(df) < MIN_POINTS:
        raise FrontierError(f"{name} has {len(df)} row(s); the formula needs at least {MIN_POINTS}")
    if df["c"].nunique() < 2:
        raise FrontierError(f"{name}: all rows have the same c; the formula needs a spread of FLOPs ratios")
    return df.sort_values("c", kind="stable").reset_index(drop=True)


def load_frontier(path: Union[str, Path, None] = None) -> pd.DataFrame:
    """Read and validate a frontier CSV (default: the shipped EfficientNet-B0 frontier)."""
    path = check_frontier_path(path) if path is not None else DEFAULT_FRONTIER
    if path.is_dir():
        raise FrontierError(f"frontier file {path} is a directory")
    try:
        check_input_file(path, "frontier file", MAX_FRONTIER_BYTES)
    except GuardError as e:
        raise FrontierError(str(e)) from None
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise FrontierError(f"frontier file {path} is empty") from None
    except (ValueError, UnicodeDecodeError, OSError) as e:  # pandas' ParserError is a ValueError
        reason = " ".join(str(e).split()) or type(e).__name__
        raise FrontierError(f"frontier file {path} is not a readable CSV: {reason}") from None
    return validate_frontier(df, name=f"frontier file {path}")


def released_tinynet_frontier() -> pd.DataFrame:
    """The default frontier: the released TinyNet-A..E at their measured FLOPs ratios.

    The paper fitted its GPs to ImageNet-100 frontier models that were never published; the released
    TinyNets are the formula's outputs at c = .9/.5/.25/.13/.06, so fitting to them recovers the formula
    the authors used at those points.
    """
    from .cost import cube_cost_analytic
    from .cube import Cube
    from .named import TINYNET_CUBES

    c0 = cube_cost_analytic("efficientnet_b0", Cube()).flops
    rows = []
    for name, cube in TINYNET_CUBES.items():
        flops = cube_cost_analytic("efficientnet_b0", cube).flops
        rows.append(dict(c=round(flops / c0, 6), r=cube.r, d=cube.d, w=cube.w, flops=flops, top1=None,
                         source=f"released {name} (huawei-noah/CV-Backbones)", baseline="efficientnet_b0"))
    return validate_frontier(pd.DataFrame(rows))
