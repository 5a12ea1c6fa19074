"""Result types: short reprs, exact save/load, long-form DataFrames, named plot results."""

import dataclasses

import numpy as np
import pytest

from toymodel import PAPER_ALPHAS, SimulationResult, ToyProblem, plots, simulate
from toymodel.dynamics import BasinFractions, RegimeMap, basin_fractions, regime_map
from toymodel.phase_diagram import PhaseDiagram, compute_phase_diagram


def _equal(a, b):
    if isinstance(a, np.ndarray):
        return a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b, equal_nan=a.dtype.kind == "f")
    if dataclasses.is_dataclass(a):
        return type(a) is type(b) and all(_equal(getattr(a, f.name), getattr(b, f.name))
                                          for f in dataclasses.fields(a))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return type(a) is type(b) and len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return a == b


@pytest.fixture(scope="module")
def results():
    p = ToyProblem(PAPER_ALPHAS)
    sim = simulate(p, np.geomspace(0.01, 10, 40), 300, seeds=3, record_every=50, lyapunov=True)
    pd = compute_phase_diagram(PAPER_ALPHAS, elr_min=0.01, elr_max=10, num=12, steps=400, seeds=2)
    basins = basin_fractions(p, 0.2, 2000, seeds=8, window=64, records=20)
    rmap = regime_map("ratio", [1.0, 3.0], [0.5, 2.0, 30.0], 600, seeds=2)
    return {"sim": sim, "pd": pd, "basins": basins, "rmap": rmap}


@pytest.mark.parametrize("name, cls", [("sim", SimulationResult), ("pd", PhaseDiagram), ("basins", BasinFractions),
                                       ("rmap", RegimeMap)])
def test_save_load_round_trips_bit_for_bit(results, name, cls, tmp_path):
    res = results[name]
    path = res.save(tmp_path / f"{name}.npz")
    back = cls.load(path)
    assert _equal(res, back)
    with pytest.raises(ValueError, match="holds a"):
        (SimulationResult if cls is not SimulationResult else PhaseDiagram).load(path)


@pytest.mark.parametrize("name", ["sim", "pd", "basins", "rmap"])
def test_reprs_are_short(results, name):
    text = repr(results[name])
    assert len(text.splitlines()) <= 25 and len(text) < 2500, text


def test_to_dataframe_has_one_row_per_elr_and_seed(results):
    pytest.importorskip("pandas")
    sim = results["sim"]
    df = sim.to_dataframe()
    assert len(df) == sim.elrs.size * sim.seeds.size == 120
    assert {"elr", "seed", "mean_loss", "lyapunov", "mean_group_elrs_3"} <= set(df.columns)
    row = df.iloc[5]  # ELR index 1, seed index 2
    assert row["elr"] == sim.elrs[1] and row["seed"] == sim.seeds[2] and row["mean_loss"] == sim.mean_loss[1, 2]
    pdf = results["pd"].to_dataframe()
    assert len(pdf) == 12 * 2 and set(pdf["regime"]) <= {"convergence", "chaotic_equilibrium", "divergence"}


def test_to_dataframe_without_pandas_says_so(results, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pandas(name, *a, **kw):
        if name == "pandas":
            raise ImportError("no pandas")
        return real(name, *a, **kw)

    monkeypatch.setattr(builtins, "__import__", no_pandas)
    with pytest.raises(ValueError, match="pip install pandas"):
        results["sim"].to_dataframe()


def test_plot_functions_return_a_named_result(results):
    out = plots.plot_phase_diagram(results["pd"])
    assert isinstance(out, plots.Plot) and out.fig is out[0] and len(out.axes) == 4
    fig, axes = out  # still unpacks like a tuple
    out = plots.plot_regime_map([results["rmap"]])
    assert out.fig.axes
