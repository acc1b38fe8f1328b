"""``protege prune MODEL --method magnitude|imp|gradual|structured|masks ... --out DIR``: a thin wrapper over :func:`protege.prune`.

A causal-LM MODEL takes ``--method structured`` with ``--train-text`` (:mod:`protege.recipes.prune_decoder`).
"""

from __future__ import annotations

import argparse

from protege.cli.options import add_config_arguments, add_variant_group, options_from_args
from protege.pruning.config import METHODS
from protege.recipes.prune import PruneConfig

__all__ = ["add_prune", "run_prune"]


def add_prune(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege prune``: the fields of PruneConfig, then those of every method's config."""
    added = add_config_arguments(parser, PruneConfig)
    for method, cls in METHODS.items():
        group = add_variant_group(parser, "method", method, cls)
        added |= add_config_arguments(parser, cls, recipes=False, group=group, skip=added)


def run_prune(args: argparse.Namespace) -> int:
    """Prune, then print the report and its pruning section."""
    from protege.recipes.prune import split_options

    cfg, method_cfg = split_options(options_from_args(args, [PruneConfig, *METHODS.values()]))  # before torch loads
    from protege.evaluation import format_general_report
    from protege.evaluation.report import format_report
    from protege.pruning.report import format_pruning
    from protege.recipes.prune import prune

    metrics = prune(config=cfg, method_config=method_cfg)
    print(format_general_report(metrics) if metrics.get("objective") == "clm" else format_report(metrics))  # a causal LM
    print(format_pruning(metrics))
    print(f"saved to {metrics['model']}")
    from protege.cli.verdict import degenerate_status

    return degenerate_status(metrics, strict=cfg.strict)
