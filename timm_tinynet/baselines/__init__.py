"""Baseline networks that a Cube twists, by name, with their timm builders (``tinynet_core.baselines`` describes
the same baselines without torch or timm)."""
from __future__ import annotations

from typing import Dict

from tinynet_core.baselines import find_baseline

from .base import MIN_IMG_SIZE, Baseline, TimmBaseline
from .efficientnet import COMPOUND_B0, TINYNET_B0, EfficientNetB0
from .ghostnet import GHOSTNET_A, CubeGhostNet, GhostNetA
from .resnet import RESNET50, ResNet50

BASELINES: Dict[str, TimmBaseline] = {b.name: b for b in (TINYNET_B0, COMPOUND_B0, RESNET50, GHOSTNET_A)}


def get_baseline(name: str) -> TimmBaseline:
    return find_baseline(BASELINES, name)


__all__ = [
    "BASELINES", "Baseline", "CubeGhostNet", "EfficientNetB0", "GhostNetA", "MIN_IMG_SIZE", "ResNet50",
    "TimmBaseline", "get_baseline", "COMPOUND_B0", "TINYNET_B0", "RESNET50", "GHOSTNET_A",
]
