"""Which channels of a network are the same channel: the channel spaces of a traced timm model.

Weight selection (``inherit.py``) must pick the same channels of a parent wherever a channel appears: in the conv
that makes it, the batch norm and activation that follow, every residual branch added to it, the SE gate that
multiplies it and every conv that reads it. This module finds those sets by tracing the model with ``torch.fx``
and following the channel dimension through it:

* a conv (groups 1) or linear layer makes a new *space* of ``out`` channels; a depthwise conv and a batch norm
  keep their input's; any other parameter-free layer or elementwise function keeps its input's;
* ``+``, ``-``, ``*``, ``/`` between two tensors make their spaces one (a residual add, an SE gate);
* ``torch.cat(..., dim=1)`` lays spaces side by side and ``x[:, :n]`` keeps the first ``n`` channels (GhostNet's
  ghost module), so a tensor's channels are a sequence of *segments*: the first ``length`` channels of a space.
  A space joined to such a sequence (the conv shortcut or SE gate of a ghost bottleneck) is defined as it;
* the image's channels and the logits (a linear layer's outputs that leave the network) are *fixed*: never
  selected, only copied when the parent's match; the feature maps a ``features_only`` network returns are not.

Nothing here depends on the family: EfficientNet, MobileNetV3, ResNet and GhostNet all trace to these rules. A
network this cannot follow (a grouped conv that is not depthwise, channels moved by a reshape, a layer with
parameters it does not know) raises ``UnsupportedNetwork`` naming the layer.
"""
from __future__ import annotations

import operator
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple

import torch
import torch.fx as fx
import torch.nn as nn

Segment = Tuple[int, int]  # (space, length): the first ``length`` channels of that space
Channels = Tuple[Segment, ...]

_ELEMENTWISE = {operator.add, operator.sub, operator.mul, operator.truediv, operator.iadd, operator.imul, torch.add,
                torch.sub, torch.mul, torch.div, "add", "sub", "mul", "div", "add_", "sub_", "mul_", "div_"}
_NOT_TENSORS = {"size", "dim"}


class UnsupportedNetwork(ValueError):
    """The network has a layer whose channels this analysis cannot follow."""


@dataclass
class Axis:
    """One dimension of a parameter or buffer: channels (a sequence of segments), a kernel side, or neither."""

    kind: str  # 'channels', 'kernel' or 'other' (must match the parent's exactly, e.g. a depthwise conv's 1)
    channels: Channels = ()


@dataclass
class ChannelGraph:
    """The channel spaces of one network and, for every state-dict entry, what each of its dimensions is."""

    sizes: List[int] = field(default_factory=list)  # each space's channel count in this network
    creators: List[Optional[str]] = field(default_factory=list)  # the layer that makes it (None: the image)
    fixed: Set[int] = field(default_factory=set)  # roots never selected (image channels, logits)
    unsafe: Set[int] = field(default_factory=set)  # roots whose joins could not be followed: never inherited
    axes: Dict[str, List[Axis]] = field(default_factory=dict)  # state-dict key -> its dimensions
    _up: List[int] = field(default_factory=list)
    _defined: Dict[int, Channels] = field(default_factory=dict)  # root -> the segments it is defined as

    # --- union-find over spaces ---------------------------------------------------------------------------------

    def new_space(self, size: int, creator: Optional[str]) -> int:
        self._up.append(len(self._up))
        self.sizes.append(size)
        self.creators.append(creator)
        return len(self._up) - 1

    def root(self, space: int) -> int:
        while self._up[space] != space:
            self._up[space] = self._up[self._up[space]]
            space = self._up[space]
        return space

    def expand(self, channels: Channels) -> Channels:
        """``channels`` in undefined root spaces only, neighbouring segments of one space not merged."""
        out: List[Segment] = []
        for space, length in channels:
            space = self.root(space)
            if space in self._defined:
                out.extend(self.expand(_prefix(self._defined[space], length)))
            else:
                out.append((space, length))
        return tuple(out)

    def _union(self, a: int, b: int) -> None:
        a, b = self.root(a), self.root(b)
        if a == b:
            return
        keep, gone = min(a, b), max(a, b)  # the space made first names the set
        self._up[gone] = keep
        for marks in (self.fixed, self.unsafe):
            if gone in marks:
                marks.add(keep)

    def join(self, a: Channels, b: Channels) -> Channels:
        """The channels of ``a`` and ``b`` are the same channels (an elementwise op between them)."""
        ea, eb = self.expand(a), self.expand(b)
        if [length for _, length in ea] == [length for _, length in eb] and all(
                self._full(s, n) and self._full(t, m) for (s, n), (t, m) in zip(ea, eb)):
            for (s, _), (t, _) in zip(ea, eb):
                self._union(s, t)
            return a
        for single, other in ((ea, eb), (eb, ea)):  # one whole space joined to a sequence: defined as it
            if len(single) == 1 and self._full(*single[0]) and sum(n for _, n in other) == single[0][1]:
                self._defined[self.root(single[0][0])] = other
                return other
        self.unsafe.update(self.root(s) for s, _ in ea + eb)
        return a

    def _full(self, space: int, length: int) -> bool:
        return length == self.sizes[self.root(space)]

    def base_spaces(self) -> List[int]:
        """The roots that are not defined through others: the spaces a selection is chosen for."""
        return sorted({self.root(s) for s in range(len(self._up))} - set(self._defined))


def _prefix(channels: Channels, length: int) -> Channels:
    out, left = [], length
    for space, n in channels:
        if left <= 0:
            break
        out.append((space, min(n, left)))
        left -= n
    return tuple(out)


def _length(channels: Channels) -> int:
    return sum(n for _, n in channels)


class _Tracer(fx.Tracer):
    """Leaves: torch.nn's modules, timm's registered no-trace modules and every module with parameters of its own
    (a timm ``BatchNormAct2d`` is a batch norm with its activation inside)."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        from timm.layers._fx import is_notrace_module

        if any(True for _ in m.parameters(recurse=False)) or is_notrace_module(type(m)):
            return True
        return super().is_leaf_module(m, module_qualified_name)


def trace(model: nn.Module) -> ChannelGraph:
    """The channel spaces of ``model`` (any timm conv net of the supported layer types); see the module doc."""
    from timm.layers._fx import get_notrace_functions

    tracer = _Tracer(autowrap_functions=tuple(get_notrace_functions()))
    try:
        graph = tracer.trace(model)
    except Exception as e:  # fx raises many kinds for control flow it cannot follow
        raise UnsupportedNetwork(f"cannot trace {type(model).__name__} with torch.fx: {e}") from None
    g = ChannelGraph()
    values: Dict[str, Optional[Channels]] = {}

    def value(arg: Any) -> Optional[Channels]:
        return values.get(arg.name) if isinstance(arg, fx.Node) else None

    for node in graph.nodes:
        out: Optional[Channels] = None
        if node.op == "placeholder":
            channels = getattr(model, "in_chans", 3)
            space = g.new_space(channels, None)
            g.fixed.add(space)
            out = ((space, channels),)
        elif node.op == "call_module":
            out = _module(g, node.target, model.get_submodule(node.target), value(node.args[0]))
        elif node.op in ("call_function", "call_method"):
            out = _function(g, node, value)
        elif node.op == "output":  # logits (a linear layer's outputs) are classes, never selected; features may be
            result = node.args[0]
            for channels in (value(result),) if isinstance(result, fx.Node) else (value(r) for r in result):
                for space, _ in g.expand(channels or ()):
                    if isinstance(model.get_submodule(g.creators[space] or ""), nn.Linear):
                        g.fixed.add(g.root(space))
        values[node.name] = out
    return g


def _module(g: ChannelGraph, name: str, module: nn.Module, x: Optional[Channels]) -> Optional[Channels]:
    own = dict(module.named_parameters(recurse=False)) | dict(module.named_buffers(recurse=False))
    if isinstance(module, (nn.Conv2d, nn.Linear)):
        if x is None:
            raise UnsupportedNetwork(f"{name}: cannot tell which channels reach this layer")
        out_chs = module.out_channels if isinstance(module, nn.Conv2d) else module.out_features
        groups = module.groups if isinstance(module, nn.Conv2d) else 1
        kernel = [Axis("kernel")] * (module.weight.dim() - 2)
        if groups == 1:
            out = ((g.new_space(out_chs, name), out_chs),)
            g.axes[f"{name}.weight"] = [Axis("channels", out), Axis("channels", x)] + kernel
        elif groups == _length(x) == out_chs:  # depthwise: each output channel is its input channel
            out = x
            g.axes[f"{name}.weight"] = [Axis("channels", out), Axis("other")] + kernel
        else:
            raise UnsupportedNetwork(f"{name}: a grouped conv ({groups} groups of {_length(x)} channels) is neither "
                                     f"dense nor depthwise")
        if getattr(module, "bias", None) is not None:
            g.axes[f"{name}.bias"] = [Axis("channels", out)]
        return out
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        if x is None:
            raise UnsupportedNetwork(f"{name}: cannot tell which channels reach this layer")
        for key, tensor in own.items():
            g.axes[f"{name}.{key}"] = [Axis("channels", x)] if tensor.dim() == 1 else []
        return x
    if own:
        raise UnsupportedNetwork(f"{name}: {type(module).__name__} has parameters whose channels are not known here")
    return x  # activations, pooling, dropout, flatten: channels pass through


def _function(g: ChannelGraph, node: fx.Node, value) -> Optional[Channels]:
    target = node.target
    if target in _NOT_TENSORS or target is getattr:
        return None
    if target is torch.cat or target == "cat":
        parts, dim = node.args[0], node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
        channels = [value(p) for p in parts]
        if dim != 1 or any(c is None for c in channels):
            return _unknown(g, channels)
        return tuple(seg for c in channels for seg in c)
    if target is operator.getitem:
        x, index = value(node.args[0]), node.args[1]
        if x is None:
            return None
        if not isinstance(index, tuple) or len(index) < 2 or index[1] == slice(None):
            return x if not isinstance(index, int) else _unknown(g, [x])
        cut = index[1]
        if isinstance(cut, slice) and cut.start in (None, 0) and cut.step in (None, 1) and isinstance(cut.stop, int):
            return _prefix(g.expand(x), min(cut.stop, _length(x)))
        return _unknown(g, [x])
    tensors = [value(a) for a in list(node.args) + list(node.kwargs.values())]
    tensors = [t for t in tensors if t is not None]
    if not tensors:
        return None
    if target in _ELEMENTWISE:
        out = tensors[0]
        for other in tensors[1:]:
            out = g.join(out, other)
        return out
    if len(tensors) == 1:  # mean, flatten, relu, sigmoid, dropout, pooling ...: channels pass through
        return tensors[0]
    return _unknown(g, tensors)


def _unknown(g: ChannelGraph, channels: Sequence[Optional[Channels]]) -> None:
    """An op whose effect on channels is not known: the spaces it touches are never inherited."""
    for c in channels:
        if c:
            g.unsafe.update(g.root(s) for s, _ in g.expand(c))
    return None
