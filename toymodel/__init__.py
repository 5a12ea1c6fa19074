"""toymodel: theory companion and simulator for the scale-invariant toy model of
Kodryan, Lobacheva, Nakhodnov & Vetrov, "Training Scale-Invariant Neural Networks on the
Sphere Can Happen in Three Regimes" (NeurIPS 2022)."""

from importlib.metadata import PackageNotFoundError, version as _pkg_version

try:
    __version__ = _pkg_version("toymodel")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"

from .model import ToyProblem
from .simulate import NonFiniteTrajectoryWarning, SimulationResult, simulate

__all__ = [
    "ToyProblem",
    "SimulationResult",
    "simulate",
    "NonFiniteTrajectoryWarning",
    "__version__",
]
