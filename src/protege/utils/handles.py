"""Python objects given to the verbs in place of paths: data tables and model objects, named by a handle.

Run configs hold text (paths, hub names), so that they stay CLI flags, YAML keys and JSON. When a
verb is called from Python with an object (a ``pandas.DataFrame``, a ``datasets.Dataset``, a list
of texts, a model and its tokenizer), the object is held here for the length of the call under a
*handle*: a readable name such as ``<pandas.DataFrame 1000 rows>`` that the config, the logs,
``metrics.json`` and ``protege_config.json`` record. The data and model loaders look a handle up
with :func:`lookup`. The CLI never makes one.
"""

from __future__ import annotations

import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelObject", "input_scope", "register", "lookup", "scratch_folder"]

_HELD: dict[str, object] = {}  # handle -> object, for the calls in progress
_FOLDERS: dict[str, Path] = {}  # handle -> its scratch folder (a model object saved for the loaders)
_SCOPES: list[list[str]] = []  # the handles each active scope registered


@dataclass(frozen=True, eq=False)
class ModelObject:
    """A model object and its tokenizer, given together (``teacher=model, tokenizer=tok``)."""

    model: object
    tokenizer: object


@contextmanager
def input_scope():
    """Hold the objects registered inside the block; on exit forget them and delete their scratch folders."""
    _SCOPES.append([])
    try:
        yield
    finally:
        for handle in _SCOPES.pop():
            _HELD.pop(handle, None)
            folder = _FOLDERS.pop(handle, None)
            if folder is not None:
                shutil.rmtree(folder.parent, ignore_errors=True)


def register(obj, description: str) -> str:
    """Hold ``obj`` for the current :func:`input_scope` and return its handle: ``<description>``, made unique.

    The same object given twice (``train=dd, eval=dd``) has one handle. Outside a scope nothing
    would release it, so that is a programming error.
    """
    if not _SCOPES:
        raise RuntimeError("register() needs an active input_scope()")
    same = next((h for h, held in _HELD.items() if held is obj or _same_model(held, obj)), None)
    if same is not None:
        return same
    handle, n = f"<{description}>", 1
    while handle in _HELD:
        n += 1
        handle = f"<{description} #{n}>"
    _HELD[handle] = obj
    _SCOPES[-1].append(handle)
    return handle


def _same_model(a, b) -> bool:
    return isinstance(a, ModelObject) and isinstance(b, ModelObject) and a.model is b.model and a.tokenizer is b.tokenizer


def lookup(name) -> object | None:
    """The object held under the handle ``name``, or None for anything else (a path, a hub name)."""
    if not isinstance(name, str) or not name.startswith("<"):
        return None
    return _HELD.get(name)


def scratch_folder(handle: str) -> Path:
    """A folder for ``handle`` (empty when first made), deleted when its scope ends."""
    if handle not in _HELD:
        raise KeyError(handle)
    folder = _FOLDERS.get(handle)
    if folder is None:
        folder = Path(tempfile.mkdtemp(prefix="protege-input-")) / "model"
        folder.mkdir()
        _FOLDERS[handle] = folder
    return folder
