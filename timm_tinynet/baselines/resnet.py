"""The ResNet family twisted along (r, d, w), built by timm's ResNet class.

Depth scales the block count of each of the four stages, width every stage's planes (channels divisible by 8),
resolution the input. ``Cube(1, 1, 1)`` is exactly timm's model of the same name (tested state dict and logits).

The stem keeps its width: timm's ResNet hard-codes the single 7x7 conv stem at 64 channels, and the "-D" ResNets'
deep stem keeps its ``stem_width``; as with TinyNet's fixed 32-channel stem, it is a small share of the cost.
"""
from __future__ import annotations

from typing import Any, Dict

import torch.nn as nn
from timm.models.resnet import BasicBlock, Bottleneck, _create_resnet

from tinynet_core import baselines as described
from tinynet_core.cube import Cube
from .base import TimmBaseline, timm_cfg


class ResNetFamily(TimmBaseline, described.ResNetFamily):

    @property
    def default_cfg(self) -> Dict[str, Any]:
        return timm_cfg(self.name)

    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        kwargs = dict(block=Bottleneck if self.spec.block == "bottleneck" else BasicBlock,
                      layers=tuple(self.stage_repeats(cube)), channels=tuple(self.planes(cube)))
        if self.spec.deep_stem:
            kwargs.update(stem_width=self.spec.stem_width, stem_type="deep", avg_down=self.spec.avg_down)
        return kwargs

    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return _create_resnet(variant, pretrained, **self.model_kwargs(cube), **kwargs)


RESNET_FAMILY: Dict[str, ResNetFamily] = {name: ResNetFamily(name) for name in described.RESNET_SPECS}
RESNET50 = RESNET_FAMILY["resnet50"]
