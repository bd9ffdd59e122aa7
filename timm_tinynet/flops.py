"""FLOPs in the TinyNet/EfficientNet papers' convention: multiply-adds of convolutions and fully connected layers.

``count_flops`` is the reference: fvcore's per-operator counts of ``conv`` and ``linear`` for one image.
Batch norm, activations, pooling, SE gating products and residual additions are not counted, as in the
papers (EfficientNet-B0: 385.8M counted here, 387M in the paper).

The solver and the sampler, which cost thousands of candidates, build no model at all: they use the analytic cost
model of ``tinynet_core.cost``, tested equal to these counts and, layer by layer, to the built models.
"""
from __future__ import annotations

import warnings
from typing import Optional, Sequence, Tuple

import torch
import torch.nn as nn

from tinynet_core.deps import import_quietly

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
    FlopCountAnalysis = import_quietly("fvcore.nn").FlopCountAnalysis

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
