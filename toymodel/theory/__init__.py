r"""Derivations of the toy dynamics with SymPy, and numeric versions for the rest of the package.

Every closed form that :mod:`toymodel` uses is produced here by SymPy, never typed in. Each
``derive_*`` function returns a :class:`Derivation`: the claim, its assumptions, the steps
(each a SymPy expression that was computed, and where it is an identity, simplified to 0 by
SymPy), and named results. The public numeric functions (:func:`threshold_elr`,
:func:`equilibrium_loss`, ...) are ``sympy.lambdify`` of those results, built once per process
on first use.

The derivations live in modules by topic, and this package only re-exports them:

- :mod:`~toymodel.theory.core`: the symbols, :class:`Step`, :class:`Derivation` and the shared
  helpers;
- :mod:`~toymodel.theory.sphere`: the map, the minimum and the equilibrium orbit on the sphere
  (derivations 01-07, 15);
- :mod:`~toymodel.theory.sphere_orbit`: the stability of that orbit (08, 09);
- :mod:`~toymodel.theory.sgd`: the threshold of mini-batch SGD (10);
- :mod:`~toymodel.theory.conventional`: conventional training with weight decay (11-14);
- :mod:`~toymodel.theory.catalogue`: :data:`DERIVATIONS` and :func:`derivations`.

``python -m toymodel.theory --write DIR`` renders one Markdown file per derivation, with a
numeric check against the simulator, into ``DIR`` (the committed ``derivations/``); the renderer
and its checks live in :mod:`toymodel.derivation_checks`, so this package computes and never
writes.

Notation (``docs/theory.md``): weights :math:`\alpha_i`, :math:`A=\sum_i\alpha_i`; total ELR
:math:`\tilde\eta`; the dimensionless ELR :math:`c=\tilde\eta A`; group angle
:math:`\varphi_i` with :math:`x_i=r_i\sin\varphi_i,\ y_i=r_i\cos\varphi_i`; norm shares
:math:`\omega_i=r_i^2` on the unit sphere; group ELR :math:`\tilde\eta_i=\tilde\eta/\omega_i`
and :math:`k_i=\tilde\eta_i\alpha_i`.
"""

from .catalogue import DERIVATIONS, derivations
from .conventional import (  # noqa: F401 (the symbols dec, essg, kg, lr, tsteps, wdc are re-exported too)
    conventional_burst_k,
    conventional_equilibrium_c,
    conventional_equilibrium_group_elrs,
    conventional_equilibrium_loss,
    conventional_ess_law,
    conventional_landing_c,
    conventional_landing_target,
    conventional_lr_wd_at_c,
    conventional_momentum_orbit,
    conventional_orbit_stability_coefficient,
    conventional_quiet_steps,
    dec,
    derive_conventional_equilibrium,
    derive_conventional_ess_law,
    derive_conventional_landing,
    derive_conventional_momentum,
    derive_conventional_periodic,
    derive_conventional_reduction,
    essg,
    kg,
    lr,
    lrwd,
    mom,
    tsteps,
    wdc,
)
from .core import A, Derivation, Step, alpha, c, elr, eta, k, lam, mu, phi, r, tt, x, y  # noqa: F401 (symbols)
from .sgd import (
    derive_sgd_threshold,
    sgd_stability_edge,
    sgd_stability_edge_large_batch,
    sgd_stability_exponent,
    sgd_threshold_elr,
)
from .sphere import (
    derive_equilibrium,
    derive_equilibrium_limits,
    derive_group_elr_dynamics,
    derive_minimum_stability,
    derive_one_step_map,
    derive_random_guess,
    derive_scale_invariance,
    derive_sphere_stability_hessian,
    equilibrium_amplitude,
    equilibrium_angle,
    equilibrium_cosine,
    equilibrium_eff_grad_norm,
    equilibrium_group_elrs,
    equilibrium_loss,
    equilibrium_point,
    group_elr_next,
    minimum_multipliers,
    one_step_map,
    random_guess_loss,
    random_guess_loss_std,
    sphere_stability_bound,
    tangent_hessian_eigenvalues,
    threshold_elr,
)
from .sphere_orbit import (
    cycle_multipliers,
    derive_cycle_linearisation,
    derive_orbit_nonlinear_stability,
    orbit_instability_c,
    orbit_stability_coefficient,
    resonance_c,
)

__all__ = [
    "Derivation",
    "Step",
    "derivations",
    "DERIVATIONS",
    "derive_scale_invariance",
    "derive_one_step_map",
    "derive_group_elr_dynamics",
    "derive_minimum_stability",
    "derive_sphere_stability_hessian",
    "sphere_stability_bound",
    "tangent_hessian_eigenvalues",
    "derive_equilibrium",
    "derive_equilibrium_limits",
    "derive_random_guess",
    "derive_cycle_linearisation",
    "threshold_elr",
    "minimum_multipliers",
    "equilibrium_group_elrs",
    "equilibrium_loss",
    "equilibrium_cosine",
    "equilibrium_angle",
    "equilibrium_eff_grad_norm",
    "equilibrium_amplitude",
    "equilibrium_point",
    "random_guess_loss",
    "random_guess_loss_std",
    "cycle_multipliers",
    "derive_orbit_nonlinear_stability",
    "orbit_stability_coefficient",
    "orbit_instability_c",
    "derive_sgd_threshold",
    "sgd_stability_exponent",
    "sgd_stability_edge",
    "sgd_threshold_elr",
    "sgd_stability_edge_large_batch",
    "one_step_map",
    "group_elr_next",
    "resonance_c",
    "derive_conventional_reduction",
    "derive_conventional_ess_law",
    "derive_conventional_equilibrium",
    "derive_conventional_periodic",
    "conventional_equilibrium_c",
    "conventional_lr_wd_at_c",
    "conventional_equilibrium_loss",
    "conventional_equilibrium_group_elrs",
    "conventional_ess_law",
    "conventional_landing_target",
    "conventional_landing_c",
    "derive_conventional_landing",
    "derive_conventional_momentum",
    "conventional_momentum_orbit",
    "conventional_burst_k",
    "conventional_quiet_steps",
    "conventional_orbit_stability_coefficient",
]
