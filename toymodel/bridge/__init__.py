"""Bridge to real networks: scale-invariant PyTorch models on real data, with the library
:mod:`toymodel.nets`.

The jobs (``python -m ...``), each a thin module over one shared runner (:mod:`._runner`):

* :mod:`toymodel.bridge.fixed_elr` (``python -m toymodel.bridge``): the network trained on the sphere
  at a sweep of fixed total ELRs, every ELR classified into a regime;
* :mod:`toymodel.bridge.conventional`: conventional training (SGD with weight decay), swept over ηλ;
* :mod:`toymodel.bridge.finetune`: fine-tuning from every pre-training regime.

Each job's ``compute_*`` function takes the sweep's settings, a :class:`BridgeSpec` (the network, the
data, the training) and a :class:`Runner` (worker processes, Dask, the resume cache); results do
not depend on the runner. The network code needs the optional extra ``toymodel[torch]``; torch is
imported only inside the functions that train, so results load and flags validate without it.
"""

from ._runner import (
    DEVICES,
    DTYPES,
    MODELS,
    NET_DEFAULTS,
    RADIUS,
    TORCH_HINT,
    BridgeSpec,
    ConventionalRun,
    NetSweep,
    NetTask,
    NetUnit,
    Runner,
    SphereRun,
    build_model,
    default_workers,
    measure_sharpness,
    random_guess,
    torch_settings,
    train,
)
from .fixed_elr import (
    DEFAULTS,
    BridgeSweep,
    bridge_json_record,
    compute_bridge,
    elr_grid,
    figure_names,
    main,
    write_bridge_outputs,
)

__all__ = ["TORCH_HINT", "DEFAULTS", "NET_DEFAULTS", "MODELS", "DTYPES", "DEVICES", "RADIUS", "BridgeSpec", "Runner",
           "SphereRun", "ConventionalRun", "NetTask", "NetUnit", "NetSweep", "BridgeSweep", "train", "build_model",
           "measure_sharpness", "random_guess", "torch_settings", "default_workers", "compute_bridge", "elr_grid",
           "bridge_json_record", "write_bridge_outputs", "figure_names", "main"]
