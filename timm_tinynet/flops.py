"""FLOPs in the TinyNet/EfficientNet papers' convention: multiply-adds of convolutions and fully connected layers.

``count_flops`` is the reference: fvcore's per-operator counts of ``conv`` and ``linear`` for one image.
Batch norm, activations, pooling, SE gating products and residual additions are not counted, as in the
papers (EfficientNet-B0: 385.8M counted here, 387M in the paper).

``count_flops_meta`` gives the same number without real tensors: the model is built on the ``meta`` device
and forward hooks apply fvcore's conv/linear formulas to the shapes. The solver uses it; the tests check it
equals ``count_flops`` on every registered model.
"""
from __future__ import annotations

import math
import warnings
from typing import Callable, Dict, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm

FLOP_OPERATORS = ("conv", "linear")


def _input_size(model: nn.Module, input_size: Optional[Sequence[int]]) -> Tuple[int, int, int]:
    if input_size is None:
        cfg = getattr(model, "pretrained_cfg", None) or {}
        if "input_size" not in cfg:
            raise ValueError("input_size is required for a model without a pretrained_cfg input size")
        input_size = cfg["input_size"]
    if len(input_size) != 3:
        raise ValueError(f"input_size must be (channels, height, width), got {tuple(input_size)}")
    return tuple(int(v) for v in input_size)  # type: ignore[return-value]


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, input_size: Optional[Sequence[int]] = None) -> int:
    """Multiply-adds of conv + linear layers for one image (fvcore), at ``input_size`` or the model's own size."""
    from fvcore.nn import FlopCountAnalysis

    size = _input_size(model, input_size)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about data-dependent control flow
            analysis = FlopCountAnalysis(model, torch.zeros(1, *size))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            by_op = analysis.by_operator()
    finally:
        model.train(was_training)
    return int(sum(by_op.get(op, 0) for op in FLOP_OPERATORS))


def _conv_flops(module: nn.Conv2d, output: torch.Tensor) -> int:
    # fvcore: batch * prod(out spatial) * C_out * (C_in / groups) * prod(kernel)
    return output.shape[0] * math.prod(output.shape[2:]) * math.prod(module.weight.shape)


def _linear_flops(module: nn.Linear, inputs: torch.Tensor) -> int:
    # fvcore: prod(input shape) * out_features
    return math.prod(inputs.shape) * module.out_features


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def count_flops_meta(build: Callable[[], nn.Module], input_size: Sequence[int]) -> Tuple[int, int]:
    """(FLOPs, params) of the model ``build()`` returns, built and run on the meta device (no real compute)."""
    total = 0

    def hook(module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, nn.Conv2d):
            total += _conv_flops(module, output)
        elif isinstance(module, nn.Linear):
            total += _linear_flops(module, args[0])

    with torch.device("meta"):
        model = build().eval()
        for module in model.modules():
            if isinstance(module, _BatchNorm):
                # shape-preserving and uncounted; meta batch norm runs a slow Python decomposition
                module.forward = _identity
        handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
        with torch.no_grad():
            model(torch.empty(1, *input_size))
    for h in handles:
        h.remove()
    return total, count_params(model)


_COST_CACHE: Dict[tuple, Tuple[int, int]] = {}


def cube_cost(baseline_name: str, cube) -> Tuple[int, int]:
    """(FLOPs, params) of ``baseline_name`` twisted by ``cube`` at the cube's own input size.

    Cached by architecture and input size, so the many cubes a solver tries that round to the same
    network cost one count.
    """
    from .baselines import get_baseline

    baseline = get_baseline(baseline_name)
    size = baseline.img_size(cube)
    key = (baseline_name, baseline.arch_key(cube), size)
    if key not in _COST_CACHE:
        cfg = baseline.pretrained_cfg(cube)
        _COST_CACHE[key] = count_flops_meta(
            lambda: baseline.create(baseline_name, cube, pretrained_cfg=cfg), (3, size, size))
    return _COST_CACHE[key]


def cube_flops(baseline_name: str, cube) -> int:
    return cube_cost(baseline_name, cube)[0]
