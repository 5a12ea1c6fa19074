"""Shared command-line plumbing: the same parser rules, messages and exit codes in every job.

* Every parser refuses abbreviated flags (``--seed`` is not ``--seeds``).
* Integer flags accept an exact integer in scientific notation (``--steps 1e6``).
* ``ValueError`` (bad input): one line ``prog: error: message`` on stderr, exit code 2; the
  message names the flag as typed (``--elr-min``), not the Python parameter (``elr_min``).
* ``OSError`` while writing (disk full, a folder removed mid-run): one line naming the file and
  the reason, exit code 1; files are written atomically, so no partial file is left.
* Ctrl-C: ``prog: interrupted``, exit 130; SIGTERM: ``prog: terminated``, exit 143.
* An output folder that a failed or interrupted run created is removed again if it is empty.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as _dt
import os
import re
import signal
import sys
import time
import warnings
from pathlib import Path

__all__ = ["ArgumentParser", "run_cli", "Job", "int_arg", "plural", "output_dir", "note", "quiet_warnings",
           "add_sweep_arguments"]


def int_arg(text: str) -> int:
    """An argparse type for counts: ``"1000000"``, ``"1e6"`` or ``"1_000_000"``, exactly integral."""
    t = str(text).strip().replace("_", "")
    try:
        return int(t)
    except ValueError:
        pass
    try:
        v = float(t)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not (v == v and abs(v) != float("inf")) or not v.is_integer():
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}")
    # exact for integers written in scientific notation: 1e20 -> 10**20
    mant, _, exp = t.lower().partition("e")
    if exp and "." not in mant and exp.lstrip("+").isdigit():
        return int(mant) * 10 ** int(exp.lstrip("+"))
    return int(v)


def add_sweep_arguments(ap, *, steps: int, seeds: int, out: str, burn_in_fraction: float, what: str = "chunks"):
    """The flags every toy sweep job shares (the same names, types and help everywhere): --steps,
    --burn-in, --seeds, --out, --format, --no-plot, --quiet, --threads, --batch-size, --mask-prob,
    --resume, --scheduler, --dask-local, --no-lyapunov."""
    ap.add_argument("--steps", type=int_arg, default=steps,
                    help="steps per run; 1e6 is accepted (default: %(default)s)")
    ap.add_argument("--burn-in", type=int_arg, default=None,
                    help=f"steps excluded from statistics, < steps (default: {burn_in_fraction:g} of --steps)")
    ap.add_argument("--seeds", type=int_arg, default=seeds, help="random starts per value, seeds 0..N-1 "
                                                                 "(default: %(default)s)")
    ap.add_argument("--out", default=out, help="output folder (default: %(default)s, git-ignored; "
                                               "`python -m toymodel.figures` regenerates the committed figures/)")
    ap.add_argument("--format", default="png", help="figure format: png, svg or pdf (default: %(default)s)")
    ap.add_argument("--no-plot", action="store_true", help="write CSV and JSON only")
    ap.add_argument("--quiet", action="store_true", help="no progress bar or messages")
    ap.add_argument("--threads", type=int_arg, default=None, help="Numba threads (default: all cores)")
    ap.add_argument("--batch-size", type=int_arg, default=None,
                    help="mini-batch SGD with this many examples per step (default: full-batch GD)")
    ap.add_argument("--mask-prob", type=float, default=1.0,
                    help="SGD mask probability p in (0, 1]: each example sees each group with prob. p (default: 1)")
    ap.add_argument("--scheduler", metavar="ADDRESS", default=None,
                    help=f"run the {what} on a running Dask scheduler, e.g. tcp://127.0.0.1:8786 "
                         "(extra toymodel[distributed])")
    ap.add_argument("--dask-local", metavar="N", type=int_arg, default=None,
                    help=f"start a Dask LocalCluster with N worker processes on loopback and run the {what} there")
    ap.add_argument("--resume", action="store_true",
                    help=f"keep finished {what} in OUT/.toymodel-cache and reuse them: an interrupted run, started "
                         "again with --resume, computes only what is missing (results are identical)")
    ap.add_argument("--no-lyapunov", action="store_true",
                    help="skip the Lyapunov exponents (about 2x faster; the subtype then uses the loss fluctuation)")
    return ap


def plural(n: int, word: str, many: str | None = None) -> str:
    """``"1 seed"``, ``"3 seeds"``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


class ArgumentParser(argparse.ArgumentParser):
    """argparse with abbreviations refused, usage errors on one line (exit 2), and a record of the
    flag of every parameter so that error messages can name it."""

    last = None  # the parser that parsed the current command line

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):  # noqa: D401 - argparse API
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None):
        ArgumentParser.last = self
        return super().parse_args(args, namespace)

    def flag_names(self) -> dict:
        """``{dest: '--flag'}`` for every optional argument."""
        out = {}
        for act in self._actions:
            longs = [o for o in act.option_strings if o.startswith("--")]
            if longs and act.dest not in ("help",):
                out[act.dest] = longs[0]
        return out


_QUOTED = re.compile(r"('[^']*'|\"[^\"]*\")")


def _with_flags(message: str, flags: dict) -> str:
    """Replace parameter names by their flags outside quoted text (paths stay as they are)."""
    if not flags:
        return message
    names = sorted(flags, key=len, reverse=True)
    pat = re.compile(r"(?<![\w-])(" + "|".join(re.escape(n) for n in names) + r")(?![\w-])")
    parts = _QUOTED.split(message)
    for i in range(0, len(parts), 2):
        parts[i] = pat.sub(lambda m: flags[m.group(1)], parts[i])
    return "".join(parts)


def _sigterm(signum, frame):  # pragma: no cover - exercised in subprocess tests
    raise SystemExit(143)


def note(message: str, quiet: bool = False) -> None:
    """One line of our own on stderr (for notes under a progress bar); nothing when ``quiet``."""
    if not quiet:
        print(message, file=sys.stderr, flush=True)


@contextlib.contextmanager
def output_dir(path, name: str = "out"):
    """Check and create an output folder before any work; if the run then fails or is interrupted
    and the folder was created here and is still empty, remove it again."""
    from ._records import check_writable_dir

    path = Path(path)
    existed = path.exists()
    created = [] if existed else [p for p in [path, *path.parents] if not p.exists()]
    out = check_writable_dir(path, name)
    try:
        yield out
    except BaseException:
        for p in created:  # innermost first
            with contextlib.suppress(OSError):
                p.rmdir()  # only succeeds if empty
        raise


@contextlib.contextmanager
def quiet_warnings(quiet: bool):
    """With ``--quiet``, nothing on stderr: the package's runtime warnings (non-finite runs, which
    the jobs also count in their CSV and JSON) are not shown."""
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", RuntimeWarning)
        yield


def run_cli(main, argv=None, prog: str = "toymodel") -> int:
    """Run ``main(argv)`` and turn failures into exit codes and one line on stderr, without
    tracebacks (see the module docstring)."""
    old = signal.getsignal(signal.SIGTERM)
    try:
        signal.signal(signal.SIGTERM, _sigterm)
    except ValueError:  # not in the main thread
        old = None
    ArgumentParser.last = None
    try:
        return int(main(argv) or 0)
    except ValueError as exc:
        msg = " ".join(str(exc).split())
        if ArgumentParser.last is not None:
            msg = _with_flags(msg, ArgumentParser.last.flag_names())
        print(f"{prog}: error: {msg}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # stdout closed early (``| head``): nothing to report
        with contextlib.suppress(OSError):
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - let the interpreter's final flush succeed
        return 0
    except OSError as exc:
        where = f"{exc.filename}: " if getattr(exc, "filename", None) else ""
        print(f"{prog}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
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


@dataclasses.dataclass(frozen=True)
class Job:
    """A command-line job in one skeleton: every flag is validated before any work, then the output
    folder is made, the job computes and writes, and one line of summary follows (:meth:`run`).

    Attributes
    ----------
    prog, description : str
        The command (``python -m toymodel.bridge``) and its ``--help`` text.
    add_arguments : callable
        ``add_arguments(parser)`` adds the job's flags; every job has ``--out``, ``--format``,
        ``--no-plot`` and ``--quiet``.
    prepare : callable
        ``prepare(args) -> plan`` validates every other flag (a ValueError names the flag) without
        doing any work or writing anything; ``--format`` is checked before it.
    compute : callable
        ``compute(plan, out) -> result``, ``out`` the output folder (a Path), already created.
    write : callable
        ``write(result, out, fmt, plot, wall_time_s, started) -> paths`` writes every file.
    summary : callable
        ``summary(result, wall_time_s) -> str``: the final line on stderr (not with ``--quiet``),
        before "; wrote <files>".
    setup : callable, optional
        Called first, without arguments (the jobs that draw choose matplotlib's file backend).
    """

    prog: str
    description: str
    add_arguments: object
    prepare: object
    compute: object
    write: object
    summary: object
    setup: object = None

    def run(self, argv=None) -> int:
        """Run the job on ``argv`` through :func:`run_cli`; returns the exit code (0, 1, 2, 130 or
        143; see the module's notes)."""
        if self.setup is not None:
            self.setup()
        return run_cli(self._main, argv, prog=self.prog)

    def _main(self, argv) -> int:
        from ._validate import as_format

        ap = ArgumentParser(prog=self.prog, description=self.description)
        self.add_arguments(ap)
        args = ap.parse_args(argv)
        fmt = as_format(args.format)
        plan = self.prepare(args)
        with output_dir(args.out, "out") as out:
            started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
            t0 = time.perf_counter()
            result = self.compute(plan, out)
            wall = time.perf_counter() - t0
            paths = self.write(result, out, fmt, not args.no_plot, wall, started)
        note(f"{self.summary(result, wall)}; wrote " + ", ".join(str(p) for p in paths), args.quiet)
        return 0
