"""What every baseline provides: a Cube becomes timm constructor kwargs, an input size and a model."""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional

import torch.nn as nn

from ..archs import MIN_IMG_SIZE  # noqa: F401  (re-exported: the baselines' minimum input size)
from ..cube import Cube



def round_repeats(repeats: int, d: float) -> int:
    """Depth rounding shared by all baselines: round to nearest, never below one block (timm's 'round' trunc)."""
    return max(1, round(repeats * d))


def pool_size_for(img_size: int, reduction: int = 32) -> int:
    """Spatial size of the final feature map for 'same'-style padding (each stride-2 layer rounds up)."""
    return math.ceil(img_size / reduction)


class Baseline(ABC):
    """A network family that can be twisted along (r, d, w).

    Subclasses are small and declarative: ``model_kwargs`` is a pure function of the cube, ``create`` feeds
    those kwargs to timm's own builder for the family.
    """

    name: str
    base_img_size: int  # input resolution at r = 1
    generic_model: Optional[str]  # the registered timm model that takes r=, d=, w= (None: not registered)
    default_cfg: Dict[str, Any]  # pretrained-cfg fields (mean/std/crop/first_conv/classifier) shared by the family

    def img_size(self, cube: Cube) -> int:
        size = int(self.base_img_size * cube.r)
        if size < MIN_IMG_SIZE:
            raise ValueError(
                f"r={cube.r:.4g} gives a {size}px input for {self.name} (base {self.base_img_size}px); "
                f"the minimum is {MIN_IMG_SIZE}px")
        return size

    def cfg_overlay(self, cube: Cube) -> Dict[str, Any]:
        """Pretrained-cfg entries that depend on the cube: the model's own input and pooled feature size."""
        size = self.img_size(cube)
        pool = pool_size_for(size)
        return dict(input_size=(3, size, size), pool_size=(pool, pool))

    def pretrained_cfg(self, cube: Cube) -> Dict[str, Any]:
        """A complete pretrained cfg (no weights) for a model of this family twisted by ``cube``."""
        return dict(self.default_cfg, num_classes=1000, **self.cfg_overlay(cube))

    @abstractmethod
    def model_kwargs(self, cube: Cube) -> Dict[str, Any]:
        """Constructor kwargs of timm's model class for this cube (architecture only)."""

    @abstractmethod
    def arch_key(self, cube: Cube) -> tuple:
        """A hashable summary that is equal exactly when two cubes build the same layers (any input size)."""

    @abstractmethod
    def create(self, variant: str, cube: Cube, pretrained: bool = False, **kwargs: Any) -> nn.Module:
        """Build the model through timm's builder; ``kwargs`` are the usual timm model kwargs."""

    @abstractmethod
    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        """The twisted architecture as plain data (timm arch strings or constructor kwargs), JSON-serialisable."""

    @abstractmethod
    def stage_repeats(self, cube: Cube) -> List[int]:
        """Blocks per stage after depth rounding (for reports)."""

    @abstractmethod
    def stage_channels(self, cube: Cube) -> List[int]:
        """Output channels per stage after width rounding (for reports)."""
