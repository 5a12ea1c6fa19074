"""Atomic file output: every file is written to a temporary name in its folder, then renamed.

A reader therefore sees either the previous complete file or the new complete file, never a
partial one, even if the process is interrupted (Ctrl-C, SIGTERM) in the middle of a write.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_text", "atomic_write_bytes", "atomic_path", "check_writable_dir", "save_record",
           "load_record"]


@contextlib.contextmanager
def atomic_path(path):
    """Yield a temporary path in the folder of ``path``; rename it onto ``path`` on success.

    On any exception (including KeyboardInterrupt) the temporary file is removed and
    ``path`` is left untouched.
    """
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        yield Path(tmp)
        os.replace(tmp, path)
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
    """Store a dataclass in one .npz file, atomically: its array fields exactly, the others
    (JSON-able) as metadata."""
    import dataclasses
    import json

    import numpy as np

    arrays, meta = {}, {}
    for f in dataclasses.fields(obj):
        v = getattr(obj, f.name)
        (arrays if isinstance(v, np.ndarray) else meta)[f.name] = v
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(fh, __meta__=np.array(json.dumps(meta)), **arrays)


def load_record(path, cls):
    """The ``cls`` instance stored by :func:`save_record`, or None if missing or unreadable."""
    import json

    import numpy as np

    path = Path(path)
    if not path.exists():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["__meta__"]))
            arrays = {k: z[k] for k in z.files if k != "__meta__"}
    except (OSError, ValueError, KeyError):
        return None
    return cls(**arrays, **meta)


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
