"""The README's screenshot of the explorer: figures/explorer.png, taken with headless Chromium.

    python tools/screenshot_explorer.py [--out figures/explorer.png] [--c 1.6]

Starts ``python -m toymodel.explore --no-browser --port 0``, opens it in headless Chromium
(tests/_browser.py), moves the ELR slider to c = 1.6 (the paper's weights, GD on the sphere, 10^4
steps, seed 0: the periodic equilibrium between the threshold and sqrt 3), waits for the update and
saves the page.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

from _browser import chromium, explorer_server, set_model, source_column, wait_for_bokeh, wait_for_column  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=str(ROOT / "figures" / "explorer.png"))
    ap.add_argument("--c", type=float, default=1.6, help="c = ELR * sum(alpha) to show (default: %(default)s)")
    args = ap.parse_args(argv)
    with explorer_server() as (url, _proc), chromium(1480, 1060) as driver:
        driver.get(url)
        wait_for_bokeh(driver)
        wait_for_column(driver, "status", "update", lambda v: bool(v) and v[0] >= 1)
        before = source_column(driver, "status", "update")[0]
        set_model(driver, "elr", "value", math.log10(args.c / 7.0))
        wait_for_column(driver, "status", "update", lambda v: v[0] > before)
        time.sleep(1.0)  # the redraw
        driver.save_screenshot(args.out)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
