"""The bridge on PyTorch against its former NumPy implementation (the baseline kept here), and the
ensemble engine against one run at a time.

    python benchmarks/bench_bridge.py            # per-step costs, interleaved, and the ConvNet
    python benchmarks/bench_bridge.py --full     # also both default MLP sweeps end to end
    python benchmarks/bench_bridge.py --ensemble # one run at a time against nets.train_ensemble_on_sphere
    python benchmarks/bench_bridge.py --ensemble --profile   # and vmap/autograd/hand-written, where time goes

The baseline is the bridge's NumPy MLP with hand-written backpropagation as it was before
``toymodel.nets`` (same model, data, batches, projection and records), one run at a time, which is
how the old ``python -m toymodel.bridge`` ran. The torch bridge runs the same MLP with
``SphereSGD`` and ``RegimeMonitor``, one torch thread per run, in as many worker processes as
there are cores. Costs are microseconds per SGD step of one run, every epoch's evaluation
included; the minimum over interleaved repeats (the machine's load varies).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

from toymodel import _streams, bridge, nets


# ------------------------------------------------------------------ NumPy baseline
class NumpyMLP:
    """The former bridge's MLP: Linear (no bias) -> BN (batch statistics, no affine, no eps) ->
    ReLU hidden layers, a fixed output layer of norm ``out_norm``, backpropagation by hand."""

    def __init__(self, sizes, out_norm=10.0, seed=0):
        rng = _streams.rng(seed, _streams.NET_INIT)
        w = rng.standard_normal((sizes[-1], sizes[-2]))
        self.W_out = w * (out_norm / np.linalg.norm(w))
        self.shapes = [(sizes[i + 1], sizes[i]) for i in range(len(sizes) - 2)]
        self.offsets = np.cumsum([0] + [a * b for a, b in self.shapes])
        self.theta0 = rng.standard_normal(int(self.offsets[-1]))
        self.theta0 /= np.linalg.norm(self.theta0)

    def layers(self, theta):
        return [theta[self.offsets[i]:self.offsets[i + 1]].reshape(s) for i, s in enumerate(self.shapes)]

    def channel_sq_norms(self, theta):
        return np.concatenate([np.sum(W * W, axis=1) for W in self.layers(theta)])

    def forward(self, theta, X):
        a, cache = X, []
        for W in self.layers(theta):
            h = a @ W.T
            mu = h.mean(axis=0)
            sd = np.sqrt(((h - mu) ** 2).mean(axis=0))
            z = (h - mu) / sd
            cache.append((a, z, sd, W))
            a = np.maximum(z, 0.0)
        return a @ self.W_out.T, cache

    @staticmethod
    def softmax_ce(logits, y):
        s = logits - logits.max(axis=1, keepdims=True)
        lse = np.log(np.exp(s).sum(axis=1))
        return float(np.mean(lse - s[np.arange(len(y)), y])), np.exp(s - lse[:, None])

    def loss(self, theta, X, y):
        return self.softmax_ce(self.forward(theta, X)[0], y)[0]

    def loss_and_grad(self, theta, X, y):
        logits, cache = self.forward(theta, X)
        loss, p = self.softmax_ce(logits, y)
        p[np.arange(len(y)), y] -= 1.0
        da = (p / len(y)) @ self.W_out
        grads = []
        for a_prev, z, sd, W in reversed(cache):
            dz = da * (z > 0)
            dh = (dz - dz.mean(axis=0) - z * (dz * z).mean(axis=0)) / sd
            grads.append(dh.T @ a_prev)
            da = dh @ W
        return loss, np.concatenate([gw.ravel() for gw in reversed(grads)])

    def predict_error(self, theta, X_fit, X, y):
        a_fit, a = X_fit, X
        for W in self.layers(theta):
            hf, h = a_fit @ W.T, a @ W.T
            mu, sd = hf.mean(axis=0), hf.std(axis=0)
            a_fit, a = np.maximum((hf - mu) / sd, 0.0), np.maximum((h - mu) / sd, 0.0)
        return float(np.mean(np.argmax(a @ self.W_out.T, axis=1) != y))


def numpy_train(model, data, elr, epochs, batch_size, seed):
    """The former ``bridge.train``: the same records, per step and per epoch."""
    Xtr, ytr, Xte, yte = data
    theta = model.theta0.copy()
    rho2 = float(theta @ theta)
    eta = elr * rho2
    rng = _streams.rng(seed, _streams.BATCH_ORDER)
    nb = len(ytr) // batch_size
    losses = []
    for _ in range(epochs):
        perm = rng.permutation(len(ytr))
        s_egn = s_ess = 0.0
        for b in range(nb):
            idx = perm[b * batch_size:(b + 1) * batch_size]
            _, g = model.loss_and_grad(theta, Xtr[idx], ytr[idx])
            w2 = model.channel_sq_norms(theta)
            egn_c = np.sqrt(model.channel_sq_norms(g) * w2)
            s_egn = s_egn + egn_c
            s_ess = s_ess + (eta / w2) * egn_c
            new = theta - eta * g
            new *= np.sqrt(rho2) / np.linalg.norm(new)
            _ = float(theta @ new) / rho2
            theta = new
        losses.append(model.loss(theta, Xtr, ytr))
        model.predict_error(theta, Xtr, Xte, yte)
    return np.array(losses)


# ------------------------------------------------------------------------ measure
def _digits_flat(seed):
    d = nets.load_digits_split(seed)
    return d.X_train.reshape(len(d.y_train), -1), d.y_train, d.X_test.reshape(len(d.y_test), -1), d.y_test


def per_step(epochs: int, repeats: int) -> dict:
    """Microseconds per step of one run (min over interleaved repeats)."""
    data = _digits_flat(0)
    steps = epochs * (len(data[1]) // 32)
    spec = {m: bridge.BridgeSpec.make(model=m, epochs=epochs) for m in ("mlp", "convnet")}
    times = {"numpy_mlp": [], "torch_mlp_float32": [], "torch_mlp_float64": [], "torch_convnet_float32": []}
    spec64 = bridge.BridgeSpec.make(epochs=epochs, dtype="float64")
    bridge.train(spec["mlp"], bridge.SphereRun(0.01), 0)  # warm-up (imports, tracing)
    for _ in range(repeats):
        t = time.perf_counter()
        numpy_train(NumpyMLP((64, 64, 64, 10)), data, 0.01, epochs, 32, 0)
        times["numpy_mlp"].append(time.perf_counter() - t)
        for key, sp in (("torch_mlp_float32", spec["mlp"]), ("torch_mlp_float64", spec64),
                        ("torch_convnet_float32", spec["convnet"])):
            t = time.perf_counter()
            bridge.train(sp, bridge.SphereRun(0.01), 0)
            times[key].append(time.perf_counter() - t)
    return {k: {"us_per_step_min": min(v) / steps * 1e6, "us_per_step_median": float(np.median(v)) / steps * 1e6,
                "steps_per_s": steps / min(v)} for k, v in times.items()}


def full_sweeps() -> dict:
    """Both default MLP sweeps end to end (21 ELRs x 3 seeds x 60 epochs)."""
    d = bridge.DEFAULTS
    elrs = np.geomspace(d["elr_min"], d["elr_max"], d["num"])
    t = time.perf_counter()
    for s in range(d["seeds"]):
        data = _digits_flat(s)
        for e in elrs:
            numpy_train(NumpyMLP((64, 64, 64, 10), seed=s), data, e, d["epochs"], d["batch_size"], s)
    t_np = time.perf_counter() - t
    t = time.perf_counter()
    bridge.compute_bridge(runner=bridge.Runner(workers=bridge.default_workers()))
    t_torch = time.perf_counter() - t
    return {"numpy_sequential_s": t_np, "torch_workers_s": t_torch, "workers": bridge.default_workers()}


# ------------------------------------------------------------------------ ensemble
#: (model, data, runs in the ensemble, steps per epoch (None: the whole training set), epochs, test examples)
ENSEMBLE_CASES = (("mlp", "digits", 63, None, 2, None), ("convnet", "digits", 16, None, 1, None),
                  ("mlp", "fashion-mnist", 63, 200, 1, 1000), ("convnet", "fashion-mnist", 8, 50, 1, 500))


def _ensemble_setting(model, data, steps, n_test, dtype):
    """Tensors and a model factory for one case: the digits split of seed 0, or a stratified subset of
    Fashion-MNIST with ``steps`` mini-batches of 32 per epoch (and ``n_test`` test images), so that
    an epoch's evaluation keeps its share of the work."""
    d = nets.load_data(0, None if data == "digits" else data)
    if steps is not None:
        d = nets.train_subset(d, 32 * steps, 0)._replace(X_test=d.X_test[:n_test], y_test=d.y_test[:n_test])
    tensors = nets.as_tensors(d, getattr(torch, dtype))
    sizes = (int(np.prod(d.input_shape)), 64, 64, d.n_classes)

    def build(seed):
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(_streams.rng(seed, _streams.NET_INIT).integers(2**63)))
            net = nets.MLPSI(sizes) if model == "mlp" else nets.ConvNetSI(d.input_shape[0], 8, d.n_classes)
        return net.to(getattr(torch, dtype))

    return tensors, build


def ensemble_vs_one_run(repeats: int, dtype: str = "float32", cases=ENSEMBLE_CASES) -> dict:
    """Run-steps per second of one run at a time (``train_on_sphere``) and of an ensemble of K runs at
    log-spaced ELRs 1e-4..10 (``train_ensemble_on_sphere``), every epoch's evaluation and the set-up
    included, batch 32, one torch thread; measurements interleaved, the best of ``repeats``."""
    out = {}
    for model, data, K, steps, epochs, n_test in cases:
        tensors, build = _ensemble_setting(model, data, steps, n_test, dtype)
        run_steps = epochs * (len(tensors[1]) // 32)
        elrs = np.geomspace(1e-4, 10.0, K)
        nets.train_on_sphere(build(0), tensors, 0.01, 1, 32, seed=0)  # warm-up
        one, ens = [], []
        for _ in range(repeats):
            t = time.perf_counter()
            nets.train_on_sphere(build(0), tensors, 0.01, epochs, 32, seed=0)
            one.append(time.perf_counter() - t)
            models = [build(s) for s in range(K)]
            t = time.perf_counter()
            nets.train_ensemble_on_sphere(models, tensors, elrs, epochs, 32, seeds=list(range(K)))
            ens.append(time.perf_counter() - t)
        one_rate, ens_rate = run_steps / min(one), K * run_steps / min(ens)
        key = f"{model}_{data}_{dtype}"
        out[key] = {"runs": K, "steps_per_run": run_steps, "train_examples": len(tensors[1]),
                    "one_run_steps_per_s": one_rate, "ensemble_run_steps_per_s": ens_rate,
                    "speed_up": ens_rate / one_rate, "one_run_s": one, "ensemble_s": ens}
        print(f"{key:32s} one run {one_rate:7.0f} run-steps/s; ensemble of {K:2d} {ens_rate:7.0f} run-steps/s: "
              f"{ens_rate / one_rate:.1f}x", flush=True)
    return out


def formulations(runs: int = 63, repeats: int = 20, dtype: str = "float32") -> dict:
    """Microseconds per run of one forward and backward pass of ``runs`` MLP runs on their own
    mini-batches, three ways: ``torch.func.vmap`` of ``grad`` over ``functional_call`` (BatchNorm
    without running statistics), autograd through the same batched computation written with
    ``bmm``, and the engine's hand-written pass (thread time, the best of ``repeats``)."""
    import copy

    from torch.func import functional_call, grad, replace_all_batch_norm_modules_, vmap

    from toymodel.nets import ensemble

    tensors, build = _ensemble_setting("mlp", "digits", None, None, dtype)
    X, y = tensors[0].flatten(1), tensors[1]
    models = [build(s) for s in range(runs)]
    arch = ensemble._arch(models[0])
    net = ensemble._Batched.from_models(arch, models)
    rows = torch.stack([torch.from_numpy(np.random.default_rng(k).permutation(len(y))[:32]) for k in range(runs)])
    template = copy.deepcopy(models[0])
    replace_all_batch_norm_modules_(template)
    stacked = {n: w.clone() for n, w in zip(arch.names, net.weights, strict=True)}

    def loss_fn(params, head, xb, yb):
        return F.cross_entropy(functional_call(template, {**params, "head.weight": head}, (xb,)), yb)

    vmapped = vmap(grad(loss_fn))
    leaves = [w.clone().requires_grad_(True) for w in net.weights]

    def with_vmap():
        return vmapped(stacked, net.heads, X[rows], y[rows])

    def with_autograd():
        a = X[rows].transpose(1, 2)
        for W in leaves:
            z = torch.bmm(W, a)
            mean = z.mean(dim=2, keepdim=True)
            var = z.var(dim=2, keepdim=True, unbiased=False)
            a = torch.relu((z - mean) / torch.sqrt(var + 1e-12))
        logits = torch.bmm(a.transpose(1, 2), net.heads_t)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[2]), y[rows].reshape(-1), reduction="none")
        return torch.autograd.grad(loss.view(runs, -1).mean(dim=1).sum(), leaves)

    def hand_written():
        return net.loss_and_grad(X, y, rows)

    out = {}
    for name, fn in (("vmap", with_vmap), ("autograd", with_autograd), ("hand_written", hand_written)):
        fn()
        times = []
        for _ in range(repeats):
            t = time.thread_time()
            fn()
            times.append(time.thread_time() - t)
        out[name] = min(times) / runs * 1e6
    print("forward and backward, us per run (K = %d): " % runs + ", ".join(f"{k} {v:.0f}" for k, v in out.items()))
    return out


def profile_ensemble(dtype: str = "float32", runs: int = 63, epochs: int = 2) -> dict:
    """Where an epoch of the default MLP sweep's ensemble goes: the share of the forward and backward
    pass, the optimizer's and monitor's step, and the evaluation (thread time), and the top
    operators (torch.profiler)."""
    from torch.profiler import ProfilerActivity, profile

    from toymodel.nets import ensemble

    tensors, build = _ensemble_setting("mlp", "digits", None, None, dtype)
    parts = {"forward_backward": 0.0, "step": 0.0, "evaluation": 0.0}
    originals = (ensemble._Batched.loss_and_grad, ensemble._SphereRun.step, ensemble._evaluate)

    def timed(name, fn):
        def wrapper(*a, **k):
            t = time.thread_time()
            try:
                return fn(*a, **k)
            finally:
                parts[name] += time.thread_time() - t
        return wrapper

    ensemble._Batched.loss_and_grad = timed("forward_backward", originals[0])
    ensemble._SphereRun.step = timed("step", originals[1])
    ensemble._evaluate = timed("evaluation", originals[2])
    elrs, seeds = np.geomspace(1e-4, 10, runs), list(range(runs))
    try:
        models = [build(s) for s in range(runs)]
        t = time.thread_time()
        nets.train_ensemble_on_sphere(models, tensors, elrs, epochs, 32, seeds=seeds)
        total = time.thread_time() - t
    finally:
        ensemble._Batched.loss_and_grad, ensemble._SphereRun.step, ensemble._evaluate = originals
    shares = {k: v / total for k, v in parts.items()}
    shares["set_up_and_rest"] = 1.0 - sum(shares.values())
    print(f"shares of the ensemble's thread time ({runs} runs, {epochs} epochs, {total:.2f} s):",
          ", ".join(f"{k} {v:.0%}" for k, v in shares.items()))
    models = [build(s) for s in range(runs)]
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        nets.train_ensemble_on_sphere(models, tensors, elrs, epochs, 32, seeds=seeds)
    table = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=15)
    print(table)
    return {"runs": runs, "epochs": epochs, "thread_s": total, "shares": shares, "top_ops": table}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--full", action="store_true", help="also time both default MLP sweeps end to end")
    ap.add_argument("--epochs", type=int, default=4, help="epochs per timed run (default: %(default)s)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--ensemble", action="store_true",
                    help="only the ensemble against one run at a time (MLP and ConvNet, digits and Fashion-MNIST)")
    ap.add_argument("--profile", action="store_true", help="with --ensemble: where the ensemble's time goes")
    ap.add_argument("--json", default=None, help="also write the results here")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    torch.use_deterministic_algorithms(True)  # the bridge's settings
    res = {"machine": platform.processor() or platform.machine(), "torch": torch.__version__}
    if args.ensemble:
        res["ensemble"] = ensemble_vs_one_run(args.repeats)
        if args.profile:
            res["formulations"] = formulations()
            res["ensemble_profile"] = profile_ensemble()
        if args.json:
            with open(args.json, "w") as f:
                json.dump(res, f, indent=1)
        return 0
    res["per_step"] = per_step(args.epochs, args.repeats)
    for k, v in res["per_step"].items():
        print(f"{k:24s} {v['us_per_step_min']:8.0f} us/step (median {v['us_per_step_median']:.0f}), "
              f"{v['steps_per_s']:.0f} steps/s")
    if args.full:
        res["sweeps"] = full_sweeps()
        s = res["sweeps"]
        print(f"default MLP sweep: NumPy (one process) {s['numpy_sequential_s']:.1f} s; torch with {s['workers']} "
              f"worker processes {s['torch_workers_s']:.1f} s")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
