"""The baselines a Cube twists, described without torch or timm: input size, architecture and what the reports
show (blocks and channels per stage, the architecture as plain data). ``timm_tinynet.baselines`` extends each with
the timm builder; both read the architectures of ``archs.py`` through the cost model's ``architecture``.
"""
from __future__ import annotations

import re
from typing import Any, Dict, List, Mapping, Optional, Tuple, TypeVar

from . import cost
from .archs import EFFNET_SPECS, GHOSTNET_A_ROWS, GHOSTNET_IMG_SIZE, MIN_IMG_SIZE, RESNET_SPECS, EffNetSpec, ResNetSpec
from .cube import Cube

__all__ = ["BASELINES", "Baseline", "EfficientNetFamily", "GhostNetA", "MIN_IMG_SIZE", "ResNetFamily",
           "find_baseline", "get_baseline"]


class Baseline:
    """A network family that a Cube twists along (r, d, w)."""

    name: str
    base_img_size: int  # input resolution at r = 1
    generic_model: Optional[str]  # the registered timm model that takes r=, d=, w= (None: not registered)
    generic_kwargs: Dict[str, Any] = {}  # what else that model needs to build this baseline (baseline=...)

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


# The paper's three baselines keep their own generic models; every other one is
# ``timm.create_model("tinynet", baseline=NAME, ...)`` (which also builds these three).
PAPER_GENERIC_MODELS = {"efficientnet_b0": "tinynet", "resnet50": "resnet50_tiny", "ghostnet_a": "ghostnet_tiny"}


def generic_model_for(name: str) -> Tuple[str, Dict[str, Any]]:
    """The registered model (and its extra kwargs) that builds baseline ``name`` twisted by r=, d=, w=."""
    if name in PAPER_GENERIC_MODELS:
        return PAPER_GENERIC_MODELS[name], {}
    return "tinynet", {"baseline": name}


_REPEATS = re.compile(r"_r(\d+)")
_CHANNELS = re.compile(r"_c(\d+)")


class EfficientNetFamily(Baseline):
    """A network of timm's EfficientNet builder (EfficientNet, MobileNetV2/V3, MnasNet, FBNet ...) described by an
    ``EffNetSpec``: timm's own arch strings and the rules its stem, head and SE widths follow."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.spec: EffNetSpec = EFFNET_SPECS[name]
        self.base_img_size = self.spec.img_size
        self.generic_model, self.generic_kwargs = generic_model_for(name)

    def stem_size(self, cube: Cube) -> int:
        return self.arch_key(cube).stem

    def head_size(self, cube: Cube) -> int:
        return self.arch_key(cube).head

    def stage_repeats(self, cube: Cube) -> List[int]:
        return [sum(block.repeats for block in stage) for stage in self.arch_key(cube).stages]

    def stage_channels(self, cube: Cube) -> List[int]:
        return [stage[-1].out_chs for stage in self.arch_key(cube).stages]

    def arch_def(self, cube: Cube) -> List[List[str]]:
        """timm arch strings of the twisted network, with repeats and channels already scaled.

        ``decode_arch_def(arch_def(cube))`` with no multipliers, stem ``stem_size(cube)`` (fixed) and head
        ``head_size(cube)`` rebuilds exactly this model with the baseline's activation and SE layer.
        """
        out = []
        for stage, scaled in zip(self.spec.arch_def, self.arch_key(cube).stages):
            out.append([_CHANNELS.sub(f"_c{block.out_chs}", _REPEATS.sub(f"_r{block.repeats}", string, count=1),
                                      count=1) for string, block in zip(stage, scaled)])
        return out

    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        return dict(arch_def=self.arch_def(cube), stem_size=self.stem_size(cube), num_features=self.head_size(cube))


class ResNetFamily(Baseline):
    """A timm ResNet described by a ``ResNetSpec`` (block type, blocks per stage, stem, downsampling)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.spec: ResNetSpec = RESNET_SPECS[name]
        self.base_img_size = self.spec.img_size
        self.generic_model, self.generic_kwargs = generic_model_for(name)

    def stage_repeats(self, cube: Cube) -> List[int]:
        return list(self.arch_key(cube).repeats)

    def planes(self, cube: Cube) -> List[int]:
        return list(self.arch_key(cube).planes)

    def stage_channels(self, cube: Cube) -> List[int]:
        return [p * cost.resnet_expansion(self.spec) for p in self.planes(cube)]

    def arch_summary(self, cube: Cube) -> Dict[str, Any]:
        summary = dict(block="Bottleneck" if self.spec.block == "bottleneck" else "BasicBlock",
                       layers=self.stage_repeats(cube), channels=self.planes(cube))
        if self.spec.deep_stem:
            summary.update(stem_width=self.spec.stem_width, stem_type="deep", avg_down=self.spec.avg_down)
        return summary


class GhostNetA(Baseline):
    """GhostNet-A of the paper's Table 7; stages in the summaries are Table 7's rows."""

    name = "ghostnet_a"
    generic_model, generic_kwargs = "ghostnet_tiny", {}
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


BASELINES: Dict[str, Baseline] = {
    **{name: EfficientNetFamily(name) for name in EFFNET_SPECS},
    **{name: ResNetFamily(name) for name in RESNET_SPECS},
    "ghostnet_a": GhostNetA(),
}
TINYNET_B0, COMPOUND_B0 = BASELINES["efficientnet_b0"], BASELINES["efficientnet_b0_compound"]
RESNET50, GHOSTNET_A = BASELINES["resnet50"], BASELINES["ghostnet_a"]


B = TypeVar("B", bound=Baseline)


def find_baseline(registry: Mapping[str, B], name: object) -> B:
    """``registry[name]``, or ValueError naming the choices (this registry or ``timm_tinynet.baselines``')."""
    try:
        return registry[name]  # type: ignore[index]
    except (KeyError, TypeError):  # TypeError: an unhashable name (a list, a dict)
        raise ValueError(f"unknown baseline {name!r}; choose from {', '.join(registry)}") from None


def get_baseline(name: str) -> Baseline:
    return find_baseline(BASELINES, name)
