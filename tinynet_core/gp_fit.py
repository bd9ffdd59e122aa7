"""Fitting the tiny formula's GPs with GPyTorch: exact marginal likelihood, float64, L-BFGS to convergence.

Only a frontier seen for the first time is fitted (``gp_cache.py`` keeps every fitted state), so torch and GPyTorch
are imported inside the functions below, never when this module is: a process that predicts from a cached state
does not pay the seconds they take to import. A fit returns plain floats (``gp.Hyper``) and its final loss; the
prediction is numpy (``gp.py``).

The procedure: L-BFGS from three fixed starts (the likelihood of a five-point frontier has more than one basin),
each run until the loss stops improving, lowest loss wins. Bit-deterministic on one machine; converged, so that
CPUs that round differently agree on r(c) and d(c) to about 1e-8 (measured: 3e-15 between PyTorch's CPU code
paths, 2e-8 under 1e-9 perturbations of the data or the starts).
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from dataclasses import replace
from typing import Iterator, List, Optional, Tuple

import numpy as np

from .deps import import_quietly
from .gp import GP1D, Fitted, Hyper

# The name of the procedure below, part of every cached state's key: bump it whenever a change here can change
# what a fit returns, and every state cached by the old procedure is refitted instead of trusted.
FIT_VERSION = "exact-mll-lbfgs-3starts-converged-1"
FIT_STEPS = 100  # L-BFGS iterations per round
FIT_MAX_ROUNDS = 10  # L-BFGS is restarted (fresh curvature memory) until the loss stops improving, at most this often
# "Stops improving": a round lowers the negative log marginal likelihood (per point) by less than this. Converged
# this far, predictions move by < 2e-8 between CPUs (measured; see tests/test_results.py), where a fixed step
# count left them wherever the iterations ran out (1e-2 apart on boundary optima such as outputscale -> 0).
FIT_LOSS_TOL = 1e-10
FIT_TIE = 1e-9  # two starts whose losses differ by less than this reached the same optimum: keep the earlier one
MIN_NOISE = 1e-6  # the likelihood's noise floor: keeps K + nI well conditioned


def smoothest_wiggle(log_c: np.ndarray) -> float:
    """The shortest RBF lengthscale the fit may choose: half the median gap between neighbouring frontier points
    (in log c). A shorter one lets a noisy frontier's GP bend through every point and back between them, which
    the monotone mean then flattens into steps; a frontier's trend is smooth at the scale of its sampling."""
    gaps = np.diff(np.unique(np.asarray(log_c, dtype=float)))
    return max(float(np.median(gaps)) / 2, 1e-3) if len(gaps) else 1e-3


def within_fit_bounds(hyper: Hyper, log_c: np.ndarray) -> bool:
    """Whether ``hyper`` respects the bounds the fit imposes on inputs ``log_c`` (lengthscale at least
    ``smoothest_wiggle``, noise at least ``MIN_NOISE``), so could have come out of it. The slack allows for
    GPyTorch storing each bound as float32."""
    slack = 1 - 1e-6
    return hyper.lengthscale >= smoothest_wiggle(log_c) * slack and hyper.noise >= MIN_NOISE * slack


def gpytorch_gp(log_c: np.ndarray, log_y: np.ndarray, hyper: Hyper):
    """The GPyTorch model and likelihood (float64) on this data, set to ``hyper``: the fit starts from it, and
    tests compare the numpy posterior with its prediction. The lengthscale is bounded below by
    ``smoothest_wiggle(log_c)``, the noise by ``MIN_NOISE``."""
    torch = import_quietly("torch")
    gpytorch = import_quietly("gpytorch")
    x = torch.as_tensor(np.asarray(log_c, dtype=np.float64)).reshape(-1, 1)
    y = torch.as_tensor(np.asarray(log_y, dtype=np.float64)).reshape(-1)
    constraint = gpytorch.constraints.GreaterThan(smoothest_wiggle(log_c))
    rbf = gpytorch.kernels.RBFKernel(lengthscale_constraint=constraint)

    class FrontierGP(gpytorch.models.ExactGP):
        def __init__(self, likelihood) -> None:
            super().__init__(x, y, likelihood)
            self.mean_module = gpytorch.means.LinearMean(1)
            self.covar_module = gpytorch.kernels.ScaleKernel(rbf)

        def forward(self, inputs: torch.Tensor):
            return gpytorch.distributions.MultivariateNormal(self.mean_module(inputs), self.covar_module(inputs))

    likelihood = gpytorch.likelihoods.GaussianLikelihood(noise_constraint=gpytorch.constraints.GreaterThan(MIN_NOISE))
    model = FrontierGP(likelihood)
    model.double()
    likelihood.double()
    # as float64 tensors: GPyTorch's setters would round a Python float to float32 first
    model.covar_module.base_kernel.lengthscale = torch.tensor(hyper.lengthscale, dtype=torch.float64)
    model.covar_module.outputscale = torch.tensor(hyper.outputscale, dtype=torch.float64)
    likelihood.noise = torch.tensor(hyper.noise, dtype=torch.float64)
    model.mean_module.weights.data.fill_(hyper.slope)
    model.mean_module.bias.data.fill_(hyper.bias)
    return model, likelihood


def _hyper_of(model, likelihood) -> Hyper:
    def value(tensor) -> float:
        return float(tensor.detach())

    return Hyper(lengthscale=value(model.covar_module.base_kernel.lengthscale),
                 outputscale=value(model.covar_module.outputscale), noise=value(likelihood.noise),
                 slope=value(model.mean_module.weights), bias=value(model.mean_module.bias))


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded for the block: the fit's matrices are a few rows, where handing work between
    threads costs more than it saves (30x slower on a busy 2-core machine), and one thread keeps the order of
    every reduction, so the rounding, independent of the machine's core count."""
    torch = import_quietly("torch")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _starts(log_c: np.ndarray, log_y: np.ndarray, min_lengthscale: float) -> List[Hyper]:
    """Hyper-parameter starting points, one per basin the likelihood is known to have on a small frontier: the
    trend bent through the points by the kernel (signal), the trend plus independent noise (noise), and a kernel
    as short as allowed (wiggle). The mean starts at the least-squares line in every case. The scales are rounded
    to float32, the starting points every earlier version of the fit used (it set them as Python floats, which
    GPyTorch's setters round so), so that fits stay bit-identical to theirs."""
    span = float(np.max(log_c) - np.min(log_c))
    variance = max(float(np.var(log_y, ddof=1)), 1e-4) if len(log_y) > 1 else 1.0
    slope, intercept = np.polyfit(log_c, log_y, 1) if len(log_c) > 1 else (0.0, float(np.mean(log_y)))
    residual = float(np.var(log_y - (slope * log_c + intercept)))
    signal = Hyper(lengthscale=_float32(max(span / 2, 2 * min_lengthscale)), outputscale=_float32(variance),
                   noise=_float32(1e-4), slope=float(slope), bias=float(intercept))
    return [signal, replace(signal, outputscale=_float32(1e-4 * variance), noise=_float32(max(residual, 1e-5))),
            replace(signal, lengthscale=_float32(1.01 * min_lengthscale))]


def _float32(value: float) -> float:
    return float(np.float32(value))


def _fit_from(log_c: np.ndarray, log_y: np.ndarray, start: Hyper, steps: int, max_rounds: int,
              loss_tol: float) -> Tuple[float, Optional[Hyper]]:
    """L-BFGS from ``start``, restarted (fresh curvature memory) until a round lowers the loss by < loss_tol.
    The loss is inf (and no hyper-parameters) where this start led somewhere singular or not finite."""
    torch = import_quietly("torch")
    gpytorch = import_quietly("gpytorch")

    model, likelihood = gpytorch_gp(log_c, log_y, start)
    x, y = model.train_inputs[0], model.train_targets
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
        return math.inf, None
    if not (math.isfinite(loss) and all(bool(torch.isfinite(p).all()) for p in params)):
        return math.inf, None
    return loss, _hyper_of(model, likelihood)


def fit_hyper(log_c: np.ndarray, log_y: np.ndarray, steps: int = FIT_STEPS, seed: int = 0,
              max_rounds: int = FIT_MAX_ROUNDS, loss_tol: float = FIT_LOSS_TOL) -> Fitted:
    """Fit by exact marginal likelihood in float64: L-BFGS from each of ``_starts``, each run to convergence (rounds
    of at most ``steps`` iterations until the loss stops improving), and the start with the lowest loss wins (an
    earlier start on a tie within ``FIT_TIE``). Deterministic, and converged, so machines agree to rounding."""
    torch = import_quietly("torch")
    log_c, log_y = np.asarray(log_c, dtype=np.float64), np.asarray(log_y, dtype=np.float64)
    starts = _starts(log_c, log_y, smoothest_wiggle(log_c))
    best: Tuple[float, Optional[Hyper]] = (math.inf, None)
    with torch.random.fork_rng(devices=[]), _one_thread():
        torch.manual_seed(seed)
        for start in starts:
            fitted = _fit_from(log_c, log_y, start, steps, max_rounds, loss_tol)
            if fitted[0] < best[0] - FIT_TIE:
                best = fitted
    loss, hyper = best
    if hyper is None:
        raise ValueError(f"the tiny formula's GP fit failed on this frontier: none of its {len(starts)} starts "
                         f"reached a finite likelihood")
    return Fitted(hyper, loss)


def fit_gp1d(log_c: np.ndarray, log_y: np.ndarray, steps: int = FIT_STEPS, seed: int = 0,
             max_rounds: int = FIT_MAX_ROUNDS, loss_tol: float = FIT_LOSS_TOL) -> GP1D:
    """``fit_hyper``, ready to predict (numpy)."""
    return GP1D(log_c, log_y, *fit_hyper(log_c, log_y, steps, seed, max_rounds, loss_tol))
