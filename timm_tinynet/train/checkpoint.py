"""Training checkpoints: the whole training state, written atomically, loadable with ``weights_only=True``,
and carrying a checksum of its contents so that a damaged file is refused instead of trained on.

The checksum (``checkpoint["checksum"]``, ``"sha256:<hex>"``) covers every value of the checkpoint: each tensor's
dtype, shape and raw bytes and every other value, visited in a fixed key order (:func:`content_checksum`).
``torch.load`` does not check the zip archive's CRCs, so without it a flipped byte inside a tensor would load as a
silently different weight. Checkpoints without a checksum (timm's own ``train.py``, bare state dicts, files written
before checksums existed) still load.
"""
from __future__ import annotations

import argparse
import hashlib
import random
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Union

import numpy as np
import torch

from tinynet_core.atomic import staged_replace
from tinynet_core.guard import MAX_CHECKPOINT_BYTES, GuardError, check_input_file
from ..text import first_line

PathLike = Union[str, Path]

CHECKSUM_KEY = "checksum"


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


def _feed(digest, value: Any) -> None:
    """Hash ``value`` canonically: type tags, sorted dict keys, tensors as dtype + shape + raw bytes."""
    if isinstance(value, torch.Tensor):
        tensor = value.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        tensor = tensor.contiguous().reshape(-1)
        digest.update(f"T{str(tensor.dtype)}{tuple(value.shape)}".encode())
        if tensor.numel():
            digest.update(memoryview(tensor.view(torch.uint8).numpy()))
    elif isinstance(value, dict):
        digest.update(f"D{len(value)}".encode())
        for key in sorted(value, key=lambda k: (type(k).__name__, repr(k))):
            _feed(digest, key)
            _feed(digest, value[key])
    elif isinstance(value, (list, tuple)):  # pickling may turn one into the other: hashed alike
        digest.update(f"L{len(value)}".encode())
        for item in value:
            _feed(digest, item)
    elif isinstance(value, argparse.Namespace):
        _feed(digest, vars(value))
    else:
        digest.update(f"{type(value).__name__}:{value!r};".encode())


def content_checksum(checkpoint: Dict[str, Any]) -> str:
    """sha256 over every value of ``checkpoint`` except its own checksum, in a fixed order."""
    digest = hashlib.sha256()
    _feed(digest, {k: v for k, v in checkpoint.items() if k != CHECKSUM_KEY})
    return f"sha256:{digest.hexdigest()}"


@contextmanager
def staged_save(obj: Dict[str, Any], *paths: PathLike) -> Iterator[None]:
    """torch.save of ``obj`` to each of ``paths`` through temporary files written before the block and renamed
    after it, in order (``tinynet_core.atomic.staged_replace``): a kill never leaves half a checkpoint. A dictionary
    is saved with the checksum of its contents (``checkpoint["checksum"]``, computed once), which
    ``load_checkpoint`` verifies."""
    if isinstance(obj, dict):
        obj = dict(obj)
        obj[CHECKSUM_KEY] = content_checksum(obj)
    with staged_replace([(target, lambda tmp: torch.save(obj, tmp)) for target in paths]):
        yield


def save_atomic(obj: Dict[str, Any], path: PathLike, *more_paths: PathLike) -> None:
    """``staged_save`` with nothing in between: each path gets the checkpoint at once, in order."""
    with staged_save(obj, path, *more_paths):
        pass


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def load_checkpoint(path: PathLike) -> Dict[str, Any]:
    """Read a checkpoint with ``weights_only=True``; a one-line ``CheckpointError`` when it is missing, not a
    regular file (a pipe never blocks), over 8 GB, unreadable, or fails its checksum (``... is corrupted: checksum
    mismatch``). The checksum is verified and dropped; a checkpoint without one (timm's, a bare state dict) loads.

    Checkpoints of timm's own train.py store their options as an ``argparse.Namespace``; that one class is
    allowed and turned into a dict, so they load too.
    """
    path = Path(path)
    # a regular file of at most 8 GB (weights, EMA and optimizer moments of a ~500M-parameter model): a pipe or a
    # device would block or never end, and a far larger file is a wrong path, not a checkpoint
    try:
        check_input_file(path, "checkpoint", MAX_CHECKPOINT_BYTES)
    except GuardError as e:
        raise CheckpointError(str(e)) from None
    try:
        with torch.serialization.safe_globals([argparse.Namespace]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises several types for truncated / foreign files
        raise CheckpointError(f"checkpoint {path} cannot be read ({type(e).__name__}: "
                              f"{_ANSI.sub('', first_line(e))})") from None
    if not isinstance(checkpoint, dict):
        raise CheckpointError(f"checkpoint {path} is not a dictionary of states")
    if CHECKSUM_KEY in checkpoint:  # verified, then dropped: the caller sees the states it saved
        try:
            intact = checkpoint.pop(CHECKSUM_KEY) == content_checksum(checkpoint)
        except Exception:  # noqa: BLE001 - a damaged value that cannot even be hashed
            intact = False
        if not intact:
            raise CheckpointError(f"checkpoint {path} is corrupted: checksum mismatch (its contents changed after "
                                  f"it was written); use another copy or an earlier checkpoint")
    if isinstance(checkpoint.get("args"), argparse.Namespace):
        checkpoint["args"] = vars(checkpoint["args"])
    return checkpoint


def eval_weights(checkpoint: Dict[str, Any], prefer_ema: bool = True) -> str:
    """Which weights of ``checkpoint`` to evaluate: ``"ema"`` or ``"model"``.

    tinynet-train records the better of the two on the validation set (``checkpoint["eval_weights"]``); a
    checkpoint without that record (timm's, older ones) is evaluated with its EMA when it has one.
    ``prefer_ema=False`` (``--no-ema``) asks for the raw weights."""
    has_ema = bool(checkpoint.get("state_dict_ema"))
    if not prefer_ema or not has_ema:
        return "model"
    return "model" if checkpoint.get("eval_weights") == "model" else "ema"


def model_state(checkpoint: Dict[str, Any], prefer_ema: bool = True) -> Dict[str, torch.Tensor]:
    """The weights to evaluate: those the checkpoint names as the better ones (``eval_weights``; the EMA's when it
    does not say), or the model's with ``prefer_ema=False``; plain state dicts too."""
    if eval_weights(checkpoint, prefer_ema) == "ema":
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
    """``state`` into ``model`` (strict), cleaned of DDP / torch.compile key prefixes by timm's ``clean_state_dict``;
    a one-line CheckpointError naming the first tensor that does not fit.

    (Not timm's ``load_checkpoint(model, path, use_ema=...)``: it reads the file again without verifying the
    checksum, so the verified checkpoint's weights, chosen by ``model_state``, are loaded here.)"""
    from timm.models import clean_state_dict

    state = clean_state_dict(state)
    problem = weights_mismatch(model, state)
    if problem:
        raise CheckpointError(f"{source} does not fit the model ({problem}); is --model / --model-kwargs the "
                              f"network it was trained as?")
    model.load_state_dict(state, strict=True)


def build_checkpoint(model, optimizer, scheduler, epoch: int, args: Dict[str, Any], ema=None, scaler=None,
                     metric: Optional[float] = None, class_to_idx: Optional[Dict[str, int]] = None,
                     updates_per_epoch: Optional[int] = None, best_weights: Optional[str] = None) -> Dict[str, Any]:
    """The whole training state. ``metric`` is the epoch's validation top-1 of ``best_weights`` (``"ema"`` or
    ``"model"``, the better of the two), which evaluation, export and ``--initial-checkpoint`` then use. The
    checksum is added by :func:`save_atomic`."""
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
        checkpoint["eval_weights"] = best_weights or "ema"
    else:
        checkpoint["eval_weights"] = "model"
    if scaler is not None:  # timm's NativeScaler, under its own key as timm's checkpoints have it
        checkpoint[scaler.state_dict_key] = scaler.state_dict()
    return checkpoint
