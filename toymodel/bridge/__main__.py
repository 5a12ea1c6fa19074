"""``python -m toymodel.bridge``: the fixed-ELR sweep of a scale-invariant network."""

from .fixed_elr import main

if __name__ == "__main__":  # not when a worker process re-imports this module
    raise SystemExit(main())
