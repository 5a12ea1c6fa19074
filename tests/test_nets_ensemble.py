"""toymodel.nets.ensemble: K runs trained as one batched computation give, run by run, what the
one-run functions give (train_on_sphere, train_conventional, torch.optim.SGD with momentum)."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402

from toymodel import _streams, nets  # noqa: E402
from toymodel import _validate as validate  # noqa: E402
from toymodel.nets import ensemble  # noqa: E402

#: the fields of TrainResult that hold numbers per epoch or per channel
TRAIN_FIELDS = ("train_loss", "test_error", "eff_grad_norm", "step_cosine", "step_angle", "epoch_cosine",
                "channel_elr", "channel_egn", "channel_ess", "channel_log1p_ess2", "norm_drift", "final_norm",
                "final_weights")
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


def _assert_results_close(one, ens, fields, rtol):
    """Every field equal within ``rtol`` of its largest entry (normwise: weights and channel values
    near 0 carry the absolute rounding of the large ones)."""
    for f in fields:
        a, b = np.asarray(getattr(one, f), dtype=float), np.asarray(getattr(ens, f), dtype=float)
        assert a.shape == b.shape, f
        # the harmonic error is itself a rounding error (|sum of channel norms² / radius² - 1|, ~1e-16 in
        # float64): it is compared on the scale of 1
        scale = 1.0 if f == "norm_drift" else float(np.nanmax(np.abs(a), initial=0.0))
        assert np.allclose(a, b, rtol=0, atol=rtol * scale, equal_nan=True), (f, _rel(a, b))


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


def test_odd_image_sizes_and_several_input_channels():
    """The ConvNet on 3 x 14 x 14 images (pooling 14 -> 7 -> 3 -> 1, floor division, as on 28 x 28
    Fashion-MNIST: 28 -> 14 -> 7 -> 3), float64: the first 10 steps' losses as the one-run loop gives
    them (1e-10, as above), and the first epoch's records (1e-8: the same steps, then averaged)."""
    rng = np.random.default_rng(0)
    X = torch.as_tensor(rng.standard_normal((200, 3, 14, 14)))
    y = torch.as_tensor(rng.integers(0, 10, 200))
    tensors = (X[:160], y[:160], X[160:], y[160:])

    def model(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return nets.ConvNetSI(3, 4, 10).double()

    elrs, seeds = [0.01, 0.3], [0, 1]
    ref = np.array([_one_run_losses(model(s), tensors, e, 10, 16, s) for e, s in zip(elrs, seeds, strict=True)])
    got = []
    ens = nets.train_ensemble_on_sphere([model(s) for s in seeds], tensors, elrs, 1, 16, seeds=seeds,
                                        on_step=lambda t, losses: got.append(losses))
    assert _rel(np.array(got).T[:, :10], ref) < 1e-10
    one = [nets.train_on_sphere(model(s), tensors, e, 1, 16, seed=s) for e, s in zip(elrs, seeds, strict=True)]
    for a, b in zip(one, ens, strict=True):
        _assert_results_close(a, b, TRAIN_FIELDS, rtol=1e-8)


def test_whole_results_agree_with_train_on_sphere(digits):
    """Every field of TrainResult, over two epochs, at an ELR whose run converges (differences stay at
    rounding, 1e-15 measured, so 1e-12), and the first epoch of a run in the equilibrium (amplified
    to 1e-11 in 44 steps, so 1e-8)."""
    elrs, seeds = [1e-3, 0.03], [0, 1]
    tens = [_tensors(digits, s) for s in seeds]
    one = [nets.train_on_sphere(_model("mlp", s), t, e, 2, 32, seed=s) for e, s, t in zip(elrs, seeds, tens,
                                                                                             strict=True)]
    models = [_model("mlp", s) for s in seeds]
    ens = nets.train_ensemble_on_sphere(models, tens, elrs, 2, 32, seeds=seeds)
    assert [(r.elr, r.seed) for r in ens] == [(1e-3, 0), (0.03, 1)]
    _assert_results_close(one[0], ens[0], TRAIN_FIELDS, rtol=1e-12)
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
    # one data set shared by the runs (a single tuple) gives what a copy per run gives
    shared = nets.train_ensemble_on_sphere([_model(kind, s, dtype) for s in (0, 1)], tens[0], 0.05, 1, 32,
                                           seeds=[0, 1])
    copies = nets.train_ensemble_on_sphere([_model(kind, s, dtype) for s in (0, 1)],
                                           [tens[0], tuple(t.clone() for t in tens[0])], 0.05, 1, 32, seeds=[0, 1])
    for a, b in zip(shared, copies, strict=True):
        _assert_identical(a, b, TRAIN_FIELDS)


# --------------------------------------------------------------------------------- conventional
def _one_run_conventional(model, tensors, lr, wd, epochs, batch_size, seed, momentum):
    """train_conventional's procedure with torch.optim.SGD(momentum=momentum), recorded by ConventionalMonitor."""
    X, y, Xte, yte = tensors
    names = nets.find_scale_invariant(model, X[:256])
    named = dict(model.named_parameters())
    for n, p in named.items():
        p.requires_grad_(n in names)
    si = [named[n] for n in names]
    opt = torch.optim.SGD(si, lr=lr, weight_decay=wd, momentum=momentum)
    mon = nets.ConventionalMonitor(opt, si)
    rng = _streams.rng(seed, _streams.BATCH_ORDER)
    for _ in range(epochs):
        perm = torch.from_numpy(rng.permutation(len(y)))
        for b in range(len(y) // batch_size):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            opt.zero_grad(set_to_none=True)
            F.cross_entropy(model(X[idx]), y[idx]).backward()
            opt.step()
        (tr, _), (_, te) = nets.evaluate(model, [(X, y), (Xte, yte)], X)
        mon.end_epoch(train_loss=tr, test_error=te)
    mon.close()
    return mon.result(seed)


def test_conventional_ensemble_agrees_with_train_conventional(digits):
    """Plain SGD with weight decay (μ = 0), float64, two epochs: the runs shrink their ELR smoothly
    (no chaos at these rates), so every field agrees to rounding (measured up to 5e-14 of a field's
    largest entry, the log-ESS law's boundary term being a difference of logs; 1e-11 asserted)."""
    lrs, wds, seeds = [0.5, 2.0, 8.0], [5e-4, 1e-3, 0.0], [0, 1, 2]
    tens = [_tensors(digits, s) for s in seeds]
    one = [nets.train_conventional(_model("mlp", s), t, lr, wd, 2, 32, seed=s)
           for lr, wd, s, t in zip(lrs, wds, seeds, tens, strict=True)]
    ens = nets.train_ensemble_conventional([_model("mlp", s) for s in seeds], tens, lrs, wds, 2, 32, seeds=seeds)
    for a, b in zip(one, ens, strict=True):
        assert (a.lr, a.weight_decay, a.seed) == (b.lr, b.weight_decay, b.seed)
        _assert_results_close(a, b, CONVENTIONAL_FIELDS, rtol=1e-11)


@pytest.mark.parametrize("kind", ["mlp", "convnet"])
def test_momentum_agrees_with_torch_sgd(digits, kind):
    """torch.optim.SGD(momentum=0.9) with weight decay, one run at a time against the ensemble, float64,
    one epoch (measured up to 1e-13 of a field's largest entry; 1e-11 asserted)."""
    lrs, wds, seeds = [0.2, 1.0], [1e-3, 1e-2], [0, 1]
    tens = [_tensors(digits, s) for s in seeds]
    one = [_one_run_conventional(_model(kind, s), t, lr, wd, 1, 32, s, 0.9)
           for lr, wd, s, t in zip(lrs, wds, seeds, tens, strict=True)]
    ens = nets.train_ensemble_conventional([_model(kind, s) for s in seeds], tens, lrs, wds, 1, 32, seeds=seeds,
                                           momentum=0.9)
    for a, b in zip(one, ens, strict=True):
        _assert_results_close(a, b, CONVENTIONAL_FIELDS, rtol=1e-11)
    # momentum changes the trajectory: the same runs without it end elsewhere
    plain = nets.train_ensemble_conventional([_model(kind, s) for s in seeds], tens, lrs, wds, 1, 32, seeds=seeds)
    assert _rel(plain[0].final_weights, ens[0].final_weights) > 1e-3


# --------------------------------------------------------------------------------- options
def test_evaluation_cadence_changes_only_what_is_recorded(digits):
    tens = _tensors(digits, 0)
    every = nets.train_ensemble_on_sphere([_model("mlp", s) for s in (0, 1)], tens, [1e-3, 0.1], 4, 32, seeds=[0, 1])
    some = nets.train_ensemble_on_sphere([_model("mlp", s) for s in (0, 1)], tens, [1e-3, 0.1], 4, 32, seeds=[0, 1],
                                         eval_epochs=2)
    listed = nets.train_ensemble_on_sphere([_model("mlp", s) for s in (0, 1)], tens, [1e-3, 0.1], 4, 32,
                                           seeds=[0, 1], eval_epochs=[0])
    for a, b, c in zip(every, some, listed, strict=True):
        # evaluation does not touch the training: everything else is identical, bit for bit
        _assert_identical(a, b, [f for f in TRAIN_FIELDS if f not in ("train_loss", "test_error")])
        # every second epoch (1, 3) and the last, or the listed ones (0) and the last
        for r, kept in ((b, [1, 3]), (c, [0, 3])):
            for f in ("train_loss", "test_error"):
                got, ref = getattr(r, f), getattr(a, f)
                assert np.array_equal(np.isnan(got), ~np.isin(np.arange(4), kept)), f
                assert np.array_equal(got[kept], ref[kept]), f


def test_inputs_are_checked_at_the_boundary(digits):
    tens = _tensors(digits, 0)
    ms = [_model("mlp", s) for s in (0, 1)]
    cases = [
        (dict(models=[]), "models must not be empty"),
        (dict(models=[ms[0], ms[0]]), "distinct"),
        (dict(models=[ms[0], _model("mlp", 2, sizes=(64, 32, 10))]), "one architecture"),
        (dict(models=[ms[0], _model("mlp", 2, torch.float32)]), "one architecture"),
        (dict(models=[ms[0], torch.nn.Linear(64, 10).double()]), "MLPSI or ConvNetSI"),
        (dict(elrs=[0.1]), "elrs must be a number or 2 numbers"),
        (dict(elrs=[0.1, -1.0]), "elrs must be positive"),
        (dict(elrs=[0.1, float("nan")]), "elrs must be positive"),
        (dict(seeds=[0]), "seeds must be one"),
        (dict(seeds=[0, -1]), "seeds must be an integer >= 0"),
        (dict(epochs=0), "epochs must be an integer >= 1"),
        (dict(batch_size=1), "batch_size must be an integer from 2"),
        (dict(batch_size=5000), "batch_size must be an integer from 2"),
        (dict(radius=0.0), "radius must be positive"),
        (dict(eval_epochs=[7]), "eval_epochs must be epoch indices below 2"),
        (dict(eval_epochs=0), "eval_epochs must be an integer >= 1"),
        (dict(tensors=[tens]), "tensors must be"),
        (dict(tensors=nets.as_tensors(digits[0], torch.float32)), "X_train is torch.float32"),
        (dict(tensors=(tens[0][:, :, :4], tens[1], tens[2][:, :, :4], tens[3])), "examples of 32 features"),
        (dict(tensors=(tens[0], tens[1], tens[2][:, :, :4], tens[3])), "their test examples too"),
    ]
    for change, message in cases:
        kw = dict(models=ms, tensors=tens, elrs=[0.1, 0.2], epochs=2, batch_size=32, seeds=[0, 1]) | change
        with pytest.raises(ValueError, match=message):
            nets.train_ensemble_on_sphere(kw.pop("models"), kw.pop("tensors"), kw.pop("elrs"), kw.pop("epochs"),
                                          kw.pop("batch_size"), **kw)
    for change, message in [(dict(momentum=1.0), "momentum must be in"), (dict(lrs=[1.0, 0.0]), "lrs must be"),
                            (dict(weight_decays=-1e-3), "weight_decays must be >= 0"),
                            (dict(lrs=100.0, weight_decays=0.1), "lrs \\* weight_decays must be below 1")]:
        kw = dict(lrs=0.1, weight_decays=1e-3, momentum=0.0) | change
        with pytest.raises(ValueError, match=message):
            nets.train_ensemble_conventional(ms, tens, kw["lrs"], kw["weight_decays"], 1, 32, seeds=[0, 1],
                                             momentum=kw["momentum"])


def test_the_memory_estimate(digits, monkeypatch):
    mlp, conv = _model("mlp", 0, torch.float32), _model("convnet", 0, torch.float32, width=8)
    one = nets.ensemble_memory(mlp, 1, 32, 60, (1, 8, 8), 1438)
    many = nets.ensemble_memory(mlp, 64, 32, 60, (1, 8, 8), 1438)
    # linear in the runs: parameters (8192 float32 weights, 6 copies), the batch's activations and the records
    assert one.parameters == 8192 * 4 * 6 and many.parameters == 64 * one.parameters
    assert many.batch == 64 * one.batch and many.records == 64 * one.records
    # the evaluation is one run's: 4096 examples of the widest layer (64 in, 2 x 64 out)
    assert many.evaluation == one.evaluation == 4096 * (64 + 2 * 64) * 4
    # a ConvNet's batch keeps each layer's unfolded input: 9 times its input, far more than the MLP's
    big = nets.ensemble_memory(conv, 64, 32, 60, (1, 28, 28), 60000)
    assert big.batch > 9 * 64 * 32 * (28 * 28 + 8 * 28 * 28) * 4 and big.total > many.total
    # conventional training keeps the total ELR of every step, momentum one more copy of the weights
    conv_mem = nets.ensemble_memory(mlp, 64, 32, 60, (1, 8, 8), 1438, conventional=True, momentum=True)
    assert conv_mem.records == many.records + 8 * 64 * 44 * 60
    assert conv_mem.parameters == 64 * 8192 * 4 * 7
    # distinct training sets are stacked once (inputs and int64 labels); one set is used in place
    assert many.data == 0 and nets.ensemble_memory(mlp, 64, 32, 60, (1, 8, 8), 1438, train_sets=3).data == (
        3 * 1438 * (64 * 4 + 8))
    # training refuses an ensemble that does not fit
    monkeypatch.setattr(validate, "available_memory", lambda: 10**6)
    with pytest.raises(ValueError, match="an ensemble of 2 runs would need about"):
        nets.train_ensemble_on_sphere([_model("mlp", s) for s in (0, 1)], _tensors(digits, 0), 0.1, 1, 32,
                                      seeds=[0, 1])


# --------------------------------------------------------------------------------- verdicts
@pytest.mark.slow
def test_regime_verdicts_match_the_one_run_path(digits):
    """The bridge's default setting (MLP, float32, batch 32) on a small sweep: an ELR in each regime, two
    seeds, 16 epochs. Chaotic runs part ways after some tens of steps, so the numbers differ, but every
    run's regime and subtype (classified as the bridge does, over the last quarter) are the same."""
    elrs, seeds, epochs = [3e-4, 0.03, 1.0], [0, 1], 16
    tens = {s: _tensors(digits, s, torch.float32) for s in seeds}
    rg = {}
    for s in seeds:
        m = _model("mlp", s, torch.float32)
        X, y = tens[s][:2]
        params = [dict(m.named_parameters())[n] for n in nets.find_scale_invariant(m, X[:256])]
        rg[s] = nets.random_guess_level(m, params, X, y, radius=1.0, points=16, seed=s)
    runs = [(e, s) for e in elrs for s in seeds]
    one = [nets.train_on_sphere(_model("mlp", s, torch.float32), tens[s], e, epochs, 32, seed=s) for e, s in runs]
    ens = nets.train_ensemble_on_sphere([_model("mlp", s, torch.float32) for _, s in runs], [tens[s] for _, s in runs],
                                        [e for e, _ in runs], epochs, 32, seeds=[s for _, s in runs])
    verdicts = [(a.classify(rg[a.seed]), b.classify(rg[b.seed])) for a, b in zip(one, ens, strict=True)]
    assert all(a == b for a, b in verdicts), verdicts
    # one regime per ELR, as the sweep is meant to show
    assert len({v[0][0] for v in verdicts}) == 3, verdicts
