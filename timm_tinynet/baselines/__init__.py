"""Baseline networks that a Cube twists, by name, with their timm builders (``tinynet_core.baselines`` describes
the same baselines without torch or timm)."""
from __future__ import annotations

from typing import Dict

from tinynet_core.baselines import find_baseline

from .base import MIN_IMG_SIZE, Baseline, TimmBaseline
from .efficientnet import COMPOUND_B0, EFFICIENTNET_FAMILY, TINYNET_B0, EfficientNetFamily
from .ghostnet import GHOSTNET_A, CubeGhostNet, GhostNetA
from .resnet import RESNET50, RESNET_FAMILY, ResNetFamily

BASELINES: Dict[str, TimmBaseline] = {**EFFICIENTNET_FAMILY, **RESNET_FAMILY, GHOSTNET_A.name: GHOSTNET_A}


def get_baseline(name: str) -> TimmBaseline:
    return find_baseline(BASELINES, name)


__all__ = [
    "BASELINES", "Baseline", "CubeGhostNet", "EfficientNetFamily", "GhostNetA", "MIN_IMG_SIZE", "ResNetFamily",
    "TimmBaseline", "get_baseline", "COMPOUND_B0", "TINYNET_B0", "RESNET50", "GHOSTNET_A",
]
