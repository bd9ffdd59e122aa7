"""The paper's models as timm entrypoints: importing ``timm_tinynet`` registers them.

Each public model is a few lines over a baseline (``baselines/``) and a Cube (``tinynet_core.named``); pretrained
metadata lives in ``default_cfgs`` as in timm's own model files. The released ``tinynet_a`` .. ``tinynet_e`` are
timm's own models (every supported timm ships them, with their weights); they are listed in ``MODEL_NAMES`` and
``PAPER_MODELS`` for the hub and the reports, and a test checks that our baseline builds identical networks.
"""
from __future__ import annotations

from typing import Any, Dict, Optional

import torch.nn as nn
from timm.models import register_model
from timm.models._builder import resolve_pretrained_cfg
from timm.models._registry import generate_default_cfgs

from .baselines import BASELINES, COMPOUND_B0, GHOSTNET_A, RESNET50, TINYNET_B0, Baseline, get_baseline
from tinynet_core.cube import Cube
from tinynet_core.frontier import check_frontier_path
from tinynet_core.named import (B_MINUS_CUBES, FORMULA_CUBES, FORMULA_TARGETS, NAMED_CUBES, RESNET50_GIANT_PHI,
                                TINYNET_CUBES)
from tinynet_core.budget import AUTO_TOLERANCE, Meter
from tinynet_core.baselines import PAPER_GENERIC_MODELS
from tinynet_core.explain import create_model_call_for
from tinynet_core.solve import DEFAULT_RULE, check_rule, check_tolerance
from tinynet_core.targets import parse_target
from .budgets import shrink

__all__ = ["NoPretrainedWeightsError", "TINYNET_CUBES", "B_MINUS_CUBES", "RESNET50_GIANT_PHI", "FORMULA_TARGETS",
           "FORMULA_CUBES", "PAPER_MODELS"]

# model name -> (baseline, cube) for every fixed-architecture model of the paper
PAPER_MODELS: Dict[str, tuple] = {name: (get_baseline(baseline), cube) for name, (baseline, cube) in NAMED_CUBES.items()}


class NoPretrainedWeightsError(RuntimeError):
    """``pretrained=True`` for a model whose weights were never published."""


def _cfg(baseline: Baseline, cube: Cube, **kwargs: Any) -> Dict[str, Any]:
    return baseline.pretrained_cfg(cube) | kwargs


default_cfgs = generate_default_cfgs({
    "tinynet": _cfg(TINYNET_B0, Cube()),
    **{name: _cfg(COMPOUND_B0, cube) for name, cube in B_MINUS_CUBES.items()},
    "resnet50_tiny": _cfg(RESNET50, Cube()),
    **{name: _cfg(RESNET50, Cube.giant(phi)) for name, phi in RESNET50_GIANT_PHI.items()},
    "ghostnet_a": _cfg(GHOSTNET_A, Cube()),
    "ghostnet_tiny": _cfg(GHOSTNET_A, Cube()),
    **{name: _cfg(get_baseline(FORMULA_TARGETS[name][0]), cube) for name, cube in FORMULA_CUBES.items()},
})


def _require_weights(variant: str, baseline: Baseline, cube: Cube, kwargs: Dict[str, Any]) -> None:
    cfg = resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), kwargs.get("pretrained_cfg_overlay"))
    if not cfg.has_weights:
        from .parents import published_parents

        hint = ""
        if published_parents(baseline.name):
            call = create_model_call_for(baseline.name, cube)
            hint = f", or inherit the weights of a published network of its family: {call[:-1]}, pretrained=True)"
        raise NoPretrainedWeightsError(
            f"no pretrained weights exist for {variant!r}: the paper's authors did not publish them. Train it "
            f"(tinynet-train), load your own with pretrained_cfg_overlay=dict(file='path/to/weights.pth'){hint}")


GENERIC_MODELS = ("tinynet", "resnet50_tiny", "ghostnet_tiny")


def baseline_of(model: str, kwargs: Dict[str, Any]) -> Optional[str]:
    """The baseline a registered model twists (None for a model of no baseline here, such as a vision transformer)."""
    if model == "tinynet":
        return kwargs.get("baseline", "efficientnet_b0")
    generic = {name: baseline for baseline, name in PAPER_GENERIC_MODELS.items()}  # resnet50_tiny, ghostnet_tiny
    if model in generic:
        return generic[model]
    if model in PAPER_MODELS:
        return PAPER_MODELS[model][0].name
    return model if model in BASELINES else None  # timm's own model of a baseline's name


def _inherits(variant: str, kwargs: Dict[str, Any]) -> bool:
    """Whether ``pretrained=True`` means weight inheritance: a generic model (any cube) whose pretrained cfg names
    no weights of its own (a local-dir or hf-hub folder does: those load exactly), or whose overlay names a file."""
    if variant not in GENERIC_MODELS:
        return False
    if (kwargs.get("pretrained_cfg_overlay") or {}).get("file"):
        return True
    return not resolve_pretrained_cfg(variant, kwargs.get("pretrained_cfg"), None).has_weights


def _create(variant: str, baseline: Baseline, cube: Cube, pretrained: bool, **kwargs: Any) -> nn.Module:
    """Build ``baseline`` twisted by ``cube``; the cube's input size goes into the model's pretrained_cfg."""
    overlay = dict(kwargs.get("pretrained_cfg_overlay") or {})
    kwargs["pretrained_cfg_overlay"] = {**baseline.cfg_overlay(cube), **overlay}
    inherits = pretrained and _inherits(variant, kwargs)
    if inherits:
        kwargs["pretrained_cfg_overlay"].pop("file", None)  # the parent's weights, not this network's
    elif pretrained:
        _require_weights(variant, baseline, cube, kwargs)
    model = baseline.create(variant, cube, pretrained and not inherits, **kwargs)
    model.tinynet_cube = cube  # what c=/target= resolved to: hub.save_for_hf records it instead of the search
    if inherits:
        from .parents import inherit_published

        model.tinynet_inheritance = inherit_published(model, baseline.name, overlay.get("file"))
    return model


def _generic_cube(
        baseline: Baseline,
        r: Optional[float],
        d: Optional[float],
        w: Optional[float],
        c: Optional[float],
        rule: Optional[str],
        tol: object,
        frontier: Optional[str],
        target: Optional[str],
        latency_meter: Optional[Meter],
) -> Cube:
    """The cube asked for by explicit multipliers (default 1.0), or by a FLOPs ratio or a target and a rule.

    Every argument is checked before anything is built, with ``shrink``'s messages (the CLI's wording)."""
    if not (isinstance(tol, str) and tol == AUTO_TOLERANCE):
        tol = check_tolerance(tol)
    if rule is not None:
        check_rule(rule)
    if frontier is not None:
        check_frontier_path(frontier)
    if target is not None:
        parse_target(target)
    if c is None and target is None:
        if rule is not None or frontier is not None:
            raise ValueError("rule and frontier need c (the FLOPs ratio to shrink to) or a target")
        return Cube(1.0 if r is None else r, 1.0 if d is None else d, 1.0 if w is None else w)
    if any(v is not None for v in (r, d, w)):
        raise ValueError(f"give either {'c' if target is None else 'target'} (with a rule) or explicit r/d/w "
                         f"multipliers, not both")
    return shrink(baseline.name, c, DEFAULT_RULE if rule is None else rule, tol, frontier, target, latency_meter).cube


def _twisted(variant: str, baseline: Baseline, pretrained: bool, r: Optional[float], d: Optional[float],
             w: Optional[float], c: Optional[float], rule: Optional[str], tol: object, frontier: Optional[str],
             target: Optional[str], latency_meter: Optional[Meter], **kwargs: Any) -> nn.Module:
    cube = _generic_cube(baseline, r, d, w, c, rule, tol, frontier, target, latency_meter)
    return _create(variant, baseline, cube, pretrained, **kwargs)


def _paper(variant: str, pretrained: bool, **kwargs: Any) -> nn.Module:
    baseline, cube = PAPER_MODELS[variant]
    return _create(variant, baseline, cube, pretrained, **kwargs)


# ---- models with r=/d=/w= or c= (+ rule, tol, frontier) ------------------------------------------------------

@register_model
def tinynet(pretrained: bool = False, r: Optional[float] = None, d: Optional[float] = None,
            w: Optional[float] = None, c: Optional[float] = None, rule: Optional[str] = None,
            tol: object = AUTO_TOLERANCE, frontier: Optional[str] = None, target: Optional[str] = None,
            latency_meter: Optional[Meter] = None, baseline: str = "efficientnet_b0", **kwargs: Any) -> nn.Module:
    """``baseline`` (default EfficientNet-B0, TinyNet-style; any of ``timm_tinynet.BASELINES``: EfficientNet-B1..B3,
    -Lite0, MobileNetV2/V3, MnasNet, FBNet, ResNets, GhostNet-A) twisted by ``r``/``d``/``w`` multipliers (default
    1.0), or shrunk to ``c`` (FLOPs ratio, 0 < c < 1) or ``target`` ('latency=8ms', 'params=2.5M',
    'activations=1.2M', 'flops=100M') by ``rule`` (default 'tiny': the tiny formula), ``tol`` and ``frontier`` (a
    frontier CSV). A latency target measures candidate networks on this machine with ``latency_meter`` (default:
    CPU, torch, 1 thread, batch 1; cached). ``pretrained=True`` initialises the network from the nearest published
    parent of its family by weight selection (``timm_tinynet.inherit``)."""
    return _twisted("tinynet", get_baseline(baseline), pretrained, r, d, w, c, rule, tol, frontier, target,
                    latency_meter, **kwargs)


@register_model
def resnet50_tiny(pretrained: bool = False, r: Optional[float] = None, d: Optional[float] = None,
                  w: Optional[float] = None, c: Optional[float] = None, rule: Optional[str] = None,
                  tol: object = AUTO_TOLERANCE, frontier: Optional[str] = None, target: Optional[str] = None,
                  latency_meter: Optional[Meter] = None, **kwargs: Any) -> nn.Module:
    """ResNet-50 twisted by ``r``/``d``/``w``, or shrunk to ``c`` or ``target`` by ``rule`` (see ``tinynet``)."""
    return _twisted("resnet50_tiny", RESNET50, pretrained, r, d, w, c, rule, tol, frontier, target,
                    latency_meter, **kwargs)


@register_model
def ghostnet_tiny(pretrained: bool = False, r: Optional[float] = None, d: Optional[float] = None,
                  w: Optional[float] = None, c: Optional[float] = None, rule: Optional[str] = None,
                        tol: object = AUTO_TOLERANCE, frontier: Optional[str] = None, target: Optional[str] = None,
                  latency_meter: Optional[Meter] = None, **kwargs: Any) -> nn.Module:
    """GhostNet-A twisted by ``r``/``d``/``w``, or shrunk to ``c`` or ``target`` by ``rule`` (see ``tinynet``)."""
    return _twisted("ghostnet_tiny", GHOSTNET_A, pretrained, r, d, w, c, rule, tol, frontier, target,
                    latency_meter, **kwargs)


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
    """ResNet-50 by the EfficientNet rule at ResNet-18's FLOPs (phi -1.31)."""
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


MODEL_NAMES = tuple(PAPER_MODELS) + ("tinynet", "resnet50_tiny", "ghostnet_tiny")  # tinynet_a..e are timm's
__all__ += [name for name in MODEL_NAMES if name not in TINYNET_CUBES] + ["MODEL_NAMES"]
