"""Tables that check this implementation against the paper."""
from __future__ import annotations

from functools import lru_cache
from typing import Iterable, Optional

import pandas as pd
import timm

from . import models as _models  # noqa: F401  (registers the models)
from tinynet_core.cube import Cube
from .flops import count_flops, count_params
from .verify import count_activations
from tinynet_core.paper import PAPER_MODELS, PaperModel


def _cube_of(entry: PaperModel) -> Optional[Cube]:
    if entry.model in _models.PAPER_MODELS:
        return _models.PAPER_MODELS[entry.model][1]
    if entry.model in ("tinynet", "resnet50_tiny", "ghostnet_tiny", "efficientnet_b0", "resnet50"):
        return Cube(**entry.kwargs)
    return None


def _rel(ours: float, paper: Optional[float]) -> Optional[float]:
    return None if paper is None else round(ours / paper - 1.0, 4)


def model_row(entry: PaperModel) -> dict:
    model = timm.create_model(entry.model, **entry.kwargs)
    flops_m = count_flops(model) / 1e6
    params_m = count_params(model) / 1e6
    activations_m = count_activations(model, model.pretrained_cfg["input_size"][-1]) / 1e6
    cube = _cube_of(entry)
    call = ", ".join([repr(entry.model)] + [f"{k}={v!r}" for k, v in entry.kwargs.items()])
    return {
        "model": entry.label,
        "create_model": f"timm.create_model({call})",
        "input_size": model.pretrained_cfg["input_size"][-1],
        "r": None if cube is None else round(cube.r, 4),
        "d": None if cube is None else round(cube.d, 4),
        "w": None if cube is None else round(cube.w, 4),
        "params_m": round(params_m, 3),
        "paper_params_m": entry.params_m,
        "params_rel_diff": _rel(params_m, entry.params_m),
        "flops_m": round(flops_m, 1),
        "paper_flops_m": entry.flops_m,
        "flops_rel_diff": _rel(flops_m, entry.flops_m),
        "activations_m": round(activations_m, 3),
        "source": entry.source,
    }


def model_table(entries: Iterable[PaperModel] = PAPER_MODELS) -> pd.DataFrame:
    """FLOPs (fvcore conv + linear multiply-adds) and parameters of every paper model, next to the paper's, and
    activations (fvcore: conv + linear output elements per image; the paper reports none)."""
    return pd.DataFrame([model_row(e) for e in entries])


def _markdown_cell(column: str, value) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    if column.endswith("rel_diff"):
        return f"{value:+.1%}"
    return str(value)


def to_markdown(df: pd.DataFrame) -> str:
    """A GitHub Markdown table (without pandas' optional tabulate dependency)."""
    lines = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_markdown_cell(col, value) for col, value in row.items()) + " |")
    return "\n".join(lines) + "\n"


PAPER_C = (0.9, 0.5, 0.25, 0.13, 0.06)
_RELEASED = dict(zip(PAPER_C, ("tinynet_a", "tinynet_b", "tinynet_c", "tinynet_d", "tinynet_e")))
_B_MINUS = {0.5: "efficientnet_bm1", 0.25: "efficientnet_bm2", 0.13: "efficientnet_bm3", 0.06: "efficientnet_bm4"}


def _cube_columns(prefix: str, baseline: str, cube: Cube) -> dict:
    from tinynet_core.cost import cube_cost_analytic

    cost = cube_cost_analytic(baseline, cube)
    return {f"{prefix}_r": round(cube.r, 4), f"{prefix}_d": round(cube.d, 4), f"{prefix}_w": round(cube.w, 4),
            f"{prefix}_px": cost.img_size, f"{prefix}_flops_m": round(cost.flops / 1e6, 1),
            f"{prefix}_params_m": round(cost.params / 1e6, 3), f"{prefix}_acts_m": round(cost.activations / 1e6, 3)}


def formula_table(c_values: Iterable[float] = PAPER_C, frontier: Optional[str] = None) -> pd.DataFrame:
    """The tiny formula at the paper's c values next to the released TinyNets and EfficientNet-B^-phi."""
    import warnings

    from tinynet_core.formula import ExtrapolationWarning
    from tinynet_core.solve import shrink

    rows = []
    for c in c_values:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            result = shrink("efficientnet_b0", c, "tiny", frontier=frontier)
        row = {"c": c, "target_flops_m": round(result.target_flops / 1e6, 1)}
        row.update(_cube_columns("tiny", "efficientnet_b0", result.cube))
        row.update(tiny_r_std=round(result.extras["r_std"], 4), tiny_d_std=round(result.extras["d_std"], 4),
                   tiny_w_eq5=round(result.extras["w_eq5"], 4), tiny_flops_err=round(result.rel_error, 4),
                   tiny_nudged_px=int(result.extras.get("nudged_px", 0)))
        if c in _RELEASED:
            row["released"] = _RELEASED[c]
            row.update(_cube_columns("released", "efficientnet_b0", _models.TINYNET_CUBES[_RELEASED[c]]))
        if c in _B_MINUS:
            row["giant"] = _B_MINUS[c]
            row.update(_cube_columns("giant", "efficientnet_b0_compound", _models.B_MINUS_CUBES[_B_MINUS[c]]))
        rows.append(row)
    return pd.DataFrame(rows)


BASELINE_C = (0.5, 0.25)


def baseline_table(c_values: Iterable[float] = BASELINE_C) -> pd.DataFrame:
    """Every baseline at ``Cube(1, 1, 1)`` (timm's own model) and shrunk by the tiny formula to each c: the cube,
    input size, FLOPs against the target, parameters and activations (analytic cost model, exact against fvcore)."""
    import warnings

    from tinynet_core.baselines import BASELINES
    from tinynet_core.cost import cube_cost_analytic
    from tinynet_core.explain import create_model_args
    from tinynet_core.formula import ExtrapolationWarning
    from tinynet_core.solve import shrink

    rows = []
    for name, base in BASELINES.items():
        whole = cube_cost_analytic(name, Cube())
        row = {"baseline": name, "input_size": whole.img_size, "flops_m": round(whole.flops / 1e6, 1),
               "params_m": round(whole.params / 1e6, 3), "acts_m": round(whole.activations / 1e6, 3)}
        for c in c_values:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ExtrapolationWarning)
                result = shrink(name, c, "tiny")
            tag = f"c{c:g}"
            row.update(_cube_columns(tag, name, result.cube))
            row[f"{tag}_flops_err"] = round(result.rel_error, 4)
        call = create_model_args(name, 1.0, 1.0, 1.0)
        extra = "".join(f", {k}={v!r}" for k, v in call["kwargs"].items() if k not in "rdw")
        row["create_model"] = f"timm.create_model({call['model']!r}{extra}, c=...)"
        rows.append(row)
    return pd.DataFrame(rows)


def baseline_markdown(df: pd.DataFrame, c_values: Iterable[float] = BASELINE_C) -> str:
    """The baseline table in readable form: one cell per network."""
    compact = {"baseline": df["baseline"],
               "Cube(1, 1, 1)": [f"{int(row['input_size'])}px · {row['flops_m']:g}M FLOPs · {row['params_m']:.2f}M "
                                 f"params" for _, row in df.iterrows()]}
    for c in c_values:
        tag = f"c{c:g}"
        compact[f"tiny formula, c = {c:g}"] = [
            f"r {row[f'{tag}_r']:g}, d {row[f'{tag}_d']:g}, w {row[f'{tag}_w']:g} · {int(row[f'{tag}_px'])}px · "
            f"{row[f'{tag}_flops_m']:g}M FLOPs ({row[f'{tag}_flops_err']:+.1%}) · {row[f'{tag}_params_m']:.2f}M params"
            for _, row in df.iterrows()]
    compact["create_model"] = df["create_model"]
    return to_markdown(pd.DataFrame(compact))


TABLE6 = (("ghostnet_b", "GhostNet-B", 300e6, 8.0e6), ("ghostnet_c", "GhostNet-C", 141e6, 5.0e6),
          ("ghostnet_d", "GhostNet-D", 52e6, 2.6e6))


def _ghost_cost(cube: Cube, head_rule: str):
    from tinynet_core import cost

    return _ghost_total(cost.ghostnet_a_arch(cube, head_rule), cost.default_img_size("ghostnet_a", cube))


@lru_cache(maxsize=None)
def _ghost_total(arch, size: int):  # the width bisections meet the same architectures many times
    from tinynet_core import cost

    return cost.total_cost(cost.ghostnet_a_layers(arch, 1000, size), size)


def _ghost_width_for(r: float, d: float, flops: float, head_rule: str) -> Cube:
    """The width whose network's FLOPs are nearest ``flops`` at (r, d): the two sides of the step that crosses it
    (the solver's ``crossing``), the nearer kept."""
    from tinynet_core.solve import crossing

    below, above = crossing(lambda w: _ghost_cost(Cube(r, d, w), head_rule).flops, 0.05, 2.0, flops)
    return min((Cube(r, d, round(below, 4)), Cube(r, d, round(above, 4))),
               key=lambda k: abs(_ghost_cost(k, head_rule).flops - flops))


def ghostnet_head_rule_table() -> pd.DataFrame:
    """Issue 13 part 3: GhostNet-B/C/D at Table 6's FLOPs under each head rule. ``formula_*``: the named model's r
    and d (the tiny formula on the shipped frontier), width solved for the FLOPs; ``fit_*``: at the same depth, the
    input size (and width solved for the FLOPs) whose parameters come nearest to Table 6's, i.e. the resolution the
    paper's own frontier would have had to give for that rule to reproduce Table 6."""
    from tinynet_core.cost import GHOST_HEAD_RULES, ghost_width

    rows = []
    for name, label, flops, params in TABLE6:
        named = _models.PAPER_MODELS[name][1]
        for rule in GHOST_HEAD_RULES:  # the named model itself under its own rule, else the width re-solved
            cube = named if rule == "at_least" else _ghost_width_for(named.r, named.d, flops, rule)
            got = _ghost_cost(cube, rule)
            fits = []
            for size in range(96, 265):
                r = size / 240 + 1e-9
                fit = _ghost_width_for(r, named.d, flops, rule)
                fit_cost = _ghost_cost(fit, rule)
                if abs(fit_cost.flops / flops - 1) <= 0.01:
                    fits.append((abs(fit_cost.params - params), size, fit, fit_cost))
            _, size, fit, fit_cost = min(fits, key=lambda item: item[0])
            rows.append({
                "model": label, "head_rule": rule, "named_model_uses": rule == "at_least",
                "paper_flops_m": flops / 1e6, "paper_params_m": params / 1e6,
                "formula_r": named.r, "formula_d": named.d, "formula_w": cube.w, "formula_px": got.img_size,
                "formula_head": ghost_width(1400, cube.w) if rule == "scaled" else max(1400, ghost_width(1400, cube.w)),
                "formula_flops_m": round(got.flops / 1e6, 1), "formula_params_m": round(got.params / 1e6, 3),
                "formula_params_rel_diff": round(got.params / params - 1, 4),
                "fit_px": size, "fit_r": round(size / 240, 4), "fit_w": fit.w,
                "fit_flops_m": round(fit_cost.flops / 1e6, 1), "fit_params_m": round(fit_cost.params / 1e6, 3),
                "fit_params_rel_diff": round(fit_cost.params / params - 1, 4)})
    return pd.DataFrame(rows)


def formula_figure(path, frontier: Optional[str] = None) -> None:
    """r(c) and d(c): GP mean ± 2 sigma, frontier points, and the inverse giant formula for contrast."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    from tinynet_core.cube import GIANT_DEPTH_BASE, GIANT_RESOLUTION_BASE, GIANT_WIDTH_BASE
    from tinynet_core.formula import get_formula

    formula = get_formula(frontier)
    c = np.geomspace(0.02, 1.0, 300)
    p = formula.predict_many(c)
    phi = np.log(c) / np.log(GIANT_DEPTH_BASE * GIANT_WIDTH_BASE ** 2 * GIANT_RESOLUTION_BASE ** 2)
    giant = {"r": GIANT_RESOLUTION_BASE ** phi, "d": GIANT_DEPTH_BASE ** phi}
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, dim, label in zip(axes, ("r", "d"), ("resolution r", "depth d")):
        ax.fill_between(c, p[f"{dim}_lo"], p[f"{dim}_hi"], alpha=0.25, label="GP mean ± 2σ")
        ax.plot(c, p[dim], lw=2, label="tiny formula r(c)" if dim == "r" else "tiny formula d(c)")
        ax.plot(c, giant[dim], "--", color="gray", label="inverse giant formula")
        ax.scatter(formula.frontier["c"], formula.frontier[dim], color="crimson", zorder=3, label="frontier points")
        ax.axvspan(formula.c_min, formula.c_max, color="k", alpha=0.04, label="frontier range")
        ax.set_xscale("log")
        ax.set_xlabel("FLOPs ratio c")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("Tiny formula on the shipped EfficientNet-B0 frontier (released TinyNet-A..E)"
                 if frontier is None else f"Tiny formula on {frontier}")
    from tinynet_core.atomic import replace_atomically

    # no "Software" text chunk (it names the matplotlib version): the same figure gives the same bytes, so a
    # regenerated copy that did not change is no change to git
    replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=120, format="png", metadata={"Software": None}))
    plt.close(fig)


def _model_cell(row: pd.Series, prefix: str, with_std: bool = False) -> str:
    if f"{prefix}_r" not in row or pd.isna(row.get(f"{prefix}_r")):
        return ""
    r, d = f"{row[f'{prefix}_r']:g}", f"{row[f'{prefix}_d']:g}"
    if with_std:
        r, d = f"{r}±{row[f'{prefix}_r_std']:.3f}", f"{d}±{row[f'{prefix}_d_std']:.3f}"
    return (f"r {r}, d {d}, w {row[f'{prefix}_w']:g} · {int(row[f'{prefix}_px'])}px · "
            f"{row[f'{prefix}_flops_m']:g}M FLOPs · {row[f'{prefix}_params_m']:.2f}M params · "
            f"{row[f'{prefix}_acts_m']:.2f}M activations")


def formula_markdown(df: pd.DataFrame) -> str:
    """The formula table in readable form (one cell per model)."""
    compact = pd.DataFrame({
        "c": df["c"],
        "target": [f"{v:g}M" for v in df["target_flops_m"]],
        "tiny formula": [_model_cell(row, "tiny", with_std=True) + f" ({row['tiny_flops_err']:+.1%})"
                         + (f", input nudged {row['tiny_nudged_px']:+d}px" if row["tiny_nudged_px"] else "")
                         for _, row in df.iterrows()],
        "released TinyNet": [f"{row.get('released', '')}: {_model_cell(row, 'released')}"
                             if isinstance(row.get("released"), str) else "" for _, row in df.iterrows()],
        "EfficientNet-B^-φ": [f"{row['giant']}: {_model_cell(row, 'giant')}" if isinstance(row.get("giant"), str)
                              else "" for _, row in df.iterrows()],
    })
    return to_markdown(compact)
