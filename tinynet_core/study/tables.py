"""Plan and results tables: schemas, validation and atomic writes."""
from __future__ import annotations

import csv
import io
import math
import re
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import numpy as np
import pandas as pd

from ..atomic import write_text
from ..baselines import BASELINES
from ..cube import MAX_MULTIPLIER, MIN_MULTIPLIER
from . import StudyError

PLAN_COLUMNS = ("id", "kind", "baseline", "r", "d", "w", "img_size", "flops", "params", "c")
RESULT_COLUMNS = PLAN_COLUMNS + ("top1", "top5", "epochs", "wall_time_s", "status", "error")
KINDS = ("random", "target", "giant")
STATUSES = ("ok", "failed")
# the baselines a trial can train: those registered as a timm model that takes r=, d=, w=
STUDY_BASELINES = tuple(name for name, b in BASELINES.items() if b.generic_model)
_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")  # an id names its trial folder: no path separators, no '..'


def write_csv_atomic(path: Path, rows: Iterable[Dict], columns: Sequence[str]) -> None:
    """Write all rows through a temporary file and a rename: readers see the old or the new table, never half."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _read(path: Path, what: str, columns: Sequence[str], numeric: Sequence[str]) -> pd.DataFrame:
    from tinynet_core.guard import MAX_TABLE_BYTES, check_input_file

    check_input_file(path, what, MAX_TABLE_BYTES)  # a regular file of bounded size: a pipe never blocks the read
    try:
        df = pd.read_csv(path, dtype={"id": str})
    except pd.errors.EmptyDataError:
        raise StudyError(f"{what} {path} is empty") from None
    except ValueError as e:  # pandas' ParserError, a UnicodeDecodeError of a binary file, ...
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise StudyError(f"{what} {path} is not a readable CSV: {reason}") from None
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise StudyError(f"{what} {path} lacks column(s) {', '.join(missing)}")
    for col in numeric:
        values = pd.to_numeric(df[col], errors="coerce")
        bad = values.isna() & df[col].notna()
        if bad.any():
            row = int(bad.idxmax())
            raise StudyError(f"{what} {path}: column {col!r}, row {row + 1} is not a number: {df[col].iloc[row]!r}")
        df[col] = values
    if df["id"].duplicated().any():
        raise StudyError(f"{what} {path}: duplicate id {df['id'][df['id'].duplicated()].iloc[0]!r}")
    return df


def _first_bad(df: pd.DataFrame, bad: pd.Series, where: str, message: str) -> None:
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        row = df.iloc[i]
        raise StudyError(f"{where}: row {i + 1} (id {row['id']!r}) {message.format(**row.to_dict())}")


def _within(values: pd.Series, lo: float, hi: float = math.inf, lo_open: bool = False) -> pd.Series:
    """True where the value is a finite number between lo and hi (NaN and infinities are not)."""
    v = pd.to_numeric(values, errors="coerce").astype(float)
    return (v.gt(lo) if lo_open else v.ge(lo)) & v.le(hi) & np.isfinite(v)


def _check_rows(df: pd.DataFrame, where: str, ok: pd.Series) -> None:
    """Identity columns of every row, and the numbers of the rows in ``ok`` (all rows of a plan)."""
    ids = df["id"].map(lambda v: isinstance(v, str) and bool(_ID.fullmatch(v)))
    _first_bad(df, ~ids, where, "has an unusable id: ids name the trial folders, so letters, digits, '_', "
                                "'.' and '-' only, not starting with '.' or '-'")
    _first_bad(df, ~df["kind"].isin(KINDS), where, f"has kind {{kind!r}}, not one of {', '.join(KINDS)}")
    _first_bad(df, ~df["baseline"].isin(STUDY_BASELINES), where,
               f"has baseline {{baseline!r}}, not one of {', '.join(STUDY_BASELINES)}")
    for col in ("r", "d", "w"):
        _first_bad(df, ok & ~_within(df[col], MIN_MULTIPLIER, MAX_MULTIPLIER), where,
                   f"has {col} = {{{col}}}; multipliers are finite numbers in [{MIN_MULTIPLIER:g}, {MAX_MULTIPLIER:g}]")
    for col in ("flops", "c"):
        _first_bad(df, ok & ~_within(df[col], 0.0, lo_open=True), where,
                   f"has {col} = {{{col}}}; it must be a finite number > 0")


def read_plan(path: Path) -> pd.DataFrame:
    df = _read(path, "plan", PLAN_COLUMNS, ("r", "d", "w", "img_size", "flops", "params", "c"))
    if len(df) == 0:
        raise StudyError(f"plan {path} has no rows")
    _check_rows(df, f"plan {path}", pd.Series(True, index=df.index))
    return df


def check_results(df: pd.DataFrame, where: str) -> pd.DataFrame:
    """Every row has a known status, id, kind and baseline; every ``ok`` row finite r, d, w, c, FLOPs and a
    top-1 in [0, 100] (an analysis must not drop or rank a row it cannot read)."""
    _first_bad(df, ~df["status"].isin(STATUSES), where, f"has status {{status!r}}, not one of {', '.join(STATUSES)}")
    ok = df["status"] == "ok"
    _check_rows(df, where, ok)
    _first_bad(df, ok & ~_within(df["top1"], 0.0, 100.0), where,
               "has status ok but top1 = {top1}; it must be a number in [0, 100]")
    return df


def read_results(path: Path, allow_missing: bool = False) -> pd.DataFrame:
    if allow_missing and not path.exists():
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    df = _read(path, "results", RESULT_COLUMNS, ("r", "d", "w", "flops", "c", "top1", "top5", "epochs"))
    return check_results(df, f"results {path}")


def rows_of(df: pd.DataFrame) -> List[Dict]:
    return [{k: ("" if pd.isna(v) else v) for k, v in row.items()} for row in df.to_dict("records")]
