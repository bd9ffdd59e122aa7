"""A solved shrink as plain data: what the CLI prints and what ``--json`` emits."""
from __future__ import annotations

from typing import Any, Dict, List, Optional

from .baselines import get_baseline
from .cube import Cube
from .solve import Shrunk


def create_model_args(baseline: str, r: float, d: float, w: float) -> Dict[str, Any]:
    """The registered model and kwargs that build ``baseline`` twisted by (r, d, w): {'model': ..., 'kwargs': ...}."""
    base = get_baseline(baseline)
    return {"model": base.generic_model, "kwargs": {**base.generic_kwargs, "r": r, "d": d, "w": w}}


def create_model_call_for(baseline: str, cube: Cube) -> str:
    """The one-line ``timm.create_model(...)`` that builds ``baseline`` twisted by ``cube``."""
    call = create_model_args(baseline, cube.r, cube.d, cube.w)
    kwargs = ", ".join(f"{key}={value!r}" for key, value in call["kwargs"].items())
    return f"timm.create_model({call['model']!r}, {kwargs})"


def create_model_call(result: Shrunk) -> str:
    """The one-line ``timm.create_model(...)`` that rebuilds the solved network."""
    return create_model_call_for(result.baseline, result.cube)


def formula_provenance(baseline: str, frontier: Optional[str]) -> Dict[str, Any]:
    """Where the tiny rule's r(c) and d(c) come from: the frontier (None: the shipped default) and the baselines
    its rows were measured on (its ``baseline`` column; empty when it has none)."""
    from .formula import get_formula

    table = get_formula(frontier).frontier  # fitted already by the tiny rule: no second read of the file
    measured_on = sorted(set(table["baseline"].dropna().astype(str))) if "baseline" in table else []
    return {"frontier": frontier, "frontier_baselines": measured_on,
            "formula_carried_over": bool(measured_on) and baseline not in measured_on}


def provenance_words(baseline: str, info: Dict[str, Any]) -> List[str]:
    """The provenance as the lines ``tinynet-formula`` prints."""
    measured = ", ".join(info["frontier_baselines"]) or "an unnamed baseline (the file has no baseline column)"
    source = ("the shipped EfficientNet-B0 frontier (the released TinyNet-A..E)" if info["frontier"] is None
              else f"frontier {info['frontier']} (measured on {measured})")
    lines = [f"r(c) and d(c) from {source}"]
    if info["formula_carried_over"]:
        lines += [f"carried over to {baseline} as the paper carries its formula to ResNet-50 and GhostNet;",
                  f"for {baseline}'s own: tinynet-study sample --baseline {baseline}, run, analyze, then --frontier"]
    return lines


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
