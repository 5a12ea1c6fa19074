"""The explorer in headless Chromium: the live app (slow: it starts the server, which compiles its
kernels on a cold cache) and the static page. Skipped with the reason when Chromium, chromedriver,
Selenium or Bokeh is missing (tests/_browser.py)."""

import math

import numpy as np
import pytest
from _browser import (
    bokeh_reason,
    chromium,
    explorer_server,
    model_value,
    require_browser,
    set_model,
    source_column,
    wait_for_bokeh,
    wait_for_column,
)


@pytest.fixture(autouse=True)
def _needs_browser():
    require_browser()
    if bokeh_reason():
        pytest.skip(bokeh_reason())


@pytest.fixture(scope="module")
def app():
    """The running app and a browser on it: ``(driver, url, process)``."""
    require_browser()
    if bokeh_reason():
        pytest.skip(bokeh_reason())
    with explorer_server() as (url, proc), chromium() as driver:
        driver.get(url)
        wait_for_bokeh(driver)
        wait_for_column(driver, "status", "update", lambda v: bool(v) and v[0] >= 1)
        yield driver, url, proc


def _verdict(driver) -> str:
    """The verdict as drawn: the first row of the readouts."""
    return source_column(driver, "src_readouts", "text")[0]


def _readout(driver, label) -> str:
    """The value drawn beside a readout's label."""
    text = source_column(driver, "src_readouts", "text")
    return text[text.index(label) + 1]


def _change(driver, name, value, attr="value"):
    """Change a control as the user would and wait for the server's answer (the next update)."""
    before = source_column(driver, "status", "update")[0]
    set_model(driver, name, attr, value)
    wait_for_column(driver, "status", "update", lambda v: v[0] > before, timeout=60,
                    what=f"the update after {name} = {value!r}")


def _resources_outside(driver, prefix):
    names = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    return [n for n in names if not (n.startswith(prefix) or n.startswith("data:") or n.startswith("blob:"))]


@pytest.mark.slow
def test_the_regime_readout_follows_the_elr_across_the_threshold(app):
    driver, url, proc = app
    _change(driver, "elr", math.log10(0.1))  # c = 0.7, below the threshold c = 1
    assert _verdict(driver) == "convergence"
    loss_low = source_column(driver, "src_trace", "loss")
    _change(driver, "elr", math.log10(0.2))  # c = 1.4, above
    assert _verdict(driver).startswith("chaotic equilibrium")
    assert _readout(driver, "c = η̃Σα") == "1.4"
    loss_high = source_column(driver, "src_trace", "loss")
    # the loss trace came along: at the minimum below, on the orbit's level F* = 1 above
    assert min(loss_low) < 1e-14 and np.median(loss_high[-1000:]) == pytest.approx(1.0, rel=0.05)
    assert not _resources_outside(driver, url.rstrip("/"))  # nothing from a CDN
    assert proc.poll() is None


BAD = [
    ({"alphas": "1,0,4"}, "alphas must be positive"),
    ({"alphas": "one,two"}, "alphas must be comma-separated numbers"),
    ({"steps": "lots"}, "steps must be an integer"),
    ({"seed": "-3"}, "seed must be >= 0"),
    ({"mode": "conventional", "lr_wd": "1.5"}, "lr_wd (ηλ) must be in (0, 1)"),
    ({"mode": "sgd", "batch_size": "0"}, "batch_size must be >= 1"),
    ({"mode": "sgd", "mask_prob": "2"}, "mask_prob must be in (0, 1]"),
]
GOOD = {"alphas": "1,2,4", "steps": "10000", "seed": "0", "mode": "gd", "lr_wd": "0.01", "batch_size": "4",
        "mask_prob": "0.5"}


@pytest.mark.slow
def test_bad_inputs_are_shown_in_the_page_and_the_server_carries_on(app):
    driver, url, proc = app
    for bad, message in BAD:
        for name, value in bad.items():
            _change(driver, name, value)
        assert model_value(driver, "message", "visible") is True, bad
        assert message in model_value(driver, "message", "text"), (bad, model_value(driver, "message", "text"))
        for name in bad:  # back to good values: the message goes, the views update
            if model_value(driver, name, "value") != GOOD[name]:
                _change(driver, name, GOOD[name])
        assert model_value(driver, "message", "visible") is False, bad
    _change(driver, "elr", math.log10(0.3))
    assert _verdict(driver).startswith("chaotic equilibrium")
    assert proc.poll() is None
    err = proc.stderr_text()
    assert "Traceback" not in err and "ERROR" not in err, err


@pytest.mark.slow  # headless Chromium, like the other browser tests
def test_the_static_page_opens_and_its_slider_changes_the_plot(tmp_path):
    from toymodel.explore.static import write_static_page

    path = write_static_page(tmp_path / "explorer.html", cs=[0.5, 1.4, 5.0, 30.0], steps=2000, start_c=0.5)
    with chromium() as driver:
        driver.get(path.as_uri())
        wait_for_bokeh(driver)
        assert _verdict(driver) == "convergence"
        loss0 = source_column(driver, "src_trace", "loss")
        set_model(driver, "elr", "value", 2)  # c = 5: the chaotic equilibrium
        verdict = wait_for_column(driver, "src_readouts", "text", lambda v: v[0] != "convergence", timeout=10)[0]
        assert verdict == "chaotic equilibrium (chaotic)"
        loss1 = source_column(driver, "src_trace", "loss")
        assert len(loss1) == len(loss0) and loss1 != loss0
        assert np.median(loss1[len(loss1) // 2:]) > 1  # no longer at the minimum: near F* = 2.8
        assert _readout(driver, "c = η̃Σα") == "5"
        assert not _resources_outside(driver, "file://")  # self-contained: nothing loaded
