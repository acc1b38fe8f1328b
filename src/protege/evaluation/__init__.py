"""Evaluation: task metrics, agreement, size, speed, and the single-run report and model card.

The verb ``protege.evaluate(...)`` is the recipe :func:`protege.recipes.evaluate.evaluate`.
"""

from protege.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "compare_models": "api", "task_eval_fn": "api", "eval_fingerprint": "fingerprint",
    "task_metrics": "metrics", "agreement": "metrics", "primary_metric": "metrics", "PROBLEM_TYPES": "metrics",
    "TASK_KEYS": "metrics", "LOWER_IS_BETTER": "metrics",
    "parameter_counts": "size", "disk_size": "size",
    "measure_speed": "speed", "compare_speed": "speed",
    "speedup_and_ratios": "report", "format_comparison": "report", "format_report": "report", "model_card": "report",
    "flatten_metrics": "report",
    "card_view": "card", "front_matter": "card", "card_footer": "card", "hub_id": "card", "portable_path": "card",
    "measure_pair": "general", "evaluate_general": "general", "model_kind": "general",
    "format_general_report": "general_report", "general_model_card": "general_report", "summary_line": "general_report",
    "fidelity_report": "fidelity", "measure_fidelity": "fidelity_run", "mcnemar_exact": "fidelity", "calibration": "fidelity",
    "ensemble_report": "ensemble",
    "parse_gates": "gates", "check_gates": "gates", "linear_cka": "internals", "train_token_counts": "rarity",
    "find_degenerate": "degenerate", "degenerate_warning": "degenerate",
})
