"""The paper's named networks as cubes of a baseline: the data behind the timm entrypoints of ``timm_tinynet.models``.

Torch-free, so the default frontier (the released TinyNets) and the solver's tests read it without timm.
"""
from __future__ import annotations

from typing import Dict, Tuple

from .cube import Cube

# Released TinyNets (huawei-noah/CV-Backbones, identical to timm's tinynet_a..e).
TINYNET_CUBES: Dict[str, Cube] = {
    "tinynet_a": Cube(0.86, 1.2, 1.0),
    "tinynet_b": Cube(0.84, 1.1, 0.75),
    "tinynet_c": Cube(0.825, 0.85, 0.54),
    "tinynet_d": Cube(0.68, 0.695, 0.54),
    "tinynet_e": Cube(0.475, 0.6, 0.51),
}
# EfficientNet-B^-phi from ``solve.efficientnet_b_minus`` (frozen here; tests re-derive them).
B_MINUS_CUBES: Dict[str, Cube] = {
    "efficientnet_bm1": Cube(0.86, 0.8, 0.89),
    "efficientnet_bm2": Cube(0.715, 0.63, 0.78),
    "efficientnet_bm3": Cube(0.61, 0.49, 0.69),
    "efficientnet_bm4": Cube(0.5, 0.37, 0.6),
}
# Inverse giant formula on ResNet-50 at the FLOPs of ResNet-34 (a) and ResNet-18 (b), paper Table 2.
RESNET50_GIANT_PHI: Dict[str, float] = {"resnet50_giant_a": -0.42, "resnet50_giant_b": -1.31}

# The tiny formula (default frontier) at the paper's FLOPs budgets (Tables 2 and 6): model -> (baseline, target
# FLOPs) and the cube it gives, frozen here; tests re-derive them with shrink(baseline, target / C0, "tiny").
FORMULA_TARGETS: Dict[str, Tuple[str, float]] = {
    "resnet50_tiny_a": ("resnet50", 3.6e9),
    "resnet50_tiny_b": ("resnet50", 1.8e9),
    "ghostnet_b": ("ghostnet_a", 300e6),
    "ghostnet_c": ("ghostnet_a", 141e6),
    "ghostnet_d": ("ghostnet_a", 52e6),
}
FORMULA_CUBES: Dict[str, Cube] = {
    "resnet50_tiny_a": Cube(0.86, 1.22, 0.99),
    "resnet50_tiny_b": Cube(0.84, 1.01, 0.78),
    "ghostnet_b": Cube(0.843, 1.05, 0.806),
    "ghostnet_c": Cube(0.815, 0.85, 0.56),
    "ghostnet_d": Cube(0.556, 0.64, 0.527),
}

# model name -> (baseline name, cube) for every fixed-architecture model of the paper
NAMED_CUBES: Dict[str, Tuple[str, Cube]] = {
    **{name: ("efficientnet_b0", cube) for name, cube in TINYNET_CUBES.items()},
    **{name: ("efficientnet_b0_compound", cube) for name, cube in B_MINUS_CUBES.items()},
    **{name: ("resnet50", Cube.giant(phi)) for name, phi in RESNET50_GIANT_PHI.items()},
    "ghostnet_a": ("ghostnet_a", Cube()),
    **{name: (FORMULA_TARGETS[name][0], cube) for name, cube in FORMULA_CUBES.items()},
}
