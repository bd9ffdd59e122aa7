"""The published network a shrunk one starts from: ``timm.create_model("tinynet", c=0.3, pretrained=True)``.

A network twisted from a baseline has no published weights of its own (but for the five released TinyNets). It
inherits them (``inherit.py``) from the *nearest published parent* of its family: of the networks with published
weights that timm can load, the one that covers most of the child's tensors (a parent block and channel for every
child block and channel), the smallest of those. The EfficientNet-B0 family has six (TinyNet-A..E and
EfficientNet-B0 itself); every other timm baseline has its own published weights; GhostNet-A has none.

Offline, ``pretrained_cfg_overlay=dict(file=PATH)`` names the parent's weights: a training checkpoint, a timm
checkpoint, a state dict or a safetensors file of any network of the family (it is recognised by its shapes when it
is one of the published parents).
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

import torch
import torch.nn as nn

from tinynet_core.named import TINYNET_CUBES
from .inherit import Inheritance, inherit

DEFAULT_SELECTION = "magnitude"

B0_PARENTS = (*TINYNET_CUBES, "efficientnet_b0")  # the EfficientNet-B0 family's published networks


class NoParentError(ValueError):
    """No published network of the family to inherit from, and no file given."""


def published_parents(baseline: str) -> Tuple[str, ...]:
    """The timm models with published weights that a network twisted from ``baseline`` can inherit from."""
    if baseline in ("efficientnet_b0", "efficientnet_b0_compound"):
        return B0_PARENTS
    if baseline == "ghostnet_a":
        return ()
    return (baseline,)  # timm's own model of the baseline's name


def _shapes(state: Mapping[str, torch.Tensor]) -> Dict[str, Tuple[int, ...]]:
    return {key: tuple(value.shape) for key, value in state.items()}


@lru_cache(maxsize=None)
def _parent_shape_items(name: str) -> Tuple[Tuple[str, Tuple[int, ...]], ...]:
    import timm

    with torch.device("meta"):
        return tuple(_shapes(timm.create_model(name).state_dict()).items())


def _parent_shapes(name: str) -> Dict[str, Tuple[int, ...]]:
    """The state-dict shapes of the published network ``name`` (built once per process, on the meta device)."""
    return dict(_parent_shape_items(name))


def coverage(child: Mapping[str, Tuple[int, ...]], parent: Mapping[str, Tuple[int, ...]]) -> int:
    """How many of the child's tensors the parent can give: one of the same name, rank and no smaller side."""
    return sum(1 for key, shape in child.items()
               if key in parent and len(parent[key]) == len(shape) and all(c <= p for c, p in zip(shape, parent[key])))


def nearest_parent(child: nn.Module, baseline: str) -> str:
    """The published parent that covers most of ``child``'s tensors; of those, the one with fewest parameters."""
    candidates = published_parents(baseline)
    if not candidates:
        raise NoParentError(f"no published weights exist in {baseline}'s family to inherit from; pass the weights of "
                            f"a trained network of the family with pretrained_cfg_overlay=dict(file='weights.pth')")
    wanted = _shapes(child.state_dict())

    def rank(name: str) -> Tuple[int, int]:
        shapes = _parent_shapes(name)
        return coverage(wanted, shapes), -sum(torch.Size(s).numel() for s in shapes.values())

    return max(candidates, key=rank)


def read_weights(path: str) -> Dict[str, torch.Tensor]:
    """The model weights in a file: safetensors, or anything ``tinynet-train``'s checkpoint loader reads (its own
    checkpoints, checksum verified, with the weights they name as best; timm's; a bare state dict)."""
    from tinynet_core.guard import MAX_CHECKPOINT_BYTES, check_input_file
    from .train.checkpoint import CheckpointError, load_checkpoint, model_state

    if Path(path).suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        check_input_file(Path(path), "weights file", MAX_CHECKPOINT_BYTES)
        try:
            return load_file(path)
        except (SafetensorError, OSError) as e:
            raise ValueError(f"cannot read the weights in {path}: {e}") from None
    try:
        return model_state(load_checkpoint(path))
    except CheckpointError as e:  # a RuntimeError for training; bad input here
        raise ValueError(str(e)) from None


def family_problem(child: Mapping[str, Tuple[int, ...]], parent: Mapping[str, Tuple[int, ...]]) -> Optional[str]:
    """Why weights of these shapes are not of the child's family (None when they may be): a layer of the same name
    with another rank or kernel (another block type or architecture), or too few of the child's layers at all."""
    shared = [key for key in child if key in parent]
    for key in shared:
        if len(child[key]) != len(parent[key]) or child[key][2:] != parent[key][2:]:
            return f"{key} is {'x'.join(map(str, parent[key]))} there, {'x'.join(map(str, child[key]))} here"
    if len(shared) < len(child) / 2:
        return f"only {len(shared)} of the network's {len(child)} tensors have a namesake there"
    return None


def _recognised(state: Mapping[str, torch.Tensor], baseline: str, path: str) -> str:
    """The published parent whose shapes the file's weights have exactly, else the file's name."""
    shapes = _shapes(state)
    for name in published_parents(baseline):
        if _parent_shapes(name) == shapes:
            return f"{name} ({path})"
    return str(path)


def inherit_published(child: nn.Module, baseline: Optional[str], file: Optional[str] = None,
                      selection: str = DEFAULT_SELECTION) -> Inheritance:
    """Initialise ``child`` (a network twisted from ``baseline``; None: of no baseline here, only from a file) from
    the weights in ``file``, or from its nearest published parent's (downloaded through timm's pretrained configs,
    the Hugging Face cache first); logs and returns what was inherited."""
    if file is not None:
        state = read_weights(file)
        problem = family_problem(_shapes(child.state_dict()), _shapes(state))
        if problem is not None:
            family = f"{baseline}'s family" if baseline else "the model's family"
            raise ValueError(f"the weights in {file} are not of a network of {family} ({problem})")
        parent = _recognised(state, baseline, file) if baseline else str(file)
    else:
        from .loading import ModelLoadError, create

        name = nearest_parent(child, baseline)
        try:
            state = create(name, pretrained=True).state_dict()
        except ModelLoadError as e:
            raise ModelLoadError(f"{e} (the nearest published parent to inherit from; offline, give its weights "
                                 f"with pretrained_cfg_overlay=dict(file=...), or tinynet-train --init-from)") from None
        parent = f"{name} (published weights)"
    return inherit(child, state, selection, parent)
