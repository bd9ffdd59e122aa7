"""ResNet-50 twisted along (r, d, w) with timm's ResNet class.

Depth scales the bottleneck count of each of the four stages, width every stage's planes (channels
divisible by 8), resolution the input. ``Cube(1, 1, 1)`` is exactly timm's ``resnet50``.

The 7x7 stem keeps its 64 channels: timm's ResNet hard-codes the single-conv stem width (``stem_width``
only shapes its deep stems), and, as with TinyNet's fixed 32-channel stem, it is a small share of the cost.
"""
from __future__ import annotations

from typing import Any, Dict, List

import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD
from timm.layers import make_divisible
from timm.models.resnet import Bottleneck, _create_resnet

from ..archs import RESNET50_LAYERS, RESNET50_PLANES, RESNET_CHANNEL_DIVISOR, RESNET_IMG_SIZE
from ..cube import Cube
from .base import Baseline, round_repeats

CHANNEL_DIVISOR = RESNET_CHANNEL_DIVISOR


class ResNet50(Baseline):
    name = "resnet50"
    generic_model = "resnet50_tiny"  # the registered timm model that takes r/d/w
    base_img_size = RESNET_IMG_SIZE
    default_cfg = dict(
        crop_pct=0.875, interpolation="bilinear", mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
        first_conv="conv1", classifier="fc", license="apache-2.0",
    )

    def stage_repeats(self, cube: Cube) -> List[int]:
        return [round_repeats(n, cube.d) for n in RESNET50_LAYERS]

    def planes(self, cube: Cube) -> List[int]:
        return [make_divisible(p * cube.w, CHANNEL_DIVISOR) for p in RESNET50_PLANES]

    def stage_channels(self, cube: Cube) -> List[int]:
        return [p * Bottleneck.expansion for p in self.planes(cube)]

    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        return dict(
            block=Bottleneck,
            layers=tuple(self.stage_repeats(cube)),
            channels=tuple(self.planes(cube)),
        )

    def arch_key(self, cube: Cube) -> tuple:
        kwargs = self.model_kwargs(cube)
        return kwargs["layers"], kwargs["channels"]

    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        kwargs = self.model_kwargs(cube)
        return dict(block="Bottleneck", layers=list(kwargs["layers"]), channels=list(kwargs["channels"]))

    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return _create_resnet(variant, pretrained, **self.model_kwargs(cube), **kwargs)


RESNET50 = ResNet50()
