"""Plan and results tables: schemas, validation and atomic writes."""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Dict, Iterable, List, Sequence

import pandas as pd

from ..atomic import write_text
from . import StudyError

PLAN_COLUMNS = ("id", "kind", "baseline", "r", "d", "w", "img_size", "flops", "params", "c")
RESULT_COLUMNS = PLAN_COLUMNS + ("top1", "top5", "epochs", "wall_time_s", "status", "error")
KINDS = ("random", "target", "giant")


def write_csv_atomic(path: Path, rows: Iterable[Dict], columns: Sequence[str]) -> None:
    """Write all rows through a temporary file and a rename: readers see the old or the new table, never half."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, buffer.getvalue())


def _read(path: Path, what: str, columns: Sequence[str], numeric: Sequence[str]) -> pd.DataFrame:
    if not path.is_file():
        raise StudyError(f"{what} {path} does not exist")
    try:
        df = pd.read_csv(path, dtype={"id": str})
    except pd.errors.EmptyDataError:
        raise StudyError(f"{what} {path} is empty") from None
    except (pd.errors.ParserError, UnicodeDecodeError) as e:
        raise StudyError(f"{what} {path} is not a readable CSV: {e}") from None
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


def read_plan(path: Path) -> pd.DataFrame:
    df = _read(path, "plan", PLAN_COLUMNS, ("r", "d", "w", "img_size", "flops", "params", "c"))
    if len(df) == 0:
        raise StudyError(f"plan {path} has no rows")
    for col in ("r", "d", "w"):
        if not (df[col] > 0).all():
            raise StudyError(f"plan {path}: column {col!r} must be > 0")
    return df


def read_results(path: Path, allow_missing: bool = False) -> pd.DataFrame:
    if allow_missing and not path.exists():
        return pd.DataFrame(columns=list(RESULT_COLUMNS))
    return _read(path, "results", RESULT_COLUMNS, ("r", "d", "w", "flops", "c", "top1", "top5"))


def rows_of(df: pd.DataFrame) -> List[Dict]:
    return [{k: ("" if pd.isna(v) else v) for k, v in row.items()} for row in df.to_dict("records")]
