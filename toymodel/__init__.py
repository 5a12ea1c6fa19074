"""toymodel: theory companion and simulator for the scale-invariant toy model of
Kodryan, Lobacheva, Nakhodnov & Vetrov, "Training Scale-Invariant Neural Networks on the
Sphere Can Happen in Three Regimes" (NeurIPS 2022)."""

from ._version import __version__
from .model import PAPER_ALPHAS, ToyProblem
from .simulate import NonFiniteTrajectoryWarning, SimulationResult, simulate, simulate_conventional

__all__ = [
    "ToyProblem",
    "PAPER_ALPHAS",
    "SimulationResult",
    "simulate",
    "simulate_conventional",
    "NonFiniteTrajectoryWarning",
    "__version__",
]
