"""Pruning: unstructured magnitude, lottery tickets, structured removal, gradual schedules, and their reports.

    from protege.prune import prune_, MagnitudeConfig, StructuredConfig, make_permanent_, load_pruned
    prune_(model, MagnitudeConfig(sparsity=0.5, scope="global"))     # torch masks attached, in place
    prune_(model, StructuredConfig(keep_heads=6, keep_ffn=768), batches=batches)   # weights sliced
    protege.prune.prune("runs/teacher", method="magnitude", sparsity=0.6, out="runs/p60")   # files + report

Modules: ``config`` (one frozen config per method, plus the run's), ``magnitude``, ``lottery``,
``structured``, ``schedule``, ``report`` (the pruning section of a run's report) and ``api``.
The package is callable: ``protege.prune(...)`` is :func:`protege.prune.api.prune`.
"""

import importlib

from protege._callable import make_callable

_EXPORTS = {
    "prune": "api", "prune_": "api",
    "PruneConfig": "config", "PruneTarget": "config", "MagnitudeConfig": "config", "LotteryConfig": "config",
    "GradualConfig": "config", "StructuredConfig": "config", "MasksConfig": "config", "METHODS": "config",
    "prunable_weights": "magnitude", "magnitude_prune_": "magnitude", "random_prune_": "magnitude",
    "apply_masks_": "magnitude", "get_masks": "magnitude", "make_permanent_": "magnitude",
    "sparsity_report": "magnitude", "save_masks": "magnitude", "load_masks": "magnitude",
    "Ticket": "lottery", "find_ticket": "lottery", "snapshot": "lottery", "rewind_": "lottery", "reinitialized": "lottery",
    "structured_prune_": "structured", "importance_scores": "structured", "prune_heads_": "structured",
    "prune_ffn_": "structured", "drop_layers_": "structured", "layout": "structured", "load_pruned": "structured",
    "cubic_sparsity": "schedule", "GradualSchedule": "schedule", "on_optimizer_steps": "schedule",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"protege.prune.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'protege.prune' has no attribute {name!r}")


def __dir__():
    return __all__


make_callable(__name__, "protege.prune.api", "prune")
