"""toymodel.nets: scale invariance found and checked, SGD on the sphere, the monitor, the models
and data, and the toy written in torch against the simulator."""

import io
import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

from toymodel import ToyProblem, nets, simulate  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    return nets.load_digits_split(0)


def _x(d, dtype=torch.float64, n=128):
    return torch.as_tensor(d.X_train[:n], dtype=dtype)


class Mixed(nn.Module):
    """A user's model: one layer feeds a BN with affine parameters and standard eps (invariant), one
    trained layer with a bias feeds a ReLU (not invariant), one feeds a BN *and* a skip connection
    (not invariant), and a trained head."""

    def __init__(self):
        super().__init__()
        self.a = nn.Linear(64, 32, bias=True)
        self.bn_a = nn.BatchNorm1d(32)
        self.b = nn.Linear(32, 32)
        self.c = nn.Linear(32, 32, bias=False)
        self.bn_c = nn.BatchNorm1d(32, affine=False)
        self.head = nn.Linear(32, 10)

    def forward(self, x):
        h = torch.relu(self.bn_a(self.a(x.flatten(1))))
        h = torch.relu(self.b(h))
        z = self.c(h)
        return self.head(torch.relu(self.bn_c(z)) + z)


class Branchy(Mixed):
    """The same layers with data-dependent control flow: torch.fx cannot trace it, so every layer
    weight is a candidate and the numerical check alone decides."""

    def forward(self, x):
        h = torch.relu(self.bn_a(self.a(x.flatten(1))))
        if float(h.sum()) > -1.0:  # always true, but not traceable
            h = torch.relu(self.b(h))
        z = self.c(h)
        return self.head(torch.relu(self.bn_c(z)) + z)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_find_scale_invariant_finds_exactly_the_right_tensors(digits, dtype):
    torch.manual_seed(0)
    assert nets.find_scale_invariant(nets.MLPSI().to(dtype), _x(digits, dtype)) == ["body.0.weight", "body.3.weight"]
    assert nets.find_scale_invariant(nets.ConvNetSI(width=4).to(dtype), _x(digits, dtype)) == [
        "features.0.weight", "features.3.weight", "features.7.weight", "features.11.weight"]
    for cls in (Mixed, Branchy):
        assert nets.find_scale_invariant(cls().to(dtype), _x(digits, dtype)) == ["a.weight"], cls.__name__


def test_the_numerical_check_can_fail_and_states_its_tolerance(digits):
    torch.manual_seed(0)
    m = Mixed().double()
    checks = {c.name: c for c in nets.scale_invariance_report(m, _x(digits), [n for n, _ in m.named_parameters()])}
    # the head, the ReLU layer and the skipped layer change the output at O(1e-2..1)
    for name in ("b.weight", "c.weight", "head.weight"):
        assert not checks[name].invariant and checks[name].deviation > 1e-3
    # the standard BN (eps 1e-5) is accepted with a tolerance above the float64 rounding allowance,
    # which states eps/variance
    a = checks["a.weight"]
    assert a.invariant and a.tolerance > nets.invariance.DTYPE_RTOL[torch.float64]
    # and the models' own BN (eps 1e-12) is invariant to float64 rounding
    mlp = nets.MLPSI().double()
    for c in nets.scale_invariance_report(mlp, _x(digits), ["body.0.weight", "body.3.weight"]):
        assert c.deviation < 1e-12
    # the check leaves the model as it was: parameters, BN buffers and mode
    before = {k: v.clone() for k, v in m.state_dict().items()}
    m.eval()
    nets.scale_invariance_report(m, _x(digits))
    assert not m.training
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())


def _angle(a, b):
    """The angle between two vectors, accurate when small (atan2 of the orthogonal and parallel parts)."""
    par = (a @ b) / a.norm()
    perp = (b - par * a / a.norm()).norm()
    return math.atan2(float(perp), float(par))


@pytest.mark.parametrize("dtype, norm_tol", [(torch.float64, 1e-12), (torch.float32, 1e-6)])
def test_sphere_sgd_keeps_the_norm_and_turns_by_arctan_elr_g(digits, dtype, norm_tol):
    torch.manual_seed(1)
    m = nets.MLPSI((64, 32, 16, 10)).to(dtype)
    X, y = _x(digits, dtype, 256), torch.as_tensor(digits.y_train[:256])
    opt = nets.SphereSGD.for_model(m, X, elr=0.3, radius=2.5)
    ps = opt.param_groups[0]["params"]
    norms = []
    for t in range(60):
        idx = torch.arange(32 * (t % 8), 32 * (t % 8 + 1))
        before = torch.cat([p.detach().reshape(-1) for p in ps]).clone()
        opt.zero_grad()
        F.cross_entropy(m(X[idx]), y[idx]).backward()
        g = torch.cat([p.grad.reshape(-1) for p in ps])
        g_t = g - (g @ before) / (before @ before) * before
        opt.step()
        after = torch.cat([p.detach().reshape(-1) for p in ps])
        norms.append(float(after.double().norm()))
        if dtype == torch.float64:
            # one step turns theta by arctan(elr * ||g_t|| * radius): exact up to rounding (1e-10
            # leaves room for the O(1e-16 * dim) rounding of the dot products)
            assert _angle(before, after) == pytest.approx(math.atan(0.3 * float(g_t.norm()) * 2.5), abs=1e-10)
            st = opt.last_step()
            assert st["angle"] == pytest.approx(_angle(before, after), abs=1e-10)
    # the total norm stays the radius: float64 rounding (1e-12) or float32 (1e-6), no drift
    assert np.max(np.abs(np.array(norms) / 2.5 - 1)) < norm_tol
    # every other parameter was frozen by for_model
    assert [n for n, p in m.named_parameters() if p.requires_grad] == ["body.0.weight", "body.3.weight"]


def test_state_dict_round_trips_with_momentum(digits):
    torch.manual_seed(2)
    X, y = _x(digits, torch.float64, 64), torch.as_tensor(digits.y_train[:64])

    def steps(m, opt, n):
        for _ in range(n):
            opt.zero_grad()
            F.cross_entropy(m(X), y).backward()
            opt.step()

    m1 = nets.MLPSI((64, 16, 10)).double()
    opt1 = nets.SphereSGD.for_model(m1, X, elr=0.05, momentum=0.9)
    steps(m1, opt1, 5)
    m2 = nets.MLPSI((64, 16, 10)).double()
    m2.load_state_dict(m1.state_dict())
    opt2 = nets.SphereSGD.for_model(m2, X, elr=1.0)  # other hyper-parameters, replaced by the state
    buf = io.BytesIO()  # through bytes, as a checkpoint would (a live state_dict shares its tensors)
    torch.save(opt1.state_dict(), buf)
    buf.seek(0)
    opt2.load_state_dict(torch.load(buf))
    assert opt2.param_groups[0]["elr"] == 0.05 and opt2.param_groups[0]["momentum"] == 0.9
    assert opt2.param_groups[0]["radius"] == opt1.param_groups[0]["radius"]
    steps(m1, opt1, 3)
    steps(m2, opt2, 3)
    for p1, p2 in zip(m1.parameters(), m2.parameters(), strict=True):
        assert torch.equal(p1, p2)
    # momentum steps stay on the sphere too
    assert float(torch.cat([p.detach().reshape(-1) for p in opt1.param_groups[0]["params"]]).norm()) == pytest.approx(
        opt1.param_groups[0]["radius"], rel=1e-12)


def test_for_model_refuses_a_parameter_that_is_not_scale_invariant(digits):
    m = Mixed().double()
    with pytest.raises(ValueError, match=r"not scale-invariant: b\.weight"):
        nets.SphereSGD.for_model(m, _x(digits), 0.1, params=["a.weight", "b.weight"])
    with pytest.raises(ValueError, match="not a parameter"):
        nets.SphereSGD.for_model(m, _x(digits), 0.1, params=["nope"])
    opt = nets.SphereSGD.for_model(m, _x(digits), 0.1, params=[m.a.weight], freeze_others=False)
    assert opt.param_names == ["a.weight"] and m.head.weight.requires_grad
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="elr"):
            nets.SphereSGD([m.a.weight], bad)
    with pytest.raises(ValueError, match="norm"):
        nets.SphereSGD([torch.zeros(3, 3, requires_grad=True)], 0.1)
    with pytest.raises(ValueError, match="no scale-invariant"):
        nets.SphereSGD.for_model(nn.Sequential(nn.Linear(64, 10)).double(), _x(digits).flatten(1), 0.1)


class ToyF(nn.Module):
    """The toy loss F = sum_i alpha_i x_i^2 / (x_i^2 + y_i^2) as a module: one row per group."""

    def __init__(self, alphas, theta0):
        super().__init__()
        self.alphas = torch.as_tensor(alphas, dtype=torch.float64)
        self.theta = nn.Parameter(torch.as_tensor(theta0, dtype=torch.float64).reshape(-1, 2).clone())

    def forward(self):
        x2, y2 = self.theta[:, 0] ** 2, self.theta[:, 1] ** 2
        return (self.alphas * x2 / (x2 + y2)).sum()


@pytest.mark.parametrize("elr", [0.1, 0.17, 0.25])  # c = 0.7 (converges), 1.19 (period 2), 1.75 (periodic orbit)
def test_the_toy_in_torch_reproduces_the_simulator(elr):
    alphas = (1.0, 2.0, 4.0)
    problem = ToyProblem(alphas)
    theta0 = problem.initial_point(3)
    steps = 400
    sim = simulate(problem, [elr], steps, init=theta0, record_every=1)
    f = ToyF(alphas, theta0 / np.linalg.norm(theta0))
    opt = nets.SphereSGD([f.theta], elr, radius=1.0)
    losses = []
    for _ in range(steps):
        opt.zero_grad()
        loss = f()
        losses.append(float(loss.detach()))
        loss.backward()
        opt.step()
    # the same map: equal up to rounding, amplified at most ~100x over 400 non-chaotic steps
    assert np.max(np.abs(np.array(losses) - sim.loss_trace[0, 0])) < 1e-9


def test_the_monitor_records_what_the_paper_measures(digits):
    torch.manual_seed(3)
    m = nets.MLPSI((64, 16, 12, 10)).double()
    tensors = nets.as_tensors(digits, torch.float64)
    r = nets.train_on_sphere(m, tensors, 0.05, 3, 64, seed=0)
    assert r.channel_elr.shape == r.channel_ess.shape == (3, 28)
    # the weights stay on the sphere (float64: 1e-12; equivalently the channel ELRs' harmonic sum is the total ELR)
    assert r.norm_drift < 1e-12 and r.final_norm == pytest.approx(1.0, abs=1e-12)
    assert np.all(np.abs(r.step_cosine) <= 1) and np.all(np.isfinite(r.train_loss))
    # the step cosine and angle agree: cos(mean angle) ~ mean cos (the angles vary within an epoch)
    assert np.all(np.abs(np.cos(r.step_angle) - r.step_cosine) < 0.05)
    # a manual loop with a monitor, the losses logged
    m2 = nets.MLPSI((64, 16, 10)).double()
    X, y = tensors[0], tensors[1]
    opt = nets.SphereSGD.for_model(m2, X[:128], 0.01)
    mon = nets.RegimeMonitor(opt)
    for _ in range(2):
        direct = []
        for b in range(4):
            opt.zero_grad()
            loss = F.cross_entropy(m2(X[b * 32:(b + 1) * 32]), y[b * 32:(b + 1) * 32])
            loss.backward()
            w = m2.body[0].weight.detach()
            wn, gn = w.norm(dim=1), m2.body[0].weight.grad.norm(dim=1)
            lr = 0.01 * opt.param_groups[0]["radius"] ** 2
            direct.append((lr / wn**2 * gn * wn).numpy())
            opt.step()
            mon.log_loss(loss)
        mon.end_epoch()
    rec = mon.records()
    # the per-channel ESS, recomputed directly from the definition for the last epoch's steps:
    # ESS_i = (lr / ||θ_i||²) ||g_i|| ||θ_i||, averaged over the steps (float64: 1e-12 relative)
    assert rec["channel_ess"].shape == (2, 16)
    assert np.allclose(rec["channel_ess"][1], np.mean(direct, axis=0), rtol=1e-12, atol=0)
    assert rec["loss_per_step"].shape == rec["cosine_per_step"].shape == (8,) and rec["train_loss"].shape == (2,)
    assert rec["train_loss"][1] == pytest.approx(rec["loss_per_step"][4:].mean())
    assert rec["step_cosine"][1] == pytest.approx(rec["cosine_per_step"][4:].mean())
    assert mon.classify(random_guess=2.3) in {("convergence", ""), ("chaotic_equilibrium", "chaotic"),
                                             ("chaotic_equilibrium", "periodic")}
    with pytest.raises(ValueError, match="SphereSGD"):
        nets.RegimeMonitor(torch.optim.SGD(m2.parameters(), lr=0.1))


def test_the_npz_loader(tmp_path):
    rng = np.random.default_rng(0)
    imgs = dict(X_train=rng.integers(0, 256, (20, 3, 4, 4), dtype=np.uint8), y_train=rng.integers(0, 5, 20),
                X_test=rng.integers(0, 256, (6, 3, 4, 4), dtype=np.uint8), y_test=np.arange(6))
    np.savez(tmp_path / "img.npz", **imgs)
    d = nets.load_npz(tmp_path / "img.npz")
    assert d.is_image and d.input_shape == (3, 4, 4) and d.n_classes == 6 and d.source.startswith("sha256:")
    # standardised per channel with the training statistics
    assert np.allclose(d.X_train.mean(axis=(0, 2, 3)), 0, atol=1e-12)
    assert np.allclose(d.X_train.std(axis=(0, 2, 3)), 1, atol=1e-12)
    flat = dict(imgs, X_train=imgs["X_train"].reshape(20, -1).astype(float), X_test=imgs["X_test"].reshape(6, -1))
    np.savez(tmp_path / "flat.npz", **flat)
    f = nets.load_npz(tmp_path / "flat.npz")
    assert not f.is_image and f.input_shape == (48,)
    assert np.allclose(f.X_train.mean(axis=0), 0, atol=1e-12)
    for bad, word in [(dict(imgs, y_test=np.arange(5)), "y_test"), ({"X_train": imgs["X_train"]}, "lacks"),
                      (dict(imgs, X_test=imgs["X_test"][:, :2]), "same example shape"),
                      (dict(imgs, y_train=imgs["y_train"].astype(float)), "y_train"),
                      (dict(imgs, X_train=np.zeros((20, 3))), "same example shape")]:
        np.savez(tmp_path / "bad.npz", **bad)
        with pytest.raises(ValueError, match=word):
            nets.load_npz(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="cannot read"):
        nets.load_npz(tmp_path / "junk.npz")
    with pytest.raises(ValueError, match="not found"):
        nets.load_npz(tmp_path / "missing.npz")


# ----------------------------------------------------------------- defects a review found (issue 24)
def _mlp(seed=0, dtype=torch.float64):
    torch.manual_seed(seed)
    return nets.MLPSI((64, 16, 12, 10)).to(dtype)


def _steps(model, opt, d, n, mon=None, log_every=1):
    X, y = _x(d, n=256), torch.as_tensor(d.y_train[:256])
    for t in range(n):
        idx = slice(32 * (t % 8), 32 * (t % 8) + 32)
        opt.zero_grad()
        loss = F.cross_entropy(model(X[idx]), y[idx])
        loss.backward()
        opt.step()
        if mon is not None and t % log_every == 0:
            mon.log_loss(loss)


def test_a_group_added_later_gets_its_radius_and_is_put_on_its_sphere(digits):
    m = _mlp()
    w0, w1 = m.body[0].weight, m.body[3].weight
    opt = nets.SphereSGD([w0], 0.05)
    # without a radius (here or as the optimizer's default), the added group's sphere is its current norm
    # (it used to be None: the step failed)
    n1 = float(w1.detach().norm())
    opt.add_param_group({"params": [w1]})
    assert opt.param_groups[1]["radius"] == pytest.approx(n1, rel=1e-15)
    _steps(m, opt, digits, 3)
    assert float(w1.detach().norm()) == pytest.approx(n1, rel=1e-12)
    # with a radius (given, or the optimizer's default as in torch.optim), the added tensors are rescaled
    # onto it at once (they used to keep their norm, so the first step ran at another ELR)
    m2 = _mlp(1)
    opt2 = nets.SphereSGD([m2.body[0].weight], 0.05, radius=1.0)
    opt2.add_param_group({"params": [m2.body[3].weight], "radius": 2.5, "elr": 0.01})
    assert float(m2.body[3].weight.detach().norm()) == pytest.approx(2.5, rel=1e-14)
    opt2.add_param_group({"params": [m2.body[0].weight.new_ones(3, requires_grad=True)]})
    assert opt2.param_groups[2]["radius"] == 1.0  # the default radius of opt2
    with pytest.raises(ValueError, match="elr"):
        opt2.add_param_group({"params": [m2.head.weight], "elr": -1.0})


@pytest.mark.parametrize("kind", ["sphere", "conventional"])
def test_an_epochs_train_loss_is_the_mean_of_the_losses_logged_in_that_epoch(kind, digits):
    m = _mlp()
    si = [m.body[0].weight, m.body[3].weight]
    if kind == "sphere":
        opt = nets.SphereSGD(si, 0.05, radius=1.0)
        mon = nets.RegimeMonitor(opt)
    else:
        opt = torch.optim.SGD(si, lr=0.5, weight_decay=0.01)
        mon = nets.ConventionalMonitor(opt, si)
    with mon:
        _steps(m, opt, digits, 6, mon)  # epoch 1: every step logged
        mon.end_epoch()
        first = list(mon.records()["loss_per_step"])
        _steps(m, opt, digits, 6, mon, log_every=3)  # epoch 2: steps 0 and 3 only
        mon.end_epoch()
        _steps(m, opt, digits, 2)  # epoch 3: nothing logged
        mon.end_epoch()
    losses = mon.records()["loss_per_step"]
    ep = mon.records()["train_loss"]
    assert ep[0] == pytest.approx(np.mean(first), rel=1e-15)
    # the mean of epoch 2's own two losses, not of the last six logged (four of them from epoch 1)
    assert ep[1] == pytest.approx(np.mean(losses[6:]), rel=1e-15) and len(losses) == 8
    assert math.isnan(ep[2])
    assert not mon._handles  # the context manager removed the hooks


def test_the_regime_monitor_records_the_group_that_load_state_dict_restored(digits):
    m = _mlp()
    opt = nets.SphereSGD([m.body[0].weight, m.body[3].weight], 0.05, radius=1.0)
    mon = nets.RegimeMonitor(opt)
    state = opt.state_dict()
    state["param_groups"][0]["elr"] = 0.2
    opt.load_state_dict(state)  # replaces the group dicts
    _steps(m, opt, digits, 4, mon)
    mon.end_epoch()
    w2 = nets.channel_sq_norms(opt.param_groups[0]["params"]).double().numpy()
    # channel ELR = elr * rho^2 / ||w_i||^2 with the restored elr 0.2 (it used to use the old dict's 0.05)
    assert np.allclose(mon.records()["channel_elr"][0], 0.2 / w2, rtol=1e-12)
    assert mon.result().elr == 0.2


def test_the_conventional_monitor_follows_a_scheduler_and_refuses_what_it_cannot_measure(digits):
    m = _mlp()
    si = [m.body[0].weight, m.body[3].weight]
    with pytest.raises(ValueError, match="Adam"):
        nets.ConventionalMonitor(torch.optim.Adam(si, lr=1e-3), si)
    with pytest.raises(ValueError, match="nesterov"):
        nets.ConventionalMonitor(torch.optim.SGD(si, lr=0.1, momentum=0.9, nesterov=True, weight_decay=0.01), si)
    with pytest.raises(ValueError, match="one parameter group"):
        nets.ConventionalMonitor(torch.optim.SGD(si[:1], lr=0.1), si)
    opt = torch.optim.SGD(si, lr=0.5, weight_decay=0.01)
    mon = nets.ConventionalMonitor(opt, si)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=3, gamma=0.5)
    w2s = []
    X, y = _x(digits, n=256), torch.as_tensor(digits.y_train[:256])
    for t in range(6):
        w2s.append(float(nets.channel_sq_norms(si).double().sum()))
        opt.zero_grad()
        F.cross_entropy(m(X[32 * t:32 * t + 32]), y[32 * t:32 * t + 32]).backward()
        opt.step()
        sched.step()
    elr = mon.records()["total_elr_per_step"]
    lrs = np.array([0.5] * 3 + [0.25] * 3)
    # the total ELR of each step with that step's learning rate (it used to keep the first one)
    assert np.allclose(elr, lrs / ((1 - lrs * 0.01) * np.array(w2s)), rtol=1e-12)
    law = mon.law()
    # the law's value under a schedule: the mean of -2 log(1 - eta_t lambda); still exact with the boundary
    assert law["theory"] == pytest.approx(np.mean(-2 * np.log1p(-lrs * 0.01)), rel=1e-14)
    assert np.max(np.abs(law["mean_log1p_ess2"] - law["theory"] - law["boundary"])) < 1e-12


def test_train_conventional_checks_the_parameters_it_is_given(digits):
    m = _mlp()
    tensors = nets.as_tensors(digits, torch.float64)
    # the head is a parameter but not scale-invariant: refused (it used to be trained without a check)
    with pytest.raises(ValueError, match="not scale-invariant: head.weight"):
        nets.train_conventional(m, tensors, 0.5, 0.01, 2, 32, params=["body.0.weight", "head.weight"])


def test_the_sphere_module_projects_retracts_and_draws_uniform_points():
    rng = np.random.default_rng(3)
    th, v = rng.normal(size=50), rng.normal(size=50)
    p = nets.sphere.project(th, v)
    assert abs(p @ th) < 1e-13 * np.linalg.norm(v) * np.linalg.norm(th)  # tangent, to rounding
    assert np.linalg.norm(nets.sphere.retract(p + th, 2.0)) == pytest.approx(2.0, rel=1e-15)
    pts = np.array([nets.sphere.random_point(3, 1.0, rng) for _ in range(4000)])
    assert np.allclose(np.linalg.norm(pts, axis=1), 1.0, rtol=1e-15)
    # uniform on the sphere: each coordinate has mean 0 and variance 1/3 (4000 points: standard
    # errors 0.009 and 0.005, bounds at about 5 of them)
    assert np.all(np.abs(pts.mean(axis=0)) < 0.05) and np.all(np.abs(pts.var(axis=0) - 1 / 3) < 0.025)
    t = [torch.zeros(2, 3), torch.zeros(4)]
    nets.sphere.assign(t, np.arange(10.0))
    assert torch.equal(nets.sphere.flatten(t), torch.arange(10.0))
    with pytest.raises(ValueError, match="11 entries, the parameters 10"):
        nets.sphere.assign(t, np.arange(11.0))


def test_with_momentum_the_conventional_monitor_measures_each_channels_turn(digits):
    m = _mlp()
    si = [m.body[0].weight, m.body[3].weight]
    opt = torch.optim.SGD(si, lr=0.5, weight_decay=0.01, momentum=0.9)
    mon = nets.ConventionalMonitor(opt, si)
    X, y = _x(digits, n=256), torch.as_tensor(digits.y_train[:256])
    log1p = []
    for t in range(6):
        before = [p.detach().clone() for p in si]
        opt.zero_grad()
        F.cross_entropy(m(X[32 * t:32 * t + 32]), y[32 * t:32 * t + 32]).backward()
        opt.step()
        # ESS_i = tan of the angle between a channel's weights before and after the step, directly
        cos = torch.cat([torch.nn.functional.cosine_similarity(b.reshape(b.shape[0], -1), p.detach().reshape(
            p.shape[0], -1), dim=1) for b, p in zip(before, si, strict=True)]).double()
        log1p.append((-2 * torch.log(cos)).numpy())  # log(1 + tan^2) = -2 log cos
    mon.end_epoch()
    # float64 weights: the Gram form and the direct cosine agree to rounding of O(1) sums (1e-10 relative on
    # log(1 + ESS^2) of about 1e-3)
    assert np.allclose(mon.law()["mean_log1p_ess2"], np.mean(log1p, axis=0), rtol=1e-8)
    assert mon.result().momentum == 0.9
