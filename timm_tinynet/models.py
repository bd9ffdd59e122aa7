"""The paper's models as timm entrypoints: importing ``timm_tinynet`` registers them.

Each public model is a few lines over a baseline (``baselines/``) and a Cube; pretrained metadata lives in
``default_cfgs`` as in timm's own model files. ``tinynet_a`` .. ``tinynet_e`` ship with timm itself; they are
registered here only on a timm that lacks them (a test checks that ours build identical networks), so timm's
registry is never overwritten.
"""
from __future__ import annotations

from typing import Any, Callable, Dict, Optional

import timm
import torch.nn as nn
from timm.models import register_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._registry import generate_default_cfgs

from .baselines import COMPOUND_B0, GHOSTNET_A, RESNET50, TINYNET_B0, Baseline, get_baseline
from .cube import Cube
from .frontier import check_frontier_path
from .solve import DEFAULT_RULE, DEFAULT_TOLERANCE, check_rule, check_tolerance, shrink

__all__ = ["NoPretrainedWeightsError", "TINYNET_CUBES", "B_MINUS_CUBES", "RESNET50_GIANT_PHI", "FORMULA_TARGETS",
           "FORMULA_CUBES", "PAPER_MODELS"]

# Released TinyNets (huawei-noah/CV-Backbones, identical to timm's tinynet_a..e).
TINYNET_CUBES: Dict[str, Cube] = {
    "tinynet_a": Cube(0.86, 1.2, 1.0),
    "tinynet_b": Cube(0.84, 1.1, 0.75),
    "tinynet_c": Cube(0.825, 0.85, 0.54),
    "tinynet_d": Cube(0.68, 0.695, 0.54),
    "tinynet_e": Cube(0.475, 0.6, 0.51),
}
# EfficientNet-B^-phi from ``solve.efficientnet_b_minus`` (frozen here; tests re-derive them).
B_MINUS_CUBES: Dict[str, Cube] = {
    "efficientnet_bm1": Cube(0.86, 0.8, 0.89),
    "efficientnet_bm2": Cube(0.715, 0.63, 0.78),
    "efficientnet_bm3": Cube(0.61, 0.49, 0.69),
    "efficientnet_bm4": Cube(0.5, 0.37, 0.6),
}
# Inverse giant formula on ResNet-50 at the FLOPs of ResNet-34 (a) and ResNet-18 (b), paper Table 2.
RESNET50_GIANT_PHI: Dict[str, float] = {"resnet50_giant_a": -0.42, "resnet50_giant_b": -1.33}

# The tiny formula (default frontier) at the paper's FLOPs budgets (Tables 2 and 6): model -> (baseline, target
# FLOPs) and the cube it gives, frozen here; tests re-derive them with shrink(baseline, target / C0, "tiny").
FORMULA_TARGETS: Dict[str, tuple] = {
    "resnet50_tiny_a": ("resnet50", 3.6e9),
    "resnet50_tiny_b": ("resnet50", 1.8e9),
    "ghostnet_b": ("ghostnet_a", 300e6),
    "ghostnet_c": ("ghostnet_a", 141e6),
    "ghostnet_d": ("ghostnet_a", 52e6),
}
FORMULA_CUBES: Dict[str, Cube] = {
    "resnet50_tiny_a": Cube(0.86, 1.22, 0.9844),
    "resnet50_tiny_b": Cube(0.84, 1.01, 0.78),
    "ghostnet_b": Cube(0.843, 1.05, 0.806),
    "ghostnet_c": Cube(0.815, 0.85, 0.56),
    "ghostnet_d": Cube(0.556, 0.64, 0.52143),
}

# model name -> (baseline, cube) for every fixed-architecture model of the paper
PAPER_MODELS: Dict[str, tuple] = {
    **{name: (TINYNET_B0, cube) for name, cube in TINYNET_CUBES.items()},
    **{name: (COMPOUND_B0, cube) for name, cube in B_MINUS_CUBES.items()},
    **{name: (RESNET50, Cube.giant(phi)) for name, phi in RESNET50_GIANT_PHI.items()},
    "ghostnet_a": (GHOSTNET_A, Cube()),
    **{name: (get_baseline(FORMULA_TARGETS[name][0]), cube) for name, cube in FORMULA_CUBES.items()},
}


class NoPretrainedWeightsError(RuntimeError):
    """``pretrained=True`` for a model whose weights were never published."""


def _cfg(baseline: Baseline, cube: Cube, **kwargs: Any) -> Dict[str, Any]:
    return baseline.pretrained_cfg(cube) | kwargs


_TINYNET_URL = "https://github.com/huawei-noah/CV-Backbones/releases/download/v1.2.0/{}.pth"

default_cfgs = generate_default_cfgs({
    **{f"{name}.in1k": _cfg(TINYNET_B0, cube, url=_TINYNET_URL.format(name), hf_hub_id="timm/")
       for name, cube in TINYNET_CUBES.items()},
    "tinynet": _cfg(TINYNET_B0, Cube()),
    **{name: _cfg(COMPOUND_B0, cube) for name, cube in B_MINUS_CUBES.items()},
    "resnet50_tiny": _cfg(RESNET50, Cube()),
    **{name: _cfg(RESNET50, Cube.giant(phi)) for name, phi in RESNET50_GIANT_PHI.items()},
    "ghostnet_a": _cfg(GHOSTNET_A, Cube()),
    "ghostnet_tiny": _cfg(GHOSTNET_A, Cube()),
    **{name: _cfg(get_baseline(FORMULA_TARGETS[name][0]), cube) for name, cube in FORMULA_CUBES.items()},
})


def _require_weights(variant: str, kwargs: Dict[str, Any]) -> None:
    cfg = resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
    if not cfg.has_weights:
        raise NoPretrainedWeightsError(
            f"no pretrained weights exist for {variant!r}: the paper's authors did not publish them. Train it "
            f"(tinynet-train) or load your own with pretrained_cfg_overlay=dict(file='path/to/weights.pth')")


def _create(variant: str, baseline: Baseline, cube: Cube, pretrained: bool, **kwargs: Any) -> nn.Module:
    """Build ``baseline`` twisted by ``cube``; the cube's input size goes into the model's pretrained_cfg."""
    kwargs["pretrained_cfg_overlay"] = {**baseline.cfg_overlay(cube), **(kwargs.get("pretrained_cfg_overlay") or {})}
    if pretrained:
        _require_weights(variant, kwargs)
    return baseline.create(variant, cube, pretrained, **kwargs)


def _generic_cube(
        baseline: Baseline,
        r: Optional[float],
        d: Optional[float],
        w: Optional[float],
        c: Optional[float],
        rule: Optional[str],
        tol: float,
        frontier: Optional[str],
) -> Cube:
    """The cube asked for by explicit multipliers (default 1.0) or by a FLOPs ratio and a shrinking rule.

    Every argument is checked before anything is built, with ``shrink``'s messages (the CLI's wording)."""
    tol = check_tolerance(tol)
    if rule is not None:
        check_rule(rule)
    if frontier is not None:
        check_frontier_path(frontier)
    if c is None:
        if rule is not None or frontier is not None:
            raise ValueError("rule and frontier need c (the FLOPs ratio to shrink to)")
        return Cube(1.0 if r is None else r, 1.0 if d is None else d, 1.0 if w is None else w)
    if any(v is not None for v in (r, d, w)):
        raise ValueError("give either c (with a rule) or explicit r/d/w multipliers, not both")
    return shrink(baseline.name, c, DEFAULT_RULE if rule is None else rule, tol=tol, frontier=frontier).cube


def _twisted(variant: str, baseline: Baseline, pretrained: bool, r: Optional[float], d: Optional[float],
             w: Optional[float], c: Optional[float], rule: Optional[str], tol: float, frontier: Optional[str],
             **kwargs: Any) -> nn.Module:
    return _create(variant, baseline, _generic_cube(baseline, r, d, w, c, rule, tol, frontier), pretrained, **kwargs)


def _paper(variant: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    baseline, cube = PAPER_MODELS[variant]
    return _create(variant, baseline, cube, pretrained, **kwargs)


def _register_unless_timm_has(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """timm ships tinynet_a..e itself: ours (identical networks, tested) are registered only on a timm that lacks
    them, so timm's registry is never overwritten."""
    return fn if timm.is_model(fn.__name__) else register_model(fn)


# ---- models with r=/d=/w= or c= (+ rule, tol, frontier) ------------------------------------------------------

@register_model
def tinynet(pretrained: bool = False, r: Optional[float] = None, d: Optional[float] = None,
            w: Optional[float] = None, c: Optional[float] = None, rule: Optional[str] = None,
            tol: float = DEFAULT_TOLERANCE, frontier: Optional[str] = None, **kwargs: Any) -> nn.Module:
    """EfficientNet-B0 twisted TinyNet-style: ``r``/``d``/``w`` multipliers (default 1.0), or ``c`` (FLOPs ratio,
    0 < c < 1) with ``rule`` (default 'tiny': the tiny formula), ``tol`` and ``frontier`` (a frontier CSV)."""
    return _twisted("tinynet", TINYNET_B0, pretrained, r, d, w, c, rule, tol, frontier, **kwargs)


@register_model
def resnet50_tiny(pretrained: bool = False, r: Optional[float] = None, d: Optional[float] = None,
                  w: Optional[float] = None, c: Optional[float] = None, rule: Optional[str] = None,
                  tol: float = DEFAULT_TOLERANCE, frontier: Optional[str] = None, **kwargs: Any) -> nn.Module:
    """ResNet-50 twisted by ``r``/``d``/``w``, or shrunk to ``c`` by ``rule`` (see ``tinynet``)."""
    return _twisted("resnet50_tiny", RESNET50, pretrained, r, d, w, c, rule, tol, frontier, **kwargs)


@register_model
def ghostnet_tiny(pretrained: bool = False, r: Optional[float] = None, d: Optional[float] = None,
                  w: Optional[float] = None, c: Optional[float] = None, rule: Optional[str] = None,
                  tol: float = DEFAULT_TOLERANCE, frontier: Optional[str] = None, **kwargs: Any) -> nn.Module:
    """GhostNet-A twisted by ``r``/``d``/``w``, or shrunk to ``c`` by ``rule`` (see ``tinynet``)."""
    return _twisted("ghostnet_tiny", GHOSTNET_A, pretrained, r, d, w, c, rule, tol, frontier, **kwargs)


# ---- the released TinyNets (timm has them too) -----------------------------------------------------------------

@_register_unless_timm_has
def tinynet_a(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """TinyNet-A: EfficientNet-B0 at r .86, d 1.2, w 1 (192 px)."""
    return _paper("tinynet_a", pretrained, **kwargs)


@_register_unless_timm_has
def tinynet_b(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """TinyNet-B: EfficientNet-B0 at r .84, d 1.1, w .75 (188 px)."""
    return _paper("tinynet_b", pretrained, **kwargs)


@_register_unless_timm_has
def tinynet_c(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """TinyNet-C: EfficientNet-B0 at r .825, d .85, w .54 (184 px)."""
    return _paper("tinynet_c", pretrained, **kwargs)


@_register_unless_timm_has
def tinynet_d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """TinyNet-D: EfficientNet-B0 at r .68, d .695, w .54 (152 px)."""
    return _paper("tinynet_d", pretrained, **kwargs)


@_register_unless_timm_has
def tinynet_e(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """TinyNet-E: EfficientNet-B0 at r .475, d .6, w .51 (106 px)."""
    return _paper("tinynet_e", pretrained, **kwargs)


# ---- EfficientNet-B^-phi (inverse giant formula, EfficientNet's own stem/head scaling) --------------------------

@register_model
def efficientnet_bm1(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """EfficientNet-B^-1: r .86, d .8, w .89 (192 px)."""
    return _paper("efficientnet_bm1", pretrained, **kwargs)


@register_model
def efficientnet_bm2(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """EfficientNet-B^-2: r .715, d .63, w .78 (160 px)."""
    return _paper("efficientnet_bm2", pretrained, **kwargs)


@register_model
def efficientnet_bm3(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """EfficientNet-B^-3: r .61, d .49, w .69 (136 px)."""
    return _paper("efficientnet_bm3", pretrained, **kwargs)


@register_model
def efficientnet_bm4(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """EfficientNet-B^-4: r .5, d .37, w .6 (112 px)."""
    return _paper("efficientnet_bm4", pretrained, **kwargs)


# ---- ResNet-50 shrunk (Table 2) ------------------------------------------------------------------------------

@register_model
def resnet50_giant_a(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-50 by the EfficientNet rule at ResNet-34's FLOPs (phi -0.42)."""
    return _paper("resnet50_giant_a", pretrained, **kwargs)


@register_model
def resnet50_giant_b(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-50 by the EfficientNet rule at ResNet-18's FLOPs (phi -1.33)."""
    return _paper("resnet50_giant_b", pretrained, **kwargs)


@register_model
def resnet50_tiny_a(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-50-A: the tiny formula at 3.6B FLOPs."""
    return _paper("resnet50_tiny_a", pretrained, **kwargs)


@register_model
def resnet50_tiny_b(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """ResNet-50-B: the tiny formula at 1.8B FLOPs."""
    return _paper("resnet50_tiny_b", pretrained, **kwargs)


# ---- GhostNet (Tables 6 and 7) --------------------------------------------------------------------------------

@register_model
def ghostnet_a(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """GhostNet-A of Table 7 (591M FLOPs, 11.9M params)."""
    return _paper("ghostnet_a", pretrained, **kwargs)


@register_model
def ghostnet_b(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """GhostNet-B: the tiny formula at 300M FLOPs."""
    return _paper("ghostnet_b", pretrained, **kwargs)


@register_model
def ghostnet_c(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """GhostNet-C: the tiny formula at 141M FLOPs."""
    return _paper("ghostnet_c", pretrained, **kwargs)


@register_model
def ghostnet_d(pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """GhostNet-D: the tiny formula at 52M FLOPs."""
    return _paper("ghostnet_d", pretrained, **kwargs)


MODEL_NAMES = tuple(PAPER_MODELS) + ("tinynet", "resnet50_tiny", "ghostnet_tiny")
__all__ += list(MODEL_NAMES) + ["MODEL_NAMES"]
