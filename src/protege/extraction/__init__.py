"""Model extraction through a prediction API, and the defenses, measured (Krishna et al. 2020).

- :class:`Victim`: a classifier answering like an API (label, probs or top-k; watermark), in-process;
- :func:`serve`: the same behind HTTP (FastAPI + uvicorn) with API keys, budgets and rate limits;
- :func:`extract`: query a victim (HTTP or in-process) with RANDOM, WIKI or your own queries and
  train a pretrained student on its answers with protege's trainer;
- :mod:`~protege.extraction.defenses`: a query detector, output hardening, watermark verification.

The HTTP pieces need ``pip install 'protege[extract]'``. The attack recipe ``protege.extract(...)``
is :func:`protege.recipes.extract.extract`; this package holds its components and the defenses.
"""

from __future__ import annotations

import importlib

__all__ = ["Victim", "serve", "create_app", "RunningServer", "HttpVictim", "connect", "collect", "QueryLog",
           "make_queries", "extract", "ExtractConfig", "ServeConfig", "Watermark", "verify_watermark",
           "Detector", "train_detector", "detection_report", "harden", "targets_from_answers", "require_extra", "EXTRA"]

EXTRA = "extract"

_EXPORTS = {
    "Victim": "protege.extraction.victim",
    "serve": "protege.extraction.server",
    "create_app": "protege.extraction.server",
    "RunningServer": "protege.extraction.server",
    "HttpVictim": "protege.extraction.client",
    "connect": "protege.extraction.client",
    "collect": "protege.extraction.client",
    "QueryLog": "protege.extraction.querylog",
    "make_queries": "protege.data.queries",
    "extract": "protege.recipes.extract",
    "ExtractConfig": "protege.recipes.extract",
    "ServeConfig": "protege.extraction.config",
    "Watermark": "protege.extraction.defenses.watermark",
    "verify_watermark": "protege.extraction.defenses.watermark",
    "Detector": "protege.extraction.defenses.detector",
    "train_detector": "protege.extraction.defenses.detector",
    "detection_report": "protege.extraction.defenses.detector",
    "harden": "protege.extraction.defenses.hardening",
    "targets_from_answers": "protege.extraction.defenses.hardening",
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
    raise AttributeError(f"module 'protege.extraction' has no attribute {name!r}")


def __dir__():
    return list(__all__)

