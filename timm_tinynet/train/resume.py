"""The resume policy: what a resumed run keeps of its recorded options, where it writes, what it refuses (training
over another run, overwriting newer history), and the state it restores to go on exactly where it stopped."""
from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path
from typing import Any, Dict, List, Optional

import torch

from .checkpoint import CheckpointError, load_checkpoint, load_weights, set_rng_state
from .errors import TrainingError
from .run_folder import LAST, read_summary, row_epoch, row_top1

_logger = logging.getLogger("tinynet-train")

# Options a resumed run must keep: changing them would make the restored state meaningless or fail later.
RESUME_FIXED = ("model", "model_kwargs", "num_classes", "opt", "sched", "recipe")
# Options never taken from the checkpoint: where and how this process runs, not what is trained.
RESUME_LOCAL = ("resume", "initial_checkpoint", "init_from", "init_selection", "pretrained", "data_dir", "train_split", "val_split", "output",
                "experiment", "device", "workers", "log_interval", "explicit")


def explicit_options(args) -> set:
    """Options the user set; without the CLI's record, every option that is not None counts as set."""
    recorded = getattr(args, "explicit", None)
    if recorded is not None:
        return set(recorded)
    return {key for key, value in vars(args).items() if value is not None}


def load_training_checkpoint(path: str) -> Dict[str, Any]:
    """A checkpoint a run can resume from (verified, with weights, optimizer state and a finished epoch)."""
    checkpoint = load_checkpoint(path)
    missing = [k for k in ("state_dict", "optimizer", "epoch") if k not in checkpoint]
    if missing:
        raise CheckpointError(f"{path} is not a training checkpoint (it lacks {', '.join(missing)}); use "
                              f"--initial-checkpoint to start a new run from its weights")
    if not isinstance(checkpoint["epoch"], int) or checkpoint["epoch"] < 0:
        raise CheckpointError(f"{path} records epoch {checkpoint['epoch']!r}, not a finished epoch's number")
    return checkpoint


def inherit_resumed_options(args, checkpoint: Dict[str, Any], source: str) -> List[str]:
    """A resumed run continues with its recorded options; flags given now override all but RESUME_FIXED. Without
    ``--output`` its new folder goes beside the old one. Returns the options taken from the checkpoint."""
    saved = checkpoint.get("args") or {}
    explicit = explicit_options(args)
    for key in RESUME_FIXED:
        if key in explicit and key in saved and saved[key] is not None and saved[key] != getattr(args, key, None):
            raise TrainingError(
                f"{source} was trained with --{key.replace('_', '-')} {saved[key]}, not {getattr(args, key)}; a "
                f"resumed run keeps it (start a new run with --initial-checkpoint {source} to change it)")
    inherited = [key for key in saved if key not in explicit and key not in RESUME_LOCAL and hasattr(args, key)]
    for key in inherited:
        setattr(args, key, saved[key])
    if not args.model:
        raise TrainingError(f"{source} does not name its model; give --model")
    if "output" not in explicit:
        args.output = str(Path(source).resolve().parent.parent)
    return inherited


def resuming_in(folder: Path, resume: Optional[str]) -> bool:
    """Whether the run goes on in the folder of the checkpoint it resumes (not a branch into a new one)."""
    return resume is not None and folder.resolve() == Path(resume).resolve().parent


def check_run_folder(folder: Path, resuming_here: bool) -> None:
    """Never train over another run's results: a folder with a checkpoint or summary is resumed, not reused."""
    if folder.exists() and not folder.is_dir():
        raise TrainingError(f"run folder {folder} is a file")
    if resuming_here:
        return
    taken = [name for name in (LAST, "summary.csv") if (folder / name).exists()]
    if taken:
        raise TrainingError(f"{folder} already holds a run ({', '.join(taken)}); resume it with --resume "
                            f"{folder / LAST} or choose another --experiment")


def checkpoint_epoch(path: Path) -> Optional[int]:
    """The epoch recorded in the checkpoint at ``path`` (None when there is none or it cannot be read), read
    without loading the tensors."""
    try:
        if not path.is_file():  # also no pipe: it would block
            return None
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        return int(checkpoint["epoch"])
    except Exception:  # noqa: BLE001 - missing, foreign or damaged: it records no newer epoch
        return None


def check_history(folder: Path, source: str, epoch: int) -> None:
    """Resuming ``source`` (saved after ``epoch`` + 1 epochs) in ``folder`` must not overwrite newer history:
    the folder's last.pth.tar must not be newer, and summary.csv may run at most one epoch past it (the epoch a
    kill interrupted between writing its row and its checkpoint, which the resume redoes)."""
    last = folder / LAST
    newest = []
    if not (last.exists() and os.path.samefile(last, source)):
        last_epoch = checkpoint_epoch(last)
        if last_epoch is not None and last_epoch > epoch:
            newest.append((last_epoch, LAST))
    rows = [e for e in map(row_epoch, read_summary(folder / "summary.csv")) if e is not None]
    if rows and max(rows) > epoch + 1:
        newest.append((max(rows), "summary.csv"))
    if newest:
        done, where = max(newest)
        raise TrainingError(
            f"{source} was saved after {epoch + 1} epoch(s), but {folder} already records {done + 1} ({where}); "
            f"resuming there would overwrite the newer epochs. Continue the run with --resume {last}, or branch "
            f"off from this checkpoint into a new run folder with --resume {source} --experiment NEW_NAME")


def carried_rows(source: str, resuming_here: bool, start_epoch: int) -> List[Dict[str, Any]]:
    """The summary goes on from the resumed checkpoint's own run folder: its rows before ``start_epoch`` (a branch
    into a new folder takes them along when the checkpoint sits in a run folder)."""
    source_dir = Path(source).parent
    if not (resuming_here or (source_dir / "args.yaml").is_file()):
        return []
    return [r for r in read_summary(source_dir / "summary.csv")
            if row_epoch(r) is not None and row_epoch(r) < start_epoch]


def best_so_far(rows: List[Dict[str, Any]], resuming_here: bool) -> float:
    """The metric ``model_best.pth.tar`` must beat: the best of this folder's epochs (none in a new folder)."""
    return max((row_top1(r) for r in rows), default=-1.0) if resuming_here else -1.0


def restore(checkpoint: Dict[str, Any], model, optimizer, scheduler, ema, scaler, source: str,
            updates_per_epoch: int) -> int:
    """Put the resumed run's state back (weights, EMA, optimizer, schedule, AMP scaler, every RNG); returns the
    epoch to start at."""
    load_weights(model, checkpoint["state_dict"], str(source))
    if ema is not None:
        # a run that kept no EMA so far starts it from the restored weights, not from the initial ones
        load_weights(ema.module, checkpoint.get("state_dict_ema") or checkpoint["state_dict"], f"{source} (EMA)")
    try:
        optimizer.load_state_dict(checkpoint["optimizer"])
    except (ValueError, KeyError) as e:
        raise CheckpointError(f"{source}: optimizer state does not fit ({e}); was it trained with another --opt?") from None
    if checkpoint.get("scheduler") and checkpoint.get("updates_per_epoch", updates_per_epoch) == updates_per_epoch:
        scheduler.load_state_dict(checkpoint["scheduler"])
    elif checkpoint.get("scheduler"):
        # timm's schedulers count optimizer updates; with another batch or world size they are rebuilt for the
        # new count of updates per epoch so the schedule stays the same in epochs
        _logger.info(f"{updates_per_epoch} updates per epoch now, {checkpoint['updates_per_epoch']} before: the "
                     f"learning-rate schedule is rebuilt in epochs")
    scaler_state = checkpoint.get("amp_scaler") or checkpoint.get("scaler")  # "scaler": before timm's NativeScaler
    if scaler is not None and scaler_state:
        scaler.load_state_dict(scaler_state)
    if checkpoint.get("rng"):
        set_rng_state(checkpoint["rng"])
    start_epoch = int(checkpoint["epoch"]) + 1
    scheduler.step_update(num_updates=start_epoch * updates_per_epoch)
    return start_epoch
