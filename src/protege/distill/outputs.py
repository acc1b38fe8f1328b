"""Output folders that are never half-written.

A run works in a hidden staging folder beside ``--out`` (``.NAME.partial``) that also holds its
checkpoints; only a finished run is moved into place, in one rename. ``--resume`` picks the
staging folder up again.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from protege.errors import ProtegeError

__all__ = ["staging_dir", "prepare_output", "finalize_output", "write_atomic"]

_SCRATCH = ("checkpoints", "best.pt")


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: a temp file beside it, then one rename."""
    import tempfile

    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def staging_dir(out: str | Path) -> Path:
    """The hidden folder where a run into ``out`` works until it finishes."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def prepare_output(out: str | Path, *, overwrite: bool, resume: bool) -> Path:
    """Check ``out`` can be written and return a staging folder to work in."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise ProtegeError(f"{out} exists and is a file; choose another --out")
    if out.exists() and not overwrite and not resume:
        raise ProtegeError(f"{out} already exists; pass --overwrite to replace it or choose another --out")
    stage = staging_dir(out)
    if resume:
        if not (stage / "checkpoints" / "latest").is_file():
            raise ProtegeError(f"nothing to resume: no checkpoint in {stage}; run again without --resume")
        return stage
    shutil.rmtree(stage, ignore_errors=True)
    try:
        stage.mkdir(parents=True)
    except OSError as err:
        raise ProtegeError(f"cannot create {stage} ({err.strerror}); choose a writable --out") from None
    return stage


def finalize_output(stage: Path, out: str | Path) -> Path:
    """Drop scratch files and move the staging folder to ``out`` (replacing it if it exists)."""
    out = Path(out)
    for name in _SCRATCH:
        path = stage / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    old = out.parent / f".{out.name}.old"
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(stage, out)
    shutil.rmtree(old, ignore_errors=True)
    return out
