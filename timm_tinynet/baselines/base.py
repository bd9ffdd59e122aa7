"""What a baseline adds for timm: a Cube becomes constructor kwargs of timm's builder, a pretrained cfg and a model.

The torch-free part of every baseline (input size, architecture, summaries) is ``tinynet_core.baselines``; each
class here extends its description there with ``model_kwargs`` and ``create``.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from functools import lru_cache
from typing import Any, Dict

import torch.nn as nn
from timm.data import IMAGENET_DEFAULT_MEAN, IMAGENET_DEFAULT_STD

from tinynet_core.archs import MIN_IMG_SIZE  # noqa: F401  (re-exported: the baselines' minimum input size)
from tinynet_core.baselines import Baseline as Described
from tinynet_core.cube import Cube

IMAGENET_CFG = dict(crop_pct=0.875, mean=IMAGENET_DEFAULT_MEAN, std=IMAGENET_DEFAULT_STD, license="apache-2.0")
# what a twisted network takes over from its timm model's default pretrained cfg (its input size is its own)
TIMM_CFG_FIELDS = ("mean", "std", "interpolation", "crop_pct", "crop_mode", "first_conv", "classifier", "license")


@lru_cache(maxsize=None)
def _timm_cfg(name: str) -> Dict[str, Any]:
    from timm.models import get_pretrained_cfg

    cfg = get_pretrained_cfg(name).to_dict()
    return {key: cfg[key] for key in TIMM_CFG_FIELDS if cfg.get(key) is not None}


def timm_cfg(name: str) -> Dict[str, Any]:
    """The normalisation, crop, interpolation and layer names of timm's default pretrained cfg for ``name``: a
    network twisted from that model is fed and fine-tuned the way its weights were trained."""
    return dict(_timm_cfg(name))


def pool_size_for(img_size: int, reduction: int = 32) -> int:
    """Spatial size of the final feature map for 'same'-style padding (each stride-2 layer rounds up)."""
    return math.ceil(img_size / reduction)


class TimmBaseline(Described, ABC):
    """A described baseline that timm can build. Subclasses are small and declarative: ``model_kwargs`` is a pure
    function of the cube, ``create`` feeds those kwargs to timm's own builder for the family."""

    default_cfg: Dict[str, Any]  # pretrained-cfg fields (mean/std/crop/first_conv/classifier) shared by the family

    def cfg_overlay(self, cube: Cube) -> Dict[str, Any]:
        """Pretrained-cfg entries of a model of this family twisted by ``cube``: the family's normalisation, crop
        and layer names, and the model's own input and pooled feature size."""
        size = self.img_size(cube)
        pool = pool_size_for(size)
        return dict(self.default_cfg, input_size=(3, size, size), pool_size=(pool, pool))

    def pretrained_cfg(self, cube: Cube) -> Dict[str, Any]:
        """A complete pretrained cfg (no weights) for a model of this family twisted by ``cube``."""
        return dict(self.cfg_overlay(cube), num_classes=1000)

    @abstractmethod
    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        """Constructor kwargs of timm's model class for this cube (architecture only)."""

    @abstractmethod
    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        """Build the model through timm's builder; ``kwargs`` are the usual timm model kwargs."""


Baseline = TimmBaseline
