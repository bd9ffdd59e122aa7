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
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Union

import pandas as pd

REQUIRED_COLUMNS = ("c", "r", "d", "w", "flops")
NUMERIC_COLUMNS = REQUIRED_COLUMNS + ("top1",)
MIN_POINTS = 3
DEFAULT_FRONTIER = Path(__file__).parent / "frontiers" / "efficientnet_b0.csv"


class FrontierError(ValueError):
    """A frontier table that cannot be used, with the reason."""


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
    if len(df) < MIN_POINTS:
        raise FrontierError(f"{name} has {len(df)} row(s); the formula needs at least {MIN_POINTS}")
    if df["c"].nunique() < 2:
        raise FrontierError(f"{name}: all rows have the same c; the formula needs a spread of FLOPs ratios")
    return df.sort_values("c", kind="stable").reset_index(drop=True)


def load_frontier(path: Union[str, Path, None] = None) -> pd.DataFrame:
    """Read and validate a frontier CSV (default: the shipped EfficientNet-B0 frontier)."""
    path = Path(path) if path is not None else DEFAULT_FRONTIER
    if not path.exists():
        raise FrontierError(f"frontier file {path} does not exist")
    if path.is_dir():
        raise FrontierError(f"frontier file {path} is a directory")
    try:
        df = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise FrontierError(f"frontier file {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise FrontierError(f"frontier file {path} is not a readable CSV: {e}") from None
    return validate_frontier(df, name=f"frontier file {path}")


def released_tinynet_frontier() -> pd.DataFrame:
    """The default frontier: the released TinyNet-A..E at their measured FLOPs ratios.

    The paper fitted its GPs to ImageNet-100 frontier models that were never published; the released
    TinyNets are the formula's outputs at c = .9/.5/.25/.13/.06, so fitting to them recovers the formula
    the authors used at those points.
    """
    from .cube import Cube
    from .flops import cube_cost
    from .models import TINYNET_CUBES

    c0 = cube_cost("efficientnet_b0", Cube())[0]
    rows = []
    for name, cube in TINYNET_CUBES.items():
        flops = cube_cost("efficientnet_b0", cube)[0]
        rows.append(dict(c=round(flops / c0, 6), r=cube.r, d=cube.d, w=cube.w, flops=flops, top1=None,
                         source=f"released {name} (huawei-noah/CV-Backbones)", baseline="efficientnet_b0"))
    return validate_frontier(pd.DataFrame(rows))
