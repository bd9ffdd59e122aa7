"""A solved shrink as plain data: what the CLI prints and what ``--json`` emits."""
from __future__ import annotations

from typing import Any, Dict

from .baselines import get_baseline
from .solve import Shrunk


def create_model_call(result: Shrunk) -> str:
    """The one-line ``timm.create_model(...)`` that rebuilds the solved network."""
    base = get_baseline(result.baseline)
    if base.generic_model is None:
        raise ValueError(f"baseline {result.baseline!r} has no registered generic model")
    cube = result.cube
    return f"timm.create_model({base.generic_model!r}, r={cube.r!r}, d={cube.d!r}, w={cube.w!r})"


def describe(result: Shrunk) -> Dict[str, Any]:
    """Everything worth knowing about a solved shrink, JSON-serialisable."""
    base = get_baseline(result.baseline)
    cube = result.cube
    extras = dict(result.extras)
    out: Dict[str, Any] = {
        "c": result.c,
        "baseline": result.baseline,
        "rule": result.rule,
        "r": cube.r,
        "r_std": extras.pop("r_std", None),
        "d": cube.d,
        "d_std": extras.pop("d_std", None),
        "w": cube.w,
        "w_eq5": extras.pop("w_eq5", None),
        "img_size": result.img_size,
        "flops": result.flops,
        "target_flops": result.target_flops,
        "flops_rel_error": result.rel_error,
        "params": result.params,
        "activations": result.activations,
        "stage_repeats": base.stage_repeats(cube),
        "stage_channels": base.stage_channels(cube),
        "arch": base.arch_summary(cube),
        "create_model": create_model_call(result),
    }
    if "extrapolating" in extras:
        extras["extrapolating"] = bool(extras["extrapolating"])
    if result.target is not None:
        out.update(target=str(result.target), target_kind=result.target.kind)
        if "latency_s" in extras:
            extras.update(latency_ms=extras.pop("latency_s") * 1e3, latency_spread_ms=extras.pop("latency_spread_s") * 1e3,
                          latency_repeats=int(extras.pop("latency_repeats")))
    out.update(extras)
    return out
