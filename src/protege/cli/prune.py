"""``protege prune MODEL --method magnitude|imp|gradual|structured|masks ... --out DIR``: a thin wrapper over :func:`protege.prune`."""

from __future__ import annotations

import argparse

from protege.cli.options import add_config_arguments, options_from_args
from protege.pruning.config import METHODS
from protege.recipes.prune import PruneConfig

__all__ = ["add_prune", "run_prune"]


def add_prune(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege prune``: the fields of PruneConfig, then those of every method's config."""
    added = add_config_arguments(parser, PruneConfig)
    for method, cls in METHODS.items():
        summary = (cls.__doc__ or "").strip().splitlines()[0].replace("``", "")
        group = parser.add_argument_group(f"--method {method}", summary)
        added |= add_config_arguments(parser, cls, recipes=False, group=group, skip=added)


def run_prune(args: argparse.Namespace) -> int:
    """Prune, then print the report and its pruning section."""
    from protege.recipes.prune import split_options

    cfg, method_cfg = split_options(options_from_args(args, [PruneConfig, *METHODS.values()]))  # before torch loads
    from protege.evaluation.report import format_report
    from protege.pruning.report import format_pruning
    from protege.recipes.prune import prune

    metrics = prune(config=cfg, method_config=method_cfg)
    print(format_report(metrics))
    print(format_pruning(metrics))
    print(f"saved to {metrics['model']}")
    return 0
