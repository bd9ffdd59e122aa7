"""The baselines a Cube twists, described without torch or timm: input size, architecture and what the reports
show (blocks and channels per stage, the architecture as plain data). ``timm_tinynet.baselines`` extends each with
the timm builder; both read the architectures of ``archs.py`` through the cost model's ``architecture``.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, TypeVar

from . import cost
from .archs import (B0_ARCH_DEF, B0_IMG_SIZE, GHOSTNET_A_ROWS, GHOSTNET_IMG_SIZE, MIN_IMG_SIZE, RESNET_EXPANSION,
                    RESNET_IMG_SIZE)
from .cube import Cube

__all__ = ["BASELINES", "Baseline", "EfficientNetB0", "GhostNetA", "MIN_IMG_SIZE", "ResNet50", "find_baseline",
           "get_baseline"]


class Baseline:
    """A network family that a Cube twists along (r, d, w)."""

    name: str
    base_img_size: int  # input resolution at r = 1
    generic_model: Optional[str]  # the registered timm model that takes r=, d=, w= (None: not registered)

    def img_size(self, cube: Cube) -> int:
        """``int(base_img_size * r)``; ValueError below the 32 px minimum."""
        return cost.default_img_size(self.name, cube)

    def arch_key(self, cube: Cube) -> tuple:
        """Hashable, and equal exactly when two cubes build the same layers (at any input size)."""
        return cost.architecture(self.name, cube)

    def cost(self, cube: Cube, num_classes: int = 1000, img_size: Optional[int] = None) -> cost.Cost:
        """FLOPs, parameters and activations at the cube's input size (or ``img_size``), from the cost model."""
        return cost.cube_cost_analytic(self.name, cube, num_classes, img_size)

    def stage_repeats(self, cube: Cube) -> List[int]:
        """Blocks per stage after depth rounding (for reports)."""
        raise NotImplementedError

    def stage_channels(self, cube: Cube) -> List[int]:
        """Output channels per stage after width rounding (for reports)."""
        raise NotImplementedError

    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        """The twisted architecture as plain data (timm arch strings or constructor kwargs), JSON-serialisable."""
        raise NotImplementedError


_REPEATS = re.compile(r"_r(\d+)")
_CHANNELS = re.compile(r"_c(\d+)")


class EfficientNetB0(Baseline):
    """EfficientNet-B0 in two scaling styles: ``tinynet`` (TinyNet: fixed 32-channel stem, head at least 1280) and
    ``compound`` (EfficientNet's own, stem and head scale with w; the paper's B^-phi)."""

    base_img_size = B0_IMG_SIZE

    def __init__(self, style: str) -> None:
        if style not in ("tinynet", "compound"):
            raise ValueError(f"unknown EfficientNet scaling style {style!r}")
        self.style = style
        self.name = "efficientnet_b0" if style == "tinynet" else "efficientnet_b0_compound"
        self.generic_model = "tinynet" if style == "tinynet" else None

    def stem_size(self, cube: Cube) -> int:
        return self.arch_key(cube).stem

    def head_size(self, cube: Cube) -> int:
        return self.arch_key(cube).head

    def stage_repeats(self, cube: Cube) -> List[int]:
        return [stage.repeats for stage in self.arch_key(cube).stages]

    def stage_channels(self, cube: Cube) -> List[int]:
        return [stage.out_chs for stage in self.arch_key(cube).stages]

    def arch_def(self, cube: Cube) -> List[List[str]]:
        """timm arch strings of the twisted network, with repeats and channels already scaled.

        ``decode_arch_def(arch_def(cube))`` with no multipliers, stem ``stem_size(cube)`` and head
        ``head_size(cube)`` rebuilds exactly this model.
        """
        out = []
        for stage, scaled in zip(B0_ARCH_DEF, self.arch_key(cube).stages):
            block = _REPEATS.sub(f"_r{scaled.repeats}", stage[0], count=1)
            out.append([_CHANNELS.sub(f"_c{scaled.out_chs}", block, count=1)])
        return out

    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        return dict(arch_def=self.arch_def(cube), stem_size=self.stem_size(cube), num_features=self.head_size(cube))


class ResNet50(Baseline):
    name = "resnet50"
    generic_model = "resnet50_tiny"
    base_img_size = RESNET_IMG_SIZE

    def stage_repeats(self, cube: Cube) -> List[int]:
        return list(self.arch_key(cube).repeats)

    def planes(self, cube: Cube) -> List[int]:
        return list(self.arch_key(cube).planes)

    def stage_channels(self, cube: Cube) -> List[int]:
        return [p * RESNET_EXPANSION for p in self.planes(cube)]

    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        return dict(block="Bottleneck", layers=self.stage_repeats(cube), channels=self.planes(cube))


class GhostNetA(Baseline):
    """GhostNet-A of the paper's Table 7; stages in the summaries are Table 7's rows."""

    name = "ghostnet_a"
    generic_model = "ghostnet_tiny"
    base_img_size = GHOSTNET_IMG_SIZE

    def stage_repeats(self, cube: Cube) -> List[int]:
        return [cost.round_repeats(row[5], cube.d) for row in GHOSTNET_A_ROWS]

    def stage_channels(self, cube: Cube) -> List[int]:
        return [cost.ghost_width(row[2], cube.w) for row in GHOSTNET_A_ROWS]

    def cfgs(self, cube: Cube) -> List[List[List[Any]]]:
        """timm GhostNet cfgs (kernel, mid chs, out chs, se ratio, stride): a stride-2 block is a stage of its own."""
        return [[list(block) for block in stage] for stage in self.arch_key(cube).stages]

    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        arch = self.arch_key(cube)
        return dict(cfgs=self.cfgs(cube), stem_size=arch.stem, final_size=arch.final, head_size=arch.head)


TINYNET_B0 = EfficientNetB0("tinynet")
COMPOUND_B0 = EfficientNetB0("compound")
RESNET50 = ResNet50()
GHOSTNET_A = GhostNetA()
BASELINES: Dict[str, Baseline] = {b.name: b for b in (TINYNET_B0, COMPOUND_B0, RESNET50, GHOSTNET_A)}


B = TypeVar("B", bound=Baseline)


def find_baseline(registry: Mapping[str, B], name: object) -> B:
    """``registry[name]``, or ValueError naming the choices (this registry or ``timm_tinynet.baselines``')."""
    try:
        return registry[name]  # type: ignore[index]
    except (KeyError, TypeError):  # TypeError: an unhashable name (a list, a dict)
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(registry)}") from None


def get_baseline(name: str) -> Baseline:
    return find_baseline(BASELINES, name)
