"""Atomic file writing (a temp file beside the target, fsync'd, then one rename), and protege's cache folder.

A reader never sees half a file and a crash never leaves one: either the old content or the new
is there. Files are written readable by others (0644, or the mode of the file replaced), unlike
``tempfile``'s private default. :func:`cache_root` and :func:`file_sha256` are what every cache
(assets, converted GGUF files, token counts) shares.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from pathlib import Path

__all__ = ["write_atomic", "write_text_atomic", "write_json_atomic", "jsonable", "cache_root", "file_sha256"]


def cache_root(cache_dir: str | os.PathLike | None = None) -> Path:
    """Where protege caches fetched and derived data: ``cache_dir``, ``$PROTEGE_CACHE`` or ``~/.cache/protege``."""
    return Path(cache_dir or os.environ.get("PROTEGE_CACHE") or Path.home() / ".cache" / "protege").expanduser()


def file_sha256(path: str | Path) -> str:
    """The sha256 hex digest of the file ``path``, read in 4 MiB blocks (large weight files fit no memory budget)."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and durably; missing parent folders are created."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """:func:`write_atomic` for UTF-8 text."""
    return write_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, obj) -> Path:
    """Write ``obj`` as indented, strict JSON to ``path`` atomically.

    NumPy scalars and arrays, tensors, paths and tuples are converted (:func:`jsonable`); NaN and
    infinities become null so the file stays strict JSON.
    """
    return write_text_atomic(path, json.dumps(jsonable(obj), indent=2, allow_nan=False) + "\n")


def jsonable(obj):
    """``obj`` with every value turned into something :func:`json.dumps` writes as strict JSON."""
    if isinstance(obj, dict):
        return {_key(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple, set)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, (str, int, bool)):
        return obj
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and getattr(obj, "ndim", None) == 0:  # numpy / torch scalars
        return jsonable(obj.item())
    if hasattr(obj, "tolist"):  # arrays and tensors
        return jsonable(obj.tolist())
    # losing a finished run's metrics to one odd value would be worse than a string
    return str(obj)


def _key(k):
    if hasattr(k, "item") and getattr(k, "ndim", None) == 0:
        k = k.item()
    if isinstance(k, (str, int, float, bool)) or k is None:
        return k
    return str(k)
