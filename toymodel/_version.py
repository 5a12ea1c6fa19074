"""The installed package version (a leaf module, so that any module can record it)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("toymodel")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0+unknown"
