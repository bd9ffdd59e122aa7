import warnings

import pytest
import torch

import timm_tinynet  # noqa: F401  (registers the models)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield


def pytest_configure(config):
    warnings.filterwarnings("ignore", category=FutureWarning)
