"""Fingerprints of every kernel variant's output, to keep rewrites of the kernels bit-identical.

``python tests/kernel_reference.py`` rewrites ``tests/data/kernel_reference.json`` from the kernels
as they are; do that only with kernels whose results are meant to change (and say so in the
commit). ``tests/test_simulate.py::test_kernels_bit_identical_to_the_reference`` compares.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields
from pathlib import Path

import numpy as np

from toymodel import ToyProblem, simulate, simulate_conventional

PATH = Path(__file__).parent / "data" / "kernel_reference.json"
ALPHAS = (0.7, 1.3, 2.9)
#: ELRs (learning rates) across every regime of the toy, c from 0.3 to 60
GRID = tuple(np.geomspace(0.3, 60, 12) / sum(ALPHAS))
STEPS, BURN_IN, SEEDS = 3000, 1500, (0, 1)


def configurations() -> dict:
    """Every compiled variant: (GD | SGD) x (with | without Lyapunov) x (sphere | weight decay),
    and traces (the recording loops)."""
    out = {}
    for ly in (False, True):
        for sgd in (None, (4, 0.5)):
            for wd in (None, 0.02):
                name = "gd" if sgd is None else "sgd"
                name += "+lyapunov" if ly else ""
                name += "+wd" if wd is not None else ""
                out[name] = dict(lyapunov=ly, batch_size=None if sgd is None else sgd[0],
                                 mask_prob=1.0 if sgd is None else sgd[1], weight_decay=wd)
    out["gd+traces"] = dict(lyapunov=False, batch_size=None, mask_prob=1.0, weight_decay=None, record_every=7)
    return out


def run(conf: dict):
    conf = dict(conf)
    wd = conf.pop("weight_decay")
    p = ToyProblem(ALPHAS)
    if wd is not None:
        return simulate_conventional(p, GRID, wd, STEPS, seeds=SEEDS, burn_in=BURN_IN, **conf)
    return simulate(p, GRID, STEPS, seeds=SEEDS, burn_in=BURN_IN, **conf)


def fingerprints(result) -> dict:
    """sha256 of the bytes of every array field of a result."""
    out = {}
    for f in fields(result):
        v = getattr(result, f.name)
        if isinstance(v, np.ndarray):
            out[f.name] = hashlib.sha256(np.ascontiguousarray(v).tobytes()).hexdigest()[:32]
    return out


def compute(names=None) -> dict:
    """Fingerprints of the configurations ``names`` (default: all)."""
    return {name: fingerprints(run(conf)) for name, conf in configurations().items() if names is None or name in names}


if __name__ == "__main__":
    import warnings

    warnings.simplefilter("ignore")
    PATH.parent.mkdir(exist_ok=True)
    PATH.write_text(json.dumps(compute(), indent=1, sort_keys=True) + "\n")
    print(f"wrote {PATH}")
