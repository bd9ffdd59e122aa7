"""EfficientNet-B0 twisted along (r, d, w) with timm's EfficientNet builder.

Two scaling styles share B0's block definitions:

* ``tinynet`` (TinyNet, Han et al. 2020): depth rounded to nearest, 32-channel stem kept fixed, head
  ``max(1280, round_channels(1280 * w))``. ``Cube(1, 1, 1)`` is exactly EfficientNet-B0.
* ``compound`` (EfficientNet's own, used for the paper's B^-phi): stem and head scale with w as in
  ``timm.models.efficientnet._gen_efficientnet``; depth is rounded to nearest as the paper's B^-phi are.
"""
from __future__ import annotations

import re
from functools import partial
from typing import Any, Dict, List

import torch.nn as nn
from timm.models._efficientnet_builder import decode_arch_def, resolve_act_layer, resolve_bn_args, round_channels
from timm.models.efficientnet import _create_effnet
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from ..archs import B0_ARCH_DEF, B0_CHANNEL_DIVISOR, B0_HEAD, B0_IMG_SIZE, B0_STEM
from ..cube import Cube
from .base import Baseline, round_repeats

CHANNEL_DIVISOR = B0_CHANNEL_DIVISOR

_REPEATS = re.compile(r"_r(\d+)")
_CHANNELS = re.compile(r"_c(\d+)")


def _stage_base(block: str, pattern: re.Pattern) -> int:
    return int(pattern.search(block).group(1))


class EfficientNetB0(Baseline):
    base_img_size = B0_IMG_SIZE
    default_cfg = dict(
        crop_pct=0.875, interpolation="bicubic", mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD,
        first_conv="conv_stem", classifier="classifier", license="apache-2.0",
    )

    def __init__(self, style: str) -> None:
        if style not in ("tinynet", "compound"):
            raise ValueError(f"unknown EfficientNet scaling style {style!r}")
        self.style = style
        self.name = "efficientnet_b0" if style == "tinynet" else "efficientnet_b0_compound"
        self.generic_model = "tinynet" if style == "tinynet" else None

    def stem_size(self, cube: Cube) -> int:
        return B0_STEM if self.style == "tinynet" else round_channels(B0_STEM, cube.w, CHANNEL_DIVISOR)

    def head_size(self, cube: Cube) -> int:
        scaled = round_channels(B0_HEAD, cube.w, CHANNEL_DIVISOR, None)
        return max(B0_HEAD, scaled) if self.style == "tinynet" else scaled

    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        return dict(
            block_args=decode_arch_def([list(stage) for stage in B0_ARCH_DEF], cube.d, depth_trunc="round"),
            num_features=self.head_size(cube),
            stem_size=B0_STEM,
            fix_stem=self.style == "tinynet",
            round_chs_fn=partial(round_channels, multiplier=cube.w, divisor=CHANNEL_DIVISOR),
        )

    def arch_key(self, cube: Cube) -> tuple:
        return (self.style, self.stem_size(cube), self.head_size(cube),
                tuple(self.stage_repeats(cube)), tuple(self.stage_channels(cube)))

    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        return dict(arch_def=self.arch_def(cube), stem_size=self.stem_size(cube), num_features=self.head_size(cube))

    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        act_layer = resolve_act_layer(kwargs, "swish")
        norm_layer = kwargs.pop("norm_layer", None) or partial(nn.BatchNorm2d, **resolve_bn_args(kwargs))
        return _create_effnet(
            variant, pretrained, act_layer=act_layer, norm_layer=norm_layer, **self.model_kwargs(cube), **kwargs)

    def stage_repeats(self, cube: Cube) -> List[int]:
        return [round_repeats(_stage_base(stage[0], _REPEATS), cube.d) for stage in B0_ARCH_DEF]

    def stage_channels(self, cube: Cube) -> List[int]:
        return [round_channels(_stage_base(stage[0], _CHANNELS), cube.w, CHANNEL_DIVISOR) for stage in B0_ARCH_DEF]

    def arch_def(self, cube: Cube) -> List[List[str]]:
        """timm arch strings of the twisted network, with repeats and channels already scaled.

        ``decode_arch_def(arch_def(cube))`` with no multipliers, stem ``stem_size(cube)`` and head
        ``head_size(cube)`` rebuilds exactly this model.
        """
        out = []
        for stage, repeats, channels in zip(B0_ARCH_DEF, self.stage_repeats(cube), self.stage_channels(cube)):
            block = _REPEATS.sub(f"_r{repeats}", stage[0], count=1)
            out.append([_CHANNELS.sub(f"_c{channels}", block, count=1)])
        return out


TINYNET_B0 = EfficientNetB0("tinynet")
COMPOUND_B0 = EfficientNetB0("compound")
