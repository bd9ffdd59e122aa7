"""GhostNet-A (paper Table 7) twisted along (r, d, w), built from timm's GhostNet blocks.

Table 7 gives expansion ratios, output channels, strides and repeats but no kernel sizes. Expansion is
relative to the block's *input* channels and SE uses reduction ratio 10 (``se_ratio=0.1``); with every
depthwise kernel 5x5 the network counts 591.5M FLOPs and 11.92M parameters at 240px, the paper's 591M /
11.9M. (GhostNet's original 3/5 kernel mix gives 582.7M, 1.4 % low.)

timm's ``GhostNet`` hard-codes a 16*width stem, ReLU and a 1280 head and has no stochastic depth, so
``CubeGhostNet`` subclasses it: it lays out the same attributes from data (stem, stages, final conv, head)
and inherits all of timm's forward / feature / classifier-reset code.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence, Tuple

import torch
import torch.nn as nn
from timm.layers import DropPath, Linear, SelectAdaptivePool2d, create_act_layer, get_act_layer
from timm.models._builder import build_model_with_cfg
from timm.models.ghostnet import ConvBnAct, GhostBottleneck, GhostNet

from tinynet_core import baselines as described
from tinynet_core.cube import Cube
from .base import IMAGENET_CFG, TimmBaseline

BlockSpec = Tuple[int, int, int, float, int]  # timm GhostNet cfg entry: kernel, mid chs, out chs, se ratio, stride


class DropPathGhostBottleneck(GhostBottleneck):
    """timm's GhostBottleneck with stochastic depth on the residual branch (same parameters and keys)."""

    def __init__(self, *args: Any, drop_path: float = 0.0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = self.shortcut(x)
        x = self.ghost1(x)
        if self.conv_dw is not None:
            x = self.bn_dw(self.conv_dw(x))
        if self.se is not None:
            x = self.se(x)
        x = self.ghost2(x)
        return self.drop_path(x) + shortcut


class CubeGhostNet(GhostNet):
    """timm GhostNet whose stem, stages (timm cfg format, absolute channels), final conv and head are data."""

    def __init__(
            self,
            cfgs: Sequence[Sequence[BlockSpec]],
            stem_size: int,
            final_size: int,
            head_size: int,
            num_classes: int = 1000,
            in_chans: int = 3,
            output_stride: int = 32,
            global_pool: str = "avg",
            drop_rate: float = 0.2,
            drop_path_rate: float = 0.0,
            act_layer: Any = "relu",
    ) -> None:
        nn.Module.__init__(self)
        if output_stride != 32:
            raise ValueError("GhostNet supports only output_stride=32")
        act_layer = get_act_layer(act_layer)
        self.cfgs = [list(stage) for stage in cfgs]
        self.num_classes = num_classes
        self.in_chans = in_chans
        self.drop_rate = drop_rate
        self.grad_checkpointing = False

        self.conv_stem = nn.Conv2d(in_chans, stem_size, 3, 2, 1, bias=False)
        self.feature_info = [dict(num_chs=stem_size, reduction=2, module="conv_stem")]
        self.bn1 = nn.BatchNorm2d(stem_size)
        self.act1 = create_act_layer(act_layer, inplace=True)

        num_blocks = sum(len(stage) for stage in cfgs)
        block_idx, net_stride, prev_chs = 0, 2, stem_size
        stages = []
        for stage_idx, stage in enumerate(cfgs):
            layers = []
            for kernel, mid_chs, out_chs, se_ratio, stride in stage:
                layers.append(DropPathGhostBottleneck(
                    prev_chs, mid_chs, out_chs, kernel, stride, act_layer=act_layer, se_ratio=se_ratio,
                    drop_path=drop_path_rate * block_idx / num_blocks))
                prev_chs = out_chs
                block_idx += 1
            if stride > 1:
                net_stride *= 2
                self.feature_info.append(dict(num_chs=prev_chs, reduction=net_stride, module=f"blocks.{stage_idx}"))
            stages.append(nn.Sequential(*layers))
        stages.append(nn.Sequential(ConvBnAct(prev_chs, final_size, 1, act_layer=act_layer)))
        self.blocks = nn.Sequential(*stages)
        self.stage_ends = [-1] + [int(info["module"].split(".")[-1]) for info in self.feature_info[1:]]

        self.pool_dim = self.num_features = final_size
        self.head_hidden_size = head_size
        self.global_pool = SelectAdaptivePool2d(pool_type=global_pool)
        self.conv_head = nn.Conv2d(final_size, head_size, 1, 1, 0, bias=True)
        self.act2 = create_act_layer(act_layer, inplace=True)
        self.flatten = nn.Flatten(1) if global_pool else nn.Identity()
        self.classifier = Linear(head_size, num_classes) if num_classes > 0 else nn.Identity()


class GhostNetA(TimmBaseline, described.GhostNetA):
    default_cfg = dict(IMAGENET_CFG, interpolation="bicubic", first_conv="conv_stem", classifier="classifier")

    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        return self.arch_summary(cube)

    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return build_model_with_cfg(
            CubeGhostNet, variant, pretrained, feature_cfg=dict(flatten_sequential=True),
            **self.model_kwargs(cube), **kwargs)


GHOSTNET_A = GhostNetA()
