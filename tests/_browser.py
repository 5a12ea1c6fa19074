"""Headless Chromium through Selenium, shared by the browser tests (and benchmarks/bench_explore.py).

Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``, ``/usr/bin/chromedriver``)
and the ``selenium`` package (test extra) are needed; :func:`skip_reason` says which is missing, and
:func:`require_browser` skips the calling test with that reason. Selenium is pointed at the
chromedriver on disk: its own manager would try to download one, and these machines have no network
but the package registries. Chromium runs with a fresh profile and without any background traffic.

Chromium resolves no host but 127.0.0.1, so a page that needs a network (a CDN) fails its test here
as it would offline; :func:`serve` serves a built folder (the documentation site) on loopback.

Bokeh renders its widgets in shadow DOM, so the tests read and set the page's state through BokehJS
models, found by name (:func:`model_value`, :func:`set_model`, :func:`wait_for_model`).
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("TOYMODEL_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = os.environ.get("TOYMODEL_CHROMEDRIVER") or shutil.which("chromedriver") or "/usr/bin/chromedriver"
#: flags for Chromium as root in a container, without a GPU and without any network of its own
CHROMIUM_FLAGS = ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                  "--no-first-run", "--no-default-browser-check", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--disable-extensions",
                  "--disable-default-apps", "--metrics-recording-only", "--mute-audio", "--hide-scrollbars",
                  "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
REPO = Path(__file__).resolve().parents[1]


def skip_reason() -> str | None:
    """Why a browser test cannot run here, or None."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if not Path(CHROMIUM).exists():
        return f"chromium not found at {CHROMIUM} (apt-get install chromium)"
    if not Path(CHROMEDRIVER).exists():
        return f"chromedriver not found at {CHROMEDRIVER} (apt-get install chromium-driver)"
    return None


def require_browser() -> None:
    """Skip the calling test when Chromium, chromedriver or Selenium is missing."""
    reason = skip_reason()
    if reason:
        pytest.skip(reason)


def bokeh_reason() -> str | None:
    try:
        import bokeh  # noqa: F401
    except ImportError:
        return "bokeh is not installed (pip install -e '.[explore]')"
    return None


@contextlib.contextmanager
def chromium(width: int = 1500, height: int = 1000):
    """A headless Chromium WebDriver with a fresh profile, closed on exit."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="toymodel-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        opts.add_argument(flag)
    opts.add_argument(f"--user-data-dir={profile}")
    opts.add_argument(f"--window-size={width},{height}")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=opts)
    try:
        driver.set_script_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@contextlib.contextmanager
def serve(folder):
    """Serve ``folder`` over HTTP on 127.0.0.1 (a free port) from a thread; yields the base URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):  # no request log on the test's stderr
        pass


# -------------------------------------------------------------------------------- BokehJS models
_FIND = ("function __find(name) { const docs = (window.Bokeh && Bokeh.documents) || []; "
         "for (const d of docs) { const m = d.get_model_by_name(name); if (m) { return m; } } return null; } ")


def wait_for_bokeh(driver, timeout: float = 60.0) -> None:
    """Wait until BokehJS has a document with models (the page has rendered)."""
    wait_until(driver, "return !!(window.Bokeh && Bokeh.documents && Bokeh.documents.length "
                       "&& Bokeh.documents[0].roots().length)", timeout, "no Bokeh document")


def model_value(driver, name: str, attr: str):
    """The attribute ``attr`` of the BokehJS model named ``name`` (JSON-able values), or None."""
    return driver.execute_script(_FIND + "const m = __find(arguments[0]); return m === null ? null : m[arguments[1]];",
                                 name, attr)


def set_model(driver, name: str, attr: str, value) -> None:
    """Set ``attr`` of the model named ``name``, as a widget does when the user changes it."""
    ok = driver.execute_script(_FIND + "const m = __find(arguments[0]); if (m === null) { return false; } "
                                       "m[arguments[1]] = arguments[2]; return true;", name, attr, value)
    assert ok, f"no Bokeh model named {name!r}"


def source_column(driver, name: str, column: str) -> list:
    """A column of the ColumnDataSource named ``name`` as a list."""
    return driver.execute_script(_FIND + "const m = __find(arguments[0]); if (m === null) { return null; } "
                                         "const d = m.data; "
                                         "const c = (d instanceof Map) ? d.get(arguments[1]) : d[arguments[1]]; "
                                         "return Array.from(c);", name, column)


def wait_until(driver, js_condition: str, timeout: float, what: str = "condition"):
    """Poll a JavaScript expression (a ``return ...`` body) until it is truthy; return its value."""
    end = time.monotonic() + timeout
    while True:
        val = driver.execute_script(js_condition)
        if val:
            return val
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(0.05)


def wait_for(read, predicate, timeout: float = 60.0, what: str = "a value"):
    """Poll ``read()`` until ``predicate(value)``; return the value."""
    end = time.monotonic() + timeout
    while True:
        val = read()
        if predicate(val):
            return val
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}; last value {val!r}")
        time.sleep(0.05)


def wait_for_model(driver, name: str, attr: str, predicate, timeout: float = 60.0, what: str | None = None):
    """Poll ``model_value(name, attr)`` until ``predicate(value)``; return the value."""
    return wait_for(lambda: model_value(driver, name, attr), predicate, timeout, what or f"{name}.{attr}")


def wait_for_column(driver, name: str, column: str, predicate, timeout: float = 60.0, what: str | None = None):
    """Poll ``source_column(name, column)`` until ``predicate(values)``; return the values."""
    return wait_for(lambda: source_column(driver, name, column), predicate, timeout, what or f"{name}[{column!r}]")


# ------------------------------------------------------------------------------------- the server
@contextlib.contextmanager
def explorer_server(timeout: float = 900.0, extra_args=()):
    """``python -m toymodel.explore --no-browser --port 0`` in a subprocess: yields ``(url, process)``
    once it prints its URL (after compiling the kernels, which may take minutes on a cold cache);
    stopped on exit. Its stderr goes to a temporary file, read back as ``process.stderr_text()``."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    err = tempfile.NamedTemporaryFile(prefix="toymodel-explore-", suffix=".err", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "toymodel.explore", "--no-browser", "--port", "0", *extra_args],
                            stdout=subprocess.PIPE, stderr=err, text=True, cwd=REPO, env=env)
    proc.stderr_text = lambda: Path(err.name).read_text()
    try:
        url = None
        end = time.monotonic() + timeout
        while url is None:
            line = proc.stdout.readline()
            if not line:
                raise AssertionError(f"the explorer exited ({proc.poll()}): {proc.stderr_text()}")
            if "http://" in line:
                url = line[line.index("http://"):].split()[0]
            if time.monotonic() > end:
                raise AssertionError("the explorer did not print its URL in time")
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        err.close()
        with contextlib.suppress(OSError):
            os.unlink(err.name)
