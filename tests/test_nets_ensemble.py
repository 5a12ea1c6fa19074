"""toymodel.nets.ensemble: K runs trained as one batched computation give, run by run, what the
one-run functions give (train_on_sphere, train_conventional, torch.optim.SGD with momentum)."""

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from toymodel import _streams, nets  # noqa: E402
from toymodel import _validate as validate  # noqa: E402
from toymodel.nets import ensemble  # noqa: E402

#: the fields of TrainResult that hold numbers per epoch or per channel
TRAIN_FIELDS = ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "step_angle", "epoch_cosine",
                "channel_elr", "channel_egn", "channel_ess", "harmonic_error", "final_norm", "final_weights")
CONVENTIONAL_FIELDS = ("train_loss", "test_error", "total_elr", "step_cosine", "total_elr_per_step", "channel_elr",
                       "channel_ess", "mean_log1p_ess2", "law_boundary", "law_theory", "final_weights")


@pytest.fixture(autouse=True)
def _torch_settings():
    """The bridge's settings: one thread, deterministic algorithms."""
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)
    yield
    torch.use_deterministic_algorithms(det)
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def digits():
    return {s: nets.load_digits_split(s) for s in range(4)}


def _model(kind, seed, dtype=torch.float64, sizes=(64, 64, 64, 10), width=4):
    """A network initialised from stream NET_INIT of ``seed``, as the bridge builds it."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(int(_streams.rng(seed, _streams.NET_INIT).integers(2**63)))
        net = nets.MLPSI(sizes) if kind == "mlp" else nets.ConvNetSI(1, width, 10)
    return net.to(dtype)


def _tensors(digits, seed, dtype=torch.float64):
    return nets.as_tensors(digits[seed], dtype)


def _rel(a, b):
    """Largest relative difference (0 where both are 0)."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    scale = np.maximum(np.abs(a), np.abs(b))
    return float(np.max(np.where(scale > 0, np.abs(a - b) / np.where(scale > 0, scale, 1), 0.0), initial=0.0))


def _assert_results_close(one, ens, fields, rtol, atol=0.0):
    for f in fields:
        a, b = np.asarray(getattr(one, f), dtype=float), np.asarray(getattr(ens, f), dtype=float)
        assert a.shape == b.shape, f
        assert np.allclose(a, b, rtol=rtol, atol=atol, equal_nan=True), (f, _rel(a, b))


def _one_run_losses(model, tensors, elr, steps, batch_size, seed):
    """Per-step mini-batch losses of the one-run procedure (train_on_sphere's loop, losses logged)."""
    X, y = tensors[:2]
    opt = nets.SphereSGD.for_model(model, X[:256], elr, radius=1.0)
    rng = _streams.rng(seed, _streams.BATCH_ORDER)
    out = []
    while len(out) < steps:
        perm = torch.from_numpy(rng.permutation(len(y)))
        for b in range(len(y) // batch_size):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            opt.zero_grad()
            loss = F.cross_entropy(model(X[idx]), y[idx])
            loss.backward()
            opt.step()
            out.append(float(loss.detach()))
            if len(out) == steps:
                break
    return np.array(out)


# --------------------------------------------------------------------------------- forward/backward
@pytest.mark.parametrize("kind", ["mlp", "convnet"])
def test_batched_loss_and_gradient_equal_autograd_run_by_run(digits, kind):
    models = [_model(kind, s) for s in range(3)]
    for m in models:
        nets.SphereSGD.for_model(m, _tensors(digits, 0)[0][:64], 0.1)  # freezes the head as training does
    arch = ensemble._arch(models[0])
    net = ensemble._Batched.from_models(arch, models)
    X, y = _tensors(digits, 0)[:2]
    rows = torch.stack([torch.from_numpy(np.random.default_rng(k).permutation(len(y))[:32]) for k in range(3)])
    loss = net.loss_and_grad(X, y, rows)
    for k, m in enumerate(models):
        ref = F.cross_entropy(m(X[rows[k]]), y[rows[k]])
        grads = torch.autograd.grad(ref, [dict(m.named_parameters())[n] for n in arch.names])
        # one mini-batch in float64: the two differ only in summation order (1e-12 relative leaves a
        # factor 1e3 over the 1e-15 rounding of sums over a few hundred terms)
        assert float(loss[k]) == pytest.approx(float(ref.detach()), rel=1e-12)
        for g, mine in zip(grads, net.grads, strict=True):
            assert _rel(g, mine[k]) < 1e-10 or float((g - mine[k]).abs().max()) < 1e-12 * float(g.abs().max())


# --------------------------------------------------------------------------------- sphere
@pytest.mark.parametrize("kind", ["mlp", "convnet"])
def test_per_step_losses_agree_with_the_one_run_path(digits, kind):
    """Float64, one ELR per regime (convergence 1e-3, equilibrium 0.03, divergence 1 and 10), each run
    on its own seed's split: the mini-batch losses of the first 10 steps agree with the one-run loop."""
    elrs, seeds, steps = [1e-3, 0.03, 1.0, 10.0], [0, 1, 2, 3], 10
    ref = np.array([_one_run_losses(_model(kind, s), _tensors(digits, s), e, steps, 32, s)
                    for e, s in zip(elrs, seeds, strict=True)])
    got = []
    nets.train_ensemble_on_sphere([_model(kind, s) for s in seeds], [_tensors(digits, s) for s in seeds], elrs, 1, 32,
                                  seeds=seeds, on_step=lambda t, losses: got.append(losses))
    got = np.array(got).T
    assert got.shape == (4, 1438 // 32)
    # each step rounds at 1e-16 relative and the runs amplify differences: measured over 10 steps up to
    # 1e-12 (divergence at ELR 1-10 grows them ~e^(t/2), to 1e-7 by step 30 and O(1) by step 45), so the
    # first 10 steps are compared at 1e-10, and the first step, before any amplification, at 1e-14
    assert _rel(got[:, :steps], ref) < 1e-10
    assert _rel(got[:, 0], ref[:, 0]) < 1e-14


def test_whole_results_agree_with_train_on_sphere(digits):
    """Every field of TrainResult, over two epochs, at an ELR whose run converges (differences stay at
    rounding, 1e-15 measured, so 1e-12), and the first epoch of a run in the equilibrium (amplified
    to 1e-11 in 44 steps, so 1e-8)."""
    elrs, seeds = [1e-3, 0.03], [0, 1]
    tens = [_tensors(digits, s) for s in seeds]
    one = [nets.train_on_sphere(_model("mlp", s), t, e, 2, 32, seed=s) for e, s, t in zip(elrs, seeds, tens)]
    models = [_model("mlp", s) for s in seeds]
    ens = nets.train_ensemble_on_sphere(models, tens, elrs, 2, 32, seeds=seeds)
    assert [(r.elr, r.seed) for r in ens] == [(1e-3, 0), (0.03, 1)]
    _assert_results_close(one[0], ens[0], TRAIN_FIELDS, rtol=1e-12, atol=1e-15)
    for f in ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "step_angle", "epoch_cosine",
              "channel_elr", "channel_egn", "channel_ess"):
        assert _rel(getattr(one[1], f)[0], getattr(ens[1], f)[0]) < 1e-8, f
    # the models are left as train_on_sphere leaves them: trained weights, the last evaluation's BN statistics
    ref = _model("mlp", 0)
    nets.train_on_sphere(ref, tens[0], 1e-3, 2, 32, seed=0)
    for (name, a), b in zip(ref.state_dict().items(), models[0].state_dict().values(), strict=True):
        assert torch.allclose(a.double(), b.double(), rtol=1e-10, atol=1e-14), name
    assert [n for n, p in models[0].named_parameters() if p.requires_grad] == ["body.0.weight", "body.3.weight"]


def _assert_identical(a, b, fields):
    for f in fields:
        assert np.array_equal(np.asarray(getattr(a, f)), np.asarray(getattr(b, f)), equal_nan=True), f


@pytest.mark.parametrize("kind", ["mlp", "convnet"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_a_run_alone_equals_the_run_among_others(digits, kind, dtype):
    """No operation mixes runs, and each run's arithmetic is the same whatever the run count (matrix
    products per run, reductions along each run's own rows): seed 1's run alone and as the third of
    four (other seeds, ELRs, data; a chaotic ELR, which would amplify any difference) are identical
    bit for bit, in both dtypes."""
    tens = [_tensors(digits, s, dtype) for s in range(4)]
    alone = nets.train_ensemble_on_sphere([_model(kind, 1, dtype)], [tens[1]], [0.05], 2, 32, seeds=[1])[0]
    among = nets.train_ensemble_on_sphere([_model(kind, s, dtype) for s in (3, 0, 1, 2)],
                                          [tens[s] for s in (3, 0, 1, 2)], [1.0, 1e-3, 0.05, 0.3], 2, 32,
                                          seeds=[3, 0, 1, 2])[2]
    assert (among.elr, among.seed) == (0.05, 1)
    _assert_identical(alone, among, TRAIN_FIELDS)
    # one data set shared by the runs (a single tuple) gives what a copy per run gives, and evaluating
    # the runs one at a time what evaluating them together gives
    shared = nets.train_ensemble_on_sphere([_model(kind, s, dtype) for s in (0, 1)], tens[0], 0.05, 1, 32,
                                           seeds=[0, 1])
    copies = nets.train_ensemble_on_sphere([_model(kind, s, dtype) for s in (0, 1)],
                                           [tens[0], tuple(t.clone() for t in tens[0])], 0.05, 1, 32, seeds=[0, 1],
                                           eval_runs=1)
    for a, b in zip(shared, copies, strict=True):
        _assert_identical(a, b, TRAIN_FIELDS)
