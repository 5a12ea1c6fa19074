"""``python -m toymodel.theory``: render the derivations (see :mod:`toymodel.derivation_checks`)."""

from ..derivation_checks import main

if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
