"""``protege export MODEL --eval FILE --out DIR`` and ``protege compress --teacher T ... --out DIR``."""

from __future__ import annotations

import argparse

from protege.cli.options import add_config_arguments, config_from_args

__all__ = ["add_export", "run_export", "add_compress", "run_compress"]


def add_export(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege export`` (the fields of ExportConfig, the arguments of :func:`protege.export`)."""
    from protege.recipes.export import ExportConfig

    add_config_arguments(parser, ExportConfig)


def run_export(args: argparse.Namespace) -> int:
    """Export, verify, print the variant table; exit 1 when no variant passed parity."""
    import sys

    from protege.deploy.report import format_variants
    from protege.recipes.export import ExportConfig, export

    metrics = export(config=config_from_args(ExportConfig, args, verb="export"))
    print(format_variants(metrics))
    print(f"saved to {metrics['model']}")
    if not metrics["export"]["recommended"]:
        print("protege: no variant passed parity (--min-agreement); the measurements are in metrics.json", file=sys.stderr)
        return 1
    return 0


def add_compress(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege compress`` (the fields of CompressConfig, the arguments of :func:`protege.compress`)."""
    from protege.recipes.compress import CompressConfig

    add_config_arguments(parser, CompressConfig)


def run_compress(args: argparse.Namespace) -> int:
    """Run the pipeline and print the candidate table; exit 1 when no candidate meets the budget (or, with
    ``--strict``, the shipped model is degenerate)."""
    import sys

    from protege.cli.verdict import degenerate_status
    from protege.recipes.compress import CompressConfig, compress, format_candidates

    cfg = config_from_args(CompressConfig, args, verb="compress")
    metrics = compress(config=cfg)
    print(format_candidates(metrics))
    if not metrics["compress"]["winner"]:
        print(f"protege: no candidate meets the budget ({metrics['compress']['budget']['text']}); closest: "
              f"{metrics['compress']['closest']}. The candidates are kept in {metrics['model']} (table: compress.json): "
              "run again with --resume and another budget to reuse them", file=sys.stderr)
        return 1
    print(f"shipped: {metrics['model']} ({metrics['compress']['winner']})")
    return degenerate_status(metrics, strict=cfg.strict)
