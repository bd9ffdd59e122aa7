"""An independent check of a solved shrink: build the network with timm and count it with fvcore.

The solver counts with the analytic cost model (``tinynet_core.cost``); this builds the real timm model and
measures the same three numbers another way: FLOPs and activations by fvcore's tracer, parameters from the module.
"""
from __future__ import annotations

import warnings
from typing import Dict

import timm
import torch
import torch.nn as nn

from tinynet_core.deps import import_quietly
from tinynet_core.solve import Shrunk
from . import models as _models  # noqa: F401  (registers the generic models that rebuild a cube)
from .flops import count_flops, count_params


class VerificationError(RuntimeError):
    """The built model's counts differ from the cost model's."""


def count_activations(model: nn.Module, img_size: int) -> int:
    """Output elements of every conv and linear layer for one image (fvcore's activation count)."""
    analysis_cls = import_quietly("fvcore.nn").ActivationCountAnalysis
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about data-dependent control flow
            analysis = analysis_cls(model, torch.zeros(1, 3, img_size, img_size))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            by_op = analysis.by_operator()
    finally:
        model.train(was_training)
    return int(by_op.get("conv", 0) + by_op.get("linear", 0))


def verify(result: Shrunk) -> Dict[str, int]:
    """Build ``result``'s network through timm's registry and count it: {'flops', 'params', 'activations'}, each
    equal to the solver's, or VerificationError naming the ones that differ."""
    from tinynet_core.explain import create_model_args

    cube = result.cube
    call = create_model_args(result.baseline, cube.r, cube.d, cube.w)
    model = timm.create_model(call["model"], **call["kwargs"])
    size = result.img_size
    counted = dict(flops=count_flops(model, (3, size, size)), params=count_params(model),
                   activations=count_activations(model, size))
    expected = dict(flops=result.flops, params=result.params, activations=result.activations)
    wrong = [f"{key} {counted[key]} built vs {expected[key]} counted" for key in counted if counted[key] != expected[key]]
    if wrong:
        raise VerificationError(f"verification failed for {cube}: {'; '.join(wrong)}")
    return counted
