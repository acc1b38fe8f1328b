"""Evaluation and reports: task metrics, agreement, size, speed, metrics.json and model cards.

The package is callable: ``protege.evaluate(...)`` is :func:`protege.evaluate.api.evaluate`.
"""

from protege._callable import make_callable

__all__ = ["evaluate", "compare_models"]


def __getattr__(name):
    if name in __all__:
        from protege.evaluate import api

        return getattr(api, name)
    raise AttributeError(name)


make_callable(__name__, "protege.evaluate.api", "evaluate")
