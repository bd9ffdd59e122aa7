"""Tables that check this implementation against the paper."""
from __future__ import annotations

from typing import Iterable, Optional

import pandas as pd
import timm

from . import models as _models  # noqa: F401  (registers the models)
from .cube import Cube
from .flops import count_flops, count_params
from .paper import PAPER_MODELS, PaperModel


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
        "source": entry.source,
    }


def model_table(entries: Iterable[PaperModel] = PAPER_MODELS) -> pd.DataFrame:
    """FLOPs (fvcore conv + linear multiply-adds) and parameters of every paper model, next to the paper's."""
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
