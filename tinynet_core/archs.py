"""The baselines' architectures as data, with no torch or timm import: what the builders in ``baselines/`` feed
timm, and what the analytic cost model (``cost.py``) walks. One definition for both, so they cannot drift apart.
"""
from __future__ import annotations

from typing import Tuple

MIN_IMG_SIZE = 32  # below this the five stride-2 stages of every baseline leave a 1x1 map or less

# EfficientNet-B0 in timm's arch-string notation (timm.models.efficientnet._gen_efficientnet)
B0_ARCH_DEF = (
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

# ResNet-50: bottleneck blocks per stage and their planes (timm.models.resnet, Bottleneck.expansion 4)
RESNET50_LAYERS = (3, 4, 6, 3)
RESNET50_PLANES = (64, 128, 256, 512)
RESNET_CHANNEL_DIVISOR = 8
RESNET_STEM = 64
RESNET_EXPANSION = 4
RESNET_IMG_SIZE = 224

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
