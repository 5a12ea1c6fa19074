"""The committed figures: what to compute for each one, and the command that regenerates them.

``python -m toymodel.figures`` recomputes the data of every figure in ``figures/`` (and the CSV and
JSON of the default runs beside them) and draws it with :mod:`toymodel.plots`. Each recipe is a
function ``(out, fmt, quiet, where) -> [paths]`` in :data:`FIGURES`; ``where`` says where sweeps
run (``scheduler`` / ``dask_local``, as for the phase diagram).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from . import bridge, conventional, phase_diagram, plots, theory
from ._cli import ArgumentParser, int_arg, output_dir, quiet_warnings, run_cli
from ._validate import as_format
from .dynamics import basin_fractions, benettin_lyapunov, convergence_boundary, orbit_diagram, quiet_phases, regime_map
from .model import PAPER_ALPHAS, ToyProblem
from .simulate import simulate, simulate_conventional
from .sweep import check_dask_choice, run_sweep

__all__ = ["FIGURES", "RECIPES", "recipes_for", "main"]


def _fig_toy(out, fmt, quiet, where):
    res = simulate(ToyProblem(PAPER_ALPHAS), [0.1, 0.2, 0.5], 1001, seeds=[0], record_every=1)
    fig, _ = plots.plot_toy_loss(res)
    p1 = plots.save_figure(fig, Path(out) / f"toy_loss.{fmt}", fmt)
    fig, _ = plots.plot_toy_group_elrs(res)
    p2 = plots.save_figure(fig, Path(out) / f"toy_group_elrs.{fmt}", fmt)
    return [p1, p2]


def _fig_phase_diagram(out, fmt, quiet, where):
    t0 = time.perf_counter()
    # the main job's defaults, with every boundary bisected to 1e-3 relative in c
    pd = phase_diagram.compute_phase_diagram(progress=not quiet, refine_tol=1e-3, **where)
    return phase_diagram.write_outputs(pd, out, fmt, wall_time_s=time.perf_counter() - t0)


def _fig_orbit_diagram(out, fmt, quiet, where):
    p = ToyProblem(PAPER_ALPHAS)
    od = orbit_diagram(p, np.geomspace(0.5, 500, 500) / p.total_alpha, 100_000, seeds=2, samples=150)
    fig, _ = plots.plot_orbit_diagram(od)
    return [plots.save_figure(fig, Path(out) / f"orbit_diagram.{fmt}", fmt)]


def _fig_lyapunov(out, fmt, quiet, where):
    p = ToyProblem(PAPER_ALPHAS)
    res = run_sweep(p, np.geomspace(0.3, 1000, 200) / p.total_alpha, 200_000, seeds=16, burn_in=100_000,
                    lyapunov=True, progress=not quiet, desc="lyapunov", **where)
    checks = [benettin_lyapunov(p, cc / p.total_alpha, 60_000, seeds=4, burn_in=10_000) for cc in (2.5, 8.0, 60.0)]
    fig, _ = plots.plot_lyapunov(res, benettin=checks)
    return [plots.save_figure(fig, Path(out) / f"lyapunov.{fmt}", fmt)]


def _fig_basins(out, fmt, quiet, where):
    p = ToyProblem(PAPER_ALPHAS)
    cs = np.geomspace(0.9, 4.0, 80)
    basins = [basin_fractions(p, cc / p.total_alpha, 200_000, seeds=128)
              for cc in tqdm(cs, desc="basins", disable=quiet, leave=False)]
    fig, _ = plots.plot_basins(basins)
    return [plots.save_figure(fig, Path(out) / f"basins.{fmt}", fmt)]


def _fig_regime_map(out, fmt, quiet, where):
    cs = np.geomspace(0.5, 60, 60)
    m1 = regime_map("ratio", np.geomspace(1, 100, 30), cs, 200_000, seeds=4, progress=not quiet, **where)
    m2 = regime_map("groups", np.arange(1, 13), cs, 200_000, seeds=4, progress=not quiet, **where)
    fig, _ = plots.plot_regime_map([m1, m2])
    return [plots.save_figure(fig, Path(out) / f"regime_map.{fmt}", fmt)]


def _fig_sgd_threshold(out, fmt, quiet, where):
    ps = (0.1, 0.25, 0.5, 0.9)
    bs = np.unique(np.concatenate([np.arange(1, 65), np.round(np.geomspace(64, 1024, 30)).astype(int)]))
    ratio = np.array([[theory.sgd_stability_edge(int(b), p) for b in bs] for p in ps])
    prob = ToyProblem(PAPER_ALPHAS)
    sim = []
    grid = [(b, p) for p in ps for b in (1, 2, 4, 5, 10, 16, 27, 64)]
    for b, p in tqdm(grid, desc="sgd boundaries", disable=quiet, leave=False):
        ks = theory.sgd_stability_edge(b, p)
        cb, _ = convergence_boundary(prob, ks * np.geomspace(0.85, 1.18, 25), 60_000, seeds=8, batch_size=b,
                                     mask_prob=p)
        sim.append((b, p, cb))
    fig, _ = plots.plot_sgd_threshold(bs, ps, ratio, sim)
    return [plots.save_figure(fig, Path(out) / f"sgd_threshold.{fmt}", fmt)]


def _net_runner(quiet, where):
    return bridge.Runner(workers=bridge.default_workers(), progress=not quiet, **where)


#: momenta of the committed conventional-training sweeps (plain SGD, and PyTorch's usual 0.9)
CONVENTIONAL_MOMENTA = (0.0, 0.9)
#: the Fashion-MNIST jobs (figures/fashion_mnist/): the bridge's MLP on the full training set, 20 epochs
#: of batch 32 (37,500 steps per run, 14 times a 60-epoch digits run), trained as ensembles
FASHION = dict(data="fashion-mnist", epochs=20)


def _fig_bridge(out, fmt, quiet, where, model="mlp"):
    t0 = time.perf_counter()
    spec = bridge.BridgeSpec.make(model=model, sharpness=(model == "mlp"))
    bs = bridge.compute_bridge(spec=spec, runner=_net_runner(quiet, where))
    return bridge.write_bridge_outputs(bs, out, fmt, wall_time_s=time.perf_counter() - t0,
                                       records="bridge" if model == "mlp" else f"bridge_{model}")


def _fig_bridge_conventional(out, fmt, quiet, where):
    from .bridge import conventional as bc

    t0 = time.perf_counter()
    bands = Path(out) / "bridge.csv"
    cs = bc.compute_conventional(runner=_net_runner(quiet, where), momentum=CONVENTIONAL_MOMENTA, bands=bands)
    return bc.write_outputs(cs, out, fmt, bands=bands, wall_time_s=time.perf_counter() - t0)


def _fig_bridge_finetune(out, fmt, quiet, where):
    from .bridge import finetune as bf

    t0 = time.perf_counter()
    res = bf.compute_finetune(runner=_net_runner(quiet, where))
    return bf.write_outputs(res, out, fmt, wall_time_s=time.perf_counter() - t0)


def _fig_bridge_periodic(out, fmt, quiet, where):
    from .bridge import conventional as bc

    return bc.write_periodic_outputs(bc.compute_periodic(), out, fmt)


def _fig_fashion_bridge(out, fmt, quiet, where):
    out = Path(out) / "fashion_mnist"
    t0 = time.perf_counter()
    spec = bridge.BridgeSpec.make(sharpness=True, **FASHION)
    bs = bridge.compute_bridge(bridge.elr_grid(1e-5, 1.0, 21), 3, spec, _net_runner(quiet, where))
    return bridge.write_bridge_outputs(bs, out, fmt, wall_time_s=time.perf_counter() - t0)


#: the Fashion-MNIST ConvNet sweep: a stratified subset of 4,500 training images (450 per class, few enough
#: for the ConvNet to fit, so that its convergence regime can show), 20 epochs of batch 32 (the fewest whose
#: classification window reaches regimes.MIN_WINDOW_EPOCHS; 2,820 steps per run, about the steps of a 60-epoch
#: digits run, which keeps the job near an hour on two cores), 9 ELRs from 1e-4 to 1, 2 seeds
FASHION_CONVNET = dict(data="fashion-mnist", model="convnet", train_subset=4500, epochs=20)


def _fig_fashion_bridge_convnet(out, fmt, quiet, where):
    out = Path(out) / "fashion_mnist"
    t0 = time.perf_counter()
    spec = bridge.BridgeSpec.make(**FASHION_CONVNET)
    bs = bridge.compute_bridge(bridge.elr_grid(1e-4, 1.0, 9), 2, spec, _net_runner(quiet, where))
    return bridge.write_bridge_outputs(bs, out, fmt, wall_time_s=time.perf_counter() - t0, records="bridge_convnet")


def _fig_fashion_conventional(out, fmt, quiet, where):
    from .bridge import conventional as bc

    out = Path(out) / "fashion_mnist"
    t0 = time.perf_counter()
    bands = out / "bridge.csv"
    cs = bc.compute_conventional(bc.lr_wd_grid(1e-4, 0.1, 7), 0.01, 2, bridge.BridgeSpec.make(**FASHION),
                                 _net_runner(quiet, where), momentum=CONVENTIONAL_MOMENTA, bands=bands)
    return bc.write_outputs(cs, out, fmt, bands=bands, wall_time_s=time.perf_counter() - t0)


def _fig_fashion_finetune(out, fmt, quiet, where):
    from .bridge import finetune as bf

    out = Path(out) / "fashion_mnist"
    t0 = time.perf_counter()
    # 10 seeds per pre-training ELR (the paired comparisons need them), pre-training of 10 epochs
    res = bf.compute_finetune(bridge.elr_grid(1e-4, 1.0, 7), 10, bridge.BridgeSpec.make(**dict(FASHION, epochs=10)),
                              _net_runner(quiet, where), finetune_elr=1e-4, finetune_epochs=5)
    return bf.write_outputs(res, out, fmt, wall_time_s=time.perf_counter() - t0)


def _fig_bridge_convnet(out, fmt, quiet, where):
    return _fig_bridge(out, fmt, quiet, where, model="convnet")


def _fig_conventional_phase(out, fmt, quiet, where):
    t0 = time.perf_counter()
    cs = conventional.compute_conventional(progress=not quiet, **where)
    paths = conventional.write_outputs(cs, out, fmt, plot=False, wall_time_s=time.perf_counter() - t0)
    return paths + [plots.plot_conventional_phase(cs).save(Path(out) / f"conventional_phase.{fmt}", fmt)]


def _fig_conventional_trajectories(out, fmt, quiet, where):
    wd = conventional.DEFAULTS["weight_decay"]
    lws = np.array([0.002, 0.05, 0.5])
    res = simulate_conventional(ToyProblem([1.0]), lws / wd, wd, 6000, seeds=[0], record_every=1)
    phases = []
    for kq, lr_ in enumerate(res.elrs):
        k = res.group_elr_trace[kq, 0, :, 0]
        ess = k * 2 * np.sqrt(np.clip(res.loss_trace[kq, 0] * (1 - res.loss_trace[kq, 0]), 0, None))
        phases.append(quiet_phases(ess, k, lr_, wd))
    return [plots.plot_conventional_trajectories(res, phases).save(Path(out) / f"conventional_trajectories.{fmt}",
                                                                   fmt)]


def _fig_conventional_momentum(out, fmt, quiet, where):
    p = ToyProblem(PAPER_ALPHAS)
    lws = np.geomspace(1e-3, 0.8, 16)
    momenta = (0.0, 0.5, 0.9)
    wd = 0.5  # only eta*lambda matters (derivation 11, and with momentum the same scaling): lr = eta*lambda / wd
    runs = [simulate_conventional(p, lws / wd, wd, 200_000, seeds=4, burn_in=100_000, momentum=mu) for mu in momenta]
    fig = plots.plot_conventional_momentum(lws, momenta, [r.mean_loss.mean(axis=1) / p.total_alpha for r in runs],
                                           [r.mean_cosine.mean(axis=1) for r in runs],
                                           [r.mean_log1p_ess2.mean(axis=(1, 2)) for r in runs])
    return [fig.save(Path(out) / f"conventional_momentum.{fmt}", fmt)]


#: recipe name -> recipe(out, fmt, quiet, where) returning the written paths
RECIPES = {
    "toy": _fig_toy,
    "phase_diagram": _fig_phase_diagram,
    "orbit_diagram": _fig_orbit_diagram,
    "lyapunov": _fig_lyapunov,
    "basins": _fig_basins,
    "regime_map": _fig_regime_map,
    "sgd_threshold": _fig_sgd_threshold,
    "bridge": _fig_bridge,
    "bridge_convnet": _fig_bridge_convnet,
    "bridge_conventional": _fig_bridge_conventional,
    "bridge_finetune": _fig_bridge_finetune,
    "bridge_periodic": _fig_bridge_periodic,
    "fashion_mnist_bridge": _fig_fashion_bridge,
    "fashion_mnist_bridge_convnet": _fig_fashion_bridge_convnet,
    "fashion_mnist_conventional": _fig_fashion_conventional,
    "fashion_mnist_finetune": _fig_fashion_finetune,
    "conventional_phase": _fig_conventional_phase,
    "conventional_trajectories": _fig_conventional_trajectories,
    "conventional_momentum": _fig_conventional_momentum,
}
#: file stem of every committed figure -> the recipe that makes it (``--only`` takes either)
FIGURES = {
    "toy_loss": "toy",
    "toy_group_elrs": "toy",
    "phase_diagram": "phase_diagram",
    "orbit_diagram": "orbit_diagram",
    "lyapunov": "lyapunov",
    "basins": "basins",
    "regime_map": "regime_map",
    "sgd_threshold": "sgd_threshold",
    "bridge_regimes": "bridge",
    "bridge_ess": "bridge",
    "bridge_sharpness": "bridge",
    "bridge_regimes_convnet": "bridge_convnet",
    "bridge_ess_convnet": "bridge_convnet",
    "bridge_conventional": "bridge_conventional",
    "bridge_finetune": "bridge_finetune",
    "bridge_periodic": "bridge_periodic",
    "fashion_mnist/bridge_regimes": "fashion_mnist_bridge",
    "fashion_mnist/bridge_ess": "fashion_mnist_bridge",
    "fashion_mnist/bridge_sharpness": "fashion_mnist_bridge",
    "fashion_mnist/bridge_regimes_convnet": "fashion_mnist_bridge_convnet",
    "fashion_mnist/bridge_ess_convnet": "fashion_mnist_bridge_convnet",
    "fashion_mnist/bridge_conventional": "fashion_mnist_conventional",
    "fashion_mnist/bridge_finetune": "fashion_mnist_finetune",
    "conventional_phase": "conventional_phase",
    "conventional_trajectories": "conventional_trajectories",
    "conventional_momentum": "conventional_momentum",
}


def recipes_for(names) -> list[str]:
    """The recipes that make the figures ``names`` (file stems or recipe names), in order, once each."""
    out = []
    for nm in names:
        rec = FIGURES.get(nm, nm if nm in RECIPES else None)
        if rec is None:
            raise ValueError(f"unknown figure {nm!r}; known: {', '.join(FIGURES)}")
        if rec not in out:
            out.append(rec)
    return out


def _main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m toymodel.figures",
                        description="Regenerate the paper's toy figures and ours into a folder.")
    ap.add_argument("--out", default="figures", help="output folder (default: %(default)s, the committed figures)")
    ap.add_argument("--format", default="png", help="png, svg or pdf (default: %(default)s)")
    ap.add_argument("--only", action="append", metavar="NAME",
                    help=f"make only this figure (repeatable), by file stem: {', '.join(FIGURES)}")
    ap.add_argument("--quiet", action="store_true", help="no progress")
    ap.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help="run the sweeps (phase diagram, Lyapunov, regime maps) on a running Dask scheduler")
    ap.add_argument("--dask-local", metavar="N", type=int_arg, default=None,
                    help="run the sweeps on a Dask LocalCluster with N worker processes")
    args = ap.parse_args(argv)
    check_dask_choice(args.scheduler, args.dask_local)
    fmt = as_format(args.format)
    names = recipes_for(args.only or list(FIGURES))
    where = {"scheduler": args.scheduler, "dask_local": args.dask_local}
    with output_dir(args.out, "out") as out, quiet_warnings(args.quiet):
        for nm in names:
            t0 = time.perf_counter()
            paths = RECIPES[nm](out, fmt, args.quiet, where)
            if not args.quiet:
                print(f"{nm}: {time.perf_counter() - t0:.1f} s -> " + ", ".join(str(p) for p in paths),
                      file=sys.stderr)
    return 0


def main(argv=None) -> int:
    plots.use_file_backend()  # a job writes files: no display
    return run_cli(_main, argv, prog="python -m toymodel.figures")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
