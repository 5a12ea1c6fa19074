"""The documentation site as a reader sees it, opened in headless Chromium (Debian's ``chromium`` and
``chromium-driver``) from a local server with every other host unreachable: the front page at the
root, the tutorial's figures, and typeset maths without a network.

The site is built by ``sphinx-build -W --keep-going -b html docs docs/_build/html`` (``.ci/run`` does
it before the slow tests); ``TOYMODEL_DOCS_HTML`` points elsewhere.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import _browser
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
SITE = Path(os.environ.get("TOYMODEL_DOCS_HTML", REPO / "docs" / "_build" / "html"))


@pytest.fixture(scope="module")
def site():
    if not SITE.is_dir() or not any(SITE.rglob("*.html")):
        pytest.skip(f"docs site not built at {SITE} (sphinx-build -W --keep-going -b html docs docs/_build/html)")
    _browser.require_browser()
    with _browser.serve(SITE) as url, _browser.chromium() as driver:
        yield url, driver


def test_the_front_page_is_at_the_root(site):
    url, driver = site
    assert (SITE / "index.html").is_file(), "no index.html at the root of the build"
    driver.get(url + "/")
    assert "toymodel" in driver.title
    links = {a.get_attribute("href").rsplit("/", 1)[-1].split("#")[0]
             for a in driver.find_elements("css selector", "a[href]")}
    assert {"guide.html", "tutorial.html", "theory.html", "derivations.html", "api.html"} <= links


def _plotting_cells():
    nb = json.loads((REPO / "docs" / "tutorial.ipynb").read_text())
    code = [c for c in nb["cells"] if c["cell_type"] == "code"]
    return [i for i, c in enumerate(code) if "plots.plot_" in "".join(c["source"])]


def test_the_tutorial_shows_its_figures(site):
    url, driver = site
    driver.get(url + "/tutorial.html")
    cells = driver.find_elements("css selector", "div.cell")
    plotting = _plotting_cells()
    assert plotting and len(cells) >= max(plotting) + 1
    for i in plotting:
        imgs = cells[i].find_elements("css selector", ".cell_output img")
        assert imgs, f"code cell {i} of the tutorial plots but shows no image"
        for img in imgs:  # the image loaded and has pixels
            assert driver.execute_script("return arguments[0].complete && arguments[0].naturalWidth", img) > 100


def test_a_derivation_page_has_typeset_maths_offline(site):
    url, driver = site
    driver.get(url + "/derivations/05_equilibrium.html")
    # MathJax 3 replaces each formula by an <mjx-container>; raw TeX delimiters must be gone
    n = _browser.wait_until(driver, "return document.querySelectorAll('mjx-container').length", 30,
                            "typeset maths")
    assert n >= 5
    text = driver.execute_script("return document.body.innerText")
    assert "\\[" not in text and "\\(" not in text
    scripts = driver.execute_script("return Array.from(document.scripts).map(s => s.src).filter(s => s)")
    assert scripts and all(s.startswith(url) for s in scripts), scripts  # nothing from a CDN
