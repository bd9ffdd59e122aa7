"""The tiny formula's Gaussian processes at prediction time: the closed-form posterior, in numpy.

A GP is fitted once (``gp_fit.py``, GPyTorch), but predicting from it needs only its five hyper-parameters and the
training points: the posterior is a Cholesky factorisation and two triangular solves. Importing torch and GPyTorch
takes seconds; this algebra on a frontier of at most 200 points takes milliseconds, so a process that predicts
from a fitted state (shipped or cached, ``gp_cache.py``) imports neither.

The model is GPyTorch's ``ExactGP`` with a ``LinearMean``, a ``ScaleKernel(RBFKernel)`` and a
``GaussianLikelihood``, on inputs x = log c and targets y = log r (or log d)::

    y = m(x) + f(x) + e,   m(x) = slope·x + bias,   f ~ GP(0, k),   k(x, x') = s·exp(-(x - x')² / 2l²),   e ~ N(0, n)

and the prediction is what ``likelihood(model(x*))`` returns in eval mode, noise included (the spread of a new
frontier measurement at x*, the quantity the formula reports)::

    mean(x*) = m(x*) + k(x*, X) (K + nI)⁻¹ (y - m(X))
    var(x*)  = s - k(x*, X) (K + nI)⁻¹ k(X, x*) + n

Tests check both agree with GPyTorch's own prediction to 1e-9.
"""
from __future__ import annotations

import math
from dataclasses import astuple, dataclass
from typing import NamedTuple, Optional, Tuple

import numpy as np

GRID_POINTS = 401  # the monotone mean is a running maximum over this many points spread evenly over the data


@dataclass(frozen=True)
class Hyper:
    """One GP's fitted hyper-parameters, as plain floats: what a fit returns and what a cached state stores."""

    lengthscale: float  # RBF lengthscale l, in units of log c
    outputscale: float  # kernel variance s
    noise: float  # likelihood variance n
    slope: float  # prior mean m(x) = slope·x + bias: a power law r = e^bias·c^slope
    bias: float

    def problem(self) -> Optional[str]:
        """Why these values define no GP (None when they do). l and n divide and regularise, so they must be
        > 0; s may reach 0 (a fit whose optimum is the bare trend drives it there); all must be finite."""
        if not all(isinstance(v, float) and math.isfinite(v) for v in astuple(self)):
            return "a hyper-parameter is not a finite float"
        if self.lengthscale <= 0 or self.noise <= 0 or self.outputscale < 0:
            return "lengthscale and noise must be > 0 and outputscale >= 0"
        return None


class Fitted(NamedTuple):
    """A GP's hyper-parameters and the loss the fit ended at (GPyTorch's negative log marginal likelihood per
    point): a cached state's loss must be reproduced by its hyper-parameters, which checks it fits this data."""

    hyper: Hyper
    final_loss: float


def _prior_mean(hyper: Hyper, x: np.ndarray) -> np.ndarray:
    return hyper.slope * x + hyper.bias


def _kernel(hyper: Hyper, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    scaled = (a[:, None] - b[None, :]) / hyper.lengthscale
    return hyper.outputscale * np.exp(-0.5 * scaled * scaled)


def _train_cholesky(hyper: Hyper, x: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor of K + nI on the training inputs (LinAlgError when it is not positive definite)."""
    return np.linalg.cholesky(_kernel(hyper, x, x) + hyper.noise * np.eye(len(x)))


def neg_log_marginal_likelihood(hyper: Hyper, x: np.ndarray, y: np.ndarray) -> float:
    """The fit's loss, -log N(y; m(X), K + nI) / len(y), as GPyTorch's ``ExactMarginalLogLikelihood`` computes it
    (no priors): recomputed here, it tells whether a cached state's hyper-parameters belong to this data."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    chol = _train_cholesky(hyper, x)
    z = np.linalg.solve(chol, y - _prior_mean(hyper, x))
    return float((z @ z + 2 * np.sum(np.log(np.diag(chol))) + len(y) * math.log(2 * math.pi)) / (2 * len(y)))


class GP1D:
    """One fitted GP from log c to log y, with a monotone mean over the data's range. Holds floats and arrays
    only, so it is built from a cached state without torch."""

    def __init__(self, train_x: np.ndarray, train_y: np.ndarray, hyper: Hyper, final_loss: float) -> None:
        self.train_x = np.array(train_x, dtype=np.float64).reshape(-1)
        self.train_y = np.array(train_y, dtype=np.float64).reshape(-1)
        self.hyper, self.final_loss = hyper, float(final_loss)
        self._chol = _train_cholesky(hyper, self.train_x)
        # (K + nI)⁻¹ (y - m(X)), the weights of the posterior mean, solved once
        residual = self.train_y - _prior_mean(hyper, self.train_x)
        self._weights = np.linalg.solve(self._chol.T, np.linalg.solve(self._chol, residual))
        self.x_min, self.x_max = float(self.train_x.min()), float(self.train_x.max())
        self.grid_x = np.linspace(self.x_min, self.x_max, GRID_POINTS)
        self.grid_mean = np.maximum.accumulate(self.posterior(self.grid_x)[0])  # monotone mean of log y on grid_x

    def posterior(self, x: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """The GP's own predictive mean and std (noise included) at x, before the monotone repair."""
        x = np.asarray(x, dtype=np.float64).reshape(-1)
        cross = _kernel(self.hyper, self.train_x, x)  # k(X, x*)
        mean = _prior_mean(self.hyper, x) + cross.T @ self._weights
        v = np.linalg.solve(self._chol, cross)
        variance = self.hyper.outputscale - np.sum(v * v, axis=0) + self.hyper.noise
        return mean, np.sqrt(np.maximum(variance, 0.0))

    def predict_log(self, log_c: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        """Mean (monotone inside the data range) and predictive std of log y at log c."""
        mean, std = self.posterior(log_c)
        inside = (log_c >= self.x_min) & (log_c <= self.x_max)
        mean = np.where(inside, np.interp(log_c, self.grid_x, self.grid_mean), mean)
        below, above = log_c < self.x_min, log_c > self.x_max
        # outside the range, keep the GP's own trend but never cross the monotone edge values
        mean = np.where(below, np.minimum(mean, self.grid_mean[0]), mean)
        mean = np.where(above, np.maximum(mean, self.grid_mean[-1]), mean)
        return mean, std
