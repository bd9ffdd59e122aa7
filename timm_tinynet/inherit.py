"""Start a shrunk network from a larger trained one of its family: weight selection.

``inherit(child, parent_state_dict)`` copies into ``child`` the parent's tensors of the same name, cut to the
child's shapes:

* **blocks**: a block keeps its name in a shrunk network (``blocks.3.1`` is the second block of the fourth stage
  in both), so each stage keeps the parent's *first* blocks; a child block the parent lacks stays as initialised;
* **channels**: for every channel space of the child (``channels.py``: the channels a conv makes, with the batch
  norm, activation, residual adds, SE gate and convs that follow them) one set of the parent's channels is chosen,
  ``uniform`` (evenly spaced) or by ``magnitude`` (the largest summed, normalised L1 norms of the weights over
  every layer of the space), and used in every tensor of the space: conv and linear weights on both sides, batch
  norm weights, biases and running statistics, SE reduce and expand convs;
* **kernels**: a depthwise conv keeps one input channel per filter; a smaller kernel takes the parent's centre;
* the image's channels and the logits are copied only when the parent's are the same (a classifier for other
  classes stays as initialised).

Selecting the same channels through a space keeps each kept channel's whole path: where the parent's other channels
and later blocks contribute nothing (zero weights, or a residual branch whose last batch norm is zero), the child
computes exactly the parent's function (tested).
"""
from __future__ import annotations

import logging
import math
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

import torch
import torch.nn as nn

from .channels import Axis, ChannelGraph, Channels, UnsupportedNetwork, trace

__all__ = ["Inheritance", "SELECTIONS", "UnsupportedNetwork", "inherit", "select_channels"]

SELECTIONS = ("magnitude", "uniform")
_logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inheritance:
    """What ``inherit`` did: ``inherited`` of the child's ``total`` state-dict tensors came from ``parent``,
    ``whole`` of them uncut; ``kept`` lists the child's tensors left as they were (the parent has none of that name
    or shape to give)."""

    parent: str
    selection: str
    inherited: int
    whole: int
    total: int
    kept: Tuple[str, ...]

    def line(self) -> str:
        """The one line a command prints."""
        cut = self.inherited - self.whole
        return (f"inherited {self.inherited} of {self.total} tensors from {self.parent} ({self.whole} whole, {cut} "
                f"cut to shape by {self.selection} channel selection); {len(self.kept)} kept as initialised")


def select_channels(parent_size: int, child_size: int, selection: str,
                    importance: Optional[torch.Tensor] = None) -> List[int]:
    """``child_size`` of the parent's ``parent_size`` channels, ascending: evenly spaced (``uniform``) or the most
    important (``magnitude``; ties to the lower index)."""
    if not 0 < child_size <= parent_size:
        raise ValueError(f"cannot select {child_size} of {parent_size} channels")
    if child_size == parent_size:
        return list(range(parent_size))
    if selection == "uniform":
        step = (parent_size - 1) / (child_size - 1) if child_size > 1 else 0.0
        return [int(math.floor(i * step + 0.5)) for i in range(child_size)]
    if selection == "magnitude":
        order = torch.argsort(-torch.as_tensor(importance, dtype=torch.float64), stable=True)
        return sorted(order[:child_size].tolist())
    raise ValueError(f"unknown selection {selection!r}; choose from {', '.join(SELECTIONS)}")


class _Layout:
    """Where a child tensor dimension's channels lie in the parent's: its segments placed at the parent's sizes."""

    def __init__(self, graph: ChannelGraph, channels: Channels, parent_sizes: Dict[int, int], parent_dim: int):
        self.segments = graph.expand(channels)
        self.offsets: List[int] = []
        self.lengths: List[int] = []
        offset = 0
        for k, (space, _) in enumerate(self.segments):
            size = parent_sizes.get(space)
            if size is None:
                raise KeyError(space)
            length = size if k < len(self.segments) - 1 else parent_dim - offset  # a cut last segment
            if not 0 < length <= size:
                raise KeyError(space)
            self.offsets.append(offset)
            self.lengths.append(length)
            offset += length
        if offset != parent_dim:
            raise KeyError("layout")

    def indices(self, chosen: Dict[int, List[int]]) -> List[int]:
        out = []
        for (space, length), offset, parent_length in zip(self.segments, self.offsets, self.lengths):
            picked = chosen[space][:length]
            if len(picked) < length or any(i >= parent_length for i in picked):
                raise KeyError(space)
            out.extend(offset + i for i in picked)
        return out


def _parent_sizes(graph: ChannelGraph, parent: Mapping[str, torch.Tensor]) -> Dict[int, int]:
    """Each base space's size in the parent, read off the parent's tensors whose dimension is that space alone (the
    most common reading; a tensor that disagrees is not inherited)."""
    seen: Dict[int, Counter] = {}
    for key, axes in graph.axes.items():
        if key not in parent:
            continue
        for dim, axis in enumerate(axes):
            segments = graph.expand(axis.channels) if axis.kind == "channels" else ()
            if len(segments) == 1 and parent[key].dim() > dim:
                seen.setdefault(segments[0][0], Counter())[parent[key].shape[dim]] += 1
    return {space: counts.most_common(1)[0][0] for space, counts in seen.items()}


def _importance(graph: ChannelGraph, parent: Mapping[str, torch.Tensor], sizes: Dict[int, int]
                ) -> Dict[int, torch.Tensor]:
    """Per base space, the parent's channels' summed L1 norms over every weight of the space (conv and linear
    weights along each channel axis, batch norm scales), each tensor's norms divided by their mean so that every
    layer weighs the same."""
    out = {space: torch.zeros(size, dtype=torch.float64) for space, size in sizes.items()}
    for key, axes in graph.axes.items():
        if not key.endswith("weight") or key not in parent or parent[key].dim() != len(axes):
            continue
        tensor = parent[key].detach().to(torch.float64).abs()
        for dim, axis in enumerate(axes):
            if axis.kind != "channels":
                continue
            norms = tensor.sum(dim=[d for d in range(tensor.dim()) if d != dim]) if tensor.dim() > 1 else tensor
            norms = norms / norms.mean().clamp_min(1e-12)
            try:
                layout = _Layout(graph, axis.channels, sizes, tensor.shape[dim])
            except KeyError:
                continue
            for (space, _), offset, length in zip(layout.segments, layout.offsets, layout.lengths):
                out[space][:length] += norms[offset:offset + length]
    return out


def _kernel_index(child: int, parent: int) -> slice:
    """The parent's centre ``child`` x ``child`` taps (a smaller kernel), or all of them."""
    if child > parent or (parent - child) % 2:
        raise KeyError("kernel")
    start = (parent - child) // 2
    return slice(start, start + child)


def _cut(tensor: torch.Tensor, axes: Sequence[Axis], child_shape: torch.Size, graph: ChannelGraph,
         sizes: Dict[int, int], chosen: Dict[int, List[int]]) -> torch.Tensor:
    """The parent's ``tensor`` cut to ``child_shape`` along ``axes`` (KeyError when it cannot be)."""
    if tensor.dim() != len(child_shape) or len(axes) != tensor.dim():
        raise KeyError("rank")
    for dim, (axis, want) in enumerate(zip(axes, child_shape)):
        if axis.kind == "channels":
            index = _Layout(graph, axis.channels, sizes, tensor.shape[dim]).indices(chosen)
            tensor = tensor.index_select(dim, torch.tensor(index, dtype=torch.long, device=tensor.device))
        elif axis.kind == "kernel":
            tensor = tensor.narrow(dim, _kernel_index(want, tensor.shape[dim]).start, want)
        elif tensor.shape[dim] != want:
            raise KeyError("shape")
    if tensor.shape != child_shape:
        raise KeyError("shape")
    return tensor


def inherit(child: nn.Module, parent_state_dict: Mapping[str, torch.Tensor], selection: str = "magnitude",
            parent_name: str = "the parent") -> Inheritance:
    """Initialise ``child`` in place from ``parent_state_dict`` by weight selection (see the module doc); returns
    what was inherited. ``selection``: 'magnitude' (default) or 'uniform'."""
    if selection not in SELECTIONS:
        raise ValueError(f"unknown selection {selection!r}; choose from {', '.join(SELECTIONS)}")
    graph = trace(child)
    parent = {key: value for key, value in parent_state_dict.items() if isinstance(value, torch.Tensor)}
    sizes = _parent_sizes(graph, parent)
    importance = _importance(graph, parent, sizes) if selection == "magnitude" else {}
    chosen: Dict[int, List[int]] = {}
    for space in graph.base_spaces():
        child_size, parent_size = graph.sizes[space], sizes.get(space)
        if parent_size is None or space in graph.unsafe or child_size > parent_size or (
                space in graph.fixed and child_size != parent_size):
            continue
        chosen[space] = select_channels(parent_size, child_size, selection, importance.get(space))
    state = child.state_dict()
    inherited, whole, kept = 0, 0, []
    with torch.no_grad():
        for key, target in state.items():
            source = parent.get(key)
            try:
                if source is None or key not in graph.axes:
                    raise KeyError(key)
                cut = _cut(source, graph.axes[key], target.shape, graph, sizes, chosen)
            except KeyError:
                kept.append(key)
                continue
            target.copy_(cut.to(dtype=target.dtype, device=target.device))
            inherited += 1
            whole += tuple(source.shape) == tuple(target.shape) and torch.equal(cut, source)
    result = Inheritance(parent_name, selection, inherited, whole, len(state), tuple(kept))
    _logger.info(result.line())
    return result
