import os

os.environ.setdefault("MPLBACKEND", "Agg")

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

# skips that TOYMODEL_REQUIRE forbids become failures (CI sets it; see _strict_skips.py)
from _strict_skips import pytest_make_collect_report, pytest_runtest_makereport  # noqa: F401


def _compile_variant(lyapunov, sgd, weight_decay, momentum=False):
    from toymodel import ToyProblem, simulate, simulate_conventional

    kw = dict(lyapunov=lyapunov, **(dict(batch_size=2, mask_prob=0.5) if sgd else {}))
    if weight_decay:
        simulate_conventional(ToyProblem([1.0, 2.0]), [0.1], 0.1, 2, momentum=0.5 if momentum else 0.0, **kw)
    else:
        simulate(ToyProblem([1.0, 2.0]), [0.1], 2, **kw)


@pytest.fixture(scope="session", autouse=True)
def _share_kernel_compilation():
    """Under pytest-xdist, each worker starts by compiling its share of the ten kernel variants.

    Compiling them is most of a cold run (15-45 s each). Worker k of N goes through the variants
    starting k/N of the way along the list, and the kernels' inter-process lock makes a worker that
    reaches a variant another one is compiling wait and load it from Numba's cache: every variant
    is compiled once, the N workers compiling different ones at the same time. Without xdist (or
    with a warm cache) this costs nothing.
    """
    n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if n > 1:
        k = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
        variants = [(ly, sg, wd, False) for wd in (False, True) for ly in (False, True) for sg in (False, True)]
        variants += [(False, sg, True, True) for sg in (False, True)]
        start = k * len(variants) // n
        for v in variants[start:] + variants[:start]:
            _compile_variant(*v)
    yield


@pytest.fixture(autouse=True)
def _seed_global_rng():
    """Library code never uses the global RNG; seed it anyway so stray uses are reproducible."""
    np.random.seed(12345)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(20221128)
