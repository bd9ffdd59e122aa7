"""The tiny formula (paper §3.2): Gaussian-process regression from the FLOPs ratio c to r and to d.

Modelling choices, all deliberate:

* inputs are ``log c`` and targets ``log r`` / ``log d``: ratios multiply, predictions stay positive, and
  the five-decade range of c is spread evenly;
* the prior mean is linear in ``log c`` (a power law ``r = a·c^b``), so away from the data the GP falls back
  to the trend of the frontier instead of collapsing to ``r -> 0`` as a zero-mean GP does;
* an RBF kernel (the paper's) with a Gaussian likelihood, hyper-parameters by maximising the exact marginal
  log likelihood in double precision: L-BFGS from three fixed starts (the likelihood of a five-point frontier has
  more than one basin), each run until the loss stops improving, lowest loss wins. Bit-deterministic on one
  machine; converged, so that CPUs that round differently agree on r(c) and d(c) to about 1e-8 (measured: 3e-15
  between PyTorch's CPU code paths, 2e-8 under 1e-9 perturbations of the data or the starts);
* the mean is made monotone in c over the data's range (a running maximum over a fine grid) — frontier
  networks grow in every dimension with FLOPs, and a wiggle of the GP between points must not make a
  larger budget get a smaller resolution.

Width is not modelled: the solver finds the w that makes the built network's FLOPs hit c·C0.
"""
from __future__ import annotations

import math
import warnings
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
import pandas as pd
import torch

from .deps import import_quietly
from .frontier import check_frontier_path, load_frontier

FIT_STEPS = 100  # L-BFGS iterations per round
FIT_MAX_ROUNDS = 10  # L-BFGS is restarted (fresh curvature memory) until the loss stops improving, at most this often
# "Stops improving": a round lowers the negative log marginal likelihood (per point) by less than this. Converged
# this far, predictions move by < 2e-8 between CPUs (measured; see tests/test_results.py), where a fixed step
# count left them wherever the iterations ran out (1e-2 apart on boundary optima such as outputscale -> 0).
FIT_LOSS_TOL = 1e-10
FIT_TIE = 1e-9  # two starts whose losses differ by less than this reached the same optimum: keep the earlier one
_GRID_POINTS = 401


class ExtrapolationWarning(UserWarning):
    """The formula was asked for a c outside the range of its frontier data."""


def _make_gp(train_x: torch.Tensor, train_y: torch.Tensor, min_lengthscale: float):
    gpytorch = import_quietly("gpytorch")
    rbf = gpytorch.kernels.RBFKernel(lengthscale_constraint=gpytorch.constraints.GreaterThan(min_lengthscale))

    class FrontierGP(gpytorch.models.ExactGP):
        def __init__(self, x: torch.Tensor, y: torch.Tensor, likelihood) -> None:
            super().__init__(x, y, likelihood)
            self.mean_module = gpytorch.means.LinearMean(1)
            self.covar_module = gpytorch.kernels.ScaleKernel(rbf)

        def forward(self, x: torch.Tensor):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(x), self.covar_module(x))

    likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=gpytorch.constraints.GreaterThan(1e-6))
    return FrontierGP(train_x, train_y, likelihood), likelihood


@dataclass
class GP1D:
    """One fitted GP from log c to log y, with a monotone mean over the data's range."""

    model: object
    likelihood: object
    x_min: float
    x_max: float
    grid_x: np.ndarray
    grid_mean: np.ndarray  # monotone (running max) posterior mean of log y on grid_x
    final_loss: float

    def _raw(self, log_c: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        gpytorch = import_quietly("gpytorch")

        self.model.eval()
        self.likelihood.eval()
        from gpytorch.utils.warnings import GPInputWarning

        x = torch.as_tensor(log_c, dtype=torch.float64).reshape(-1, 1)
        with torch.no_grad(), gpytorch.settings.fast_pred_var(False), warnings.catch_warnings():
            warnings.simplefilter("ignore", GPInputWarning)  # predicting at a frontier point is intended
            posterior = self.likelihood(self.model(x))
            return posterior.mean.numpy(), posterior.variance.clamp_min(0).sqrt().numpy()

    def predict_log(self, log_c: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Mean (monotone inside the data range) and predictive std of log y at log c."""
        mean, std = self._raw(log_c)
        inside = (log_c >= self.x_min) & (log_c <= self.x_max)
        mean = np.where(inside, np.interp(log_c, self.grid_x, self.grid_mean), mean)
        below, above = log_c < self.x_min, log_c > self.x_max
        # outside the range, keep the GP's own trend but never cross the monotone edge values
        mean = np.where(below, np.minimum(mean, self.grid_mean[0]), mean)
        mean = np.where(above, np.maximum(mean, self.grid_mean[-1]), mean)
        return mean, std


def smoothest_wiggle(log_c: np.ndarray) -> float:
    """The shortest RBF lengthscale the fit may choose: half the median gap between neighbouring frontier points
    (in log c). A shorter one lets a noisy frontier's GP bend through every point and back between them, which
    the monotone mean then flattens into steps; a frontier's trend is smooth at the scale of its sampling."""
    gaps = np.diff(np.unique(np.asarray(log_c, dtype=float)))
    return max(float(np.median(gaps)) / 2, 1e-3) if len(gaps) else 1e-3


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded for the block: the fit's matrices are a few rows, where handing work between
    threads costs more than it saves (30x slower on a busy 2-core machine), and one thread keeps the order of
    every reduction, so the rounding, independent of the machine's core count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _starts(log_c: np.ndarray, log_y: np.ndarray, min_lengthscale: float) -> List[Dict[str, float]]:
    """Hyper-parameter starting points, one per basin the likelihood is known to have on a small frontier: the
    trend bent through the points by the kernel (signal), the trend plus independent noise (noise), and a kernel
    as short as allowed (wiggle). The mean starts at the least-squares line in every case."""
    span = float(np.max(log_c) - np.min(log_c))
    variance = max(float(np.var(log_y, ddof=1)), 1e-4) if len(log_y) > 1 else 1.0
    slope, intercept = np.polyfit(log_c, log_y, 1) if len(log_c) > 1 else (0.0, float(np.mean(log_y)))
    residual = float(np.var(log_y - (slope * log_c + intercept)))
    lengthscale = max(span / 2, 2 * min_lengthscale)
    common = dict(slope=float(slope), intercept=float(intercept))
    return [dict(lengthscale=lengthscale, outputscale=variance, noise=1e-4, **common),
            dict(lengthscale=lengthscale, outputscale=1e-4 * variance, noise=max(residual, 1e-5), **common),
            dict(lengthscale=1.01 * min_lengthscale, outputscale=variance, noise=1e-4, **common)]


def _fit_from(x: torch.Tensor, y: torch.Tensor, min_lengthscale: float, start: Dict[str, float], steps: int,
              max_rounds: int, loss_tol: float):
    """L-BFGS from ``start``, restarted (fresh curvature memory) until a round lowers the loss by < loss_tol."""
    gpytorch = import_quietly("gpytorch")

    model, likelihood = _make_gp(x, y, min_lengthscale)
    model.double()
    likelihood.double()
    model.covar_module.base_kernel.lengthscale = start["lengthscale"]
    model.covar_module.outputscale = start["outputscale"]
    likelihood.noise = start["noise"]
    model.mean_module.weights.data.fill_(start["slope"])
    model.mean_module.bias.data.fill_(start["intercept"])
    model.train()
    likelihood.train()
    mll = gpytorch.mlls.ExactMarginalLogLikelihood(likelihood, model)
    params = list(model.parameters())

    def objective() -> torch.Tensor:
        for p in params:
            p.grad = None
        value = -mll(model(x), y)
        value.backward()
        return value

    try:
        with gpytorch.settings.cholesky_jitter(double_value=1e-10):
            loss = float(objective().detach())
            for _ in range(max_rounds):
                optimizer = torch.optim.LBFGS(params, lr=1.0, max_iter=steps, tolerance_grad=1e-9,
                                              tolerance_change=1e-12, line_search_fn="strong_wolfe")
                optimizer.step(objective)
                new_loss = float(objective().detach())
                improved, loss = loss - new_loss, new_loss
                if not math.isfinite(new_loss) or improved < loss_tol:
                    break
    except gpytorch.utils.errors.NotPSDError:  # this start went where the kernel matrix is singular
        return math.inf, model, likelihood
    finite = all(bool(torch.isfinite(p).all()) for p in params)
    return (loss if finite and math.isfinite(loss) else math.inf), model, likelihood


def fit_gp1d(log_c: np.ndarray, log_y: np.ndarray, steps: int = FIT_STEPS, seed: int = 0,
             max_rounds: int = FIT_MAX_ROUNDS, loss_tol: float = FIT_LOSS_TOL) -> GP1D:
    """Fit by exact marginal likelihood in float64: L-BFGS from each of ``_starts``, each run to convergence (rounds
    of at most ``steps`` iterations until the loss stops improving), and the start with the lowest loss wins (an
    earlier start on a tie within ``FIT_TIE``). Deterministic, and converged, so machines agree to rounding."""
    x = torch.as_tensor(log_c, dtype=torch.float64).reshape(-1, 1)
    y = torch.as_tensor(log_y, dtype=torch.float64)
    min_lengthscale = smoothest_wiggle(log_c)
    best = None
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        starts = _starts(np.asarray(log_c, dtype=float), np.asarray(log_y, dtype=float), min_lengthscale)
        for start in starts:
            fitted = _fit_from(x, y, min_lengthscale, start, steps, max_rounds, loss_tol)
            if best is None or fitted[0] < best[0] - FIT_TIE:
                best = fitted
    loss, model, likelihood = best
    if not math.isfinite(loss):
        raise ValueError(f"the tiny formula's GP fit failed on this frontier: none of its {len(starts)} starts "
                         f"reached a finite likelihood")

    x_min, x_max = float(np.min(log_c)), float(np.max(log_c))
    fitted = GP1D(model, likelihood, x_min, x_max, np.linspace(x_min, x_max, _GRID_POINTS), np.empty(0), loss)
    raw_grid, _ = fitted._raw(fitted.grid_x)
    fitted.grid_mean = np.maximum.accumulate(raw_grid)
    return fitted


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

    def __init__(self, frontier: pd.DataFrame, steps: int = FIT_STEPS, seed: int = 0) -> None:
        self.frontier = frontier
        log_c = np.log(frontier["c"].to_numpy(dtype=float))
        self.c_min, self.c_max = float(frontier["c"].min()), float(frontier["c"].max())
        self.gp_r = fit_gp1d(log_c, np.log(frontier["r"].to_numpy(dtype=float)), steps, seed)
        self.gp_d = fit_gp1d(log_c, np.log(frontier["d"].to_numpy(dtype=float)), steps, seed)

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
            p = TinyFormula(rest).predict(float(held["c"]), warn=False)
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
