"""How the tests start other programs: never by a bare command name, so the suite runs the same
whether or not its virtual environment is activated (``.venv/bin/python -m pytest`` has the
environment's scripts off PATH).

Every subprocess the suite starts goes through one of these; ``test_launch.py`` runs each with PATH
stripped, and checks that no test starts a program of the environment by name.
"""

from __future__ import annotations

import sys


def python(*args: str) -> list[str]:
    """``python ARGS`` with the interpreter running the tests."""
    return [sys.executable, *args]


def module(name: str, *args: str) -> list[str]:
    """``python -m NAME ARGS`` with the interpreter running the tests (the project's jobs)."""
    return [sys.executable, "-m", name, *args]


def dask(*args: str) -> list[str]:
    """The ``dask`` command (``dask scheduler``, ``dask worker``) as ``python -m dask``."""
    return module("dask", *args)
