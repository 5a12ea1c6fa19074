"""The JAX peer benchmark computes what the kernel computes (needs the optional extra ``bench``)."""

import sys
from pathlib import Path

import pytest

pytest.importorskip("jax", reason="the JAX peer benchmark needs the optional extra: pip install -e '.[bench]'")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_jax  # noqa: E402


@pytest.mark.parametrize("innermost", [False, True])
def test_the_jax_peer_agrees_with_the_kernel(innermost):
    # the same float64 operations up to association: 60 non-chaotic steps amplify one-ulp
    # differences to ~5e-11 (measured 4.6e-11); 1e-9 leaves room, while any real difference in the
    # map or the statistics shows at 1e-3 or more
    assert bench_jax.check_agrees(innermost) < 1e-9
