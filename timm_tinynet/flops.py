"""FLOPs in the TinyNet/EfficientNet papers' convention: multiply-adds of convolutions and fully connected layers.

``count_flops`` is the reference: fvcore's per-operator counts of ``conv`` and ``linear`` for one image.
Batch norm, activations, pooling, SE gating products and residual additions are not counted, as in the
papers (EfficientNet-B0: 385.8M counted here, 387M in the paper).

``count_flops_meta`` gives the same number without real tensors: the model is built on the ``meta`` device
and forward hooks apply fvcore's conv/linear formulas to the shapes (tests check it equals ``count_flops`` on
every registered model). ``cube_cost``, which the solver and the sampler call thousands of times, needs no model
at all: it is the analytic cost model of ``cost.py``, tested equal to both.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from typing import Callable, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn as nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.overrides import TorchFunctionMode

from .deps import import_quietly

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


def _conv_flops(module: nn.Conv2d, output: torch.Tensor) -> int:
    # fvcore: batch * prod(out spatial) * C_out * (C_in / groups) * prod(kernel)
    return output.shape[0] * math.prod(output.shape[2:]) * math.prod(module.weight.shape)


def _linear_flops(module: nn.Linear, inputs: torch.Tensor) -> int:
    # fvcore: prod(input shape) * out_features
    return math.prod(inputs.shape) * module.out_features


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


class _SkipMetaInit(TorchFunctionMode):
    """Skip in-place weight initialisation on meta tensors (it computes nothing there, but its Python
    decompositions cost more than building the model)."""

    _INIT_METHODS = frozenset({"normal_", "uniform_", "fill_", "zero_", "erfinv_", "mul_", "add_", "clamp_",
                               "copy_", "exponential_", "bernoulli_", "random_", "fmod_", "sub_", "div_"})

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        target = args[0] if args else kwargs.get("tensor")
        is_init = getattr(func, "__module__", "") == "torch.nn.init" or getattr(func, "__name__", "") in self._INIT_METHODS
        if is_init and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


@contextmanager
def on_meta_device() -> Iterator[None]:
    """Modules built inside have shapes but no storage (and skip their weight initialisation): cheap to build."""
    with torch.device("meta"), _SkipMetaInit():
        yield


class MetaCounter:
    """A model built on the meta device with conv/linear hooks; ``count(input_size)`` runs one shape-only
    forward and returns fvcore's conv + linear multiply-adds. Re-usable across input sizes."""

    def __init__(self, build: Callable[[], nn.Module]) -> None:
        self._total = 0
        with on_meta_device():
            self.model = build().eval()
        for module in self.model.modules():
            if isinstance(module, _BatchNorm):
                # shape-preserving and uncounted; meta batch norm runs a slow Python decomposition
                module.forward = _identity
            elif isinstance(module, (nn.Conv2d, nn.Linear)):
                module.register_forward_hook(self._hook)
        self.params = count_params(self.model)

    def _hook(self, module: nn.Module, args: tuple, output: torch.Tensor) -> None:
        if isinstance(module, nn.Conv2d):
            self._total += _conv_flops(module, output)
        else:
            self._total += _linear_flops(module, args[0])

    def count(self, input_size: Sequence[int]) -> int:
        self._total = 0
        with torch.no_grad():
            self.model(torch.empty(1, *input_size, device="meta"))
        return self._total


def count_flops_meta(build: Callable[[], nn.Module], input_size: Sequence[int]) -> Tuple[int, int]:
    """(FLOPs, params) of the model ``build()`` returns, built and run on the meta device (no real compute)."""
    counter = MetaCounter(build)
    return counter.count(input_size), counter.params


def cube_cost(baseline_name: str, cube) -> Tuple[int, int]:
    """(FLOPs, params) of ``baseline_name`` twisted by ``cube`` at the cube's own input size, from the analytic
    cost model (``cost.py``: no network is built; tested equal to fvcore and to the built models)."""
    from .baselines import get_baseline
    from .cost import cube_cost_analytic

    baseline = get_baseline(baseline_name)
    cost = cube_cost_analytic(baseline_name, cube, img_size=baseline.img_size(cube))  # img_size: its size checks
    return cost.flops, cost.params


def cube_flops(baseline_name: str, cube) -> int:
    return cube_cost(baseline_name, cube)[0]
