"""From trained trials to a formula: NSGA-III non-dominated sorting (pymoo) on (top-1 up, FLOPs down), Spearman
correlations of r, d, w with FLOPs on the kept set, and the tiny formula's GPs fitted to it (paper §3.2).

The frontier is chosen among the randomly sampled models only, as in the paper: ``target`` models (one FLOPs
budget, for Fig. 2) and ``giant`` references would crowd one FLOPs value or are not samples of the cube.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, List

import numpy as np
import pandas as pd

from . import StudyError
from tinynet_core.study.tables import check_results

KEEP_FRACTION = 0.2
ANALYSIS_FILES = ("frontier.csv", "correlations.csv", "models.csv", "fig1_accuracy_vs_flops.png",
                  "fig2_accuracy_vs_dims.png", "fig3_dims_vs_flops.png")
MARKER = "analysis.json"  # which results table the folder analyses: a re-analysis may replace its files


@dataclass
class Analysis:
    models: pd.DataFrame  # every finished trial, with its front rank
    frontier: pd.DataFrame  # the kept models, in the frontier CSV schema
    correlations: pd.DataFrame  # dimension, spearman_rho, p_value, n


def front_ranks(top1: np.ndarray, flops: np.ndarray) -> np.ndarray:
    """Non-dominated front index of each model (0 = Pareto front), maximising top-1 and minimising FLOPs."""
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    objectives = np.column_stack([-np.asarray(top1, dtype=float), np.asarray(flops, dtype=float)])
    ranks = np.empty(len(objectives), dtype=int)
    for rank, members in enumerate(NonDominatedSorting().do(objectives)):
        ranks[members] = rank
    return ranks


def keep_fronts(ranks: np.ndarray, fraction: float = KEEP_FRACTION, minimum: int = 3) -> np.ndarray:
    """Whole fronts, best first, until at least ``fraction`` of the models (and ``minimum``) are kept."""
    target = max(minimum, math.ceil(fraction * len(ranks)))
    kept = np.zeros(len(ranks), dtype=bool)
    for rank in range(int(ranks.max()) + 1):
        if kept.sum() >= target:
            break
        kept |= ranks == rank
    return kept


def spearman(df: pd.DataFrame) -> pd.DataFrame:
    from scipy.stats import spearmanr

    rows = []
    for dim in ("r", "d", "w"):
        if df[dim].nunique() < 2 or len(df) < 3:
            rho, p = float("nan"), float("nan")
        else:
            result = spearmanr(df[dim], df["flops"])
            rho, p = float(result.statistic), float(result.pvalue)
        rows.append({"dimension": dim, "spearman_rho": rho, "p_value": p, "n": len(df)})
    return pd.DataFrame(rows)


def analyze(results: pd.DataFrame, keep_fraction: float = KEEP_FRACTION) -> Analysis:
    """Front ranks of the finished random trials, the kept fronts as a frontier table, and their correlations."""
    check_results(results, "results")
    ok = results[results["status"] == "ok"].copy()
    sampled = ok[ok["kind"] == "random"]
    if len(sampled) < 3:
        raise StudyError(f"need at least 3 finished random trials to analyze, found {len(sampled)}")
    ok["front"] = -1
    ranks = front_ranks(sampled["top1"].to_numpy(), sampled["flops"].to_numpy())
    ok.loc[sampled.index, "front"] = ranks
    kept = sampled[keep_fronts(ranks, keep_fraction)]
    ok["frontier"] = ok.index.isin(kept.index)
    frontier = pd.DataFrame({
        "c": kept["c"], "r": kept["r"], "d": kept["d"], "w": kept["w"], "flops": kept["flops"],
        "top1": kept["top1"], "source": "trial " + kept["id"].astype(str), "baseline": kept["baseline"],
    }).sort_values("c").reset_index(drop=True)
    if frontier["c"].nunique() < 2:
        raise StudyError("the kept models all have the same FLOPs ratio; the formula needs a spread")
    return Analysis(ok.reset_index(drop=True), frontier, spearman(kept))


def check_out_dir(out_dir: Path, results_path: Path) -> None:
    """``out_dir`` may be new, empty, or an earlier analysis of the same results file (its files are replaced);
    anything else is refused rather than mixed with or overwritten. It must not be or hold the results file, and
    it must be writable: all checked before any work."""
    from tinynet_core.guard import LOCK_NAME, MANIFEST, MB, check_input_file, check_output_dir

    out_dir = Path(out_dir)
    check_output_dir(out_dir, "--out", (*ANALYSIS_FILES, MARKER), [("results", results_path)], overwrite=True)
    if not out_dir.exists() or not any(out_dir.iterdir()):
        return
    try:
        marker = check_input_file(out_dir / MARKER, MARKER, MB)  # a regular file: a pipe there never blocks us
        recorded = json.loads(marker.read_text())["results"]
    except (OSError, ValueError, KeyError, TypeError):  # GuardError is a ValueError
        raise StudyError(f"{out_dir} is not empty and is not an analysis folder (no {MARKER}); choose a new "
                         f"--out") from None
    if recorded != str(Path(results_path).resolve()):
        raise StudyError(f"{out_dir} holds the analysis of {recorded}; choose another --out")
    ours = (*ANALYSIS_FILES, MARKER, MANIFEST, LOCK_NAME)
    foreign = sorted(p.name for p in out_dir.iterdir() if p.name not in ours)
    if foreign:
        raise StudyError(f"{out_dir} holds files that are not analysis outputs ({', '.join(foreign[:3])}); "
                         f"choose another --out")


def write_analysis(analysis: Analysis, out_dir: Path, results_path: Path) -> Dict[str, Path]:
    """frontier.csv (for ``tinynet-formula --frontier``), correlations.csv, models.csv and the figures; the
    outputs of an earlier analysis of the same results that this one does not make (Fig. 2) are removed."""
    from tinynet_core.atomic import write_text
    from tinynet_core.formula import TinyFormula
    from .figures import figure_accuracy_vs_dims, figure_accuracy_vs_flops, figure_dims_vs_flops
    from tinynet_core.study.tables import write_csv_atomic

    check_out_dir(out_dir, results_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    write_text(out_dir / MARKER, json.dumps({"results": str(Path(results_path).resolve())}, indent=1) + "\n")
    paths = {name: out_dir / name for name in ("frontier.csv", "correlations.csv", "models.csv")}
    for name, df in (("frontier.csv", analysis.frontier), ("correlations.csv", analysis.correlations),
                     ("models.csv", analysis.models)):
        write_csv_atomic(paths[name], df.to_dict("records"), list(df.columns))
    formula = TinyFormula(analysis.frontier)
    paths["fig1_accuracy_vs_flops.png"] = figure_accuracy_vs_flops(analysis.models, out_dir)
    fig2 = figure_accuracy_vs_dims(analysis.models, out_dir)
    if fig2 is not None:
        paths["fig2_accuracy_vs_dims.png"] = fig2
    paths["fig3_dims_vs_flops.png"] = figure_dims_vs_flops(analysis.frontier, formula, out_dir)
    for name in ANALYSIS_FILES:
        if name not in paths:
            (out_dir / name).unlink(missing_ok=True)
    return paths


def summary_lines(analysis: Analysis) -> List[str]:
    n = int((analysis.models["kind"] == "random").sum())
    lines = [f"{len(analysis.frontier)} of {n} sampled models kept (non-dominated fronts on top-1 up, FLOPs down)"]
    for row in analysis.correlations.itertuples():
        lines.append(f"  Spearman rho({row.dimension}, FLOPs) = {row.spearman_rho:+.3f} (p = {row.p_value:.3g})")
    return lines
