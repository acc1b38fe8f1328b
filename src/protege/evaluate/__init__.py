"""Evaluation and reports: task metrics, agreement, size, speed, metrics.json and model cards."""

__all__ = ["evaluate", "compare_models"]


def __getattr__(name):
    if name in __all__:
        from protege.evaluate import api

        return getattr(api, name)
    raise AttributeError(name)
