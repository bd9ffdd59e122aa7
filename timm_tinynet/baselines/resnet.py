"""ResNet-50 twisted along (r, d, w), built by timm's ResNet class.

Depth scales the bottleneck count of each of the four stages, width every stage's planes (channels
divisible by 8), resolution the input. ``Cube(1, 1, 1)`` is exactly timm's ``resnet50``.

The 7x7 stem keeps its 64 channels: timm's ResNet hard-codes the single-conv stem width (``stem_width``
only shapes its deep stems), and, as with TinyNet's fixed 32-channel stem, it is a small share of the cost.
"""
from __future__ import annotations

from typing import Any, Dict

import torch.nn as nn
from timm.models.resnet import Bottleneck, _create_resnet

from tinynet_core import baselines as described
from tinynet_core.cube import Cube
from .base import IMAGENET_CFG, TimmBaseline


class ResNet50(TimmBaseline, described.ResNet50):
    default_cfg = dict(IMAGENET_CFG, interpolation="bilinear", first_conv="conv1", classifier="fc")

    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        return dict(block=Bottleneck, layers=tuple(self.stage_repeats(cube)), channels=tuple(self.planes(cube)))

    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return _create_resnet(variant, pretrained, **self.model_kwargs(cube), **kwargs)


RESNET50 = ResNet50()
