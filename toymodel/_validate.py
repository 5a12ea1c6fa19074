"""Input validation shared by every public entry point.

Each validator returns a clean value or raises :class:`ValueError` whose message names
the parameter and shows the offending value, so that the CLI can print it as one line.
"""

from __future__ import annotations

import numbers
import operator

import numpy as np

__all__ = [
    "as_alphas",
    "as_elrs",
    "as_positive_float",
    "as_momentum",
    "as_int",
    "as_steps_burn_in",
    "as_seeds",
    "as_batch_size",
    "as_mask_prob",
    "as_sgd",
    "as_threads",
    "as_elr_range",
    "as_refine_tol",
    "as_format",
    "FORMATS",
    "MAX_STEPS",
    "MAX_COUNT",
    "MAX_BATCH_SIZE",
    "BURN_IN_FRACTION",
    "default_burn_in",
    "available_memory",
    "check_memory",
    "as_lr_wd",
]

#: figure formats every command accepts
FORMATS = ("png", "svg", "pdf")
#: the largest step count: the kernel counts steps exactly in int64 and reports them as float64
#: (the step at which a run became non-finite), which is exact up to 2**53
MAX_STEPS = 2**53
#: the largest number of ELRs or seeds in a grid (far beyond any memory; the memory estimate of a
#: sweep refuses much smaller grids first)
MAX_COUNT = 2**40
#: the largest mini-batch: the kernel draws a batch's counts by inverse CDF from a table of b + 1
#: probabilities, which must stay small (8 MiB here)
MAX_BATCH_SIZE = 2**20


def _short(value, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def as_alphas(alphas) -> np.ndarray:
    """Return the group weights as a read-only float64 vector, or raise ValueError.

    Accepts any sequence of real numbers, or a comma-separated string such as ``"1,2,4"``.
    """
    if isinstance(alphas, str):
        parts = [p.strip() for p in alphas.split(",")]
        try:
            alphas = [float(p) for p in parts]
        except ValueError:
            raise ValueError(f"alphas must be comma-separated numbers, got {alphas!r}") from None
    try:
        arr = np.array(alphas, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"alphas must be a sequence of numbers, got {_short(alphas)}") from None
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"alphas must be a non-empty 1-D sequence, got {_short(alphas)}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"alphas must be finite, got {_short(arr.tolist())}")
    if not np.all(arr > 0):
        raise ValueError(f"alphas must be positive, got {_short(arr.tolist())}")
    arr.setflags(write=False)
    return arr


def as_elrs(elrs, name: str = "elrs") -> np.ndarray:
    """Return effective learning rates as a 1-D float64 array (a scalar becomes length 1)."""
    try:
        arr = np.array(elrs, dtype=float)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numbers, got {_short(elrs)}") from None
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or arr.size == 0:
        raise ValueError(f"{name} must be a scalar or a non-empty 1-D sequence, got shape {arr.shape}")
    bad = ~np.isfinite(arr) | ~(arr > 0)
    if np.any(bad):
        raise ValueError(f"{name} must be positive and finite, got {float(arr[bad][0])!r}")
    return arr


def as_positive_float(value, name: str) -> float:
    """A single positive finite float."""
    try:
        val = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {_short(value)}") from None
    if not np.isfinite(val) or val <= 0:
        raise ValueError(f"{name} must be positive and finite, got {value!r}")
    return val


def as_int(value, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
    """An integer (bools and non-integral floats are refused) with optional bounds."""
    if isinstance(value, (bool, np.bool_)):
        raise ValueError(f"{name} must be an integer, got {value!r}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    elif isinstance(value, (float, np.floating)) and float(value).is_integer():
        out = int(value)
    else:
        try:
            out = operator.index(value)
        except TypeError:
            raise ValueError(f"{name} must be an integer, got {_short(value)}") from None
    if minimum is not None and out < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {out}")
    if maximum is not None and out > maximum:
        raise ValueError(f"{name} must be <= {maximum}, got {out}")
    return out


def as_steps_burn_in(steps, burn_in) -> tuple[int, int]:
    """Validate a horizon: steps >= 1 and 0 <= burn_in < steps."""
    steps = as_int(steps, "steps", minimum=1, maximum=MAX_STEPS)
    burn_in = as_int(burn_in, "burn_in", minimum=0)
    if burn_in >= steps:
        raise ValueError(f"burn_in must be smaller than steps ({steps}), got {burn_in}")
    return steps, burn_in


def as_seeds(seeds) -> np.ndarray:
    """A count S (meaning seeds 0..S-1) or a sequence of non-negative integers."""
    if isinstance(seeds, (numbers.Integral, np.integer)) and not isinstance(seeds, (bool, np.bool_)):
        count = as_int(seeds, "seeds", minimum=1, maximum=MAX_COUNT)
        return np.arange(count, dtype=np.int64)
    if isinstance(seeds, (float, np.floating, bool, np.bool_, str)):
        raise ValueError(f"seeds must be a count or a sequence of integers, got {seeds!r}")
    try:
        items = list(seeds)
    except TypeError:
        raise ValueError(f"seeds must be a count or a sequence of integers, got {_short(seeds)}") from None
    if not items:
        raise ValueError("seeds must not be empty")
    out = np.array([as_int(s, "seeds", minimum=0) for s in items], dtype=np.int64)
    return out


def as_batch_size(batch_size) -> int | None:
    """None (full batch) or an integer from 1 to :data:`MAX_BATCH_SIZE`."""
    if batch_size is None:
        return None
    return as_int(batch_size, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE)


def as_sgd(batch_size, mask_prob) -> tuple[int | None, float]:
    """A mini-batch setting: ``(batch_size or None, mask_prob)``; masks need a batch."""
    batch_size = as_batch_size(batch_size)
    mask_prob = as_mask_prob(mask_prob)
    if batch_size is None and mask_prob != 1.0:
        raise ValueError(f"mask_prob={mask_prob!r} needs a batch_size (full-batch GD has no masks)")
    return batch_size, mask_prob


def as_mask_prob(mask_prob) -> float:
    """A probability in (0, 1]."""
    try:
        p = float(mask_prob)
    except (TypeError, ValueError):
        raise ValueError(f"mask_prob must be a number in (0, 1], got {_short(mask_prob)}") from None
    if not np.isfinite(p) or not (0.0 < p <= 1.0):
        raise ValueError(f"mask_prob must be in (0, 1], got {mask_prob!r}")
    return p


def as_threads(threads) -> int | None:
    """None (Numba's default) or a thread count between 1 and the configured maximum."""
    if threads is None:
        return None
    import numba

    threads = as_int(threads, "threads", minimum=1)
    limit = numba.config.NUMBA_NUM_THREADS
    if threads > limit:
        raise ValueError(f"threads must be <= {limit} (NUMBA_NUM_THREADS), got {threads}")
    return threads


def as_refine_tol(tol) -> float:
    """The relative bracket width of ``phase_diagram --refine``: a float in (0, 1)."""
    tol = as_positive_float(tol, "refine")
    if not tol < 1.0:
        raise ValueError(f"refine is a relative width in c and must be below 1, got {tol!r}")
    return tol


def as_elr_range(elr_min, elr_max, num) -> tuple[float, float, int]:
    """A log grid's bounds and size: 0 < elr_min < elr_max finite, num >= 2."""
    elr_min = as_positive_float(elr_min, "elr_min")
    elr_max = as_positive_float(elr_max, "elr_max")
    if not elr_min < elr_max:
        raise ValueError(f"elr_min must be smaller than elr_max, got elr_min={elr_min!r}, elr_max={elr_max!r}")
    return elr_min, elr_max, as_int(num, "num", minimum=2, maximum=MAX_COUNT)


def as_format(fmt) -> str:
    """One of :data:`FORMATS` (case-insensitive: ``PNG`` is ``png``)."""
    low = str(fmt).lower()
    if low not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    return low


#: the burn-in every job uses when none is given: this fraction of the steps
BURN_IN_FRACTION = 0.5


def default_burn_in(steps, burn_in=None) -> int:
    """``burn_in`` if given, else ``BURN_IN_FRACTION`` of ``steps`` (rounded down)."""
    if burn_in is not None:
        return burn_in
    return int(as_int(steps, "steps", minimum=1, maximum=MAX_STEPS) * BURN_IN_FRACTION)


def available_memory() -> int:
    """Bytes of memory this machine can still give (MemAvailable, else the physical size)."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    try:
        return int(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))
    except (ValueError, OSError, AttributeError):  # pragma: no cover - exotic platforms
        return 2**62


def check_memory(needed: int, what: str, limit: int | None = None) -> None:
    """Refuse work whose results would not fit: a ValueError giving the estimate when ``needed``
    bytes exceed ``limit`` (default: :func:`available_memory`)."""
    limit = available_memory() if limit is None else int(limit)
    if needed > limit:
        raise ValueError(f"{what} would need about {needed / 2**30:.3g} GiB of memory, more than the "
                         f"{limit / 2**30:.3g} GiB available; use fewer ELRs, seeds or records")


def as_momentum(momentum) -> float:
    """A heavy-ball momentum coefficient in [0, 1)."""
    try:
        mu = float(momentum)
    except (TypeError, ValueError):
        raise ValueError(f"momentum must be a number in [0, 1), got {_short(momentum)}") from None
    if not 0.0 <= mu < 1.0:  # also refuses NaN
        raise ValueError(f"momentum must be in [0, 1), got {momentum!r}")
    return mu


def as_lr_wd(lrs, weight_decay) -> tuple[np.ndarray, float]:
    """Learning rates (positive, finite; 1-D) and a weight decay (>= 0, finite) with lr * wd < 1 for
    every learning rate (else the decay factor 1 - lr * wd is not positive)."""
    lrs = as_elrs(lrs, "lrs")
    try:
        wd = float(weight_decay)
    except (TypeError, ValueError):
        raise ValueError(f"weight_decay must be a number, got {_short(weight_decay)}") from None
    if not np.isfinite(wd) or wd < 0:
        raise ValueError(f"weight_decay must be >= 0 and finite, got {weight_decay!r}")
    bad = lrs * wd >= 1
    if np.any(bad):
        raise ValueError(f"lrs * weight_decay must be below 1 (the decay factor 1 - lr * wd must be positive), "
                         f"got lr = {float(lrs[bad][0])!r} with weight_decay = {wd!r}")
    return lrs, wd
