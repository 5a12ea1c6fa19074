"""Render every derivation of :mod:`toymodel.theory` to Markdown, with a numeric check against
the simulator (``python -m toymodel.theory --write DIR``).

Output is deterministic (fixed seeds, fixed formatting), so the committed ``derivations/``
can be checked for staleness by regenerating it and comparing bytes.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import sympy as sp

from . import theory as T
from ._cli import ArgumentParser, run_cli
from ._io import atomic_write_text, check_writable_dir
from .dynamics import map_jacobian_fd
from .model import ToyProblem
from .simulate import simulate

__all__ = ["render_derivation", "write_derivations", "numeric_checks", "main"]

ALPHAS = (1.0, 2.0, 4.0)


def _e(x) -> str:
    """An error or small number, two significant digits."""
    x = float(x)
    return "0" if x == 0 else f"{x:.1e}"


def _g(x, digits: int = 6) -> str:
    return f"{float(x):.{digits}g}"


def _table(header, rows) -> list[str]:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return out


def _latex(expr) -> str:
    """LaTeX of a SymPy object; a str is taken as LaTeX already."""
    if isinstance(expr, str):
        return expr
    if isinstance(expr, tuple):
        expr = sp.Tuple(*expr)
    return sp.latex(expr)


def _random_alphas(seed: int, n: int) -> np.ndarray:
    return np.round(np.random.default_rng(seed).uniform(0.3, 3.0, n), 3)


# ---------------------------------------------------------------- numeric checks
def _check_scale_invariance():
    lines = ["Random points and weights; the loss as computed by the simulator's kernel (first recorded "
             "loss) before and after rescaling one group by lambda, and the NumPy gradient identities.", ""]
    rows = []
    rng = np.random.default_rng(1)
    for n in (1, 3, 6):
        p = ToyProblem(_random_alphas(10 + n, n))
        th = p.random_points(rng, 64)
        lam_ = 10.0 ** rng.uniform(-3, 3, 64)
        i = rng.integers(0, n, 64)
        scaled = th.copy()
        for s in range(64):
            scaled[s, 2 * i[s] : 2 * i[s] + 2] *= lam_[s]
        both = np.stack([th, scaled])  # (2, 64, 2n): treat as (K, S)
        res = simulate(p, [0.1, 0.1], 1, seeds=list(range(64)), init=both, record_every=1)
        d_loss = np.abs(res.loss_trace[0, :, 0] - res.loss_trace[1, :, 0]).max()
        g = p.gradient(th)
        orth = max(abs(np.sum(g[:, 2 * j : 2 * j + 2] * th[:, 2 * j : 2 * j + 2], axis=1)).max() for j in range(n))
        hv = p.hessian_vector_product(th, th) + g
        rows.append((n, _e(d_loss), _e(orth), _e(np.abs(hv).max())))
    lines += _table(["n", "max abs F(scaled) - F (kernel)", "max abs <grad_i F, theta_i>", "max abs H theta + grad F"],
                    rows)
    return lines


def _check_one_step():
    lines = ["One kernel step from random points, compared with the closed-form map in (phi, omega).", ""]
    rows = []
    rng = np.random.default_rng(2)
    for n in (1, 3, 5):
        a = _random_alphas(20 + n, n)
        p = ToyProblem(a)
        for elr_ in (0.01, 0.3, 10.0):
            th = p.random_points(rng, 50)
            res = simulate(p, [elr_], 1, seeds=list(range(50)), init=th[None])
            phi0, om0 = p.to_angle_split(th)
            kk = elr_ * a / om0
            phi_pred = phi0 - np.arctan(kk * np.sin(2 * phi0))
            s2 = (kk * np.sin(2 * phi0)) ** 2
            om_pred = om0 * (1 + s2) / (1 + np.sum(om0 * s2, axis=1, keepdims=True))
            phi1, om1 = p.to_angle_split(res.final_theta[0])
            dphi = np.abs(np.angle(np.exp(1j * (phi1 - phi_pred)))).max()
            rows.append((n, _g(elr_), _e(dphi), _e(np.abs(om1 - om_pred).max())))
    lines += _table(["n", "elr", "max angle error", "max share error"], rows)
    return lines


def _check_group_elr_dynamics():
    lines = ["Group ELRs recorded by the kernel at every step, against the derived recursion applied to the "
             "previous step (gradient norms from the NumPy model on the same trajectory), and the harmonic sum rule.",
             ""]
    rows = []
    for n, elr_ in ((3, 0.2), (3, 0.5), (5, 0.4)):
        a = np.array(ALPHAS) if n == 3 else _random_alphas(33, n)
        p = ToyProblem(a)
        steps = 40
        res = simulate(p, [elr_], steps, seeds=[0], record_every=1)
        traj = p.iterate(p.initial_point(0), elr_, steps)
        ge = res.group_elr_trace[0, 0]  # (steps, n)
        g = p.effective_gradient_norm(traj[:-1])
        gi = p.group_effective_gradient_norms(traj[:-1])
        pred = ge[:-1] * (1 + (g[:-1, None] * elr_) ** 2) / (1 + (gi[:-1] * ge[:-1]) ** 2)
        rel = np.abs(pred / ge[1:] - 1).max()
        harm = np.abs(np.sum(1 / ge, axis=1) * elr_ - 1).max()
        rows.append((n, _g(elr_), steps, _e(rel), _e(harm)))
    lines += _table(["n", "elr", "steps", "max rel. error of recursion", "max abs sum(elr/elr_i) - 1"], rows)
    return lines


def _check_minimum_stability():
    a = np.array(ALPHAS)
    p = ToyProblem(a)
    thr = T.threshold_elr(a)
    lines = [f"alpha = {a.tolist()}, derived threshold elr* = {_g(thr)}.", "",
             "(a) Contraction at the minimum: per-step ratio x_i(t+1)/x_i(t) of a converged kernel run against "
             "1 - 2 elr_i alpha_i from the run's own group ELRs.", ""]
    rows = []
    for cc in (0.3, 0.6, 0.9):
        e = cc * thr
        r1 = simulate(p, [e], 100, seeds=[1, 2])
        r2 = simulate(p, [e], 1, seeds=[1, 2], init=r1.final_theta)
        ratio = r2.final_theta[0, :, 0::2] / r1.final_theta[0, :, 0::2]
        mult, _ = T.minimum_multipliers(a, r1.final_group_elrs[0])
        rows.append((_g(cc), _e(np.abs(ratio - mult).max())))
    lines += _table(["elr / elr*", "max abs ratio - (1 - 2 elr_i alpha_i)"], rows)
    lines += ["", "(b) The threshold: share of 16 random starts whose loss is below 1e-12 after 30000 steps.", ""]
    rows = []
    for n, seed in ((3, None), (2, 41), (4, 42)):
        aa = a if seed is None else _random_alphas(seed, n)
        pp = ToyProblem(aa)
        t_ = T.threshold_elr(aa)
        res = simulate(pp, [0.95 * t_, 1.05 * t_], 30_000, seeds=16)
        conv = (res.final_loss < 1e-12).mean(axis=1)
        rows.append((str(aa.tolist()), _g(t_), _g(conv[0], 3), _g(conv[1], 3)))
    lines += _table(["alpha", "elr*", "converged at 0.95 elr*", "converged at 1.05 elr*"], rows)
    return lines


def _check_equilibrium():
    lines = ["Random starts, 10^7 steps, statistics over the second half, 4 seeds; largest relative deviation "
             "from the derived values over seeds (and groups). The orbit is neutral in the norm-split directions "
             "(see the cycle linearisation), so random starts approach it only algebraically: the deviations "
             "shrink like 1/steps.", ""]
    rows = []
    steps = 10_000_000
    for a in (np.array(ALPHAS), _random_alphas(51, 2), _random_alphas(52, 3)):
        p = ToyProblem(a)
        thr = T.threshold_elr(a)
        cs = np.array([1.05, 1.2, 1.5])
        res = simulate(p, cs * thr, steps, seeds=4, burn_in=steps // 2)
        for kq, cc in enumerate(cs):
            e = cc * thr
            rl = np.abs(res.mean_loss[kq] / T.equilibrium_loss(a, e) - 1).max()
            rc = np.abs(res.mean_cosine[kq] / T.equilibrium_cosine(a, e) - 1).max()
            ra = np.abs(res.mean_angle[kq] / T.equilibrium_angle(a, e) - 1).max()
            rg = np.abs(res.mean_eff_grad_norm[kq] / T.equilibrium_eff_grad_norm(a, e) - 1).max()
            re_ = np.abs(res.mean_group_elrs[kq] / T.equilibrium_group_elrs(a, e) - 1).max()
            rows.append((str(a.tolist()), _g(cc), _g(T.equilibrium_loss(a, e)), _e(rl), _e(rc), _e(ra), _e(rg), _e(re_)))
    lines += _table(["alpha", "c", "F*", "loss", "cosine", "angle", "eff. grad norm", "group ELRs"], rows)
    return lines


def _check_random_guess():
    rng = np.random.default_rng(6)
    rows = []
    for a in (np.array(ALPHAS), _random_alphas(61, 5)):
        p = ToyProblem(a)
        pts = p.random_points(rng, 200_000)
        f = p.loss(pts)
        se = f.std() / np.sqrt(f.size)
        rows.append((str(a.tolist()), _g(T.random_guess_loss(a)), _g(f.mean()), _g(se, 2),
                     _g(T.random_guess_loss_std(a)), _g(f.std())))
    return ["Monte Carlo over 200000 uniform points per row (standard error shown).", ""] + _table(
        ["alpha", "derived mean", "MC mean", "MC std. error", "derived std", "MC std"], rows)


def _check_limits():
    a = np.array(ALPHAS)
    p = ToyProblem(a)
    thr = T.threshold_elr(a)
    cs = np.array([1.01, 1.1, 10.0, 100.0, 1000.0, 10000.0])
    res = simulate(p, cs * thr, 200_000, seeds=4, burn_in=100_000)
    rows = []
    for kq, cc in enumerate(cs):
        e = cc * thr
        rows.append((_g(cc), _g(T.equilibrium_loss(a, e)), _g(res.mean_loss[kq].mean()),
                     _g(T.equilibrium_cosine(a, e)), _g(res.mean_cosine[kq].mean(), 4)))
    lines = [f"alpha = {a.tolist()}, random-guess level {_g(T.random_guess_loss(a))}; random starts, "
             "2*10^5 steps, means over the second half and 4 seeds. Near the threshold the simulation sits on "
             "the orbit; in the chaotic range (c around 10 to 100) the time-averaged loss differs from the orbit's; "
             "at very large c the loss is at the random-guess level and the cosine near 0, as derived.", ""]
    return lines + _table(["c", "F* derived", "mean loss (sim.)", "cos* derived", "mean cosine (sim.)"], rows)


def _check_cycle():
    from scipy.optimize import linear_sum_assignment

    rows = []
    for a, cc in ((np.array(ALPHAS), 1.2), (np.array(ALPHAS), 3.0), (_random_alphas(81, 2), 1.5),
                  (_random_alphas(82, 4), 2.0), (np.array([1.0]), 1.7)):
        p = ToyProblem(a)
        e = cc * T.threshold_elr(a)
        J = map_jacobian_fd(p, e, T.equilibrium_point(a, e), steps=2)
        ev = np.linalg.eigvals(J)
        mu = T.cycle_multipliers(a, e)
        cost = np.abs(ev[:, None] - mu[None, :])
        i, j = linear_sum_assignment(cost)
        rows.append((str(a.tolist()), _g(cc), _g(mu[0].real), "yes" if a.size > 1 else "none",
                     _e(cost[i, j].max())))
    lines = ["Jacobian of two kernel steps by central finite differences (h = 1e-6) in the same coordinates, at "
             "the derived orbit point; its eigenvalues matched one-to-one with the derived multipliers.", ""]
    return lines + _table(["alpha", "c", "mu_0", "neutral pairs", "max abs eigenvalue difference"], rows)


def _check_orbit_stability():
    from .dynamics import basin_fractions

    lines = ["Random starts for alpha = (1, r): share that ends on the equilibrium orbit (basin_fractions, 64 seeds, "
             "2*10^5 steps) below and above the derived c* = sqrt(3), with the sign of the coefficient.", ""]
    rows = []
    cstar = T.orbit_instability_c()
    for rv in (1.5, 4.0, 20.0):
        for cc in (1.6, 0.98 * cstar, 1.02 * cstar, 1.85):
            a = (1.0, rv)
            e = cc / sum(a)
            b = basin_fractions(ToyProblem(a), e, 200_000, seeds=64)
            other = 1 - b.fractions["equilibrium_orbit"] - b.fractions["chaotic"]
            rows.append((_g(rv), _g(cc, 4), "+" if T.orbit_stability_coefficient(a, e) > 0 else "-",
                         _g(b.fractions["equilibrium_orbit"], 3), _g(b.fractions["chaotic"], 3), _g(other, 3)))
    return lines + _table(["r", "c", "sign of Re d", "share on the orbit", "share chaotic",
                           "share periodic / quasi-periodic"], rows)


def _check_sgd_threshold():
    rows = []
    for a in (np.array(ALPHAS), _random_alphas(101, 3)):
        p = ToyProblem(a)
        for b, q in ((1, 0.5), (4, 0.5), (5, 0.5), (16, 0.25)):
            thr = T.sgd_threshold_elr(a, b, q)
            res = simulate(p, [0.9 * thr, 1.1 * thr], 100_000, seeds=16, burn_in=99_000, batch_size=b, mask_prob=q)
            conv = (res.max_loss < 1e-12 * a.sum()).mean(axis=1)
            rows.append((str(a.tolist()), b, _g(q), _g(T.sgd_stability_edge(b, q), 6), _g(conv[0], 3), _g(conv[1], 3)))
    return ["Random starts (16 seeds, 10^5 steps): share whose loss stays below 1e-12 sum(alpha) over the last "
            "1000 steps, at 0.9 and 1.1 times the derived SGD threshold.", ""] + _table(
        ["alpha", "b", "p", "k* = SGD/GD ratio", "converged at 0.9x", "converged at 1.1x"], rows)


_CHECKS = {
    "01_scale_invariance": _check_scale_invariance,
    "02_one_step_map": _check_one_step,
    "03_group_elr_dynamics": _check_group_elr_dynamics,
    "04_minimum_stability": _check_minimum_stability,
    "05_equilibrium": _check_equilibrium,
    "06_random_guess": _check_random_guess,
    "07_equilibrium_limits": _check_limits,
    "08_cycle_linearisation": _check_cycle,
    "09_orbit_nonlinear_stability": _check_orbit_stability,
    "10_sgd_threshold": _check_sgd_threshold,
}


def numeric_checks(key: str) -> list[str]:
    """Markdown lines of the numeric check for derivation ``key``."""
    return _CHECKS[key]()


# ---------------------------------------------------------------------- rendering
def render_derivation(d: T.Derivation, with_check: bool = True) -> str:
    """The Markdown text of one derivation."""
    out = [f"# {d.title}", "", f"**Claim.** {d.claim}", "", "**Assumptions.**", ""]
    out += [f"- {a}" for a in d.assumptions]
    out += ["", "## Derivation", ""]
    for i, st in enumerate(d.steps, 1):
        mark = " *(verified by SymPy: the difference simplifies to 0)*" if st.verified else ""
        out.append(f"{i}. {st.text}{mark}")
        if st.rhs is not None:
            rhs = _latex(st.rhs)
            eq = f"{_latex(st.lhs)} = {rhs}" if st.lhs is not None else rhs
            out += ["", f"   $$ {eq} $$", ""]
    if with_check and d.key in _CHECKS:
        out += ["", "## Numeric check against the simulator", ""]
        out += numeric_checks(d.key)
    out += ["", "---", f"Generated by `python -m toymodel.theory --write derivations` from `toymodel.theory.{_fn_name(d)}`; "
            "do not edit by hand.", ""]
    return "\n".join(out)


def _fn_name(d: T.Derivation) -> str:
    for name in T.__all__:
        if name.startswith("derive_") and getattr(T, name)() is d:
            return name
    return "derivations"


def _index(ds) -> str:
    out = ["# Derivations", "", "Generated from `toymodel.theory` (SymPy) with numeric checks against the simulator. "
           "Regenerate with `python -m toymodel.theory --write derivations`.", ""]
    out += [f"- [{d.title}]({d.key}.md): {d.claim}" for d in ds]
    out.append("")
    return "\n".join(out)


def write_derivations(directory, keys=None, progress: bool = False) -> list[Path]:
    """Write one Markdown file per derivation (and ``README.md``) into ``directory``."""
    directory = check_writable_dir(directory, "write")
    ds = T.derivations()
    written = []
    for d in ds:
        if keys is not None and d.key not in keys:
            continue
        if progress:
            print(f"  {d.key} ...", file=sys.stderr, flush=True)
        path = directory / f"{d.key}.md"
        atomic_write_text(path, render_derivation(d))
        written.append(path)
    if keys is None:
        path = directory / "README.md"
        atomic_write_text(path, _index(ds))
        written.append(path)
    return written


def _main(argv=None) -> int:
    ap = ArgumentParser(prog="python -m toymodel.theory",
                        description="Render the SymPy derivations of the toy model, with numeric checks against the "
                                    "simulator, as Markdown + LaTeX files.")
    ap.add_argument("--write", metavar="DIR", required=True, help="output folder (the repository keeps derivations/)")
    ap.add_argument("--only", metavar="KEY", action="append", help="render only this derivation (repeatable)")
    ap.add_argument("--quiet", action="store_true", help="no progress messages")
    args = ap.parse_args(argv)
    keys = None
    if args.only:
        known = {d.key for d in T.derivations()}
        bad = [k_ for k_ in args.only if k_ not in known]
        if bad:
            raise ValueError(f"unknown derivation {bad[0]!r}; known: {', '.join(sorted(known))}")
        keys = set(args.only)
    paths = write_derivations(args.write, keys, progress=not args.quiet)
    if not args.quiet:
        print(f"wrote {len(paths)} files to {args.write}", file=sys.stderr)
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, prog="python -m toymodel.theory")
