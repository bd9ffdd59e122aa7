"""The EfficientNet family twisted along (r, d, w), built by timm's EfficientNet builder.

Each baseline is an ``EffNetSpec`` (``tinynet_core.archs``): timm's own arch strings and the rules of the timm
generator of the same name. ``Cube(1, 1, 1)`` is exactly timm's model (tested state dict and logits); a cube feeds
timm's builder the generator's channel multiplier times ``w`` and the generator's blocks per stage scaled by ``d``
(``depth_trunc='round'``, TinyNet's rounding).

``efficientnet_b0`` is TinyNet's B0 (32-channel stem kept, head never below 1280, as timm's ``_gen_tinynet``);
``efficientnet_b0_compound`` is EfficientNet's own rule (stem and head scale with w), used for the paper's B^-phi.
"""
from __future__ import annotations

from functools import partial
from typing import Any, Dict

import torch.nn as nn
from timm.models._efficientnet_blocks import SqueezeExcite
from timm.models._efficientnet_builder import decode_arch_def, resolve_act_layer, resolve_bn_args, round_channels
from timm.models.efficientnet import _create_effnet
from timm.models.mobilenetv3 import _create_mnv3

from tinynet_core import baselines as described
from tinynet_core.archs import B0_CHANNEL_DIVISOR
from tinynet_core.cost import base_stages, fixes_stem, width_multiplier
from tinynet_core.cube import Cube
from .base import TimmBaseline, timm_cfg


class EfficientNetFamily(TimmBaseline, described.EfficientNetFamily):

    @property
    def default_cfg(self) -> Dict[str, Any]:
        return timm_cfg("efficientnet_b0" if self.name.startswith("efficientnet_b0") else self.name)

    def base_arch_def(self):
        """The generator's arch strings with its depth multiplier applied (the repeats of ``Cube(1, 1, 1)``)."""
        return [[described._REPEATS.sub(f"_r{block.repeats}", string, count=1) for string, block in zip(stage, blocks)]
                for stage, blocks in zip(self.spec.arch_def, base_stages(self.spec))]

    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        multiplier = width_multiplier(self.spec, cube)
        kwargs = dict(
            block_args=decode_arch_def(self.base_arch_def(), cube.d, depth_trunc="round",
                                       fix_first_last=self.spec.fix_first_last),
            num_features=self.head_size(cube),
            stem_size=self.spec.stem,
            fix_stem=fixes_stem(self.spec, multiplier),
            round_chs_fn=partial(round_channels, multiplier=multiplier, divisor=B0_CHANNEL_DIVISOR),
        )
        if self.spec.model_class == "MobileNetV3":  # timm _gen_mobilenet_v3's SE layer
            kwargs["se_layer"] = partial(SqueezeExcite, gate_layer="hard_sigmoid", force_act_layer=nn.ReLU,
                                         rd_round_fn=round_channels)
        return kwargs

    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        act_layer = resolve_act_layer(kwargs, self.spec.act)
        norm_layer = kwargs.pop("norm_layer", None) or partial(nn.BatchNorm2d, **resolve_bn_args(kwargs))
        create = _create_mnv3 if self.spec.model_class == "MobileNetV3" else _create_effnet
        return create(variant, pretrained, act_layer=act_layer, norm_layer=norm_layer, **self.model_kwargs(cube),
                      **kwargs)


EFFICIENTNET_FAMILY: Dict[str, EfficientNetFamily] = {name: EfficientNetFamily(name) for name in described.EFFNET_SPECS}
TINYNET_B0 = EFFICIENTNET_FAMILY["efficientnet_b0"]
COMPOUND_B0 = EFFICIENTNET_FAMILY["efficientnet_b0_compound"]
