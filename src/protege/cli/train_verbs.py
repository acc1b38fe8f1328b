"""``protege finetune`` and ``protege distill``: thin wrappers over the library functions."""

from __future__ import annotations

import argparse

from protege.cli.options import add_config_arguments, add_variant_group, config_from_args, options_from_args
from protege.cli.verdict import degenerate_status
from protege.recipes.distill.config import CacheConfig, DistillConfig, build_distill_config
from protege.recipes.finetune import FinetuneConfig

__all__ = ["add_finetune", "run_finetune", "add_distill", "run_distill", "add_cache", "run_cache"]


def add_finetune(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege finetune`` (the fields of FinetuneConfig)."""
    add_config_arguments(parser, FinetuneConfig)


def run_finetune(args: argparse.Namespace) -> int:
    """Fine-tune, then print the report."""
    cfg = config_from_args(FinetuneConfig, args, verb="finetune")  # bad flags fail before torch is imported
    from protege.recipes.finetune import finetune

    return _print_run(finetune(cfg), strict=cfg.strict)


def add_distill(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege distill``: the fields of DistillConfig, then each objective's options."""
    from protege.objectives.registry import OBJECTIVES, objective_config_class

    added = add_config_arguments(parser, DistillConfig)
    for name in OBJECTIVES:
        cls = objective_config_class(name)
        group = add_variant_group(parser, "objective", name, cls)
        added |= add_config_arguments(parser, cls, recipes=False, group=group, skip=added)


def run_distill(args: argparse.Namespace) -> int:
    """Distil, then print the student-vs-teacher report."""
    from protege.objectives.registry import OBJECTIVES, objective_config_class

    classes = [DistillConfig] + [objective_config_class(name) for name in OBJECTIVES]
    cfg = build_distill_config(options_from_args(args, classes))  # bad flags fail before torch is imported
    from protege.recipes.distill.api import distill

    return _print_run(distill(cfg), strict=cfg.strict)


def _print_run(metrics: dict, *, strict: bool = False) -> int:
    """Print a finished run's report (the main process of a multi-process run does; the others return {}).

    A degenerate model is a warning line on stderr; with ``strict`` the exit status is 1.
    """
    if metrics:
        from protege.evaluation.report import format_report

        print(format_report(metrics))
        print(f"saved to {metrics['model']}")
    return degenerate_status(metrics, strict=strict)


def add_cache(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege cache-teacher`` (the fields of CacheConfig)."""
    add_config_arguments(parser, CacheConfig)


def run_cache(args: argparse.Namespace) -> int:
    """Build (or find) the teacher-output cache and say where it is."""
    cfg = config_from_args(CacheConfig, args, verb="cache-teacher")
    from protege.recipes.distill.api import cache_teacher

    info = cache_teacher(cfg)
    print(f"teacher cache: {info['folder']} ({info['n']} examples, {info['bytes'] / 1e6:.1f} MB)")
    return 0
