import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _seed_global_rng():
    """Library code never uses the global RNG; seed it anyway so stray uses are reproducible."""
    np.random.seed(12345)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(20221128)
