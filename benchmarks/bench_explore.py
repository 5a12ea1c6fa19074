"""The explorer's update latency: from a control's change in the browser to the new data drawn.

    python benchmarks/bench_explore.py                    # 40 ELR changes, 10 weight changes, 10^4 steps
    python benchmarks/bench_explore.py --json out.json    # default: benchmarks/explore_last_run.json

Starts ``python -m toymodel.explore --no-browser --port 0`` (its kernels compiled first, as at any
start), opens it in headless Chromium (tests/_browser.py) and, for each change, measures in the
page: the widget's value is set (as a drag of the slider sets it), BokehJS sends it to the server,
the server runs the toy (10^4 steps, Lyapunov exponent, traces) and sends the new sources back, and
the clock stops at the first animation frame after the new data arrived (so the redraw is in it).
Reported: median, p95 and maximum over the changes, and the server's own compute time (from the
page's status line).

* **ELR changes** alternate over a log grid of c from 0.5 to 10 (every regime): the phase strip's
  quick sweep does not depend on the ELR and is reused;
* **weight changes** (a new alpha each time) also recompute the strip's sweep (40 runs).
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))
sys.path.insert(0, str(HERE.parent))

from _browser import chromium, explorer_server, require_browser, skip_reason, wait_for_bokeh, wait_for_column  # noqa: E402

_MEASURE = """
const [name, value, done] = [arguments[0], arguments[1], arguments[arguments.length - 1]];
const find = (n) => { for (const d of Bokeh.documents) { const m = d.get_model_by_name(n); if (m) return m; } };
const status = find("status");
const before = status.data;
const t0 = performance.now();
find(name).value = value;
const text = () => { const d = status.data; return (d instanceof Map ? d.get("text") : d.text)[0]; };
const poll = () => {
  if (status.data !== before) {
    requestAnimationFrame(() => done([performance.now() - t0, text()]));
  } else {
    requestAnimationFrame(poll);
  }
};
poll();
"""


def _pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, math.ceil(q * len(xs)) - 1))]


def _summary(ms, server_ms):
    return {"n": len(ms), "median_ms": statistics.median(ms), "p95_ms": _pct(ms, 0.95), "max_ms": max(ms),
            "min_ms": min(ms), "server_compute_median_ms": statistics.median(server_ms) if server_ms else None,
            "all_ms": [round(v, 2) for v in ms]}


def measure(elr_changes: int = 40, alpha_changes: int = 10) -> dict:
    out = {}
    with explorer_server() as (url, _proc), chromium() as driver:
        driver.get(url)
        wait_for_bokeh(driver)
        wait_for_column(driver, "status", "update", lambda v: bool(v) and v[0] >= 1)
        driver.set_script_timeout(30)

        def change(name, value):
            ms, text = driver.execute_async_script(_MEASURE, name, value)
            server = None
            if "computed in" in text:
                server = float(text.split("computed in")[1].split("ms")[0])
            return ms, server

        change("elr", math.log10(1.0 / 7))  # one warm change (the first draw of a new page)
        cs = [0.5 * 20 ** (i / (elr_changes - 1)) for i in range(elr_changes)]
        order = cs[0::2] + cs[1::2]  # alternate between the low and the high half: every change moves far
        ms, server = zip(*(change("elr", math.log10(c / 7)) for c in order), strict=True)
        out["elr_changes"] = _summary(list(ms), [s for s in server if s is not None])
        ms, server = zip(*(change("alphas", f"1,2,{4 + 0.01 * (i + 1):g}") for i in range(alpha_changes)),
                         strict=True)
        out["alpha_changes"] = _summary(list(ms), [s for s in server if s is not None])
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--elr-changes", type=int, default=40)
    ap.add_argument("--alpha-changes", type=int, default=10)
    ap.add_argument("--json", default=str(HERE / "explore_last_run.json"))
    args = ap.parse_args(argv)
    if skip_reason():
        print(f"bench_explore: {skip_reason()}", file=sys.stderr)
        return 1
    require_browser()
    t0 = time.time()
    res = measure(args.elr_changes, args.alpha_changes)
    import bokeh
    import numba

    record = {"parameters": {"steps": 10_000, "elr_changes": args.elr_changes, "alpha_changes": args.alpha_changes,
                             "what": "browser: value set -> server compute -> new data -> next animation frame"},
              "results": res,
              "machine": {"python": platform.python_version(), "cpu_count": __import__("os").cpu_count(),
                          "numba": numba.__version__, "bokeh": bokeh.__version__},
              "wall_time_s": round(time.time() - t0, 1),
              "date": time.strftime("%Y-%m-%d")}
    Path(args.json).write_text(json.dumps(record, indent=1) + "\n")
    for k, v in res.items():
        print(f"{k}: median {v['median_ms']:.0f} ms, p95 {v['p95_ms']:.0f} ms, max {v['max_ms']:.0f} ms "
              f"(server compute median {v['server_compute_median_ms']:.0f} ms) over {v['n']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
