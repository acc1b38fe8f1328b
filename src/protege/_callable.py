"""Capability packages that are also their verb: ``protege.distill(...)`` and ``protege.distill.DistillConfig``.

Importing ``protege.distill.api`` makes Python bind the *package* ``protege.distill`` as an
attribute of ``protege``, shadowing a function of the same name. Giving the package a module
class with ``__call__`` keeps both spellings working.
"""

import importlib
import sys
import types

__all__ = ["make_callable"]


def make_callable(package: str, target: str, function: str) -> None:
    """Make ``sys.modules[package](...)`` call ``target.function(...)`` (imported on first call)."""

    class _CallablePackage(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return getattr(importlib.import_module(target), function)(*args, **kwargs)

    _CallablePackage.__call__.__doc__ = f"Call :func:`{target}.{function}`."
    sys.modules[package].__class__ = _CallablePackage
