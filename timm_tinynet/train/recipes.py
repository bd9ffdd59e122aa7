"""The paper's training recipes as presets over timm train.py-style options (paper §4.1).

A recipe only fills options the user left unset, so every field can be overridden by its flag.
"""
from __future__ import annotations

from typing import Any, Dict, Sequence

import torch.nn as nn

RECIPES: Dict[str, Dict[str, Any]] = {
    # EfficientNet-B0 family (TinyNet, B^-phi) and GhostNet: "similar settings as [EfficientNet]"
    "tinynet": dict(
        opt="rmsproptf", momentum=0.9, opt_alpha=0.9, opt_eps=1e-3, weight_decay=1e-5,
        lr_base=0.048, lr_base_size=1024,  # 0.048 for a global batch of 1024, scaled linearly
        sched="step", decay_epochs=2.4, decay_rate=0.97, warmup_epochs=3, warmup_lr=1e-6, min_lr=0.0,
        bn_momentum=0.01,  # PyTorch convention; TensorFlow's BN momentum 0.99
        drop=0.2, drop_path=0.0, model_ema=True, model_ema_decay=0.9999, aa="rand-m9-mstd0.5",
        epochs=450, smoothing=0.1,
        # TF's ExponentialMovingAverage(num_updates=global_step), as the official EfficientNet code: the decay is
        # min(0.9999, (1 + t) / (10 + t)) at update t (short_runs.ModelEma)
        model_ema_warmup=True,
    ),
    # ResNets: SGD, 90 epochs, x0.1 every 30
    "resnet": dict(
        opt="sgd", momentum=0.9, opt_alpha=None, opt_eps=None, weight_decay=1e-4,
        lr_base=0.4, lr_base_size=1024,
        sched="step", decay_epochs=30, decay_rate=0.1, warmup_epochs=0, warmup_lr=1e-6, min_lr=0.0,
        bn_momentum=None, drop=0.0, drop_path=0.0, model_ema=False, model_ema_decay=0.9999, aa=None,
        epochs=90, smoothing=0.0, model_ema_warmup=True,
    ),
}


def default_recipe_for(model: nn.Module) -> str:
    """'resnet' for timm ResNets, 'tinynet' for everything else (EfficientNet family, GhostNet)."""
    from timm.models.resnet import ResNet

    return "resnet" if isinstance(model, ResNet) else "tinynet"


def apply_recipe(options: Dict[str, Any], recipe: str) -> Dict[str, Any]:
    """Fill the options that are None from the recipe; explicit values win."""
    if recipe not in RECIPES:
        raise ValueError(f"unknown recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    out = dict(options)
    for key, value in RECIPES[recipe].items():
        if out.get(key) is None:
            out[key] = value
    return out


def scaled_lr(lr_base: float, lr_base_size: int, global_batch: int) -> float:
    """Linear scaling rule: ``lr_base`` is the rate for ``lr_base_size`` images per step."""
    return lr_base * global_batch / lr_base_size


def resolve_options(args, recipe: str, keep: Sequence[str] = ()) -> None:
    """Recipe defaults for unset options (except ``keep``: a resumed run's recorded ones, None included), then
    the learning rate from the global batch size."""
    from .build import starts_from_weights

    options = apply_recipe({k: getattr(args, k, None) for k in vars(args)}, recipe)
    for key, value in options.items():
        if key not in keep:
            setattr(args, key, value)
    args.recipe = recipe
    if getattr(args, "bn_warmup", None) is None:  # on from random weights; given weights keep their statistics
        args.bn_warmup = not starts_from_weights(args)
    if args.aa in ("none", ""):
        args.aa = None
    args.global_batch_size = args.batch_size * args.world_size
    if args.lr is None:
        args.lr = scaled_lr(args.lr_base, args.lr_base_size, args.global_batch_size)
