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


#: (lyapunov, sgd, weight_decay, momentum) of every kernel variant
ALL_VARIANTS = [(ly, sg, wd, False) for wd in (False, True) for ly in (False, True) for sg in (False, True)] + [
    (False, sg, True, True) for sg in (False, True)]
#: the variants the default suite (``-m 'not slow'``) runs: the Lyapunov variants of SGD and of weight decay, and
#: momentum with SGD, are needed by slow tests only (their fingerprints, the explorer's SGD and conventional modes,
#: SGD at p = 1 with exponents), so a cold default run compiles 6 variants instead of 10
DEFAULT_VARIANTS = [(False, False, False, False), (True, False, False, False), (False, True, False, False),
                    (False, False, True, False), (False, True, True, False), (False, False, True, True)]


@pytest.fixture(scope="session", autouse=True)
def _share_kernel_compilation(request):
    """Under pytest-xdist, each worker starts by compiling its share of the kernel variants the run needs.

    Compiling them is most of a cold run (15-45 s each). Worker k of N goes through the variants
    starting k/N of the way along the list, and the kernels' inter-process lock makes a worker that
    reaches a variant another one is compiling wait and load it from Numba's cache: every variant
    is compiled once, the N workers compiling different ones at the same time. Without xdist (or
    with a warm cache) this costs nothing. The default suite needs ``DEFAULT_VARIANTS`` only: at its
    end each process checks that none of its tests loaded another variant (a default test that did
    would make every cold run compile it) or compiled a variant for a second signature, and fails
    the run if so.
    """
    n = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if n > 1:
        k = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0")[2:])
        default = request.config.getoption("markexpr", "").replace(" ", "") == "notslow"
        variants = DEFAULT_VARIANTS if default else ALL_VARIANTS
        start = k * len(variants) // n
        for v in variants[start:] + variants[:start]:
            _compile_variant(*v)
    yield
    if request.config.getoption("markexpr", "").replace(" ", "") == "notslow":
        from toymodel import _kernels

        extra = [v for v in ALL_VARIANTS if v not in DEFAULT_VARIANTS and _kernels.kernel(*v).signatures]
        if extra:
            pytest.fail(f"a default test ran kernel variants {extra} (lyapunov, sgd, weight_decay, momentum) that "
                        "only slow tests may compile: mark it slow or avoid the variant", pytrace=False)
        # a second signature of a variant (say a read-only input array) is a second compilation
        twice = [v for v in DEFAULT_VARIANTS if len(_kernels.kernel(*v).signatures) > 1]
        if twice:
            pytest.fail(f"kernel variants {twice} were compiled for more than one signature", pytrace=False)


@pytest.fixture(autouse=True)
def _seed_global_rng():
    """Library code never uses the global RNG; seed it anyway so stray uses are reproducible."""
    np.random.seed(12345)
    yield


@pytest.fixture
def rng():
    return np.random.default_rng(20221128)
