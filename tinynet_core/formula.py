"""The tiny formula (paper §3.2): Gaussian-process regression from the FLOPs ratio c to r and to d.

Modelling choices, all deliberate:

* inputs are ``log c`` and targets ``log r`` / ``log d``: ratios multiply, predictions stay positive, and
  the five-decade range of c is spread evenly;
* the prior mean is linear in ``log c`` (a power law ``r = a·c^b``), so away from the data the GP falls back
  to the trend of the frontier instead of collapsing to ``r -> 0`` as a zero-mean GP does;
* an RBF kernel (the paper's) with a Gaussian likelihood, hyper-parameters by maximising the exact marginal
  log likelihood in double precision, from three starts to convergence (``gp_fit.py``), so that machines that
  round differently agree on r(c) and d(c) to about 1e-8;
* the mean is made monotone in c over the data's range (a running maximum over a fine grid) — frontier
  networks grow in every dimension with FLOPs, and a wiggle of the GP between points must not make a
  larger budget get a smaller resolution.

Width is not modelled: the solver finds the w that makes the built network's FLOPs hit c·C0.

A frontier is fitted once: GPyTorch fits (``gp_fit.py``, imported only then), the fitted state is kept by the
frontier's content (``gp_cache.py``: shipped beside the default frontier, in the user's cache folder for any
other), and predictions are the closed-form posterior in numpy (``gp.py``). A formula whose state is shipped or
cached, the default one included, is built without importing torch or GPyTorch.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Optional, Tuple

import numpy as np
import pandas as pd

from .frontier import check_frontier_path, load_frontier
from .gp import GP1D
from .gp_cache import fitted_columns, fitted_state
from .gp_fit import FIT_STEPS, fit_gp1d, smoothest_wiggle

__all__ = ["ExtrapolationWarning", "GP1D", "Prediction", "TinyFormula", "fit_gp1d", "frontier_key", "get_formula",
           "smoothest_wiggle"]


class ExtrapolationWarning(UserWarning):
    """The formula was asked for a c outside the range of its frontier data."""


@dataclass(frozen=True)
class Prediction:
    c: float
    r: float
    r_std: float
    d: float
    d_std: float
    extrapolating: bool


class TinyFormula:
    """r(c) and d(c) from a frontier table (see ``frontier.py`` for the CSV schema)."""

    def __init__(self, frontier: pd.DataFrame, steps: int = FIT_STEPS, seed: int = 0, cache: bool = True) -> None:
        """``cache=False`` fits afresh and reads or writes no fitted state (to time or test the fit itself)."""
        self.frontier = frontier
        self.steps, self.seed, self.cache = steps, seed, cache
        crd = fitted_columns(frontier)
        state = fitted_state(crd, steps, seed, cache)
        logs = np.log(crd)
        self.c_min, self.c_max = float(crd[:, 0].min()), float(crd[:, 0].max())
        self.gp_r = GP1D(logs[:, 0], logs[:, 1], *state["r"])
        self.gp_d = GP1D(logs[:, 0], logs[:, 2], *state["d"])

    def predict_many(self, c: np.ndarray) -> Dict[str, np.ndarray]:
        """Means and (delta-method) standard deviations of r and d at each c."""
        log_c = np.log(np.asarray(c, dtype=float))
        out = {"c": np.asarray(c, dtype=float)}
        for name, gp in (("r", self.gp_r), ("d", self.gp_d)):
            mean, std = gp.predict_log(log_c)
            out[name] = np.exp(mean)
            out[f"{name}_std"] = np.exp(mean) * std
            out[f"{name}_lo"], out[f"{name}_hi"] = np.exp(mean - 2 * std), np.exp(mean + 2 * std)
        return out

    def predict(self, c: float, warn: bool = True) -> Prediction:
        p = self.predict_many(np.array([c]))
        extrapolating = not (self.c_min <= c <= self.c_max)
        prediction = Prediction(c, float(p["r"][0]), float(p["r_std"][0]), float(p["d"][0]), float(p["d_std"][0]),
                                extrapolating)
        if extrapolating and warn:
            warnings.warn(
                f"c={c:g} is outside the frontier's range [{self.c_min:.3g}, {self.c_max:.3g}]: r = "
                f"{prediction.r:.3f} ± {prediction.r_std:.3f}, d = {prediction.d:.3f} ± {prediction.d_std:.3f} "
                f"are extrapolated", ExtrapolationWarning, stacklevel=2)
        return prediction

    def leave_one_out(self) -> pd.DataFrame:
        """Refit without each frontier point and predict it: per-point errors of r and d."""
        rows = []
        for i in range(len(self.frontier)):
            rest = self.frontier.drop(index=self.frontier.index[i])
            held = self.frontier.iloc[i]
            p = TinyFormula(rest, self.steps, self.seed, self.cache).predict(float(held["c"]), warn=False)
            rows.append(dict(c=held["c"], r=held["r"], r_pred=p.r, r_err=p.r - held["r"],
                             d=held["d"], d_pred=p.d, d_err=p.d - held["d"]))
        return pd.DataFrame(rows)


def frontier_key(frontier: pd.DataFrame) -> Tuple:
    return tuple(map(tuple, frontier[["c", "r", "d"]].to_numpy(dtype=float).round(12).tolist()))


@lru_cache(maxsize=8)
def _formula_for(path: Optional[str]) -> TinyFormula:
    return TinyFormula(load_frontier(path))


def get_formula(frontier: Optional[str] = None) -> TinyFormula:
    """The fitted formula for a frontier CSV path (default: the shipped EfficientNet-B0 frontier), cached."""
    return _formula_for(None if frontier is None else str(check_frontier_path(frontier)))
