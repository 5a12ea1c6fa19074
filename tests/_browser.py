"""Headless Chromium for the browser tests: Debian's ``chromium`` driven by Selenium through Debian's
``chromium-driver``, and a local HTTP server for built pages.

Each helper skips its test with a one-line reason naming what is missing (``chromium``,
``chromium-driver``, ``selenium``), so a machine without them runs the rest of the suite; CI installs
them and forbids those skips (``TOYMODEL_REQUIRE``). Chromium runs with every host but 127.0.0.1
unresolvable, so a page that needs a network (a CDN) fails its test here as it would offline.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import shutil
import tempfile
import threading
import time
from pathlib import Path

import pytest

CHROMIUM = ("/usr/bin/chromium", "chromium", "chromium-browser")
CHROMEDRIVER = ("/usr/bin/chromedriver", "chromedriver")


def _find(candidates):
    for c in candidates:
        if Path(c).is_file():
            return c
        found = shutil.which(c)
        if found:
            return found
    return None


@contextlib.contextmanager
def serve(folder):
    """Serve ``folder`` on 127.0.0.1 (a free port) in a thread; yields the base URL."""
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


@contextlib.contextmanager
def chromium(width: int = 1400, height: int = 1000):
    """A headless Chromium WebDriver (Selenium), quit afterwards; skips when anything is missing."""
    browser, driver_path = _find(CHROMIUM), _find(CHROMEDRIVER)
    if browser is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium chromium-driver)")
    if driver_path is None:
        pytest.skip("chromium's chromedriver is not installed (Debian: apt-get install chromium-driver)")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        pytest.skip("selenium is not installed (pip install -e '.[test]')")
    profile = tempfile.mkdtemp(prefix="toymodel-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-extensions", f"--window-size={width},{height}", f"--user-data-dir={profile}",
                # offline: no host but this machine resolves
                "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        opts.add_argument(arg)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=opts)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait_for(driver, script: str, timeout: float = 10.0, *args):
    """Run ``script`` until it returns something truthy (returned), or fail after ``timeout`` s."""
    end = time.monotonic() + timeout
    while True:
        value = driver.execute_script(script, *args)
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out after {timeout} s waiting for: {script}")
        time.sleep(0.1)
