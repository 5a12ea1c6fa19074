"""Bridge to real networks: a scale-invariant MLP on real data, trained on the sphere.

A small MLP whose hidden layers are Linear (no bias) -> BatchNorm (batch statistics, no affine
parameters) -> ReLU, with a fixed random output layer of a set norm. Every hidden unit's incoming
weights form one scale-invariant group (as a BN channel does), so the loss is scale-invariant in
each of them, and training projects all of them together onto the sphere of their total norm,
with a fixed total effective learning rate (ELR): the setting of the paper's real-network
experiments, and of the toy.

Backpropagation is written by hand in NumPy and checked against finite differences in the tests;
the layers are small dense matrix products, so BLAS does the work and Numba would not pay here.
The data are scikit-learn's handwritten digits (8x8, 10 classes, shipped inside the package:
nothing is downloaded), standardised with training statistics and split by seed.
scikit-learn comes with the optional extra ``toymodel[bridge]``; the core package does not
import it.

``python -m toymodel.bridge`` sweeps the total ELR, classifies every ELR with the criteria of
:mod:`toymodel.regimes`, and writes ``bridge.csv`` and ``bridge.json``
(and with ``python -m toymodel.figures --only bridge``, the figures).
"""

from __future__ import annotations

import datetime as _dt
import functools
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import _streams, plots, regimes
from ._cli import ArgumentParser, int_arg, note, output_dir, plural, run_cli
from ._records import (
    CACHE_DIRNAME,
    ResultType,
    atomic_write_text,
    content_key,
    csv_text,
    json_text,
    versions,
)
from ._validate import MAX_BATCH_SIZE, MAX_STEPS, as_elr_range, as_format, as_int, as_positive_float, check_memory
from .sweep import SweepStats, execute

__all__ = ["BRIDGE_HINT", "DEFAULTS", "SIMLP", "load_digits_split", "TrainResult", "train", "random_guess_level",
           "BridgeSweep", "compute_bridge", "bridge_csv_text", "bridge_json_record", "write_bridge_outputs", "main"]

BRIDGE_HINT = "the bridge needs the optional extra: pip install 'toymodel[bridge]'"

#: where the command line writes unless told otherwise (git-ignored)
DEFAULT_OUT = "runs/bridge"

DEFAULTS = dict(elr_min=1e-4, elr_max=10.0, num=21, seeds=3, epochs=60, batch_size=32, hidden=(64, 64),
                out_norm=10.0)


# ------------------------------------------------------------------------------ data
def load_digits_split(seed: int, test_fraction: float = 0.2):
    """scikit-learn's digits, standardised with the training statistics, split by ``seed``.

    Returns ``(X_train, y_train, X_test, y_test)``.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ValueError(BRIDGE_HINT) from None
    d = load_digits()
    X = d.data.astype(float)
    y = d.target.astype(np.int64)
    perm = _streams.rng(seed, _streams.DATA_SPLIT).permutation(len(y))
    n_test = int(round(test_fraction * len(y)))
    test, tr = perm[:n_test], perm[n_test:]
    mu = X[tr].mean(axis=0)
    sd = X[tr].std(axis=0)
    sd[sd == 0] = 1.0  # constant pixels (always 0 in the training set) stay 0
    return (X[tr] - mu) / sd, y[tr], (X[test] - mu) / sd, y[test]


# ----------------------------------------------------------------------------- model
class SIMLP:
    """A fully scale-invariant MLP: hidden layers Linear (no bias) -> BN (no affine) -> ReLU,
    then a fixed linear output layer.

    Parameters
    ----------
    sizes : (d_in, h_1, ..., h_L, n_classes)
    out_norm : float
        Frobenius norm of the fixed random output layer (it bounds the logits, hence how low the
        cross-entropy can go).
    seed : int
        Draws the output layer and the initial hidden weights.

    Notes
    -----
    The trained parameters are the hidden weight matrices, flattened into one vector ``theta``;
    row j of layer l (the incoming weights of one unit) is one scale-invariant group. BN uses the
    statistics of the batch it is given, with no epsilon, so each group is exactly
    scale-invariant.
    """

    def __init__(self, sizes, out_norm: float = DEFAULTS["out_norm"], seed: int = 0):
        sizes = tuple(int(s) for s in sizes)
        if len(sizes) < 3 or min(sizes) < 1:
            raise ValueError(f"sizes must be (d_in, hidden..., n_classes) with positive entries, got {sizes}")
        self.sizes = sizes
        rng = _streams.rng(seed, _streams.NET_INIT)
        w = rng.standard_normal((sizes[-1], sizes[-2]))
        self.W_out = w * (as_positive_float(out_norm, "out_norm") / np.linalg.norm(w))
        self.shapes = [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 2)]
        self.offsets = np.cumsum([0] + [a * b for a, b in self.shapes])
        self.dim = int(self.offsets[-1])
        self.n_channels = int(sum(a for a, _ in self.shapes))
        self._theta0 = rng.standard_normal(self.dim)

    def initial_theta(self) -> np.ndarray:
        """Initial hidden weights (Gaussian, normalised to unit total norm)."""
        return self._theta0 / np.linalg.norm(self._theta0)

    def layers(self, theta):
        return [theta[self.offsets[i]:self.offsets[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]

    def channel_sq_norms(self, theta) -> np.ndarray:
        """Squared norm of every unit's incoming weights (one per scale-invariant group)."""
        return np.concatenate([np.sum(W * W, axis=1) for W in self.layers(theta)])

    def forward(self, theta, X):
        """Logits and the cache for the backward pass."""
        a = X
        cache = []
        for W in self.layers(theta):
            h = a @ W.T
            mu = h.mean(axis=0)
            sd = np.sqrt(((h - mu) ** 2).mean(axis=0))
            z = (h - mu) / sd
            cache.append((a, z, sd, W))
            a = np.maximum(z, 0.0)
        return a @ self.W_out.T, cache

    @staticmethod
    def _softmax_ce(logits, y):
        s = logits - logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(s).sum(axis=1))
        loss = float(np.mean(lse - s[np.arange(len(y)), y]))
        p = np.exp(s - lse[:, None])
        return loss, p

    def loss(self, theta, X, y) -> float:
        """Mean cross-entropy, BN with the statistics of ``X`` itself."""
        return self._softmax_ce(self.forward(theta, X)[0], y)[0]

    def loss_and_grad(self, theta, X, y):
        """Mean cross-entropy and its gradient with respect to ``theta`` (hand-written backprop).

        Notes
        -----
        Softmax-CE: dlogits = (p - onehot)/B. ReLU passes dz where z > 0. BN without affine and
        with batch statistics, z = (h - mean h)/std h: dh = (dz - mean(dz) - z mean(dz z))/std.
        Linear: dW = dh^T a_prev, da_prev = dh W.
        """
        logits, cache = self.forward(theta, X)
        loss, p = self._softmax_ce(logits, y)
        B = len(y)
        p[np.arange(B), y] -= 1.0
        da = (p / B) @ self.W_out
        grads = []
        for a_prev, z, sd, W in reversed(cache):
            dz = da * (z > 0)
            dh = (dz - dz.mean(axis=0) - z * (dz * z).mean(axis=0)) / sd
            grads.append(dh.T @ a_prev)
            da = dh @ W
        return loss, np.concatenate([gw.ravel() for gw in reversed(grads)])

    def predict_error(self, theta, X_fit, X, y) -> float:
        """Classification error on ``X`` with BN statistics taken from ``X_fit`` (the training set)."""
        a_fit, a = X_fit, X
        for W in self.layers(theta):
            hf, h = a_fit @ W.T, a @ W.T
            mu, sd = hf.mean(axis=0), hf.std(axis=0)
            a_fit, a = np.maximum((hf - mu) / sd, 0.0), np.maximum((h - mu) / sd, 0.0)
        return float(np.mean(np.argmax(a @ self.W_out.T, axis=1) != y))


# ---------------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainResult:
    """Per-epoch records of one training run (arrays over epochs ``E`` and channels ``C``).

    ``step_cosine`` and ``step_angle`` average cos(theta_t, theta_t+1) and the angular update
    over the steps of each epoch; ``epoch_cosine`` is the cosine between the weights at the ends
    of consecutive epochs (the first against the initial weights); ``eff_grad_norm`` averages the
    effective gradient norm ||g|| ||theta|| of the mini-batch gradients; ``channel_elr`` is each
    channel's ELR at the end of the epoch, ``channel_egn`` and ``channel_ess`` each channel's
    effective gradient norm and effective step size averaged over the epoch's steps.
    """

    elr: float
    seed: int
    train_loss: np.ndarray
    test_error: np.ndarray
    eff_grad_norm: np.ndarray
    step_cosine: np.ndarray
    step_angle: np.ndarray
    epoch_cosine: np.ndarray
    channel_elr: np.ndarray
    channel_egn: np.ndarray
    channel_ess: np.ndarray
    harmonic_error: float  # max over epochs of |sum_i 1/elr_i * elr - 1|
    final_norm: float


def train(model: SIMLP, data, elr: float, epochs: int, batch_size: int, seed: int) -> TrainResult:
    """Mini-batch SGD on the sphere of the hidden weights' total norm with a fixed total ELR.

    Every step: theta <- theta - eta grad with eta = elr * ||theta||^2, then theta is projected
    back onto the sphere of its initial norm. Batches are drawn without replacement each epoch
    (order from ``seed``); BN uses the batch's statistics.
    """
    Xtr, ytr, Xte, yte = data
    elr = as_positive_float(elr, "elr")
    epochs = as_int(epochs, "epochs", minimum=1)
    batch_size = as_int(batch_size, "batch_size", minimum=2)  # BN needs at least 2 examples
    if batch_size > len(ytr):
        raise ValueError(f"batch_size must be at most the training set size {len(ytr)}, got {batch_size}")
    theta = model.initial_theta()
    rho2 = float(theta @ theta)
    rng = _streams.rng(seed, _streams.BATCH_ORDER)
    n_batches = len(ytr) // batch_size
    C = model.n_channels
    rec = {k: np.empty(epochs) for k in ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "step_angle",
                                         "epoch_cosine")}
    ch_elr = np.empty((epochs, C))
    ch_egn = np.empty((epochs, C))
    ch_ess = np.empty((epochs, C))
    harm = 0.0
    eta = elr * rho2
    for ep in range(epochs):
        start = theta.copy()
        perm = rng.permutation(len(ytr))
        s_g = s_cos = s_ang = 0.0
        s_egn = np.zeros(C)
        s_ess = np.zeros(C)
        for b in range(n_batches):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            _, g = model.loss_and_grad(theta, Xtr[idx], ytr[idx])
            w2 = model.channel_sq_norms(theta)
            egn_c = np.sqrt(model.channel_sq_norms(g) * w2)
            s_egn += egn_c
            s_ess += (eta / w2) * egn_c
            gn = float(np.sqrt(g @ g) * np.sqrt(rho2))
            new = theta - eta * g
            new *= np.sqrt(rho2) / np.linalg.norm(new)
            cos = float(theta @ new) / rho2
            s_g += gn
            s_cos += min(cos, 1.0)
            s_ang += float(np.arctan(elr * gn))
            theta = new
        w2 = model.channel_sq_norms(theta)
        ch_elr[ep] = eta / w2
        harm = max(harm, abs(float(np.sum(1.0 / ch_elr[ep])) * elr * rho2 / float(theta @ theta) - 1.0))
        ch_egn[ep] = s_egn / n_batches
        ch_ess[ep] = s_ess / n_batches
        rec["eff_grad_norm"][ep] = s_g / n_batches
        rec["step_cosine"][ep] = s_cos / n_batches
        rec["step_angle"][ep] = s_ang / n_batches
        rec["epoch_cosine"][ep] = min(float(start @ theta) / rho2, 1.0)
        rec["train_loss"][ep] = model.loss(theta, Xtr, ytr)
        rec["test_error"][ep] = model.predict_error(theta, Xtr, Xte, yte)
    return TrainResult(float(elr), int(seed), channel_elr=ch_elr, channel_egn=ch_egn, channel_ess=ch_ess,
                       harmonic_error=harm, final_norm=float(np.sqrt(theta @ theta)), **rec)


def random_guess_level(model: SIMLP, data, points: int = 64, seed: int = 0) -> float:
    """Mean training loss at points drawn uniformly on the sphere of the hidden weights, as the
    toy defines its random-guess level (BN with the training set's statistics)."""
    Xtr, ytr = data[0], data[1]
    rng = _streams.rng(seed, _streams.RANDOM_GUESS)
    vals = []
    for _ in range(points):
        th = rng.standard_normal(model.dim)
        vals.append(model.loss(th / np.linalg.norm(th), Xtr, ytr))
    return float(np.mean(vals))


# ------------------------------------------------------------------------------ sweep
#: share of the epochs (at the end) over which runs are summarised and classified
WINDOW_FRACTION = 0.25
#: fewest epochs in that window for the classification to mean anything: below it a run that is
#: still converging slowly cannot be told from one that fluctuates (a 5-epoch run labels tiny ELRs
#: "equilibrium"); shorter runs are still classified, with a warning recorded in the JSON
MIN_WINDOW_EPOCHS = 5


@dataclass(frozen=True, repr=False)
class BridgeSweep(ResultType):
    """A classified ELR sweep of the network: one row per ELR in ``table``, per-run records in
    ``runs`` (index [elr][seed]), and the parameters."""

    columns: tuple
    table: dict
    params: dict
    runs: list = field(repr=False)
    random_guess: np.ndarray = field(repr=False)
    reused: int = 0

    @property
    def window(self) -> slice:
        """The epochs over which runs are summarised and classified (the last WINDOW_FRACTION)."""
        return epoch_window(self.params["epochs"])

    @property
    def window_too_short(self) -> bool:
        """Whether the window has fewer than MIN_WINDOW_EPOCHS epochs (the regimes are then unreliable)."""
        w = self.window
        return (w.stop - w.start) < MIN_WINDOW_EPOCHS

    @property
    def elrs(self) -> np.ndarray:
        return np.asarray(self.table["elr"])

    @property
    def seeds(self) -> np.ndarray:
        return np.asarray(self.params["seeds"])

    def long_table(self) -> dict:
        """One row per (ELR, seed): final train loss, test error and window statistics."""
        rows = [(r.elr, r.seed, r.train_loss[-1], r.test_error[-1], r.train_loss[self.window].mean(),
                 r.step_cosine[self.window].mean()) for row in self.runs for r in row]
        names = ("elr", "seed", "final_train_loss", "final_test_error", "mean_loss", "mean_cosine")
        return {nm: np.array([r[i] for r in rows]) for i, nm in enumerate(names)}


def epoch_window(epochs: int) -> slice:
    """The last ``WINDOW_FRACTION`` of ``epochs`` (at least two epochs)."""
    w = max(2, int(round(WINDOW_FRACTION * epochs)))
    return slice(max(0, epochs - w), epochs)


@functools.lru_cache(maxsize=8)
def _seed_setup(seed: int, hidden: tuple, out_norm: float):
    """The data split and the model of one seed (the same at every ELR; cached per process)."""
    data = load_digits_split(seed)
    model = SIMLP((data[0].shape[1],) + tuple(hidden) + (10,), out_norm=out_norm, seed=seed)
    return data, model


@dataclass(frozen=True)
class BridgeRun:
    """One unit of a network sweep: the run at ELR index ``k`` with seed ``seed``."""

    index: int
    k: int
    seed: int

    @property
    def name(self) -> str:
        return f"run_{self.k:04d}_{self.seed:04d}"


@dataclass(frozen=True)
class BridgeTask:
    """A network ELR sweep as a task of :func:`toymodel.sweep.execute` (one run per unit)."""

    elrs: tuple
    seeds: tuple
    epochs: int
    batch_size: int
    hidden: tuple
    out_norm: float
    record_type = TrainResult

    def units(self) -> list[BridgeRun]:
        return [BridgeRun(k * len(self.seeds) + j, k, s) for k in range(len(self.elrs))
                for j, s in enumerate(self.seeds)]

    def run_unit(self, unit: BridgeRun, threads=None) -> TrainResult:
        data, model = _seed_setup(unit.seed, self.hidden, self.out_norm)
        return train(model, data, self.elrs[unit.k], self.epochs, self.batch_size, unit.seed)

    def key(self) -> str:
        return content_key({"job": "bridge", "elrs": [repr(float(e)) for e in self.elrs],
                            "seeds": [int(s) for s in self.seeds], "epochs": self.epochs,
                            "batch_size": self.batch_size, "hidden": list(self.hidden),
                            "out_norm": repr(float(self.out_norm))})


def _validate(elr_min, elr_max, num, seeds, epochs, batch_size, hidden, out_norm):
    elr_min, elr_max, num = as_elr_range(elr_min, elr_max, num)
    seeds = as_int(seeds, "seeds", minimum=1)
    epochs = as_int(epochs, "epochs", minimum=2, maximum=MAX_STEPS)
    batch_size = as_int(batch_size, "batch_size", minimum=2, maximum=MAX_BATCH_SIZE)
    if isinstance(hidden, str):
        try:
            hidden = tuple(int(h) for h in hidden.split(","))
        except ValueError:
            raise ValueError(f"hidden must be comma-separated layer widths, got {hidden!r}") from None
    hidden = tuple(as_int(h, "hidden", minimum=1) for h in hidden)
    if not hidden:
        raise ValueError("hidden must list at least one hidden layer width")
    out_norm = as_positive_float(out_norm, "out_norm")
    # per run and epoch: six scalars and three values per channel (ELR, gradient norm, ESS)
    check_memory(num * seeds * epochs * (6 + 3 * sum(hidden)) * 8, "the sweep's records")
    return elr_min, elr_max, num, seeds, epochs, batch_size, hidden, out_norm


def _summarise(runs, rgs, elrs, epochs):
    """One row per ELR: window statistics of every seed, classified, averaged over seeds."""
    w = epoch_window(epochs)
    K_, S_ = len(runs), len(runs[0])

    def grid(fn):
        return np.array([[fn(runs[k][s]) for s in range(S_)] for k in range(K_)])

    mean_loss = grid(lambda r: r.train_loss[w].mean())
    std_loss = grid(lambda r: r.train_loss[w].std())
    first = grid(lambda r: r.train_loss[w][0])
    final = grid(lambda r: r.train_loss[w][-1])
    peak = grid(lambda r: r.train_loss[w].max())
    cos = grid(lambda r: r.step_cosine[w].mean())
    rg = np.broadcast_to(np.asarray(rgs)[None, :], (K_, S_))
    converged = (peak <= regimes.NETWORK_CONVERGED_LOSS_FRACTION * rg) & (final < first)
    chaotic = std_loss > regimes.PERIODIC_STD_TOL * mean_loss
    reg, sub = regimes.classify(mean_loss, cos, rg, converged, chaotic)
    regime, subtype, frac = regimes.classify_elrs(reg, sub)
    ess = grid(lambda r: _ess_dispersion(r, w))
    t = {"elr": np.asarray(elrs), "regime": regime, "subtype": subtype, "n_seeds": np.full(K_, S_)}
    for name in regimes.REGIMES + regimes.SUBTYPES:
        t[f"frac_{name}"] = frac[name]
    cols = {
        "mean_loss": mean_loss, "std_loss": std_loss,
        "final_train_loss": grid(lambda r: r.train_loss[-1]),
        "final_test_error": grid(lambda r: r.test_error[-1]),
        "mean_cosine": cos,
        "mean_angle": grid(lambda r: r.step_angle[w].mean()),
        "mean_eff_grad_norm": grid(lambda r: np.median(r.eff_grad_norm[w])),
        "epoch_cosine": grid(lambda r: r.epoch_cosine[w].mean()),
        "ess_dispersion": ess,
    }
    for name, arr in cols.items():
        t[name] = arr.mean(axis=1)
        t[f"std_{name}"] = arr.std(axis=1)
    t["random_guess_loss"] = np.full(K_, float(np.mean(rgs)))
    return tuple(t), t


def _ess_dispersion(r: TrainResult, w: slice) -> float:
    """Spread of the per-channel ESS (window means): standard deviation of log ESS over channels."""
    ess = r.channel_ess[w].mean(axis=0)
    return float(np.std(np.log(ess)))


def compute_bridge(elr_min=DEFAULTS["elr_min"], elr_max=DEFAULTS["elr_max"], num=DEFAULTS["num"],
                   seeds=DEFAULTS["seeds"], epochs=DEFAULTS["epochs"], batch_size=DEFAULTS["batch_size"],
                   hidden=DEFAULTS["hidden"], out_norm=DEFAULTS["out_norm"], progress: bool = False,
                   cache_dir=None) -> BridgeSweep:
    """Train the network at ``num`` log-spaced ELRs for ``seeds`` seeds each and classify.

    Seed s fixes the data split, the output layer, the initial weights and the batch order, and
    is the same at every ELR. With ``cache_dir`` each finished run is kept there and reused.
    """
    elr_min, elr_max, num, seeds, epochs, batch_size, hidden, out_norm = _validate(
        elr_min, elr_max, num, seeds, epochs, batch_size, hidden, out_norm)
    elrs = np.geomspace(elr_min, elr_max, num)
    params = dict(elr_min=elr_min, elr_max=elr_max, num=num, seeds=list(range(seeds)), epochs=epochs,
                  batch_size=batch_size, hidden=list(hidden), out_norm=out_norm)
    task = BridgeTask(tuple(elrs.tolist()), tuple(range(seeds)), epochs, batch_size, tuple(hidden), out_norm)
    rgs = []
    for s in task.seeds:
        data, model = _seed_setup(s, task.hidden, out_norm)
        rgs.append(random_guess_level(model, data, seed=s))
    stats = SweepStats()
    parts = execute([task], [(0, u) for u in task.units()], progress=progress, desc="bridge", unit="run",
                    cache_dir=cache_dir, stats=stats)[0]
    runs = [[None] * seeds for _ in range(num)]
    for u, run in parts:
        runs[u.k][u.seed] = run
    reused = stats.reused
    columns, table = _summarise(runs, rgs, elrs, epochs)
    return BridgeSweep(columns, table, params, runs, np.array(rgs), reused)


def bridge_csv_text(bs: BridgeSweep) -> str:
    return csv_text(bs.columns, bs.table)


def bridge_json_record(bs: BridgeSweep, wall_time_s=None, started=None, outputs=()) -> dict:
    """Parameters, versions, classification constants, timing, the random-guess level per seed,
    per-ELR seed-averaged learning curves, and the per-channel data of seed 0 for the ESS figure."""
    w = bs.window
    curves = {name: [np.mean([getattr(r, name) for r in row], axis=0).tolist() for row in bs.runs]
              for name in ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "epoch_cosine")}
    channels = [{"elr": float(row[0].elr), "channel_elr": row[0].channel_elr[w].mean(axis=0).tolist(),
                 "channel_eff_grad_norm": row[0].channel_egn[w].mean(axis=0).tolist()} for row in bs.runs]
    return {
        "job": "bridge",
        "parameters": bs.params,
        "seeds": bs.params["seeds"],
        "random_guess_loss": bs.random_guess.tolist(),
        "window_epochs": [w.start, w.stop],
        "window_too_short": bs.window_too_short,
        "classification": {"RANDOM_WALK_COSINE_TOL": regimes.RANDOM_WALK_COSINE_TOL,
                           "RANDOM_WALK_LOSS_TOL": regimes.RANDOM_WALK_LOSS_TOL,
                           "NETWORK_CONVERGED_LOSS_FRACTION": regimes.NETWORK_CONVERGED_LOSS_FRACTION,
                           "PERIODIC_STD_TOL": regimes.PERIODIC_STD_TOL, "WINDOW_FRACTION": WINDOW_FRACTION,
                           "MIN_WINDOW_EPOCHS": MIN_WINDOW_EPOCHS},
        "columns": list(bs.columns),
        "curves": curves,
        "channels_seed0": channels,
        "outputs": list(outputs),
        "versions": versions(),
        "timing": {"started": started, "wall_time_s": wall_time_s, "runs_reused": bs.reused},
    }


def write_bridge_outputs(bs: BridgeSweep, out, fmt: str = "png", plot: bool = True, wall_time_s=None, started=None):
    """``bridge.csv``, ``bridge.json`` and (unless ``plot=False``) the two figures, atomically."""
    out = Path(out)
    names = ["bridge.csv", "bridge.json"]
    atomic_write_text(out / "bridge.csv", bridge_csv_text(bs))
    if plot:
        fig, _ = plots.plot_bridge_regimes(bs)
        plots.save_figure(fig, out / f"bridge_regimes.{fmt}", fmt)
        fig, _ = plots.plot_bridge_ess(bs)
        plots.save_figure(fig, out / f"bridge_ess.{fmt}", fmt)
        names += [f"bridge_regimes.{fmt}", f"bridge_ess.{fmt}"]
    atomic_write_text(out / "bridge.json", json_text(bridge_json_record(bs, wall_time_s, started, names), indent=None))
    return [out / n for n in names]


def _main(argv=None) -> int:
    d = DEFAULTS
    ap = ArgumentParser(prog="python -m toymodel.bridge",
                        description="Train a fully scale-invariant MLP (BN without affine, fixed output layer) on "
                                    "scikit-learn's digits on the sphere at a sweep of fixed total ELRs, classify "
                                    "every "
                                    "ELR into a regime, and write bridge.csv, bridge.json and two figures.")
    ap.add_argument("--elr-min", type=float, default=d["elr_min"], help="smallest ELR (default: %(default)g)")
    ap.add_argument("--elr-max", type=float, default=d["elr_max"], help="largest ELR (default: %(default)g)")
    ap.add_argument("--num", type=int_arg, default=d["num"], help="number of log-spaced ELRs (default: %(default)s)")
    ap.add_argument("--seeds", type=int_arg, default=d["seeds"],
                    help="runs per ELR, seeds 0..N-1 (default: %(default)s)")
    ap.add_argument("--epochs", type=int_arg, default=d["epochs"], help="epochs per run (default: %(default)s)")
    ap.add_argument("--batch-size", type=int_arg, default=d["batch_size"],
                    help="mini-batch size (default: %(default)s)")
    ap.add_argument("--hidden", default=",".join(str(h) for h in d["hidden"]),
                    help="hidden layer widths (default: %(default)s)")
    ap.add_argument("--out-norm", type=float, default=d["out_norm"],
                    help="norm of the fixed output layer (default: %(default)g)")
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default: %(default)s, git-ignored)")
    ap.add_argument("--format", default="png", help="figure format: png, svg or pdf (default: %(default)s)")
    ap.add_argument("--no-plot", action="store_true", help="write CSV and JSON only")
    ap.add_argument("--resume", action="store_true", help="keep finished runs in OUT/.toymodel-cache and reuse them")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    args = ap.parse_args(argv)
    _validate(args.elr_min, args.elr_max, args.num, args.seeds, args.epochs, args.batch_size, args.hidden,
              args.out_norm)
    fmt = as_format(args.format)
    try:
        import sklearn  # noqa: F401
    except ImportError:
        raise ValueError(BRIDGE_HINT) from None
    with output_dir(args.out, "out") as out:
        started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        bs = compute_bridge(args.elr_min, args.elr_max, args.num, args.seeds, args.epochs, args.batch_size,
                            args.hidden, args.out_norm, progress=not args.quiet,
                            cache_dir=(out / CACHE_DIRNAME) if args.resume else None)
        if bs.window_too_short:
            w = bs.window
            note(f"bridge: warning: the classification window (epochs {w.start}-{w.stop}) has fewer than "
                 f"{MIN_WINDOW_EPOCHS} epochs, too few for the regimes to mean anything; use --epochs "
                 f"{int(np.ceil(MIN_WINDOW_EPOCHS / WINDOW_FRACTION))} or more", args.quiet)
        wall = time.perf_counter() - t0
        paths = write_bridge_outputs(bs, out, fmt, plot=not args.no_plot, wall_time_s=wall, started=started)
    if not args.quiet:
        print(f"bridge: {plural(args.num, 'ELR')} x {plural(args.seeds, 'seed')} x {plural(args.epochs, 'epoch')} "
              f"in {wall:.1f} s; wrote " + ", ".join(str(p) for p in paths), file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, prog="python -m toymodel.bridge")


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
