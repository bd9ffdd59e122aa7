"""The baselines' architectures as data, with no torch or timm import: what the builders in ``baselines/`` feed
timm, and what the analytic cost model (``cost.py``) walks. One definition for both, so they cannot drift apart.
"""
from __future__ import annotations

import re
from typing import Dict, NamedTuple, Tuple

MIN_IMG_SIZE = 32  # below this the five stride-2 stages of every baseline leave a 1x1 map or less

ArchDef = Tuple[Tuple[str, ...], ...]  # timm arch strings: one tuple of block definitions per stage

# EfficientNet-B0 in timm's arch-string notation (timm.models.efficientnet._gen_efficientnet)
B0_ARCH_DEF: ArchDef = (
    ("ds_r1_k3_s1_e1_c16_se0.25",),
    ("ir_r2_k3_s2_e6_c24_se0.25",),
    ("ir_r2_k5_s2_e6_c40_se0.25",),
    ("ir_r3_k3_s2_e6_c80_se0.25",),
    ("ir_r3_k5_s1_e6_c112_se0.25",),
    ("ir_r4_k5_s2_e6_c192_se0.25",),
    ("ir_r1_k3_s1_e6_c320_se0.25",),
)
B0_STEM = 32
B0_HEAD = 1280
B0_CHANNEL_DIVISOR = 8
B0_IMG_SIZE = 224

# The other EfficientNet-family generators of timm.models.efficientnet / mobilenetv3, their arch strings as timm
# writes them (_gen_efficientnet_lite, _gen_mobilenet_v2, _gen_mobilenet_v3, _gen_mnasnet_b1/_a1, _gen_spnasnet,
# _gen_fbnetc).
LITE_ARCH_DEF: ArchDef = tuple((re.sub(r"_se0\.25$", "", stage[0]),) for stage in B0_ARCH_DEF)
MOBILENETV2_ARCH_DEF: ArchDef = (
    ("ds_r1_k3_s1_c16",),
    ("ir_r2_k3_s2_e6_c24",),
    ("ir_r3_k3_s2_e6_c32",),
    ("ir_r4_k3_s2_e6_c64",),
    ("ir_r3_k3_s1_e6_c96",),
    ("ir_r3_k3_s2_e6_c160",),
    ("ir_r1_k3_s1_e6_c320",),
)
MOBILENETV3_LARGE_ARCH_DEF: ArchDef = (
    ("ds_r1_k3_s1_e1_c16_nre",),
    ("ir_r1_k3_s2_e4_c24_nre", "ir_r1_k3_s1_e3_c24_nre"),
    ("ir_r3_k5_s2_e3_c40_se0.25_nre",),
    ("ir_r1_k3_s2_e6_c80", "ir_r1_k3_s1_e2.5_c80", "ir_r2_k3_s1_e2.3_c80"),
    ("ir_r2_k3_s1_e6_c112_se0.25",),
    ("ir_r3_k5_s2_e6_c160_se0.25",),
    ("cn_r1_k1_s1_c960",),
)
MOBILENETV3_SMALL_ARCH_DEF: ArchDef = (
    ("ds_r1_k3_s2_e1_c16_se0.25_nre",),
    ("ir_r1_k3_s2_e4.5_c24_nre", "ir_r1_k3_s1_e3.67_c24_nre"),
    ("ir_r1_k5_s2_e4_c40_se0.25", "ir_r2_k5_s1_e6_c40_se0.25"),
    ("ir_r2_k5_s1_e3_c48_se0.25",),
    ("ir_r3_k5_s2_e6_c96_se0.25",),
    ("cn_r1_k1_s1_c576",),
)
MNASNET_B1_ARCH_DEF: ArchDef = (
    ("ds_r1_k3_s1_c16_noskip",),
    ("ir_r3_k3_s2_e3_c24",),
    ("ir_r3_k5_s2_e3_c40",),
    ("ir_r3_k5_s2_e6_c80",),
    ("ir_r2_k3_s1_e6_c96",),
    ("ir_r4_k5_s2_e6_c192",),
    ("ir_r1_k3_s1_e6_c320_noskip",),
)
MNASNET_A1_ARCH_DEF: ArchDef = (
    ("ds_r1_k3_s1_e1_c16_noskip",),
    ("ir_r2_k3_s2_e6_c24",),
    ("ir_r3_k5_s2_e3_c40_se0.25",),
    ("ir_r4_k3_s2_e6_c80",),
    ("ir_r2_k3_s1_e6_c112_se0.25",),
    ("ir_r3_k5_s2_e6_c160_se0.25",),
    ("ir_r1_k3_s1_e6_c320",),
)
SPNASNET_ARCH_DEF: ArchDef = (
    ("ds_r1_k3_s1_c16_noskip",),
    ("ir_r3_k3_s2_e3_c24",),
    ("ir_r1_k5_s2_e6_c40", "ir_r3_k3_s1_e3_c40"),
    ("ir_r1_k5_s2_e6_c80", "ir_r3_k3_s1_e3_c80"),
    ("ir_r1_k5_s1_e6_c96", "ir_r3_k5_s1_e3_c96"),
    ("ir_r4_k5_s2_e6_c192",),
    ("ir_r1_k3_s1_e6_c320_noskip",),
)
FBNETC_ARCH_DEF: ArchDef = (
    ("ir_r1_k3_s1_e1_c16",),
    ("ir_r1_k3_s2_e6_c24", "ir_r2_k3_s1_e1_c24"),
    ("ir_r1_k5_s2_e6_c32", "ir_r1_k5_s1_e3_c32", "ir_r1_k5_s1_e6_c32", "ir_r1_k3_s1_e6_c32"),
    ("ir_r1_k5_s2_e6_c64", "ir_r1_k5_s1_e3_c64", "ir_r2_k5_s1_e6_c64"),
    ("ir_r3_k5_s1_e6_c112", "ir_r1_k5_s1_e3_c112"),
    ("ir_r4_k5_s2_e6_c184",),
    ("ir_r1_k3_s1_e6_c352",),
)


class EffNetSpec(NamedTuple):
    """An EfficientNet-family network as one of timm's generators builds it, and the rules its width scales by.

    ``Cube(1, 1, 1)`` is exactly timm's model of the same name. A cube twists it as timm's own multipliers would:
    the width multiplies the generator's channel multiplier (``round_channels(c, channel_multiplier * w)``), and
    the depth scales the generator's own blocks per stage (after its depth multiplier) with timm's
    ``_scale_stage_depth(..., depth_trunc='round')``, the TinyNet convention.
    """

    arch_def: ArchDef
    img_size: int  # input side at r = 1: timm's default pretrained cfg for the model
    channel_multiplier: float = 1.0
    depth_multiplier: float = 1.0  # the generator's, rounded up per stage (timm's default depth_trunc 'ceil')
    fix_first_last: bool = False  # first and last stage never change depth (EfficientNet-Lite)
    stem: int = 32
    stem_rule: str = "scaled"  # 'scaled' | 'fixed' | 'fixed_below_0.75' (MobileNetV3: fixed below that multiplier)
    head: int = 1280
    head_rule: str = "scaled"  # 'scaled' | 'fixed' | 'at_least' (never below ``head``)
    head_kind: str = "conv_bn"  # 'conv_bn': 1x1 conv + BN before pooling; 'pooled_conv': MobileNetV3's efficient head
    se_from_exp: bool = False  # SE reduced from the expanded width at the full ratio (MobileNetV3)
    se_round: str = "round"  # how SE rounds its reduced width: Python's round, or 'make_divisible' (8)
    act: str = "relu"  # the generator's default activation (timm name)
    model_class: str = "EfficientNet"  # 'EfficientNet' or 'MobileNetV3'


_MNV3 = dict(stem=16, stem_rule="fixed_below_0.75", head_rule="fixed", head_kind="pooled_conv", se_from_exp=True,
             se_round="make_divisible", act="hard_swish", model_class="MobileNetV3")
EFFNET_SPECS: Dict[str, EffNetSpec] = {
    # TinyNet's own EfficientNet-B0: fixed 32-channel stem, head never below 1280 (timm _gen_tinynet)
    "efficientnet_b0": EffNetSpec(B0_ARCH_DEF, B0_IMG_SIZE, stem_rule="fixed", head_rule="at_least", act="swish"),
    # EfficientNet's own scaling of B0 (stem and head scale with w): the paper's B^-phi
    "efficientnet_b0_compound": EffNetSpec(B0_ARCH_DEF, B0_IMG_SIZE, act="swish"),
    "efficientnet_b1": EffNetSpec(B0_ARCH_DEF, 240, 1.0, 1.1, act="swish"),
    "efficientnet_b2": EffNetSpec(B0_ARCH_DEF, 256, 1.1, 1.2, act="swish"),
    "efficientnet_b3": EffNetSpec(B0_ARCH_DEF, 288, 1.2, 1.4, act="swish"),
    "efficientnet_lite0": EffNetSpec(LITE_ARCH_DEF, 224, fix_first_last=True, stem_rule="fixed", head_rule="fixed",
                                     act="relu6"),
    "mobilenetv2_100": EffNetSpec(MOBILENETV2_ARCH_DEF, 224, head_rule="at_least", act="relu6"),
    "mobilenetv2_140": EffNetSpec(MOBILENETV2_ARCH_DEF, 224, 1.4, head_rule="at_least", act="relu6"),
    "mobilenetv3_large_100": EffNetSpec(MOBILENETV3_LARGE_ARCH_DEF, 224, **_MNV3),
    "mobilenetv3_small_100": EffNetSpec(MOBILENETV3_SMALL_ARCH_DEF, 224, **{**_MNV3, "head": 1024}),
    "mnasnet_100": EffNetSpec(MNASNET_B1_ARCH_DEF, 224, head_rule="fixed"),
    "semnasnet_100": EffNetSpec(MNASNET_A1_ARCH_DEF, 224, head_rule="fixed"),
    "spnasnet_100": EffNetSpec(SPNASNET_ARCH_DEF, 224, head_rule="fixed"),
    "fbnetc_100": EffNetSpec(FBNETC_ARCH_DEF, 224, stem=16, head=1984, head_rule="fixed"),
}

# ResNet-50: bottleneck blocks per stage and their planes (timm.models.resnet, Bottleneck.expansion 4)
RESNET50_LAYERS = (3, 4, 6, 3)
RESNET50_PLANES = (64, 128, 256, 512)
RESNET_CHANNEL_DIVISOR = 8
RESNET_STEM = 64
RESNET_EXPANSION = 4
RESNET_IMG_SIZE = 224


class ResNetSpec(NamedTuple):
    """A timm ResNet (``timm.models.resnet``'s ``model_args``). A cube scales every stage's planes
    (``make_divisible(p * w, 8)``) and blocks (nearest, at least one); the stem keeps its width."""

    block: str  # 'basic' (BasicBlock, expansion 1) or 'bottleneck' (Bottleneck, expansion 4)
    layers: Tuple[int, ...]
    img_size: int = RESNET_IMG_SIZE
    stem_width: int = RESNET_STEM  # the deep stem's first two convs; a single 7x7 conv stem is always 64 wide
    deep_stem: bool = False  # stem_type='deep': three 3x3 convs (the "-D" ResNets)
    avg_down: bool = False  # downsample by average pooling, then a stride-1 1x1 conv


_D = dict(stem_width=32, deep_stem=True, avg_down=True)
RESNET_SPECS: Dict[str, ResNetSpec] = {
    "resnet18": ResNetSpec("basic", (2, 2, 2, 2)),
    "resnet18d": ResNetSpec("basic", (2, 2, 2, 2), **_D),
    "resnet26": ResNetSpec("bottleneck", (2, 2, 2, 2)),
    "resnet26d": ResNetSpec("bottleneck", (2, 2, 2, 2), **_D),
    "resnet34": ResNetSpec("basic", (3, 4, 6, 3)),
    "resnet34d": ResNetSpec("basic", (3, 4, 6, 3), **_D),
    "resnet50": ResNetSpec("bottleneck", RESNET50_LAYERS),
    "resnet50d": ResNetSpec("bottleneck", RESNET50_LAYERS, **_D),
    "resnet101": ResNetSpec("bottleneck", (3, 4, 23, 3)),
    "resnet101d": ResNetSpec("bottleneck", (3, 4, 23, 3), img_size=256, **_D),
    "resnet152": ResNetSpec("bottleneck", (3, 8, 36, 3)),
}

# GhostNet-A, one row per line of the paper's Table 7:
# (dw kernel, expansion ratio, out channels, se ratio, stride, repeats)
GHOSTNET_A_ROWS: Tuple[Tuple[int, float, int, float, int, int], ...] = (
    (5, 1.0, 28, 0.1, 1, 1),
    (5, 3.0, 44, 0.1, 2, 1),
    (5, 3.0, 44, 0.1, 1, 1),
    (5, 3.0, 72, 0.1, 2, 1),
    (5, 3.0, 72, 0.1, 1, 2),
    (5, 6.0, 140, 0.1, 2, 1),
    (5, 2.5, 140, 0.1, 1, 3),
    (5, 6.0, 196, 0.1, 1, 3),
    (5, 6.0, 280, 0.1, 2, 1),
    (5, 6.0, 280, 0.1, 1, 5),
)
GHOSTNET_A_STEM = 28
GHOSTNET_A_HEAD = 1400
GHOST_CHANNEL_DIVISOR = 4
GHOST_SE_DIVISOR = 4  # timm ghostnet _SE_LAYER: rd_round_fn=partial(make_divisible, divisor=4)
GHOSTNET_IMG_SIZE = 240
