"""Records shared by every job: atomic files, CSV and JSON text, versions, result records on disk
and the resume cache.

Atomic output: every file is written to a temporary name in its folder, then renamed, so a
reader sees either the previous complete file or the new complete file, never a partial one,
even if the process is interrupted (Ctrl-C, SIGTERM) in the middle of a write.

Resume: :class:`ResultCache` keeps finished units of work (chunks of a toy sweep, runs of a
network sweep) as ``<directory>/<key>/<name>.npz``. The key hashes everything that changes
results (:func:`content_key`), so a changed parameter never reuses a stale record; an unreadable
record is treated as missing and recomputed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import platform
import tempfile
from pathlib import Path

import numpy as np

from ._version import __version__

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_path", "check_writable_dir", "save_record",
           "load_record", "format_value", "csv_text", "json_text", "versions", "content_key", "ResultCache",
           "CACHE_DIRNAME"]

#: folder (inside a job's output folder) that keeps finished units of work for ``--resume``
CACHE_DIRNAME = ".toymodel-cache"


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the folder of ``path``; rename it onto ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` is left untouched.
    """
    path = Path(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
    except OSError as exc:  # name the file being written, not the temporary one
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise OSError(exc.errno, exc.strerror, str(path)) from None
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())


def atomic_write_text(path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def save_record(path, obj) -> None:
    """Store a dataclass in one .npz file, atomically: its arrays exactly (nested dataclasses and
    lists of them included), everything else as JSON metadata."""
    arrays, meta, kinds = {}, {}, {}
    _flatten(obj, "", arrays, meta, kinds)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, __meta__=np.array(json.dumps({"meta": meta, "kinds": kinds})), **arrays)


def load_record(path, cls):
    """The ``cls`` instance stored by :func:`save_record`, or None if missing, unreadable or of
    another type."""
    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            header = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
        obj = _unflatten("", arrays, header["meta"], header["kinds"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError, ImportError):
        return None
    return obj if isinstance(obj, cls) else None


def check_writable_dir(path, name: str = "out") -> Path:
    """Create ``path`` if needed and check that files can be created in it.

    Raises
    ------
    ValueError
        If it is not a directory or cannot be written.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{name} must be a directory, got the file {str(path)!r}")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".probe.", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ValueError(f"{name} is not writable: {str(path)!r} ({exc.strerror or exc})") from None
    return path


# --------------------------------------------------------------------- tables and JSON
def format_value(v) -> str:
    """One CSV cell: strings as they are, integers exactly, floats in shortest round-trip form."""
    if isinstance(v, (str, np.str_)):
        return str(v)
    if isinstance(v, (bool, np.bool_)):
        return str(bool(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    return repr(float(v))


def csv_text(columns, table) -> str:
    """CSV text of a column table: a header and one row per entry of ``table[columns[0]]``."""
    rows = [",".join(columns)]
    for kq in range(len(table[columns[0]])):
        rows.append(",".join(format_value(table[col][kq]) for col in columns))
    return "\n".join(rows) + "\n"


def json_text(record: dict, indent: int | None = 2) -> str:
    return json.dumps(record, indent=indent, sort_keys=False) + "\n"


def versions(*extra: str) -> dict:
    """Versions of the package, Python and the libraries that shape results (plus the ``extra``
    distributions that are installed), read from the installed metadata without importing them."""
    from importlib.metadata import PackageNotFoundError, version

    out = {"toymodel": __version__, "python": platform.python_version()}
    for name in ("numpy", "numba", "scipy", "sympy", "matplotlib") + extra:
        with contextlib.suppress(PackageNotFoundError):
            out[name] = version(name)
    out["platform"] = platform.platform()
    return out


# ------------------------------------------------------------------------ the cache
def content_key(payload: dict) -> str:
    """A short hash of ``payload`` (JSON-able; floats should be given as ``repr`` strings) and the
    package version: the key under which results computed from it are cached."""
    blob = json.dumps({"payload": payload, "version": __version__}, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()[:24]


class ResultCache:
    """Finished units of work on disk, so an interrupted job recomputes only what is missing.

    Layout: ``<directory>/<key>/<name>.npz`` (one dataclass record each, written atomically).
    """

    def __init__(self, directory):
        self.directory = Path(directory)

    def path(self, key: str, name: str) -> Path:
        return self.directory / key / f"{name}.npz"

    def load(self, key: str, name: str, cls):
        """The stored record, or None if missing or unreadable (then it is recomputed)."""
        return load_record(self.path(key, name), cls)

    def save(self, key: str, name: str, obj) -> None:
        save_record(self.path(key, name), obj)


# ------------------------------------------------------------------- result types
def _flatten(obj, prefix, arrays, meta, kinds):
    """Split a result into arrays (exact, npz) and JSON metadata, recording the container kinds so
    that :func:`_unflatten` can rebuild it."""
    if isinstance(obj, np.ndarray):
        if obj.dtype == object:  # labels: stored as text, rebuilt as object arrays
            arrays[prefix] = obj.astype(str)
            kinds[prefix] = "object_array"
        else:
            arrays[prefix] = obj
        return
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        kinds[prefix] = f"dataclass:{type(obj).__module__}:{type(obj).__qualname__}"
        for f in dataclasses.fields(obj):
            _flatten(getattr(obj, f.name), f"{prefix}/{f.name}" if prefix else f.name, arrays, meta, kinds)
        return
    if isinstance(obj, dict) and all(isinstance(k, str) for k in obj) and any(
            isinstance(v, np.ndarray) or dataclasses.is_dataclass(v) for v in obj.values()):
        kinds[prefix] = "dict"
        meta[f"{prefix}/__keys__"] = list(obj)
        for k, v in obj.items():
            _flatten(v, f"{prefix}/{k}", arrays, meta, kinds)
        return
    if isinstance(obj, list) and any(isinstance(v, (list, np.ndarray)) or dataclasses.is_dataclass(v) for v in obj):
        kinds[prefix] = "list"
        meta[f"{prefix}/__len__"] = len(obj)
        for i, v in enumerate(obj):
            _flatten(v, f"{prefix}/{i}", arrays, meta, kinds)
        return
    meta[prefix] = _encode(obj)


def _encode(obj):
    """JSON-able form that keeps tuples apart from lists (nested too)."""
    if isinstance(obj, tuple):
        return {"__tuple__": [_encode(v) for v in obj]}
    if isinstance(obj, list):
        return [_encode(v) for v in obj]
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    return obj.item() if isinstance(obj, np.generic) else obj


def _decode(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__tuple__"}:
            return tuple(_decode(v) for v in obj["__tuple__"])
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_decode(v) for v in obj]
    return obj


def _unflatten(prefix, arrays, meta, kinds):
    import importlib

    kind = kinds.get(prefix)
    if kind is None:
        return arrays[prefix] if prefix in arrays else _decode(meta[prefix])
    if kind == "object_array":
        return arrays[prefix].astype(object)
    if kind == "dict":
        return {k: _unflatten(f"{prefix}/{k}", arrays, meta, kinds) for k in meta[f"{prefix}/__keys__"]}
    if kind == "list":
        return [_unflatten(f"{prefix}/{i}", arrays, meta, kinds) for i in range(meta[f"{prefix}/__len__"])]
    _, mod, qual = kind.split(":")
    cls = importlib.import_module(mod)
    for part in qual.split("."):
        cls = getattr(cls, part)
    sub = (prefix + "/") if prefix else ""
    fields = {f.name: _unflatten(f"{sub}{f.name}", arrays, meta, kinds) for f in dataclasses.fields(cls)}
    return cls(**fields)


def _summary(v) -> str:
    if isinstance(v, np.ndarray):
        return repr(v.tolist()) if v.size <= 8 and v.ndim <= 1 else f"{v.dtype}{list(v.shape)}"
    if isinstance(v, dict):
        return "{" + ", ".join(list(v)[:6]) + (", ..." if len(v) > 6 else "") + "}"
    text = repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


class ResultType:
    """Mixin for the package's result dataclasses: a compact ``repr``, ``save``/``load`` (exact,
    npz + JSON metadata with versions) and ``to_dataframe`` (long form; pandas is optional)."""

    _grid_fields = ()  # names of (K, S, ...) arrays for to_dataframe; set by subclasses

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}("]
        arrays, scalars = {}, []
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            if v is None:
                continue
            if isinstance(v, np.ndarray) and (v.size > 8 or v.ndim > 1):
                arrays.setdefault(tuple(v.shape), []).append(f.name)
            elif dataclasses.is_dataclass(v) and not isinstance(v, type):
                scalars.append(f"{f.name}={type(v).__name__}(...)")
            else:
                scalars.append(f"{f.name}={_summary(v)}")
        line = "  "
        for s in scalars:
            if len(line) + len(s) > 100 and line.strip():
                lines.append(line.rstrip(", "))
                line = "  "
            line += s + ", "
        if line.strip():
            lines.append(line.rstrip(", "))
        for shape, names in arrays.items():
            text = f"  arrays {list(shape)}: " + ", ".join(names)
            lines.append(text if len(text) <= 110 else text[:107] + "...")
        lines.extend(f"  {s}" for s in self.summary_lines())
        if len(lines) > 23:
            lines = lines[:22] + ["  ..."]
        return "\n".join(lines) + "\n)"

    def summary_lines(self) -> list:
        """A few lines of summary numbers for the ``repr`` (none by default)."""
        return []

    def save(self, path) -> Path:
        """Write this result to ``path`` (.npz): arrays exactly, everything else as JSON metadata
        with the package and library versions. :meth:`load` gives back an equal result."""
        arrays, meta, kinds = {}, {}, {}
        _flatten(self, "", arrays, meta, kinds)
        path = Path(path)
        header = {"meta": meta, "kinds": kinds, "versions": versions()}
        with atomic_path(path) as tmp:
            with open(tmp, "wb") as fh:
                np.savez(fh, __header__=np.array(json.dumps(header, default=repr)), **arrays)
        return path

    @classmethod
    def load(cls, path):
        """The result stored by :meth:`save` (ValueError if the file holds another type)."""
        with np.load(Path(path), allow_pickle=False) as z:
            header = json.loads(str(z["__header__"]))
            arrays = {k: z[k] for k in z.files if k != "__header__"}
        obj = _unflatten("", arrays, header["meta"], header["kinds"])
        if not isinstance(obj, cls):
            raise ValueError(f"{str(path)!r} holds a {type(obj).__name__}, not a {cls.__name__}")
        return obj

    def to_dataframe(self):
        """A pandas DataFrame in long form, one row per (ELR, seed) (pandas is an optional
        dependency: ``pip install pandas``)."""
        try:
            import pandas as pd
        except ImportError:
            raise ValueError("to_dataframe needs pandas: pip install pandas") from None
        return pd.DataFrame(self.long_table())

    def long_table(self) -> dict:
        """Columns of :meth:`to_dataframe`: ``elr``, ``seed`` and every (K, S) field, (K, S, n)
        fields as ``name_1 .. name_n``."""
        elrs = np.asarray(self.elrs)
        seeds = np.asarray(self.seeds)
        K_, S_ = elrs.size, seeds.size
        cols = {"elr": np.repeat(elrs, S_), "seed": np.tile(seeds, K_)}
        for name in self._grid_fields:
            v = getattr(self, name, None)
            if v is None:
                continue
            v = np.asarray(v)
            if v.shape[:2] != (K_, S_):
                continue
            if v.ndim == 2:
                cols[name] = v.reshape(-1)
            elif v.ndim == 3:
                for i in range(v.shape[2]):
                    cols[f"{name}_{i + 1}"] = v[:, :, i].reshape(-1)
        return cols
