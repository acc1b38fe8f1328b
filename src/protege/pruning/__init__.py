"""Pruning transforms: unstructured magnitude, lottery tickets, structured removal, gradual schedules.

    from protege.pruning import prune_, MagnitudeConfig, StructuredConfig, make_permanent_, load_pruned
    prune_(model, MagnitudeConfig(sparsity=0.5, scope="global"))     # torch masks attached, in place
    prune_(model, StructuredConfig(keep_heads=6, keep_ffn=768), batches=batches)   # weights sliced
    protege.prune("runs/teacher", method="magnitude", sparsity=0.6, out="runs/p60")   # the recipe: files + report
    importance = decoder_importance(lm, calibration_batches(tok, texts))             # a causal LM (Minitron)
    prune_decoder_(lm, DecoderPruneConfig(keep_layers=24, keep_heads=6, keep_ffn=1024), importance)

Modules: ``config`` (one frozen config per method, in the table ``METHODS``, plus the run's),
``apply`` (``prune_``), ``magnitude``, ``lottery``, ``structured``, ``decoder`` (causal LMs), ``schedule`` and ``report``
(the pruning section of a run's report). The recipe is :mod:`protege.recipes.prune`.
"""

from protege.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "prune_": "apply",
    "PruneTarget": "config", "MagnitudeConfig": "config", "LotteryConfig": "config",
    "GradualConfig": "config", "StructuredConfig": "config", "MasksConfig": "config", "METHODS": "config",
    "prunable_weights": "magnitude", "magnitude_prune_": "magnitude", "random_prune_": "magnitude",
    "apply_masks_": "magnitude", "get_masks": "magnitude", "make_permanent_": "magnitude",
    "sparsity_report": "magnitude", "save_masks": "magnitude", "load_masks": "magnitude",
    "Ticket": "lottery", "find_ticket": "lottery", "snapshot": "lottery", "rewind_": "lottery", "reinitialized": "lottery",
    "structured_prune_": "structured", "importance_scores": "structured", "prune_heads_": "structured",
    "prune_ffn_": "structured", "drop_layers_": "structured", "layout": "structured", "load_pruned": "structured",
    "cubic_sparsity": "schedule", "GradualSchedule": "schedule", "pruning_callback": "schedule",
    "DecoderPruneConfig": "decoder", "DecoderImportance": "decoder", "decoder_importance": "decoder",
    "prune_decoder_": "decoder", "calibration_batches": "decoder", "choose_layers": "decoder", "decoder_layout": "decoder",
    "check_decoder_prune": "decoder",
})
