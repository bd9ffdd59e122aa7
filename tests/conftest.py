import warnings

import pytest
import torch

import timm_tinynet  # noqa: F401  (registers the models)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


@pytest.fixture(scope="module")
def one_torch_thread():
    """torch on one intra-op thread for a module that runs many real forwards: on a shared 2-core machine the
    threads spin against each other (10-30x slower); the count is restored afterwards."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=FutureWarning)


@pytest.fixture(scope="session", autouse=True)
def _formula_cache_for_the_session(tmp_path_factory):
    """No test, not even a module-scoped fixture, writes to the user's cache folder (tinynet_core/gp_cache.py)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("TINYNET_CACHE_DIR", str(tmp_path_factory.mktemp("tinynet-cache")))
        yield


@pytest.fixture(autouse=True)
def _formula_cache_per_test(tmp_path, monkeypatch):
    """Each test starts from an empty cache, so a test whose subprocess must fit (test_results' cross-CPU check)
    is not answered by a state that an earlier test cached."""
    monkeypatch.setenv("TINYNET_CACHE_DIR", str(tmp_path / "tinynet-cache"))
