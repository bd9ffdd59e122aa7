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
from functools import lru_cache, partial
from typing import Callable, Dict, Iterable, Iterator, NamedTuple, Optional, Sequence, Tuple, Union

from .archs import (B0_CHANNEL_DIVISOR, EFFNET_SPECS, GHOST_CHANNEL_DIVISOR, GHOST_SE_DIVISOR, GHOSTNET_A_HEAD,
                    GHOSTNET_A_ROWS, GHOSTNET_A_STEM, GHOSTNET_IMG_SIZE, MIN_IMG_SIZE, RESNET50_PLANES,
                    RESNET_CHANNEL_DIVISOR, RESNET_EXPANSION, RESNET_SPECS, RESNET_STEM, EffNetSpec, ResNetSpec)
from .cube import Cube

__all__ = [
    "BASELINE_NAMES", "Cost", "Layer", "cube_cost_analytic", "architecture", "layers", "default_img_size",
    "make_divisible", "round_channels", "round_repeats", "scale_stage_depth",
    "efficientnet_arch", "efficientnet_layers", "resnet_arch", "resnet_layers", "ghostnet_a_arch",
    "ghostnet_a_layers", "total_cost", "GHOST_HEAD_RULES",
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


# --- The EfficientNet family (timm EfficientNet / MobileNetV3 / EfficientNetBuilder) ----------------------------

class EffBlock(NamedTuple):
    """One block definition of a stage (one timm block string), repeats and channels already scaled."""

    block: str  # 'ds' (DepthwiseSeparableConv), 'ir' (InvertedResidual) or 'cn' (ConvBnAct)
    repeats: int
    kernel: int
    stride: int
    exp_ratio: float  # InvertedResidual only
    out_chs: int
    se_ratio: float


class EffNetArch(NamedTuple):
    stem: int
    head: int
    stages: Tuple[Tuple[EffBlock, ...], ...]  # each stage: its block definitions, in order


def decode_block(block: str) -> EffBlock:
    """What a timm block string says about cost (timm ``_decode_block_str``): type, r, k, s, e, c, se. Skip and
    activation options ('noskip', 'nre', ...) change no parameter or FLOP and are ignored."""
    block_type, *ops = block.split("_")
    if block_type not in ("ds", "ir", "cn"):
        raise ValueError(f"unsupported block type in {block!r}")
    options = {}
    for op in ops:
        if op in ("skip", "noskip") or op.startswith("n"):
            continue
        key, value = re.split(r"(\d.*)", op)[:2]  # 'se0.25' -> ('se', '0.25')
        options[key] = value
    return EffBlock(
        block=block_type, repeats=int(options["r"]), kernel=int(options["k"]), stride=int(options["s"]),
        exp_ratio=float(options["e"]) if block_type == "ir" else 1.0,  # timm: only ir blocks take exp_ratio
        out_chs=int(options["c"]), se_ratio=float(options.get("se", 0.0)) if block_type != "cn" else 0.0)


def scale_stage_depth(repeats: Sequence[int], multiplier: float, trunc: str) -> Tuple[int, ...]:
    """timm ``_scale_stage_depth`` on a stage's repeat counts: the stage's total scaled ('round': nearest, at least
    one; 'ceil': rounded up), then shared out over its block definitions from the last one back."""
    total = sum(repeats)
    scaled = max(1, round(total * multiplier)) if trunc == "round" else int(math.ceil(total * multiplier))
    out = []
    for r in reversed(repeats):
        share = max(1, round(r / total * scaled))
        out.append(share)
        total -= r
        scaled -= share
    return tuple(reversed(out))


@lru_cache(maxsize=None)
def base_stages(spec: EffNetSpec) -> Tuple[Tuple[EffBlock, ...], ...]:
    """The generator's own network (``Cube(1, 1, 1)``): its arch strings decoded, each stage's repeats scaled by
    its depth multiplier as timm's ``decode_arch_def`` does (rounded up; Lite's first and last stages fixed)."""
    stages = []
    last = len(spec.arch_def) - 1
    for i, stage in enumerate(spec.arch_def):
        blocks = [decode_block(b) for b in stage]
        multiplier = 1.0 if spec.fix_first_last and i in (0, last) else spec.depth_multiplier
        repeats = scale_stage_depth([b.repeats for b in blocks], multiplier, "ceil")
        stages.append(tuple(b._replace(repeats=n) for b, n in zip(blocks, repeats)))
    return tuple(stages)


def width_multiplier(spec: EffNetSpec, cube: Cube) -> float:
    """The channel multiplier timm's builder gets: the generator's own times the cube's width."""
    return spec.channel_multiplier * cube.w


def fixes_stem(spec: EffNetSpec, multiplier: float) -> bool:
    """Whether the stem keeps its width (timm's ``fix_stem``) at this channel multiplier."""
    return spec.stem_rule == "fixed" or (spec.stem_rule == "fixed_below_0.75" and multiplier < 0.75)


def head_width(spec: EffNetSpec, multiplier: float) -> int:
    scaled = round_channels(spec.head, multiplier, B0_CHANNEL_DIVISOR)
    return {"fixed": spec.head, "scaled": scaled, "at_least": max(spec.head, scaled)}[spec.head_rule]


def efficientnet_arch(spec: EffNetSpec, cube: Cube) -> EffNetArch:
    """``spec`` twisted by ``cube``: every block's channels ``round_channels(c, multiplier * w)``, every stage's
    repeats scaled by d with ``depth_trunc='round'`` (TinyNet's rounding), stem and head by the spec's rules."""
    multiplier = width_multiplier(spec, cube)
    base = base_stages(spec)
    last = len(base) - 1
    stages = []
    for i, stage in enumerate(base):
        d = 1.0 if spec.fix_first_last and i in (0, last) else cube.d
        repeats = scale_stage_depth([b.repeats for b in stage], d, "round")
        stages.append(tuple(b._replace(repeats=n, out_chs=round_channels(b.out_chs, multiplier, B0_CHANNEL_DIVISOR))
                            for b, n in zip(stage, repeats)))
    stem = spec.stem if fixes_stem(spec, multiplier) else round_channels(spec.stem, multiplier, B0_CHANNEL_DIVISOR)
    return EffNetArch(stem, head_width(spec, multiplier), tuple(stages))


def _se_width(spec: EffNetSpec, chs: int, block: EffBlock) -> int:
    """timm's SqueezeExcite width: EfficientNet divides the ratio by the expansion (reduced from the block input,
    ``se_from_exp=False``) and rounds with Python's round; MobileNetV3 keeps the ratio and rounds to 8."""
    ratio = block.se_ratio if spec.se_from_exp else block.se_ratio / block.exp_ratio
    return make_divisible(chs * ratio) if spec.se_round == "make_divisible" else round(chs * ratio)


def _ds_block(spec: EffNetSpec, prefix: str, in_chs: int, block: EffBlock, stride: int, size: int
              ) -> Iterator[Layer]:
    """timm DepthwiseSeparableConv: dw conv, SE (on the block input), pw conv. Returns the new size."""
    dw = _conv(prefix + "conv_dw", in_chs, in_chs, size, block.kernel, stride, groups=in_chs)
    yield dw
    yield _bn(prefix + "bn1", in_chs)
    if block.se_ratio:
        yield from _se(prefix, in_chs, _se_width(spec, in_chs, block))
    yield _conv(prefix + "conv_pw", in_chs, block.out_chs, dw.out_hw)
    yield _bn(prefix + "bn2", block.out_chs)
    return dw.out_hw


def _ir_block(spec: EffNetSpec, prefix: str, in_chs: int, block: EffBlock, stride: int, size: int
              ) -> Iterator[Layer]:
    """timm InvertedResidual: pw expansion to ``make_divisible(in * e)``, dw conv, SE, pw projection."""
    mid = make_divisible(in_chs * block.exp_ratio)
    yield _conv(prefix + "conv_pw", in_chs, mid, size)
    yield _bn(prefix + "bn1", mid)
    dw = _conv(prefix + "conv_dw", mid, mid, size, block.kernel, stride, groups=mid)
    yield dw
    yield _bn(prefix + "bn2", mid)
    if block.se_ratio:
        yield from _se(prefix, mid, _se_width(spec, mid, block))
    yield _conv(prefix + "conv_pwl", mid, block.out_chs, dw.out_hw)
    yield _bn(prefix + "bn3", block.out_chs)
    return dw.out_hw


def _cn_block(spec: EffNetSpec, prefix: str, in_chs: int, block: EffBlock, stride: int, size: int
              ) -> Iterator[Layer]:
    """timm ConvBnAct: one conv and its batch norm (MobileNetV3's last stage)."""
    conv = _conv(prefix + "conv", in_chs, block.out_chs, size, block.kernel, stride)
    yield conv
    yield _bn(prefix + "bn1", block.out_chs)
    return conv.out_hw


_EFF_BLOCKS = {"ds": _ds_block, "ir": _ir_block, "cn": _cn_block}


def efficientnet_layers(spec: EffNetSpec, arch: EffNetArch, num_classes: int, img_size: int) -> Iterator[Layer]:
    """timm EfficientNet / MobileNetV3: 3x3/2 stem, stages (only a definition's first block strides), then
    EfficientNet's 1x1 conv + BN head or MobileNetV3's pooled, biased 1x1 conv head, and the classifier."""
    size, chs = (yield from _conv_stem(arch.stem, img_size)), arch.stem
    for s, stage in enumerate(arch.stages):
        b = 0
        for block in stage:
            for i in range(block.repeats):
                size = yield from _EFF_BLOCKS[block.block](
                    spec, f"blocks.{s}.{b}.", chs, block, block.stride if i == 0 else 1, size)
                chs, b = block.out_chs, b + 1
    if spec.head_kind == "pooled_conv":
        yield _pooled_conv("conv_head", chs, arch.head)
    else:
        yield _conv("conv_head", chs, arch.head, size)
        yield _bn("bn2", arch.head)
    yield from _linear("classifier", arch.head, num_classes)


# --- The ResNet family (timm ResNet, BasicBlock / Bottleneck, make_blocks) ------------------------------------

class ResNetArch(NamedTuple):
    repeats: Tuple[int, ...]
    planes: Tuple[int, ...]


def resnet_expansion(spec: ResNetSpec) -> int:
    return RESNET_EXPANSION if spec.block == "bottleneck" else 1


def resnet_arch(spec: ResNetSpec, cube: Cube) -> ResNetArch:
    """baselines/resnet.py: repeats rounded to nearest (at least one), planes ``make_divisible(p * w, 8)``."""
    return ResNetArch(tuple(round_repeats(n, cube.d) for n in spec.layers),
                      tuple(make_divisible(p * cube.w, RESNET_CHANNEL_DIVISOR) for p in RESNET50_PLANES))


def _avg_pool_out(size: int) -> int:
    """nn.AvgPool2d(2, 2, ceil_mode=True) output side (a window may not start beyond the input)."""
    out = -(-(size - 2) // 2) + 1
    return out - 1 if (out - 1) * 2 >= size else out


def _downsample(spec: ResNetSpec, prefix: str, in_chs: int, out_chs: int, stride: int, size: int
                ) -> Iterator[Layer]:
    """timm ``downsample_conv`` (a strided 1x1 conv) or ``downsample_avg`` (2x2 average pool when strided, then a
    stride-1 1x1 conv), each with its batch norm."""
    if spec.avg_down:
        yield Layer(prefix + "downsample.1", "conv", in_chs, out_chs, out_hw=_avg_pool_out(size) if stride > 1
                    else size)
        yield _bn(prefix + "downsample.2", out_chs)
    else:
        yield _conv(prefix + "downsample.0", in_chs, out_chs, size, 1, stride)
        yield _bn(prefix + "downsample.1", out_chs)


def _basic(spec: ResNetSpec, prefix: str, in_chs: int, planes: int, stride: int, size: int) -> Iterator[Layer]:
    """timm BasicBlock: 3x3 with the stride, 3x3, and a downsample when the shape changes."""
    conv1 = _conv(prefix + "conv1", in_chs, planes, size, 3, stride)
    yield conv1
    yield _bn(prefix + "bn1", planes)
    yield _conv(prefix + "conv2", planes, planes, conv1.out_hw, 3, 1)
    yield _bn(prefix + "bn2", planes)
    if stride != 1 or in_chs != planes:  # make_blocks: only a stage's first block can meet this
        yield from _downsample(spec, prefix, in_chs, planes, stride, size)
    return conv1.out_hw


def _bottleneck(spec: ResNetSpec, prefix: str, in_chs: int, planes: int, stride: int, size: int
                ) -> Iterator[Layer]:
    """timm Bottleneck (1x1, 3x3 with the stride, 1x1 x4) and, when the shape changes, its downsample."""
    out_chs = planes * RESNET_EXPANSION
    yield _conv(prefix + "conv1", in_chs, planes, size)
    yield _bn(prefix + "bn1", planes)
    conv2 = _conv(prefix + "conv2", planes, planes, size, 3, stride)
    yield conv2
    yield _bn(prefix + "bn2", planes)
    yield _conv(prefix + "conv3", planes, out_chs, conv2.out_hw)
    yield _bn(prefix + "bn3", out_chs)
    if stride != 1 or in_chs != out_chs:  # make_blocks: only a stage's first block can meet this
        yield from _downsample(spec, prefix, in_chs, out_chs, stride, size)
    return conv2.out_hw


def _resnet_stem(spec: ResNetSpec, img_size: int) -> Iterator[Layer]:
    """A 7x7/2 conv to 64 channels, or the deep stem (3x3/2, 3x3, 3x3 to twice the stem width); returns
    (output side, channels)."""
    if spec.deep_stem:
        width = spec.stem_width
        first = _conv("conv1.0", 3, width, img_size, 3, 2)
        yield first
        yield _bn("conv1.1", width)
        yield _conv("conv1.3", width, width, first.out_hw, 3, 1)
        yield _bn("conv1.4", width)
        yield _conv("conv1.6", width, 2 * width, first.out_hw, 3, 1)
        chs = 2 * width
    else:
        first = _conv("conv1", 3, RESNET_STEM, img_size, 7, 2)
        yield first
        chs = RESNET_STEM
    yield _bn("bn1", chs)
    return first.out_hw, chs


def resnet_layers(spec: ResNetSpec, arch: ResNetArch, num_classes: int, img_size: int) -> Iterator[Layer]:
    """timm ResNet: stem, 3x3/2 max pool, four stages (stride 1, 2, 2, 2), fc."""
    size, chs = yield from _resnet_stem(spec, img_size)
    size = _conv_out(size, 3, 2)  # max pool
    block, expansion = (_bottleneck if spec.block == "bottleneck" else _basic), resnet_expansion(spec)
    for s, (repeats, planes) in enumerate(zip(arch.repeats, arch.planes)):
        for b in range(repeats):
            stride = 2 if s > 0 and b == 0 else 1
            size = yield from block(spec, f"layer{s + 1}.{b}.", chs, planes, stride, size)
            chs = planes * expansion
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


GHOST_HEAD_RULES = ("at_least", "scaled")  # TinyNet's (the head never narrows) and EfficientNet's (it scales with w)


def ghostnet_a_arch(cube: Cube, head_rule: str = "at_least") -> GhostNetArch:
    """baselines/ghostnet.py ``GhostNetA.model_kwargs``: rows of Table 7, widths divisible by 4, expansion
    relative to the block input, a stride-2 block as a stage of its own, final 1x1 conv to the last block's
    mid width, head ``max(1400, 1400 w)`` (TinyNet's rule; ``head_rule='scaled'``: ``1400 w``, the comparison of
    ``report.ghostnet_head_rule_table``)."""
    if head_rule not in GHOST_HEAD_RULES:
        raise ValueError(f"unknown GhostNet head rule {head_rule!r}; choose from {', '.join(GHOST_HEAD_RULES)}")
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
    head = ghost_width(GHOSTNET_A_HEAD, cube.w)
    if head_rule == "at_least":
        head = max(GHOSTNET_A_HEAD, head)
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
    **{name: _Family(partial(efficientnet_arch, spec), partial(efficientnet_layers, spec), spec.img_size)
       for name, spec in EFFNET_SPECS.items()},
    **{name: _Family(partial(resnet_arch, spec), partial(resnet_layers, spec), spec.img_size)
       for name, spec in RESNET_SPECS.items()},
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
    return total_cost(_FAMILIES[name].layers(arch, num_classes, img_size), img_size)


def total_cost(layers: Iterable[Layer], img_size: int) -> Cost:
    """FLOPs, parameters and activations summed over ``layers`` (one network at ``img_size``)."""
    flops = params = activations = 0
    for layer in layers:
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
