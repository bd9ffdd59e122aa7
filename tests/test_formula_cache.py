"""The tiny formula without refitting: the numpy posterior equals GPyTorch's, the shipped state belongs to the
shipped frontier, and the user cache is keyed by content, never trusted, optional, and enough to predict without
torch."""
import json
import math
import os
import pathlib
import subprocess
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from tinynet_core import gp_cache, user_cache
from tinynet_core.formula import TinyFormula, get_formula
from tinynet_core.frontier import DEFAULT_FRONTIER, load_frontier
from tinynet_core.gp import neg_log_marginal_likelihood
from tinynet_core.gp_fit import fit_hyper, gpytorch_gp

ROOT = pathlib.Path(__file__).resolve().parents[1]
POSTERIOR_ATOL = 1e-9


@pytest.fixture(autouse=True)
def cache_dir(tmp_path, monkeypatch):
    """Every test gets an empty cache folder of its own: nothing reaches the user's cache."""
    path = tmp_path / "cache"
    monkeypatch.setenv("TINYNET_CACHE_DIR", str(path))
    return path


def wiggly_frontier(seed: int = 0, n: int = 12) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    c = np.sort(rng.uniform(0.05, 0.9, n))
    return pd.DataFrame({"c": c, "r": 0.5 + 0.4 * c + rng.normal(0, 0.04, n),
                         "d": 0.5 + 0.6 * c + rng.normal(0, 0.05, n), "w": 0.7, "flops": c * 4e8})


def gpytorch_posterior(gp, x: np.ndarray):
    """What the formula computed before it had a numpy posterior: ``likelihood(model(x))`` in eval mode."""
    import gpytorch
    from gpytorch.utils.warnings import GPInputWarning

    model, likelihood = gpytorch_gp(gp.train_x, gp.train_y, gp.hyper)
    model.eval()
    likelihood.eval()
    with torch.no_grad(), gpytorch.settings.fast_pred_var(False), warnings.catch_warnings():
        warnings.simplefilter("ignore", GPInputWarning)  # predicting at a frontier point is intended
        posterior = likelihood(model(torch.as_tensor(x, dtype=torch.float64).reshape(-1, 1)))
        return posterior.mean.numpy(), posterior.variance.clamp_min(0).sqrt().numpy()


def key_of(frontier: pd.DataFrame) -> str:
    return gp_cache.state_key(gp_cache.fitted_columns(frontier))


def forbid_fitting(monkeypatch) -> None:
    monkeypatch.setattr(gp_cache, "fit_state", lambda *a, **k: pytest.fail("fitted where a stored state should answer"))


@pytest.mark.parametrize("name", ["shipped", "wiggly", "four points"])
def test_numpy_posterior_equals_gpytorch(name):
    frontier = {"shipped": load_frontier, "wiggly": wiggly_frontier,
                "four points": lambda: load_frontier().iloc[:4]}[name]()
    formula = TinyFormula(frontier)
    c = np.concatenate([np.geomspace(formula.c_min / 30, formula.c_max * 5, 200), frontier["c"].to_numpy()])
    assert (c < formula.c_min).any() and (c > formula.c_max).any()
    assert ((c > formula.c_min) & (c < formula.c_max)).any()
    for gp in (formula.gp_r, formula.gp_d):
        mean, std = gp.posterior(np.log(c))
        reference_mean, reference_std = gpytorch_posterior(gp, np.log(c))
        assert np.abs(mean - reference_mean).max() <= POSTERIOR_ATOL
        assert np.abs(std - reference_std).max() <= POSTERIOR_ATOL


def test_numpy_loss_equals_the_fit_loss():
    frontier = wiggly_frontier(1)
    log_c = np.log(frontier["c"].to_numpy())
    for column in ("r", "d"):
        log_y = np.log(frontier[column].to_numpy())
        hyper, loss = fit_hyper(log_c, log_y)
        assert abs(neg_log_marginal_likelihood(hyper, log_c, log_y) - loss) <= 1e-12


def test_shipped_state_belongs_to_the_shipped_frontier():
    shipped = json.loads(gp_cache.SHIPPED_STATE.read_text())
    key = key_of(load_frontier())
    assert shipped["key"] == key, (
        f"{gp_cache.SHIPPED_STATE.name} was fitted to another version of {DEFAULT_FRONTIER.name} or by another fit "
        f"procedure: regenerate it with `python -m tinynet_core.gp_cache`")
    assert gp_cache.parse_state(gp_cache.SHIPPED_STATE.read_bytes(), key,
                                gp_cache.fitted_columns(load_frontier())) is not None


def test_fresh_fit_agrees_with_the_shipped_state(monkeypatch):
    """Another CPU rounds differently, so a fresh fit there need not be bit-identical to the shipped state (it is
    on the machine that wrote it); converged, it agrees far within the 1e-4 that the committed results allow."""
    fresh = TinyFormula(load_frontier(), cache=False)
    forbid_fitting(monkeypatch)
    shipped = TinyFormula(load_frontier())
    c = np.geomspace(0.02, 1.5, 300)
    a, b = fresh.predict_many(c), shipped.predict_many(c)
    for column in ("r", "d", "r_std", "d_std"):
        assert np.abs(a[column] - b[column]).max() <= 1e-4, column


def test_default_formula_is_built_from_the_shipped_state(cache_dir, monkeypatch):
    forbid_fitting(monkeypatch)
    assert TinyFormula(load_frontier()).predict(0.3).r > 0
    assert not cache_dir.exists()  # nothing cached: the shipped state answered


def test_user_frontier_is_fitted_once_and_then_read_back_exactly(cache_dir, monkeypatch):
    frontier = wiggly_frontier()
    first = TinyFormula(frontier)
    assert [p.name for p in (cache_dir / "formula").iterdir()] == [f"{key_of(frontier)}.json"]  # no temp file left
    forbid_fitting(monkeypatch)
    second = TinyFormula(frontier)
    assert (first.gp_r.hyper, first.gp_d.hyper) == (second.gp_r.hyper, second.gp_d.hyper)
    c = np.geomspace(0.01, 2, 50)
    for column, values in first.predict_many(c).items():
        assert np.array_equal(values, second.predict_many(c)[column]), column


def test_leave_one_out_fits_each_subset_once(monkeypatch):
    formula = TinyFormula(load_frontier())
    first = formula.leave_one_out()
    forbid_fitting(monkeypatch)
    pd.testing.assert_frame_equal(formula.leave_one_out(), first)


def test_key_is_the_fitted_content_and_the_procedure():
    frontier = wiggly_frontier()
    key = key_of(frontier)
    same = frontier.assign(w=0.3, top1=70.0).set_axis(range(10, 10 + len(frontier)))  # unfitted columns, index
    assert key_of(same) == key
    nudged = frontier.copy()
    nudged.loc[3, "d"] = np.nextafter(nudged.loc[3, "d"], 2)
    assert key_of(nudged) != key
    assert key_of(frontier.iloc[::-1]) != key  # another row order rounds differently: another fit
    crd = gp_cache.fitted_columns(frontier)
    assert len({key, gp_cache.state_key(crd, steps=50), gp_cache.state_key(crd, seed=1)}) == 3


def test_cache_folder_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYNET_CACHE_DIR", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert user_cache.cache_dir() == tmp_path / "explicit"
    monkeypatch.delenv("TINYNET_CACHE_DIR")
    assert user_cache.cache_dir() == tmp_path / "xdg" / "timm-tinynet"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # invalid by the XDG spec: ignored
    assert user_cache.cache_dir() == tmp_path / "home" / ".cache" / "timm-tinynet"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert gp_cache.cached_state_path("k") == tmp_path / "home" / ".cache" / "timm-tinynet" / "formula" / "k.json"


@pytest.fixture(scope="module")
def small_frontier_state():
    """One real fit of a small frontier, reused by the tests that only need a fit to have happened."""
    frontier = wiggly_frontier(2, n=6)
    crd = gp_cache.fitted_columns(frontier)
    return frontier, gp_cache.fit_state(crd)


@pytest.fixture
def counted_fits(monkeypatch, small_frontier_state):
    frontier, state = small_frontier_state
    calls = []

    def fit_state(crd, steps, seed):
        calls.append(1)
        return state

    monkeypatch.setattr(gp_cache, "fit_state", fit_state)
    return frontier, state, calls


def _edit(field, value):
    def edit(body):
        body["r"][field] = value
    return edit


def _drop_bias(body):
    del body["d"]["bias"]


def _extra_field(body):
    body["d"]["momentum"] = 0.5


def _other_hyper(body):
    body["r"]["slope"] += 1e-3  # plausible values, but not the ones that gave this loss


CORRUPT_JSON = {
    "wrong key": lambda body: body.update(key="0" * 64),
    "wrong version": lambda body: body.update(fit_version="an older fit"),
    "nan": _edit("lengthscale", math.nan),
    "infinite": _edit("noise", math.inf),
    "negative lengthscale": _edit("lengthscale", -1.0),
    "zero noise": _edit("noise", 0.0),
    "negative outputscale": _edit("outputscale", -1e-3),
    "string": _edit("slope", "0.25"),
    "bool": _edit("bias", True),
    "null": _edit("final_loss", None),
    "huge outputscale": _edit("outputscale", 1e308),
    "tiny lengthscale": _edit("lengthscale", 1e-300),
    "missing field": _drop_bias,
    "extra field": _extra_field,
    "other hyper-parameters": _other_hyper,
}
CORRUPT_TEXT = {
    "empty": lambda text: b"",
    "truncated": lambda text: text[:len(text) // 2],
    "not json": lambda text: b"c,r,d\n0.1,0.5,0.5\n",
    "binary": lambda text: bytes(range(256)),
    "a list": lambda text: b"[1.0, 2.0]",
    "nested too deep": lambda text: b"[" * 10000,
    "too large": lambda text: text + b" " * gp_cache.MAX_STATE_BYTES,
}


def _write_corrupt(path: pathlib.Path, text: bytes, name: str) -> None:
    path.parent.mkdir(parents=True)
    if name in CORRUPT_TEXT:
        path.write_bytes(CORRUPT_TEXT[name](text))
    elif name == "a pipe":
        os.mkfifo(path)
    else:
        body = json.loads(text)
        CORRUPT_JSON[name](body)
        path.write_text(json.dumps(body))


@pytest.mark.parametrize("name", [*CORRUPT_TEXT, *CORRUPT_JSON, "a pipe"])
def test_bad_cache_file_is_ignored_and_replaced(name, cache_dir, counted_fits):
    frontier, state, calls = counted_fits
    key = key_of(frontier)
    path = gp_cache.cached_state_path(key)
    good = gp_cache.state_json(key, state).encode()
    _write_corrupt(path, good, name)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        formula = TinyFormula(frontier)
    assert calls == [1]  # not trusted: fitted
    assert (formula.gp_r.hyper, formula.gp_d.hyper) == (state["r"].hyper, state["d"].hyper)
    assert path.read_bytes() == good  # and replaced by the fresh state
    TinyFormula(frontier)
    assert calls == [1]


@pytest.mark.parametrize("where", ["a file", "under a file", "a folder in the way"])
def test_unwritable_cache_is_no_cache(where, tmp_path, monkeypatch, counted_fits):
    frontier, state, calls = counted_fits
    blocker = tmp_path / "blocker"
    blocker.write_text("not a folder")
    if where == "a folder in the way":  # where the state's file would go
        gp_cache.cached_state_path(key_of(frontier)).mkdir(parents=True)
    else:
        monkeypatch.setenv("TINYNET_CACHE_DIR", str(blocker if where == "a file" else blocker / "cache"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TinyFormula(frontier)
        TinyFormula(frontier)
    assert calls == [1, 1]  # each built by fitting, silently


PREDICT = """
import json, sys
from tinynet_core.formula import get_formula
p = get_formula({path!r}).predict(0.3, warn=False)
print(json.dumps(dict(p=[p.r, p.r_std, p.d, p.d_std], torch="torch" in sys.modules, gpytorch="gpytorch" in sys.modules)))
"""


def predict_in_a_fresh_process(cache: pathlib.Path, path=None) -> dict:
    done = subprocess.run([sys.executable, "-c", PREDICT.format(path=path)], cwd=ROOT, capture_output=True, text=True,
                          env=dict(os.environ, TINYNET_CACHE_DIR=str(cache)), timeout=300)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_default_prediction_imports_neither_torch_nor_gpytorch(cache_dir):
    out = predict_in_a_fresh_process(cache_dir)
    assert not out["torch"] and not out["gpytorch"]
    assert not cache_dir.exists()
    here = get_formula().predict(0.3)
    assert out["p"] == [here.r, here.r_std, here.d, here.d_std]


@pytest.mark.slow
def test_user_frontier_is_fitted_by_the_first_process_only(cache_dir, tmp_path):
    path = tmp_path / "frontier.csv"
    wiggly_frontier(3).to_csv(path, index=False)
    first = predict_in_a_fresh_process(cache_dir, str(path))
    assert first["torch"] and first["gpytorch"]  # it fitted
    second = predict_in_a_fresh_process(cache_dir, str(path))
    assert not second["torch"] and not second["gpytorch"]
    assert second["p"] == first["p"]  # bit-identical: the state reads back exactly
