"""EfficientNet-B0 twisted along (r, d, w), built by timm's EfficientNet builder.

Two scaling styles share B0's block definitions (``tinynet_core.baselines.EfficientNetB0``):

* ``tinynet`` (TinyNet, Han et al. 2020): depth rounded to nearest, 32-channel stem kept fixed, head
  ``max(1280, round_channels(1280 * w))``. ``Cube(1, 1, 1)`` is exactly EfficientNet-B0.
* ``compound`` (EfficientNet's own, used for the paper's B^-phi): stem and head scale with w as in
  ``timm.models.efficientnet._gen_efficientnet``; depth is rounded to nearest as the paper's B^-phi are.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Dict

import torch.nn as nn
from timm.models._efficientnet_builder import decode_arch_def, resolve_act_layer, resolve_bn_args, round_channels
from timm.models.efficientnet import _create_effnet

from tinynet_core import baselines as described
from tinynet_core.archs import B0_ARCH_DEF, B0_CHANNEL_DIVISOR, B0_STEM
from tinynet_core.cube import Cube
from .base import IMAGENET_CFG, TimmBaseline


class EfficientNetB0(TimmBaseline, described.EfficientNetB0):
    default_cfg = dict(IMAGENET_CFG, interpolation="bicubic", first_conv="conv_stem", classifier="classifier")

    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        return dict(
            block_args=decode_arch_def([list(stage) for stage in B0_ARCH_DEF], cube.d, depth_trunc="round"),
            num_features=self.head_size(cube),
            stem_size=B0_STEM,
            fix_stem=self.style == "tinynet",
            round_chs_fn=partial(round_channels, multiplier=cube.w, divisor=B0_CHANNEL_DIVISOR),
        )

    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        act_layer = resolve_act_layer(kwargs, "swish")
        norm_layer = kwargs.pop("norm_layer", None) or partial(nn.BatchNorm2d, **resolve_bn_args(kwargs))
        return _create_effnet(
            variant, pretrained, act_layer=act_layer, norm_layer=norm_layer, **self.model_kwargs(cube), **kwargs)


TINYNET_B0 = EfficientNetB0("tinynet")
COMPOUND_B0 = EfficientNetB0("compound")
