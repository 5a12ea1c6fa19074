"""dynamics: attractor identification, basin fractions, orbit diagrams and regime maps."""

import numpy as np
import pytest

from toymodel import ToyProblem
from toymodel import theory as T
from toymodel.dynamics import ATTRACTORS, basin_fractions, identify_attractor, orbit_diagram, regime_map

A124 = np.array([1.0, 2.0, 4.0])


def test_basin_fractions_sum_to_one_and_are_reproducible():
    p = ToyProblem(A124)
    e = 1.43 * T.threshold_elr(A124)  # near the 1:4 resonance: several attractors coexist
    b1 = basin_fractions(p, e, 60_000, seeds=32)
    b2 = basin_fractions(p, e, 60_000, seeds=32)
    assert sum(b1.fractions.values()) == pytest.approx(1.0, abs=1e-12)
    assert b1.fractions == b2.fractions
    assert np.array_equal(b1.labels, b2.labels)
    assert set(b1.labels) <= set(ATTRACTORS) | {"nonfinite"}


def test_basin_fractions_on_either_side_of_the_derived_thresholds():
    p = ToyProblem(A124)
    thr = T.threshold_elr(A124)
    below = basin_fractions(p, 0.9 * thr, 60_000, seeds=16)
    assert below.fractions["minimum"] == 1.0
    assert np.all(np.isfinite(below.reach_time)) and np.all(below.reach_time < 60_000)
    orbit = basin_fractions(p, 1.2 * thr, 100_000, seeds=16)
    assert orbit.fractions["equilibrium_orbit"] == 1.0
    assert np.all(orbit.periods == 1)
    chaos = basin_fractions(p, 3.0 * thr, 60_000, seeds=16)
    assert chaos.fractions["chaotic"] == 1.0
    assert np.all(np.isnan(chaos.reach_time))


def test_identify_attractor_on_synthetic_windows():
    a = A124
    e = 1.2 * T.threshold_elr(a)
    W = 64
    fstar = T.equilibrium_loss(a, e)
    gstar = T.equilibrium_group_elrs(a, e)
    on_orbit = (np.full(W, fstar), np.tile(gstar, (W, 1)))
    period3 = (np.tile([1.0, 1.2, 0.9], W // 3 + 1)[:W], np.tile(gstar * 3, (W, 1)))
    rng = np.random.default_rng(0)
    noisy = (1.0 + 0.3 * rng.random(W), gstar * (1 + rng.random((W, 3))))
    loss = np.stack([on_orbit[0], period3[0], noisy[0], noisy[0], np.full(W, np.nan)])
    ge = np.stack([on_orbit[1], period3[1], noisy[1], noisy[1], noisy[1]])
    lyap = np.array([0.0, 0.0, 0.3, 0.0, 0.0])
    final = np.array([fstar, 1.0, 1.0, 1.0, np.nan])
    labels, periods = identify_attractor(a, e, loss, ge, lyap, final)
    assert labels.tolist() == ["equilibrium_orbit", "periodic", "chaotic", "quasi_periodic", "nonfinite"]
    assert periods.tolist() == [1, 3, 0, 0, 0]
    lab, _ = identify_attractor(a, 0.5 * T.threshold_elr(a), np.zeros((1, W)), np.ones((1, W, 3)), [0.0], [0.0])
    assert lab.tolist() == ["minimum"]


def test_orbit_diagram_samples_sit_on_the_orbit_where_it_attracts():
    p = ToyProblem(A124)
    cs = np.array([0.5, 1.2, 1.5, 3.0])
    od = orbit_diagram(p, cs / 7, 200_000, seeds=2, samples=50)
    assert od.loss.shape == (4, 2, 50) and od.group_elrs.shape == (4, 2, 50, 3)
    assert np.all(od.loss[0] < 1e-12)
    for k in (1, 2):
        # distance to the orbit after 2*10^5 steps is ~1e-3 relative (algebraic approach)
        assert np.allclose(od.loss[k], T.equilibrium_loss(A124, cs[k] / 7), rtol=5e-3)
    assert od.loss[3].std() > 0.1  # chaotic: spread out


def test_regime_map_small_grid():
    cs = np.array([0.5, 0.9, 1.2, 1.5, 2.5, 5.0, 40.0])
    m = regime_map("ratio", [1.0, 10.0], cs, 60_000, seeds=2)
    assert m.regime.shape == (2, 7)
    assert np.all(m.regime[:, :2] == "convergence")
    assert np.all(m.regime[:, 2:6] == "chaotic_equilibrium")
    assert np.all(m.subtype[:, 2:4] == "periodic")  # below c = sqrt 3 the orbit attracts
    assert np.all(m.subtype[:, 4:6] == "chaotic")
    assert np.all(m.regime[:, 6] == "divergence")
    g = regime_map("groups", [1, 3], np.array([0.5, 3.0]), 20_000, seeds=2)
    assert g.alphas == ((1.0,), (1.0, 1.0, 1.0))
    assert g.subtype[0, 1] == "periodic"  # one group: the 2-cycle is stable for every c > 1 (derived)
    with pytest.raises(ValueError, match="kind"):
        regime_map("nope", [1], cs, 100)
