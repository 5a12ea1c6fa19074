"""Where conventional training lands: the regime and the effective ELR that SGD with weight decay
(and momentum) settles at, predicted from a fixed-ELR sweep by the landing rule (derivation 16).

Plain SGD with weight decay keeps every channel's time mean of log(1 + ESS_i^2) at
-2 log(1 - ηλ) (derivation 12). A fixed-ELR sweep on the sphere measures that mean, M(ELR), at
every ELR (``mean_log1p_ess2`` in ``bridge.csv``); training lands where M(ELR) equals the target,
in the regime the sweep has there. With momentum μ the target is the value derivation 17 derives
on the toy's orbit, -2 log(1 - ηλ/(1 + μ)): the rotational-equilibrium angle of uncorrelated
gradients (cos Δ = 1 - ηλ/(1 + μ)), which the toy's orbit has exactly.

``python -m toymodel.bridge.predict --bands BRIDGE_CSV --lr LR --weight-decay WD [--momentum MU]``
prints the prediction and the rule used.
"""

from __future__ import annotations

import csv
import math
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .. import regimes, theory
from .._cli import ArgumentParser, run_cli
from .._validate import as_momentum

__all__ = ["LandingPrediction", "landing_target", "read_sweep", "predict_landing", "main"]


@dataclass(frozen=True)
class LandingPrediction:
    """Where conventional training lands, by the landing rule.

    Attributes
    ----------
    lr_wd, momentum : float
        ηλ and μ.
    target : float
        The time mean of log(1 + ESS²) that training settles at.
    elr : float
        The effective ELR where the sweep's mean reaches the target (interpolated in log ELR).
    regime, subtype : str
        The sweep's verdict at the sweep point nearer to ``elr`` (in log ELR).
    interval : tuple of float
        The sweep's neighbouring ELRs around ``elr``.
    rule : str
        The rule, in words, with its numbers.
    """

    lr_wd: float
    momentum: float
    target: float
    elr: float
    regime: str
    subtype: str
    interval: tuple
    rule: str


def landing_target(lr_wd: float, momentum: float = 0.0) -> float:
    """The time mean of log(1 + ESS²) that SGD with weight decay settles at.

    Parameters
    ----------
    lr_wd : float
        ηλ, in (0, 1).
    momentum : float, optional
        μ in [0, 1) (PyTorch's heavy ball).

    Returns
    -------
    float
        -2 log(1 - ηλ) without momentum (``theory.conventional_landing_target``, derivation 16),
        -2 log(1 - ηλ/(1 + μ)) with it (``theory.conventional_momentum_orbit``, derivation 17).
    """
    mu = as_momentum(momentum)
    if mu == 0.0:
        return theory.conventional_landing_target(lr_wd)
    return theory.conventional_momentum_orbit(lr_wd, mu)["log1p_ess2"]


def read_sweep(sweep) -> dict:
    """The columns of a fixed-ELR sweep the rule needs: ``elr``, ``regime``, ``subtype`` and
    ``mean_log1p_ess2``.

    Parameters
    ----------
    sweep : str, Path, BridgeSweep or dict
        A ``bridge.csv`` (path), a computed sweep (its ``table``), or such a table.

    Returns
    -------
    dict of numpy.ndarray

    Raises
    ------
    ValueError
        If the file is missing or unreadable, or lacks a column (a sweep written before the
        landing rule has no ``mean_log1p_ess2``: run it again).
    """
    table = getattr(sweep, "table", sweep)
    if isinstance(table, (str, Path)):
        path = Path(table)
        if not path.is_file():
            raise ValueError(f"sweep file not found: {path}")
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if not rows:
            raise ValueError(f"the sweep {path} has no rows")
        missing = [c for c in ("elr", "regime", "subtype", "mean_log1p_ess2") if c not in rows[0]]
        if missing:
            raise ValueError(f"the sweep {path} has no column {missing[0]} (a bridge.csv written before the landing "
                             "rule; run the fixed-ELR sweep again)")
        table = {c: [r[c] for r in rows] for c in ("elr", "regime", "subtype", "mean_log1p_ess2")}
    missing = [c for c in ("elr", "regime", "subtype", "mean_log1p_ess2") if c not in table]
    if missing:
        raise ValueError(f"the sweep has no column {missing[0]}")
    return {"elr": np.asarray(table["elr"], dtype=float), "regime": np.asarray(table["regime"], dtype=object),
            "subtype": np.asarray(table["subtype"], dtype=object),
            "mean_log1p_ess2": np.asarray(table["mean_log1p_ess2"], dtype=float)}


def predict_landing(sweep, lr_wd: float, momentum: float = 0.0) -> LandingPrediction:
    """Predict where conventional training with ``lr_wd`` = ηλ (and momentum) lands.

    Parameters
    ----------
    sweep : str, Path, BridgeSweep or dict
        A fixed-ELR sweep with ``mean_log1p_ess2`` (see :func:`read_sweep`).
    lr_wd : float
        ηλ, in (0, 1).
    momentum : float, optional
        μ in [0, 1).

    Returns
    -------
    LandingPrediction

    Raises
    ------
    ValueError
        For ηλ outside (0, 1), a bad momentum, a sweep without the column, or a target outside the
        sweep's range.
    """
    mu = as_momentum(momentum)
    target = landing_target(lr_wd, mu)
    t = read_sweep(sweep)
    elr, (k0, k1) = regimes.landing(t["elr"], t["mean_log1p_ess2"], target)
    near = k0 if abs(math.log(elr / t["elr"][k0])) <= abs(math.log(t["elr"][k1] / elr)) else k1
    law = "-2 log(1 - eta lambda)" if mu == 0.0 else "-2 log(1 - eta lambda/(1 + mu))"
    rule = (f"the sweep's time mean of log(1 + ESS^2) reaches {law} = {target:.4g} at ELR {elr:.4g} (between the "
            f"sweep's {t['elr'][k0]:.4g} and {t['elr'][k1]:.4g}; derivation {16 if mu == 0.0 else 17})")
    return LandingPrediction(float(lr_wd), mu, float(target), float(elr), str(t["regime"][near]),
                             str(t["subtype"][near]), (float(t["elr"][k0]), float(t["elr"][k1])), rule)


def _main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m toymodel.bridge.predict",
                        description="Predict the effective ELR and the regime where SGD with weight decay (and "
                                    "momentum) lands, from a fixed-ELR sweep's bridge.csv (the landing rule).")
    ap.add_argument("--bands", metavar="BRIDGE_CSV", required=True,
                    help="a fixed-ELR sweep (bridge.csv, with the column mean_log1p_ess2)")
    ap.add_argument("--lr", type=float, required=True, help="the learning rate eta")
    ap.add_argument("--weight-decay", type=float, required=True, help="the weight decay lambda")
    ap.add_argument("--momentum", type=float, default=0.0, help="heavy-ball momentum mu in [0, 1) (default: 0)")
    args = ap.parse_args(argv)
    if not (args.lr > 0 and args.weight_decay > 0 and math.isfinite(args.lr * args.weight_decay)):
        raise ValueError(f"lr and weight_decay must be positive and finite, got {args.lr!r} and {args.weight_decay!r}")
    lw = args.lr * args.weight_decay
    if lw >= 1:
        raise ValueError(f"lr * weight_decay must be below 1 (the decay factor 1 - lr * wd must be positive), "
                         f"got {lw!r}")
    p = predict_landing(args.bands, lw, args.momentum)
    sub = f" ({p.subtype})" if p.subtype else ""
    print(f"eta*lambda = {p.lr_wd:.4g}, momentum {p.momentum:g}: lands at effective ELR {p.elr:.4g} "
          f"(between {p.interval[0]:.4g} and {p.interval[1]:.4g}), regime {p.regime}{sub}")
    print(f"rule: {p.rule}")
    sys.stdout.flush()
    return 0


def main(argv=None) -> int:
    """``python -m toymodel.bridge.predict``: see the module's notes and ``--help``."""
    return run_cli(_main, argv, prog="python -m toymodel.bridge.predict")


if __name__ == "__main__":
    raise SystemExit(main())
