"""``protege prune MODEL --method magnitude|imp|gradual|structured|masks ... --out DIR``: a thin wrapper over :func:`protege.prune.prune`."""

from __future__ import annotations

import argparse

from protege.cli.options import add_config_arguments
from protege.prune.config import METHODS, PruneConfig

__all__ = ["add_prune", "run_prune"]


class _OncePerFlag:
    """Adds each ``--flag`` once: the method configs share some (``--sparsity``, ``--scope`` ...)
    and each config would bring its own ``--config``."""

    def __init__(self, parser: argparse.ArgumentParser, group):
        self.parser, self.group = parser, group

    def add_argument(self, flag, *args, **kwargs):
        if flag not in self.parser._option_string_actions:
            self.group.add_argument(flag, *args, **kwargs)


def add_prune(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege prune``: the fields of PruneConfig, then those of every method's config."""
    parser.add_argument("model", nargs="?", default=argparse.SUPPRESS,
                        help="the dense classifier to prune (save_pretrained folder or hub id)")
    add_config_arguments(parser, PruneConfig)
    for method, cls in METHODS.items():
        group = parser.add_argument_group(f"--method {method}", (cls.__doc__ or "").strip().splitlines()[0])
        add_config_arguments(_OncePerFlag(parser, group), cls)


def run_prune(args: argparse.Namespace) -> int:
    """Prune, then print the report and its pruning section."""
    from protege.distill.config import load_recipe
    from protege.evaluate.report import format_report
    from protege.prune.api import prune
    from protege.prune.report import format_pruning

    recipe = load_recipe(args.config) if getattr(args, "config", None) else {}
    flags = {k: v for k, v in vars(args).items() if k not in ("config", "verb")}
    metrics = prune(**{**recipe, **flags})
    print(format_report(metrics))
    print(format_pruning(metrics))
    print(f"saved to {metrics['model']}")
    return 0
