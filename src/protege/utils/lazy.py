"""The one lazy-export style of every package face: names resolve to their module on first use.

A package ``__init__`` says::

    __getattr__, __dir__, __all__ = lazy_exports(__name__, {"compare_models": "api", "model_card": "card"})

so importing the package stays cheap (torch, transformers and pandas load only when a name that
needs them is used) and ``from protege.evaluation import compare_models`` still works.
"""

from __future__ import annotations

import importlib

__all__ = ["lazy_exports"]


def lazy_exports(package: str, table: dict[str, str]):
    """``(__getattr__, __dir__, __all__)`` for ``package``: ``name -> submodule`` (relative, or absolute with 'protege.')."""
    names = sorted(table)
    # an attribute named like a submodule would be shadowed by that submodule once it is imported
    clash = [n for n, target in table.items() if not target.startswith("protege.") and n == target.split(".")[0]]
    if clash:
        raise ImportError(f"{package}: exported names equal to submodules: {clash}")

    def module_of(name: str) -> str:
        target = table[name]
        return target if target.startswith("protege.") else f"{package}.{target}"

    def __getattr__(name):
        if name in table:
            return getattr(importlib.import_module(module_of(name)), name)
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    def __dir__():
        return names

    return __getattr__, __dir__, names
