"""The list of every derivation, in the order of ``docs/theory.md``.

Apart from the topic modules because it needs all of them (and none of them needs it).
"""

from __future__ import annotations

from .conventional import (
    derive_conventional_equilibrium,
    derive_conventional_ess_law,
    derive_conventional_landing,
    derive_conventional_momentum,
    derive_conventional_periodic,
    derive_conventional_reduction,
)
from .core import Derivation
from .sgd import derive_sgd_threshold
from .sphere import (
    derive_equilibrium,
    derive_equilibrium_limits,
    derive_group_elr_dynamics,
    derive_minimum_stability,
    derive_one_step_map,
    derive_random_guess,
    derive_scale_invariance,
    derive_sphere_stability_hessian,
)
from .sphere_orbit import derive_cycle_linearisation, derive_orbit_nonlinear_stability

__all__ = ["DERIVATIONS", "derivations"]

#: every derivation's key and function, in the order of ``docs/theory.md`` (the keys are known
#: without running SymPy)
DERIVATIONS = (
    ("01_scale_invariance", derive_scale_invariance),
    ("02_one_step_map", derive_one_step_map),
    ("03_group_elr_dynamics", derive_group_elr_dynamics),
    ("04_minimum_stability", derive_minimum_stability),
    ("05_equilibrium", derive_equilibrium),
    ("06_random_guess", derive_random_guess),
    ("07_equilibrium_limits", derive_equilibrium_limits),
    ("08_cycle_linearisation", derive_cycle_linearisation),
    ("09_orbit_nonlinear_stability", derive_orbit_nonlinear_stability),
    ("10_sgd_threshold", derive_sgd_threshold),
    ("11_conventional_reduction", derive_conventional_reduction),
    ("12_conventional_ess_law", derive_conventional_ess_law),
    ("13_conventional_equilibrium", derive_conventional_equilibrium),
    ("14_conventional_periodic", derive_conventional_periodic),
    ("15_sphere_stability_hessian", derive_sphere_stability_hessian),
    ("16_conventional_landing", derive_conventional_landing),
    ("17_conventional_momentum", derive_conventional_momentum),
)


def derivations(keys=None) -> list[Derivation]:
    """Every derivation (or those whose key is in ``keys``), in the order of ``docs/theory.md``.

    Parameters
    ----------
    keys : collection of str, optional
        Keys such as ``"05_equilibrium"``; by default every derivation.

    Returns
    -------
    list of Derivation
        In the order of :data:`DERIVATIONS` (each computed once per process, then cached).
    """
    out = []
    for key, fn in DERIVATIONS:
        if keys is None or key in keys:
            d = fn()
            if d.key != key:  # pragma: no cover - a renamed derivation must be renamed here too
                raise AssertionError(f"derivation {fn.__name__} has key {d.key!r}, listed as {key!r}")
            out.append(d)
    return out
