"""Training checkpoints: the whole training state, written atomically, loadable with ``weights_only=True``."""
from __future__ import annotations

import argparse
import random
import re
from pathlib import Path
from typing import Any, Dict, Optional, Union

import numpy as np
import torch

from ..atomic import replace_atomically
from ..loading import first_line

PathLike = Union[str, Path]


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be read or does not fit the model."""


def rng_state() -> Dict[str, Any]:
    """Python, NumPy, torch (and CUDA) RNG states as weights_only-loadable values."""
    np_state = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {"keys": torch.from_numpy(np_state[1].astype(np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "cached_gaussian": float(np_state[4])},
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: Dict[str, Any]) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    np_state = state["numpy"]
    np.random.set_state(("MT19937", np_state["keys"].numpy().astype(np.uint32), np_state["pos"],
                         np_state["has_gauss"], np_state["cached_gaussian"]))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_atomic(obj: Dict[str, Any], path: PathLike) -> None:
    """torch.save through a temporary file and a rename: a kill never leaves half a checkpoint."""
    replace_atomically(path, lambda tmp: torch.save(obj, tmp))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a clear ``CheckpointError`` when it is missing or corrupt.

    Checkpoints of timm's own train.py store their options as an ``argparse.Namespace``; that one class is
    allowed and turned into a dict, so they load too.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist")
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: "
                              f"{_ANSI.sub('', first_line(e))})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} is not a dictionary of states")
    if isinstance(checkpoint.get("args"), argparse.Namespace):
        checkpoint["args"] = vars(checkpoint["args"])
    return checkpoint


def model_state(checkpoint: Dict[str, Any], prefer_ema: bool = True) -> Dict[str, torch.Tensor]:
    """The weights to evaluate: the EMA's when present (and wanted), else the model's; plain state dicts too."""
    if prefer_ema and checkpoint.get("state_dict_ema"):
        return checkpoint["state_dict_ema"]
    if "state_dict" in checkpoint:
        return checkpoint["state_dict"]
    if checkpoint and all(isinstance(v, torch.Tensor) for v in checkpoint.values()):
        return checkpoint  # a bare state dict
    raise CheckpointError("checkpoint has no model weights ('state_dict')")


def weights_mismatch(model: torch.nn.Module, state: Dict[str, torch.Tensor]) -> str:
    """What keeps ``state`` from loading into ``model``, in a few words ('' when it fits)."""
    own = model.state_dict()
    problems = []
    shapes = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} tensor(s) differ in shape, e.g. {k}: {tuple(state[k].shape)} in the "
                        f"checkpoint, {tuple(own[k].shape)} in the model")
    for words, keys in (("missing from the checkpoint", [k for k in own if k not in state]),
                        ("not in the model", [k for k in state if k not in own])):
        if keys:
            problems.append(f"{len(keys)} key(s) {words}, e.g. {keys[0]}")
    return "; ".join(problems)


def load_weights(model: torch.nn.Module, state: Dict[str, torch.Tensor], source: str) -> None:
    problem = weights_mismatch(model, state)
    if problem:
        raise CheckpointError(f"{source} does not fit the model ({problem}); is --model / --model-kwargs the "
                              f"network it was trained as?")
    model.load_state_dict(state, strict=True)


def build_checkpoint(model, optimizer, scheduler, epoch: int, args: Dict[str, Any], ema=None, scaler=None,
                     metric: Optional[float] = None, class_to_idx: Optional[Dict[str, int]] = None,
                     updates_per_epoch: Optional[int] = None) -> Dict[str, Any]:
    checkpoint = {
        "epoch": epoch,
        "arch": args.get("model"),
        "args": args,
        "state_dict": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "rng": rng_state(),
        "metric": metric,
        "class_to_idx": class_to_idx,
        "updates_per_epoch": updates_per_epoch,
    }
    if ema is not None:
        checkpoint["state_dict_ema"] = ema.module.state_dict()
    if scaler is not None:
        checkpoint["scaler"] = scaler.state_dict()
    return checkpoint
