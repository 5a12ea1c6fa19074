"""Named random streams: every random number of the package comes from one of these.

A stream is ``numpy.random.default_rng([seed, STREAM])`` (or the SeedSequence of that pair), so
the draws of one purpose never depend on how many numbers another purpose took. The initial
point of a seed is the one exception kept for compatibility with earlier results: it is
``default_rng(seed)`` itself (:data:`INITIAL_POINT` is ``None``).
"""

from __future__ import annotations

import numpy as np

__all__ = ["INITIAL_POINT", "TANGENT", "BENETTIN", "SGD_NOISE", "CONTINUATION_NOISE", "RANDOM_ALPHAS", "DATA_SPLIT",
           "NET_INIT", "BATCH_ORDER", "RANDOM_GUESS", "TRAIN_SUBSET", "rng", "seed_sequence"]

#: the initial point of a trajectory: ``default_rng(seed)`` (no stream id)
INITIAL_POINT = None
#: the initial tangent vector of the kernel's Lyapunov exponent
TANGENT = 1
#: the companion trajectory of the two-trajectory (Benettin) estimate
BENETTIN = 2
#: the 64-bit key of the SGD mask noise (a SeedSequence, hashed per step in the kernel)
SGD_NOISE = 3
#: the explorer: the batch noise of the NumPy map that continues an SGD run from its final point
#: (the group angles' view)
CONTINUATION_NOISE = 4
#: the explorer: the group weights of its "random" preset
RANDOM_ALPHAS = 5
#: networks: the train/test split of the data
DATA_SPLIT = 10
#: networks: the initial weights and the fixed output layer
NET_INIT = 11
#: networks: the order of the mini-batches
BATCH_ORDER = 12
#: networks: the random points at which the random-guess level is measured
RANDOM_GUESS = 13
#: networks: the stratified subset of the training set (:func:`toymodel.nets.train_subset`)
TRAIN_SUBSET = 14


def _entropy(seed, stream):
    return int(seed) if stream is None else [int(seed), int(stream)]


def rng(seed, stream) -> np.random.Generator:
    """The Generator of ``stream`` for ``seed``."""
    return np.random.default_rng(_entropy(seed, stream))


def seed_sequence(seed, stream) -> np.random.SeedSequence:
    """The SeedSequence of ``stream`` for ``seed``."""
    return np.random.SeedSequence(_entropy(seed, stream))
