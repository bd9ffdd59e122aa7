"""The paper's study figures (1-3) from an analysed study."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np
import pandas as pd


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: Path) -> Path:
    from tinynet_core.atomic import replace_atomically

    return replace_atomically(path, lambda tmp: fig.savefig(tmp, dpi=110, format="png"))


def figure_accuracy_vs_flops(models: pd.DataFrame, out_dir: Path) -> Path:
    """Fig. 1: every model's accuracy vs FLOPs; frontier, --target-c and inverse-giant-formula models marked."""
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6.5, 4.5), constrained_layout=True)
    sampled = models[models["kind"] == "random"]
    ax.scatter(sampled["flops"] / 1e6, sampled["top1"], color="0.6", label="sampled models")
    front = sampled[sampled["frontier"]]
    ax.scatter(front["flops"] / 1e6, front["top1"], color="crimson", zorder=3, label="kept frontier models")
    target = models[models["kind"] == "target"]
    if len(target):
        ax.scatter(target["flops"] / 1e6, target["top1"], color="steelblue", marker="s",
                   label="--target-c models (not ranked)")
    giant = models[models["kind"] == "giant"].sort_values("flops")
    if len(giant):
        ax.plot(giant["flops"] / 1e6, giant["top1"], "o-", color="seagreen", label="inverse giant formula")
    ax.set_xlabel("FLOPs (M)")
    ax.set_ylabel("top-1 accuracy (%)")
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title("Accuracy vs FLOPs of the sampled models")
    path = _save(fig, out_dir / "fig1_accuracy_vs_flops.png")
    plt.close(fig)
    return path


def figure_accuracy_vs_dims(models: pd.DataFrame, out_dir: Path) -> Optional[Path]:
    """Fig. 2: accuracy vs r, d, w for the models sampled at one FLOPs target (plan --target-c); None if none."""
    target = models[models["kind"] == "target"]
    if len(target) < 2:
        return None
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), sharey=True, constrained_layout=True)
    for ax, dim, label in zip(axes, ("r", "d", "w"), ("resolution r", "depth d", "width w")):
        ax.scatter(target[dim], target["top1"], color="steelblue")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel("top-1 accuracy (%)")
    fig.suptitle(f"Accuracy vs (r, d, w) at about {target['c'].median():.2f} C0 FLOPs")
    path = _save(fig, out_dir / "fig2_accuracy_vs_dims.png")
    plt.close(fig)
    return path


def _log_axis_plain(ax) -> None:
    """A log x axis labelled 0.02, 0.05, 0.1, ...: a study's frontier often spans less than a decade, where
    matplotlib labels every minor tick in scientific notation and the labels run into each other."""
    from matplotlib import ticker

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(ticker.LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
    ax.xaxis.set_minor_formatter(ticker.NullFormatter())


def figure_dims_vs_flops(frontier: pd.DataFrame, formula, out_dir: Path) -> Path:
    """Fig. 3: r, d, w vs FLOPs ratio on the frontier, with the fitted GP mean ± 2 sigma for r and d."""
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6), constrained_layout=True)
    c = np.geomspace(frontier["c"].min(), frontier["c"].max(), 200)
    p = formula.predict_many(c)
    for ax, dim, label in zip(axes, ("r", "d", "w"), ("resolution r", "depth d", "width w")):
        if dim in ("r", "d"):
            ax.fill_between(c, p[f"{dim}_lo"], p[f"{dim}_hi"], alpha=0.25, label="GP mean ± 2σ")
            ax.plot(c, p[dim], lw=2, label="GP mean")
        ax.scatter(frontier["c"], frontier[dim], color="crimson", zorder=3, label="frontier models")
        _log_axis_plain(ax)
        ax.set_xlabel("FLOPs ratio c")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("(r, d, w) of the frontier models vs FLOPs")
    path = _save(fig, out_dir / "fig3_dims_vs_flops.png")
    plt.close(fig)
    return path
