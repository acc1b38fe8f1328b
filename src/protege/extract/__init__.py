"""Model extraction through a prediction API, and the defenses, measured (Krishna et al. 2020).

- :class:`Victim`: a classifier answering like an API (label, probs or top-k; watermark), in-process;
- :func:`serve`: the same behind HTTP (FastAPI + uvicorn) with API keys, budgets and rate limits;
- :func:`extract`: query a victim (HTTP or in-process) with RANDOM, WIKI or your own queries and
  train a pretrained student on its answers with protege's trainer;
- :mod:`~protege.extract.defenses`: a query detector, output hardening, watermark verification.

The HTTP pieces need ``pip install 'protege[extract]'``. The package is callable:
``protege.extract(...)`` is :func:`protege.extract.attack.extract`.
"""

from __future__ import annotations

import importlib

from protege._callable import make_callable

__all__ = ["Victim", "serve", "create_app", "RunningServer", "HttpVictim", "connect", "collect", "QueryLog",
           "make_queries", "extract", "ExtractConfig", "ServeConfig", "Watermark", "verify_watermark",
           "Detector", "train_detector", "detection_report", "harden", "targets_from_answers", "require_extra", "EXTRA"]

EXTRA = "extract"

_EXPORTS = {
    "Victim": "protege.extract.victim",
    "serve": "protege.extract.server",
    "create_app": "protege.extract.server",
    "RunningServer": "protege.extract.server",
    "HttpVictim": "protege.extract.client",
    "connect": "protege.extract.client",
    "collect": "protege.extract.client",
    "QueryLog": "protege.extract.querylog",
    "make_queries": "protege.extract.queries",
    "extract": "protege.extract.attack",
    "ExtractConfig": "protege.extract.config",
    "ServeConfig": "protege.extract.config",
    "Watermark": "protege.extract.defenses.watermark",
    "verify_watermark": "protege.extract.defenses.watermark",
    "Detector": "protege.extract.defenses.detector",
    "train_detector": "protege.extract.defenses.detector",
    "detection_report": "protege.extract.defenses.detector",
    "harden": "protege.extract.defenses.hardening",
    "targets_from_answers": "protege.extract.defenses.hardening",
}


def require_extra(*modules: str) -> None:
    """Import ``modules`` or fail with one line naming the extra that provides them."""
    from protege.errors import ProtegeError

    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            raise ProtegeError(f"the HTTP server and client need {name}, which is not installed; "
                               f"run: pip install 'protege[{EXTRA}]'") from None


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'protege.extract' has no attribute {name!r}")


def __dir__():
    return list(__all__)


make_callable(__name__, "protege.extract.attack", "extract")
