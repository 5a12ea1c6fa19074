r"""Train any scale-invariant PyTorch model on the sphere at a fixed effective learning rate.

The paper's training procedure as a library (optional extra ``toymodel[torch]``; the rest of
the package never imports torch):

* :func:`find_scale_invariant` finds the parameters the model's output is invariant to
  rescaling, output channel by output channel (the paper's groups), from the model's structure
  and checked numerically;
* :class:`SphereSGD` is a ``torch.optim.Optimizer`` that keeps them on the sphere of their total
  norm and steps at a fixed total ELR;
* :class:`RegimeMonitor` records what the paper measures (train loss, cosines between
  consecutive weights, effective gradient norm, per-channel ELR and ESS) and classifies the run
  with :mod:`toymodel.regimes`;
* :class:`MLPSI` and :class:`ConvNetSI` are fully scale-invariant models written as ordinary
  ``nn.Module``\ s; :func:`load_digits_split`, :func:`load_npz` and :func:`load_idx` the data
  (:func:`load_data` of a ``--data`` value, :func:`train_subset` a stratified part of it);
  :func:`train_on_sphere` the whole loop, as :mod:`toymodel.bridge` runs it;
* :func:`train_ensemble_on_sphere` and :func:`train_ensemble_conventional` train K runs of one
  network (different ELRs, seeds, data) as one batched computation, with the one-run results;
* :mod:`toymodel.nets.sphere` is the sphere's geometry (flatten, assign, project, retract, random
  point, and which parameters form the sphere), used by all of the above.

A minimal use::

    opt = SphereSGD.for_model(model, x_example, elr=1e-2)
    monitor = RegimeMonitor(opt)
    for epoch in range(epochs):
        for x, y in batches:
            opt.zero_grad()
            loss = F.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            monitor.log_loss(loss)
        monitor.end_epoch()
"""

from . import sphere
from .data import Data, load_data, load_digits_split, load_idx, load_npz, read_idx, resolve_data, train_subset
from .ensemble import EnsembleMemory, ensemble_memory, train_ensemble_conventional, train_ensemble_on_sphere
from .invariance import InvarianceCheck, channel_sq_norms, find_scale_invariant, scale_invariance_report
from .models import MLPSI, ConvNetSI
from .monitor import ConventionalMonitor, Monitor, RegimeMonitor, TrainResult
from .optim import SphereSGD
from .sphere import scale_invariant_parameters
from .training import as_tensors, evaluate, random_guess_level, train_conventional, train_on_sphere

__all__ = ["find_scale_invariant", "scale_invariance_report", "scale_invariant_parameters", "InvarianceCheck",
           "channel_sq_norms", "sphere", "SphereSGD", "Monitor", "RegimeMonitor", "ConventionalMonitor", "TrainResult",
           "MLPSI", "ConvNetSI", "Data", "load_data", "load_digits_split", "load_npz", "load_idx", "read_idx",
           "resolve_data", "train_subset", "as_tensors", "evaluate", "random_guess_level", "train_on_sphere",
           "train_conventional", "train_ensemble_on_sphere", "train_ensemble_conventional", "ensemble_memory",
           "EnsembleMemory"]
