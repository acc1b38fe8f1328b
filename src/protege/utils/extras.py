"""Optional dependencies: import them or fail with one line naming the extra that installs them."""

from __future__ import annotations

import importlib

from protege.errors import ProtegeError

__all__ = ["require_extra", "check_extra"]


def require_extra(extra: str, *modules: str, what: str = "this") -> None:
    """Import ``modules`` or raise :class:`ProtegeError` naming ``pip install 'protege[extra]'``."""
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ProtegeError(f"{what} needs {name}, which is not installed; run: pip install 'protege[{extra}]'") from None


def check_extra(extra: str, *modules: str, what: str = "this") -> None:
    """As :func:`require_extra`, but only look the modules up (no import): cheap enough for config validation."""
    import importlib.util

    for name in modules:
        if importlib.util.find_spec(name) is None:
            raise ProtegeError(f"{what} needs {name}, which is not installed; run: pip install 'protege[{extra}]'")
