"""Shared command-line plumbing: one-line errors with exit code 2, clean interrupts."""

from __future__ import annotations

import argparse
import signal
import sys

__all__ = ["ArgumentParser", "run_cli"]


class ArgumentParser(argparse.ArgumentParser):
    """argparse that reports a usage error as one line on stderr and exits with code 2."""

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")


def _sigterm(signum, frame):  # pragma: no cover - exercised in subprocess tests
    raise SystemExit(143)


def run_cli(main, argv=None, prog: str = "toymodel") -> int:
    """Run ``main(argv)`` and turn failures into exit codes without tracebacks.

    * ``ValueError`` (bad input): one line ``prog: error: message`` on stderr, exit code 2;
    * Ctrl-C: ``prog: interrupted``, exit code 130; SIGTERM: ``prog: terminated``, exit 143.

    Files are written atomically elsewhere, so an interrupted run leaves complete files only.
    """
    old = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not in the main thread
        old = None
    try:
        return int(main(argv) or 0)
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return 130
    except SystemExit as exc:
        if exc.code == 143:
            print(f"{prog}: terminated", file=sys.stderr)
            return 143
        raise
    finally:
        if old is not None:
            signal.signal(signal.SIGTERM, old)
