"""Fitted states of the tiny formula, so that a frontier is fitted once, not once per process.

A state is what the GPyTorch fit (``gp_fit.py``) returns for the two GPs, r and d: five hyper-parameters and the
final loss each, a few hundred bytes of JSON (floats as ``repr`` writes them, so they read back bit-exact). With it
the formula predicts in numpy (``gp.py``), without importing torch or GPyTorch.

A state is keyed by what determines the fit: the frontier's fitted columns (c, r, d as little-endian float64, row
by row, in the order the formula sees them) and the procedure (``FIT_VERSION``, the step count and the seed).
Looked up, in order:

1. beside the shipped default frontier: ``frontiers/efficientnet_b0.fit.json``, so the default formula never fits;
2. in the user's cache folder, ``$TINYNET_CACHE_DIR``, else ``$XDG_CACHE_HOME/timm-tinynet``, else
   ``~/.cache/timm-tinynet``, under ``formula/``, one file per key;
3. else fitted, and the state written to the cache folder (a temporary file renamed over it, so a reader never
   sees half of one). A folder that cannot be created or written means no caching, silently: it is a speed-up.

A cached file is never trusted: it is used only if it is a small regular file of JSON naming this key and
``FIT_VERSION``, its hyper-parameters are finite, > 0 where a GP needs it and within the fit's bounds, and they
reproduce the file's own final loss on this frontier (the marginal likelihood recomputed in numpy). Anything else is ignored and replaced by
a fresh fit. After editing the default frontier CSV, regenerate its state: ``python -m tinynet_core.gp_cache``.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, fields
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import pandas as pd

from .atomic import write_text
from .frontier import DEFAULT_FRONTIER, load_frontier
from .gp import Fitted, Hyper, neg_log_marginal_likelihood
from .gp_fit import FIT_STEPS, FIT_VERSION, fit_hyper, within_fit_bounds
from .user_cache import cache_dir, read_regular_file, write_quietly

State = Dict[str, Fitted]  # "r" and "d"
DIMS = ("r", "d")
SHIPPED_STATE = DEFAULT_FRONTIER.with_suffix(".fit.json")
MAX_STATE_BYTES = 16 * 1024  # a state is under 1 kB; a larger file is not one
# A state's hyper-parameters must reproduce its final loss this closely (relative): GPyTorch and numpy compute it
# within 1e-13, so a miss means the file does not belong to this frontier.
LOSS_RTOL = 1e-9


def fitted_columns(frontier: pd.DataFrame) -> np.ndarray:
    """The columns the formula fits, c, r and d, as an (n, 3) float64 array in the frontier's row order."""
    return np.ascontiguousarray(frontier[["c", "r", "d"]].to_numpy(dtype=np.float64))


def state_key(crd: np.ndarray, steps: int = FIT_STEPS, seed: int = 0) -> str:
    """sha256 of the fit's inputs: the procedure and the (n, 3) c, r, d values, bytes in a fixed order."""
    digest = hashlib.sha256(f"{FIT_VERSION};steps={steps};seed={seed};".encode())
    digest.update(np.ascontiguousarray(crd, dtype="<f8").tobytes())
    return digest.hexdigest()


def fit_state(crd: np.ndarray, steps: int = FIT_STEPS, seed: int = 0) -> State:
    """Fit both GPs (GPyTorch) on log c -> log r and log c -> log d."""
    logs = np.log(crd)
    return {dim: fit_hyper(logs[:, 0], logs[:, i], steps, seed) for i, dim in enumerate(DIMS, start=1)}


def state_json(key: str, state: State) -> str:
    body = {"key": key, "fit_version": FIT_VERSION}
    for dim in DIMS:
        body[dim] = {**asdict(state[dim].hyper), "final_loss": state[dim].final_loss}
    return json.dumps(body, indent=2, allow_nan=False) + "\n"  # json writes floats with repr: exact round trip


def _parse_fitted(entry: object) -> Optional[Fitted]:
    names = [f.name for f in fields(Hyper)] + ["final_loss"]
    if not isinstance(entry, dict) or sorted(entry) != sorted(names):
        return None
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry.values()):
        return None
    hyper = Hyper(**{name: float(entry[name]) for name in names[:-1]})
    loss = float(entry["final_loss"])
    return Fitted(hyper, loss) if hyper.problem() is None and math.isfinite(loss) else None


def _reproduces_loss(fitted: Fitted, x: np.ndarray, y: np.ndarray) -> bool:
    """Whether the hyper-parameters give the stored loss on this data (extreme values may overflow: no warning,
    just no)."""
    try:
        with np.errstate(all="ignore"):
            loss = neg_log_marginal_likelihood(fitted.hyper, x, y)
    except np.linalg.LinAlgError:
        return False
    return math.isfinite(loss) and abs(loss - fitted.final_loss) <= LOSS_RTOL * max(1.0, abs(fitted.final_loss))


def parse_state(text: bytes, key: str, crd: np.ndarray) -> Optional[State]:
    """The state in ``text`` if it is a valid state for this key and data, None otherwise (never raises)."""
    try:
        body = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, truncated, or nested too deep
        return None
    if not isinstance(body, dict) or body.get("key") != key or body.get("fit_version") != FIT_VERSION:
        return None
    logs = np.log(crd)
    state = {}
    for i, dim in enumerate(DIMS, start=1):
        fitted = _parse_fitted(body.get(dim))
        if (fitted is None or not within_fit_bounds(fitted.hyper, logs[:, 0])
                or not _reproduces_loss(fitted, logs[:, 0], logs[:, i])):
            return None
        state[dim] = fitted
    return state


def cached_state_path(key: str) -> Optional[Path]:
    base = cache_dir()
    return None if base is None else base / "formula" / f"{key}.json"


def _read_state(path: Optional[Path], key: str, crd: np.ndarray) -> Optional[State]:
    text = None if path is None else read_regular_file(path, MAX_STATE_BYTES)
    return None if text is None else parse_state(text, key, crd)


def _write_state(path: Optional[Path], key: str, state: State) -> None:
    write_quietly(path, state_json(key, state))


def fitted_state(crd: np.ndarray, steps: int = FIT_STEPS, seed: int = 0, cache: bool = True) -> State:
    """The fitted state for a frontier's (n, 3) c, r, d: shipped, cached or fitted now (see the module's
    docstring). ``cache=False`` always fits and touches no file."""
    if not cache:
        return fit_state(crd, steps, seed)
    key = state_key(crd, steps, seed)
    user_path = cached_state_path(key)
    state = _read_state(SHIPPED_STATE, key, crd) or _read_state(user_path, key, crd)
    if state is None:
        state = fit_state(crd, steps, seed)
        _write_state(user_path, key, state)
    return state


def write_shipped_state() -> Path:
    """Refit the shipped default frontier and write its state beside it (run after editing that CSV)."""
    crd = fitted_columns(load_frontier())
    key = state_key(crd)
    return write_text(SHIPPED_STATE, state_json(key, fit_state(crd)))


if __name__ == "__main__":
    print(f"wrote {write_shipped_state()}")
