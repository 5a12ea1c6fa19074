"""Skips that must not happen: ``TOYMODEL_REQUIRE=torch,chromium,...`` turns every skip whose reason
names one of those words into a failure.

The suite skips what an environment lacks (torch, Chromium, the Fashion-MNIST package, a built
documentation site), each with a one-line reason naming it. A developer without torch gets a
quick, honest suite; CI, which installs everything, sets ``TOYMODEL_REQUIRE`` in ``.ci/run`` so that a
missing dependency fails the run instead of silently shrinking it. Expected failures (``xfail``)
are not skips and are left alone.
"""

from __future__ import annotations

import os

import pytest

ENV = "TOYMODEL_REQUIRE"


def required() -> list[str]:
    """The words of ``TOYMODEL_REQUIRE`` (comma-separated, case-insensitive)."""
    return [w.strip().lower() for w in os.environ.get(ENV, "").split(",") if w.strip()]


def _reason(report) -> str:
    longrepr = report.longrepr
    return str(longrepr[2]) if isinstance(longrepr, tuple) and len(longrepr) == 3 else str(longrepr)


def harden(report) -> None:
    """Turn ``report`` (a test's or a collector's) from skipped into failed if its reason names a
    required word."""
    words = required()
    if not (words and report.skipped) or hasattr(report, "wasxfail"):
        return
    reason = _reason(report)
    hits = [w for w in words if w in reason.lower()]
    if hits:
        report.outcome = "failed"
        report.longrepr = f"skipped ({reason}), but {ENV} requires {', '.join(hits)} in this run"


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    harden(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    harden(report)
    return report
