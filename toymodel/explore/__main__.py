"""``python -m toymodel.explore``: the interactive explorer (extra ``toymodel[explore]``).

Without ``--write``: compile the kernels (once per machine, with a message), start a local Bokeh
server, print its URL and open it in the browser (``--no-browser`` not). With ``--write FILE``:
write the self-contained static page over a precomputed grid and exit.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from .._cli import ArgumentParser, int_arg, note, run_cli

PROG = "python -m toymodel.explore"


def build_parser() -> ArgumentParser:
    ap = ArgumentParser(prog=PROG, description=(
        "The toy in the browser: move the ELR, the weights, the mode (GD, mini-batch SGD, conventional training "
        "with weight decay) and watch the loss, the group ELRs and angles, the phase strip and the derived "
        "quantities update. Starts a local web app (Bokeh server) and prints its URL."))
    ap.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default: %(default)s, this machine only)")
    ap.add_argument("--port", type=int_arg, default=5006, help="port, 0 for any free one (default: %(default)s)")
    ap.add_argument("--no-browser", action="store_true", help="do not open a browser; just print the URL")
    ap.add_argument("--write", metavar="FILE", default=None,
                    help="write a self-contained HTML page over a precomputed grid of ELRs to FILE (no server, "
                         "nothing loaded from the network) and exit")
    ap.add_argument("--quiet", action="store_true", help="no messages but the URL")
    return ap


def _need_bokeh() -> None:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        raise ValueError("the explorer needs Bokeh: pip install 'toymodel[explore]'") from None


def _main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if not 0 <= args.port <= 65535:
        raise ValueError(f"port must be in 0..65535, got {args.port}")
    if not args.host.strip():
        raise ValueError("host must not be empty")
    _need_bokeh()
    from .compute import warm_up

    t0 = time.perf_counter()
    if args.write is not None:
        from .._records import check_writable_dir
        from .static import write_static_page

        target = Path(args.write)
        if target.is_dir():
            raise ValueError(f"write must be a file, got the directory {str(target)!r}")
        check_writable_dir(target.parent, "write")  # before a minute of work, not after

        warm_up(("gd",), progress=lambda m: note(m, args.quiet))
        path = write_static_page(args.write, progress=None)
        note(f"wrote {path} ({path.stat().st_size / 2**20:.1f} MiB) in {time.perf_counter() - t0:.0f} s", args.quiet)
        return 0

    from .app import check_port, serve

    check_port(args.host, args.port)
    note("preparing: the kernels (compiled once per machine) and the derived values (SymPy, about 15 s)",
         args.quiet)
    warm_up(progress=lambda m: note(m, args.quiet))
    note(f"ready in {time.perf_counter() - t0:.0f} s", args.quiet)

    def ready(url):
        print(f"toymodel explorer: {url}  (Ctrl-C stops it)", flush=True)

    serve(args.host, args.port, browser=not args.no_browser, ready=ready)
    return 0


def main(argv=None) -> int:
    return run_cli(_main, argv, prog=PROG)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
