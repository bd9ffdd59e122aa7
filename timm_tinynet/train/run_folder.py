"""A run's folder, ``<output>/<experiment>/``: its name, ``args.yaml``, ``summary.csv`` and the epoch's checkpoints.

Every file is written whole, to a temporary file renamed over the old one, so a kill never leaves half of one.
Two of timm's helpers are not used for that reason:

* ``timm.utils.update_summary`` appends to the CSV in place (a kill mid-write leaves a torn row) and names columns
  only ``train_*`` / ``eval_*``; the EMA's columns and the epoch time below are read by resume and tinynet-study.
* ``timm.utils.CheckpointSaver`` saves timm's fields only (no RNG, scheduler, class ids or checksum: no exact
  resume) and re-links ``model_best`` by unlinking it first (a kill in between loses it).
"""
from __future__ import annotations

import csv
import io
import time
from pathlib import Path
from typing import Any, Dict, List, Optional

from tinynet_core.atomic import write_text
from tinynet_core.guard import GuardError, check_output_dir
from .checkpoint import staged_save
from .errors import TrainingError

SUMMARY_FIELDS = ("epoch", "train_loss", "eval_loss", "eval_top1", "eval_top5", "ema_eval_loss", "ema_eval_top1",
                  "ema_eval_top5", "lr", "train_img_per_s", "epoch_time_s")
LAST, BEST = "last.pth.tar", "model_best.pth.tar"


# ---- where ---------------------------------------------------------------------------------------------------

def check_output(folder: Path, what: str, data_dir: Path) -> None:
    """``folder`` can be written (checked without leaving anything) and is not inside the data: a run folder
    under --data-dir would become a class folder of the next run."""
    try:
        check_output_dir(folder, what, inputs=[("--data-dir", data_dir)])
    except GuardError as e:
        raise TrainingError(str(e)) from None


def run_dir(args, resuming: bool) -> Path:
    """``<output>/<experiment>``; a resumed run without ``--experiment`` stays in its checkpoint's folder (and
    records that folder as its output and experiment). A new run without a name gets time-model-size."""
    if resuming and not args.experiment:
        folder = Path(args.resume).resolve().parent
        args.output, args.experiment = str(folder.parent), folder.name  # recorded in args.yaml as they are
        return folder
    name = args.experiment or f"{time.strftime('%Y%m%d-%H%M%S')}-{args.model}-{args.input_size[-1]}"
    return Path(args.output) / name


# ---- args.yaml -----------------------------------------------------------------------------------------------

def plain_args(args) -> Dict[str, Any]:
    """The run's options as YAML/pickle-safe primitives."""
    out = {}
    for key, value in sorted(vars(args).items()):
        if key in ("rank", "world_size", "local_rank", "explicit"):
            continue
        if isinstance(value, Path):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out


def write_args(folder: Path, args) -> None:
    import yaml

    write_text(folder / "args.yaml", yaml.safe_dump(plain_args(args), sort_keys=True))


# ---- summary.csv ---------------------------------------------------------------------------------------------

def summary_row(epoch: int, train: Dict[str, float], evaluation: Dict[str, float], ema: Dict[str, float],
                lr: float) -> Dict[str, Any]:
    """One epoch's row: training loss and speed, the raw weights' and the EMA's evaluation ('' without an EMA)."""
    return {"epoch": epoch, "train_loss": round(train["loss"], 6),
            "eval_loss": round(evaluation["loss"], 6), "eval_top1": round(evaluation["top1"], 4),
            "eval_top5": round(evaluation["top5"], 4),
            "ema_eval_loss": round(ema["loss"], 6) if ema else "",
            "ema_eval_top1": round(ema["top1"], 4) if ema else "",
            "ema_eval_top5": round(ema["top5"], 4) if ema else "",
            "lr": lr, "train_img_per_s": round(train["img_per_s"], 1), "epoch_time_s": round(train["time_s"], 2)}


def summary_text(rows: List[Dict[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SUMMARY_FIELDS, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_summary(folder: Path, rows: List[Dict[str, Any]]) -> None:
    write_text(folder / "summary.csv", summary_text(rows))


def read_summary(path: Path) -> List[Dict[str, Any]]:
    if not path.is_file():  # missing (or not a regular file: a pipe would block)
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def row_epoch(row: Dict[str, Any]) -> Optional[int]:
    try:
        return int(row.get("epoch"))
    except (TypeError, ValueError):
        return None


def row_top1(row: Dict[str, Any]) -> float:
    """The epoch's metric: the better top-1 of the raw weights and the EMA."""
    values = []
    for key in ("eval_top1", "ema_eval_top1"):
        try:
            values.append(float(row.get(key)))
        except (TypeError, ValueError):
            pass
    return max(values, default=-1.0)


# ---- checkpoints ---------------------------------------------------------------------------------------------

def record_epoch(folder: Path, rows: List[Dict[str, Any]], state: Dict[str, Any], improved: bool) -> None:
    """The epoch's row in summary.csv, and its checkpoint as ``last.pth.tar`` (and first ``model_best.pth.tar``
    when it improved). The checkpoints are written before the summary and renamed right after it: a kill leaves
    summary.csv at most one epoch ahead of last.pth.tar (an epoch the resume redoes), never behind it, and that
    window is a rename, not a checkpoint's write."""
    with staged_save(state, *([folder / BEST] if improved else []), folder / LAST):
        write_summary(folder, rows)
