"""Analytic cost model: FLOPs, parameters and activations of a twisted baseline, without building it.

Building each candidate network (even on the meta device) costs tens of milliseconds; this module lists the same network's layers from the architecture definitions the baselines give timm's builders,
and sums closed-form costs. It imports neither torch nor timm (only ``archs`` and ``cube``), and is exact:

* ``flops``: multiply-adds of conv and linear layers for one image, fvcore's convention (``count_flops``):
  ``out_h * out_w * C_out * C_in / groups * k * k`` per conv, ``C_in * C_out`` per linear; bias, batch norm,
  activations, pooling, SE gating and residual additions are free.
* ``params``: ``sum(p.numel() for p in model.parameters())`` of the timm model (conv and linear weights and
  biases, two per channel for every batch norm).
* ``activations``: output elements of every conv and linear layer for one image (Dollar et al. 2021, "Fast
  and Accurate Model Scaling").

Two steps per baseline, both pure functions:

1. ``*_arch(cube)``: the cube's architecture as plain hashable data (stem/head widths, per-stage repeats and
   channels), with the baselines' own rounding (timm's ``make_divisible``/``round_channels``, depth rounded to
   nearest).
2. ``*_layers(arch, num_classes, img_size)``: a generator of ``Layer`` records named like the modules of the
   built timm model (``blocks.1.0.conv_dw``), in forward order.

``cube_cost_analytic`` composes them and caches totals by (baseline, architecture, classes, input size).

The architectures come from ``archs.py``, the same data the baselines in ``baselines/`` feed timm's builders;
the tests assert that every count equals fvcore's and the built model's.
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Callable, Dict, Iterator, NamedTuple, Optional, Tuple, Union

from .archs import (B0_ARCH_DEF, B0_CHANNEL_DIVISOR, B0_HEAD, B0_IMG_SIZE, B0_STEM, GHOST_CHANNEL_DIVISOR,
                    GHOST_SE_DIVISOR, GHOSTNET_A_HEAD, GHOSTNET_A_ROWS, GHOSTNET_A_STEM, GHOSTNET_IMG_SIZE,
                    MIN_IMG_SIZE, RESNET50_LAYERS, RESNET50_PLANES, RESNET_CHANNEL_DIVISOR, RESNET_EXPANSION,
                    RESNET_IMG_SIZE, RESNET_STEM)
from .cube import Cube

__all__ = [
    "BASELINE_NAMES", "Cost", "Layer", "cube_cost_analytic", "architecture", "layers", "default_img_size",
    "make_divisible", "round_channels", "round_repeats",
    "efficientnet_arch", "efficientnet_layers", "resnet50_arch", "resnet50_layers", "ghostnet_a_arch",
    "ghostnet_a_layers",
]

# --- Rounding (timm semantics) ---------------------------------------------------------------------------

def make_divisible(v: float, divisor: int = 8, min_value: Optional[int] = None, round_limit: float = 0.9) -> int:
    """timm.layers.make_divisible: nearest multiple of ``divisor``, at least ``min_value`` (default divisor),
    and not more than 10 % below ``v``."""
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < round_limit * v:
        new_v += divisor
    return new_v


def round_channels(channels: int, multiplier: float = 1.0, divisor: int = 8) -> int:
    """timm's ``_efficientnet_builder.round_channels`` (``channel_min=None``, ``round_limit=0.9``)."""
    if not multiplier:
        return channels
    return make_divisible(channels * multiplier, divisor)


def round_repeats(repeats: int, d: float) -> int:
    """baselines/base.py ``round_repeats``: nearest (Python's round), never below one block. For single-def
    stages this is also timm's ``_scale_stage_depth`` with ``depth_trunc='round'``."""
    return max(1, round(repeats * d))


def _conv_out(size: int, kernel: int, stride: int) -> int:
    """Output side of a conv or pool with timm's symmetric padding ``((s - 1) + (k - 1)) // 2`` (pad_type '').

    Every spatial layer of the three families uses that padding: EfficientNet's ``create_conv2d``, ResNet's
    7x7/3 stem, 3x3/1 max pool, 3x3/1 convs and 1x1/0 downsample, GhostNet's (k - 1) // 2 depthwise convs.
    """
    padding = ((stride - 1) + (kernel - 1)) // 2
    out = (size + 2 * padding - kernel) // stride + 1
    if out < 1:
        raise ValueError(f"a {kernel}x{kernel} stride-{stride} layer gets a {size}px input: the input is too small")
    return out


# --- Layer records ---------------------------------------------------------------------------------------

class Layer(NamedTuple):
    """One parameterised layer of the built model, named like its timm module.

    ``kind`` is 'conv', 'linear' or 'bn' (batch norm: parameters only). ``out_hw`` is the square output
    side (1 for linear layers and for convs on pooled maps, as in SE and GhostNet's conv_head).
    """

    name: str
    kind: str
    in_chs: int
    out_chs: int
    kernel: int = 1
    stride: int = 1
    groups: int = 1
    bias: bool = False
    out_hw: int = 1

    @property
    def weights(self) -> int:
        if self.kind == "bn":
            return 0
        return self.out_chs * (self.in_chs // self.groups) * self.kernel * self.kernel

    @property
    def params(self) -> int:
        if self.kind == "bn":
            return 2 * self.out_chs  # weight and bias (running statistics are buffers)
        return self.weights + (self.out_chs if self.bias else 0)

    @property
    def flops(self) -> int:
        return self.weights * self.out_hw * self.out_hw

    @property
    def activations(self) -> int:
        return 0 if self.kind == "bn" else self.out_chs * self.out_hw * self.out_hw


def _conv(name: str, in_chs: int, out_chs: int, size: int, kernel: int = 1, stride: int = 1, groups: int = 1,
          bias: bool = False) -> Layer:
    return Layer(name, "conv", in_chs, out_chs, kernel, stride, groups, bias, _conv_out(size, kernel, stride))


def _pooled_conv(name: str, in_chs: int, out_chs: int) -> Layer:
    """A biased 1x1 conv on a globally pooled (1x1) map: SE reduce/expand, GhostNet's conv_head."""
    return Layer(name, "conv", in_chs, out_chs, bias=True)


def _bn(name: str, chs: int) -> Layer:
    return Layer(name, "bn", chs, chs)


def _linear(name: str, in_features: int, num_classes: int) -> Iterator[Layer]:
    if num_classes > 0:  # timm: nn.Identity for num_classes=0
        yield Layer(name, "linear", in_features, num_classes, bias=True)


def _conv_stem(chs: int, img_size: int) -> Iterator[Layer]:
    """The 3x3 stride-2 ``conv_stem`` and its ``bn1`` of EfficientNet and GhostNet; returns the output side."""
    stem = _conv("conv_stem", 3, chs, img_size, 3, 2)
    yield stem
    yield _bn("bn1", chs)
    return stem.out_hw


def _se(prefix: str, chs: int, reduced: int) -> Iterator[Layer]:
    yield _pooled_conv(prefix + "se.conv_reduce", chs, reduced)
    yield _pooled_conv(prefix + "se.conv_expand", reduced, chs)


# --- EfficientNet-B0 (timm EfficientNet / EfficientNetBuilder) --------------------------------------------

class EffStage(NamedTuple):
    """One stage of a decoded arch string, channels and repeats already scaled."""

    block: str  # 'ds' (DepthwiseSeparableConv) or 'ir' (InvertedResidual)
    repeats: int
    kernel: int
    stride: int
    exp_ratio: float  # InvertedResidual only
    out_chs: int
    se_ratio: float


class EffNetArch(NamedTuple):
    stem: int
    head: int
    stages: Tuple[EffStage, ...]


def _decode_block(block: str) -> EffStage:
    """The options of a timm block string that B0 uses (timm ``_decode_block_str``): type, r, k, s, e, c, se."""
    block_type, *ops = block.split("_")
    if block_type not in ("ds", "ir"):
        raise ValueError(f"unsupported block type in {block!r}")
    options = {}
    for op in ops:
        key, value = re.split(r"(\d.*)", op)[:2]  # 'se0.25' -> ('se', '0.25')
        options[key] = value
    return EffStage(
        block=block_type, repeats=int(options["r"]), kernel=int(options["k"]), stride=int(options["s"]),
        exp_ratio=float(options["e"]) if block_type == "ir" else 1.0,  # timm: ds blocks take no exp_ratio
        out_chs=int(options["c"]), se_ratio=float(options.get("se", 0.0)))


B0_STAGES: Tuple[EffStage, ...] = tuple(_decode_block(stage[0]) for stage in B0_ARCH_DEF)


def efficientnet_arch(cube: Cube, style: str = "tinynet") -> EffNetArch:
    """baselines/efficientnet.py ``EfficientNetB0(style)``: 'tinynet' keeps the 32-channel stem and a head of
    at least 1280; 'compound' scales both with w (timm ``_gen_efficientnet``)."""
    w, divisor = cube.w, B0_CHANNEL_DIVISOR
    head = round_channels(B0_HEAD, w, divisor)
    if style == "tinynet":
        stem, head = B0_STEM, max(B0_HEAD, head)
    elif style == "compound":
        stem = round_channels(B0_STEM, w, divisor)
    else:
        raise ValueError(f"unknown EfficientNet scaling style {style!r}")
    stages = tuple(stage._replace(repeats=round_repeats(stage.repeats, cube.d),
                                  out_chs=round_channels(stage.out_chs, w, divisor)) for stage in B0_STAGES)
    return EffNetArch(stem, head, stages)


def _ds_block(prefix: str, in_chs: int, stage: EffStage, stride: int, size: int) -> Iterator[Layer]:
    """timm DepthwiseSeparableConv: dw conv, SE (reduced from the block input), pw conv. Returns the new size."""
    dw = _conv(prefix + "conv_dw", in_chs, in_chs, size, stage.kernel, stride, groups=in_chs)
    yield dw
    yield _bn(prefix + "bn1", in_chs)
    if stage.se_ratio:
        yield from _se(prefix, in_chs, round(in_chs * stage.se_ratio))
    yield _conv(prefix + "conv_pw", in_chs, stage.out_chs, dw.out_hw)
    yield _bn(prefix + "bn2", stage.out_chs)
    return dw.out_hw


def _ir_block(prefix: str, in_chs: int, stage: EffStage, stride: int, size: int) -> Iterator[Layer]:
    """timm InvertedResidual: pw expansion, dw conv, SE, pw projection. Returns the new size.

    SE reduction: EfficientNetBuilder divides the block's se ratio by exp_ratio (se_from_exp=False), and
    SqueezeExcite rounds ``mid * ratio`` with Python's round: ``round(mid * (0.25 / 6))`` for B0.
    """
    mid = make_divisible(in_chs * stage.exp_ratio)
    yield _conv(prefix + "conv_pw", in_chs, mid, size)
    yield _bn(prefix + "bn1", mid)
    dw = _conv(prefix + "conv_dw", mid, mid, size, stage.kernel, stride, groups=mid)
    yield dw
    yield _bn(prefix + "bn2", mid)
    if stage.se_ratio:
        yield from _se(prefix, mid, round(mid * (stage.se_ratio / stage.exp_ratio)))
    yield _conv(prefix + "conv_pwl", mid, stage.out_chs, dw.out_hw)
    yield _bn(prefix + "bn3", stage.out_chs)
    return dw.out_hw


_EFF_BLOCKS = {"ds": _ds_block, "ir": _ir_block}


def efficientnet_layers(arch: EffNetArch, num_classes: int, img_size: int) -> Iterator[Layer]:
    """timm EfficientNet: 3x3/2 stem, stages (only a stage's first block strides), 1x1 head, classifier."""
    size, chs = (yield from _conv_stem(arch.stem, img_size)), arch.stem
    for s, stage in enumerate(arch.stages):
        for b in range(stage.repeats):
            size = yield from _EFF_BLOCKS[stage.block](
                f"blocks.{s}.{b}.", chs, stage, stage.stride if b == 0 else 1, size)
            chs = stage.out_chs
    yield _conv("conv_head", chs, arch.head, size)
    yield _bn("bn2", arch.head)
    yield from _linear("classifier", arch.head, num_classes)


# --- ResNet-50 (timm ResNet, Bottleneck, make_blocks) ------------------------------------------------------

class ResNetArch(NamedTuple):
    repeats: Tuple[int, ...]
    planes: Tuple[int, ...]


def resnet50_arch(cube: Cube) -> ResNetArch:
    """baselines/resnet.py: repeats rounded to nearest, planes ``make_divisible(p * w, 8)``, 64-channel stem."""
    return ResNetArch(tuple(round_repeats(n, cube.d) for n in RESNET50_LAYERS),
                      tuple(make_divisible(p * cube.w, RESNET_CHANNEL_DIVISOR) for p in RESNET50_PLANES))


def _bottleneck(prefix: str, in_chs: int, planes: int, stride: int, size: int) -> Iterator[Layer]:
    """timm Bottleneck (1x1, 3x3 with the stride, 1x1 x4) and, when the shape changes, its 1x1 downsample."""
    out_chs = planes * RESNET_EXPANSION
    yield _conv(prefix + "conv1", in_chs, planes, size)
    yield _bn(prefix + "bn1", planes)
    conv2 = _conv(prefix + "conv2", planes, planes, size, 3, stride)
    yield conv2
    yield _bn(prefix + "bn2", planes)
    yield _conv(prefix + "conv3", planes, out_chs, conv2.out_hw)
    yield _bn(prefix + "bn3", out_chs)
    if stride != 1 or in_chs != out_chs:  # make_blocks: only a stage's first block can meet this
        yield _conv(prefix + "downsample.0", in_chs, out_chs, size, 1, stride)
        yield _bn(prefix + "downsample.1", out_chs)
    return conv2.out_hw


def resnet50_layers(arch: ResNetArch, num_classes: int, img_size: int) -> Iterator[Layer]:
    """timm ResNet: 7x7/2 stem, 3x3/2 max pool, four stages (stride 1, 2, 2, 2), fc."""
    stem = _conv("conv1", 3, RESNET_STEM, img_size, 7, 2)
    yield stem
    yield _bn("bn1", RESNET_STEM)
    size, chs = _conv_out(stem.out_hw, 3, 2), RESNET_STEM  # max pool
    for s, (repeats, planes) in enumerate(zip(arch.repeats, arch.planes)):
        for b in range(repeats):
            stride = 2 if s > 0 and b == 0 else 1
            size = yield from _bottleneck(f"layer{s + 1}.{b}.", chs, planes, stride, size)
            chs = planes * RESNET_EXPANSION
    yield from _linear("fc", chs, num_classes)


# --- GhostNet-A (baselines/ghostnet.py CubeGhostNet over timm GhostBottleneck / GhostModule) ---------------

class GhostBlock(NamedTuple):
    """timm GhostNet cfg entry: depthwise kernel, mid channels, out channels, SE ratio, stride."""

    kernel: int
    mid_chs: int
    out_chs: int
    se_ratio: float
    stride: int


class GhostNetArch(NamedTuple):
    stem: int
    stages: Tuple[Tuple[GhostBlock, ...], ...]
    final: int
    head: int


def ghost_width(channels: float, w: float) -> int:
    return make_divisible(channels * w, GHOST_CHANNEL_DIVISOR)


def ghostnet_a_arch(cube: Cube) -> GhostNetArch:
    """baselines/ghostnet.py ``GhostNetA.model_kwargs``: rows of Table 7, widths divisible by 4, expansion
    relative to the block input, a stride-2 block as a stage of its own, final 1x1 conv to the last block's
    mid width, head ``max(1400, 1400 w)``."""
    stem = prev = ghost_width(GHOSTNET_A_STEM, cube.w)
    stages = []
    for kernel, expansion, out, se, stride, repeats in GHOSTNET_A_ROWS:
        out = ghost_width(out, cube.w)
        blocks = []
        for i in range(round_repeats(repeats, cube.d)):
            blocks.append(GhostBlock(kernel, make_divisible(expansion * prev, GHOST_CHANNEL_DIVISOR), out, se,
                                     stride if i == 0 else 1))
            prev = out
        if stride > 1:
            stages.append(tuple(blocks[:1]))
            blocks = blocks[1:]
        if blocks:
            stages.append(tuple(blocks))
    head = max(GHOSTNET_A_HEAD, ghost_width(GHOSTNET_A_HEAD, cube.w))
    return GhostNetArch(stem, tuple(stages), stages[-1][-1].mid_chs, head)


def _ghost_module(prefix: str, in_chs: int, out_chs: int, size: int) -> Iterator[Layer]:
    """timm GhostModule (ratio 2, dw 3x3): 1x1 primary conv to ceil(out / 2) channels, a depthwise 3x3 cheap
    operation of as many channels (its outputs are counted before the concat is cut to ``out_chs``)."""
    init = math.ceil(out_chs / 2)
    yield _conv(prefix + "primary_conv.0", in_chs, init, size)
    yield _bn(prefix + "primary_conv.1", init)
    yield _conv(prefix + "cheap_operation.0", init, init, size, 3, 1, groups=init)
    yield _bn(prefix + "cheap_operation.1", init)


def _ghost_bottleneck(prefix: str, in_chs: int, block: GhostBlock, size: int) -> Iterator[Layer]:
    """timm GhostBottleneck: a depthwise + 1x1 shortcut when the shape changes, ghost1, a strided depthwise conv
    (stride > 1 only), SE, ghost2. Returns the new size."""
    mid, out, stride = block.mid_chs, block.out_chs, block.stride
    out_size = _conv_out(size, block.kernel, stride)
    if not (in_chs == out and stride == 1):  # baselines' DropPathGhostBottleneck runs the shortcut first
        yield _conv(prefix + "shortcut.0", in_chs, in_chs, size, block.kernel, stride, groups=in_chs)
        yield _bn(prefix + "shortcut.1", in_chs)
        yield _conv(prefix + "shortcut.2", in_chs, out, out_size)
        yield _bn(prefix + "shortcut.3", out)
    yield from _ghost_module(prefix + "ghost1.", in_chs, mid, size)
    if stride > 1:
        yield _conv(prefix + "conv_dw", mid, mid, size, block.kernel, stride, groups=mid)
        yield _bn(prefix + "bn_dw", mid)
    if block.se_ratio > 0:
        yield from _se(prefix, mid, make_divisible(mid * block.se_ratio, GHOST_SE_DIVISOR))
    yield from _ghost_module(prefix + "ghost2.", mid, out, out_size)
    return out_size


def ghostnet_a_layers(arch: GhostNetArch, num_classes: int, img_size: int) -> Iterator[Layer]:
    """CubeGhostNet: 3x3/2 stem, bottleneck stages, 1x1 ConvBnAct stage, pool, biased 1x1 conv_head, classifier."""
    size, chs = (yield from _conv_stem(arch.stem, img_size)), arch.stem
    for s, stage in enumerate(arch.stages):
        for b, block in enumerate(stage):
            size = yield from _ghost_bottleneck(f"blocks.{s}.{b}.", chs, block, size)
            chs = block.out_chs
    last = f"blocks.{len(arch.stages)}.0."
    yield _conv(last + "conv", chs, arch.final, size)
    yield _bn(last + "bn1", arch.final)
    yield _pooled_conv("conv_head", arch.final, arch.head)
    yield from _linear("classifier", arch.head, num_classes)


# --- Registry and public API -------------------------------------------------------------------------------

Arch = Union[EffNetArch, ResNetArch, GhostNetArch]


class _Family(NamedTuple):
    arch: Callable[[Cube], Arch]
    layers: Callable[[Arch, int, int], Iterator[Layer]]
    base_img_size: int


_FAMILIES: Dict[str, _Family] = {
    "efficientnet_b0": _Family(lambda cube: efficientnet_arch(cube, "tinynet"), efficientnet_layers, B0_IMG_SIZE),
    "efficientnet_b0_compound": _Family(lambda cube: efficientnet_arch(cube, "compound"), efficientnet_layers,
                                        B0_IMG_SIZE),
    "resnet50": _Family(resnet50_arch, resnet50_layers, RESNET_IMG_SIZE),
    "ghostnet_a": _Family(ghostnet_a_arch, ghostnet_a_layers, GHOSTNET_IMG_SIZE),
}
BASELINE_NAMES = tuple(_FAMILIES)


@dataclass(frozen=True)
class Cost:
    """Cost of one network for one image at ``img_size`` x ``img_size``."""

    flops: int  # conv + linear multiply-adds (fvcore)
    params: int  # all parameters of the timm model
    activations: int  # conv + linear output elements
    img_size: int


def _family(baseline) -> _Family:
    name = getattr(baseline, "name", baseline)  # a Baseline object or its name
    try:
        return _FAMILIES[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(BASELINE_NAMES)}") from None


def default_img_size(baseline, cube: Cube) -> int:
    """The cube's input size, as ``Baseline.img_size``: ``int(base_img_size * r)``, at least 32 px."""
    family = _family(baseline)
    size = int(family.base_img_size * cube.r)
    if size < MIN_IMG_SIZE:
        raise ValueError(f"r={cube.r:.4g} gives a {size}px input for {getattr(baseline, 'name', baseline)} "
                         f"(base {family.base_img_size}px); the minimum is {MIN_IMG_SIZE}px")
    return size


def _check_int(name: str, value, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def architecture(baseline, cube: Cube) -> Arch:
    """The cube's architecture as hashable data: equal exactly when two cubes build the same layers."""
    return _family(baseline).arch(cube)


def layers(baseline, cube: Cube, num_classes: int = 1000, img_size: Optional[int] = None) -> Iterator[Layer]:
    """Every conv, linear and batch-norm layer of ``baseline`` twisted by ``cube``, in forward order."""
    family = _family(baseline)
    size = default_img_size(baseline, cube) if img_size is None else _check_int("img_size", img_size, 1)
    return family.layers(family.arch(cube), _check_int("num_classes", num_classes, 0), size)


@lru_cache(maxsize=16384)
def _totals(name: str, arch: Arch, num_classes: int, img_size: int) -> Cost:
    flops = params = activations = 0
    for layer in _FAMILIES[name].layers(arch, num_classes, img_size):
        weights = layer.weights
        if layer.kind == "bn":
            params += 2 * layer.out_chs
            continue
        area = layer.out_hw * layer.out_hw
        flops += weights * area
        activations += layer.out_chs * area
        params += weights + (layer.out_chs if layer.bias else 0)
    return Cost(flops, params, activations, img_size)


def cube_cost_analytic(baseline, cube: Cube, num_classes: int = 1000, img_size: Optional[int] = None) -> Cost:
    """FLOPs, parameters and activations of ``baseline`` twisted by ``cube`` (default input: the cube's own).

    Equals ``count_flops`` / ``count_params`` of the model that ``Baseline.create`` builds (tests check every
    registered model and hundreds of random cubes); cached by (architecture, classes, input size).
    """
    family = _family(baseline)
    size = default_img_size(baseline, cube) if img_size is None else _check_int("img_size", img_size, 1)
    return _totals(getattr(baseline, "name", baseline), family.arch(cube),
                   _check_int("num_classes", num_classes, 0), size)
