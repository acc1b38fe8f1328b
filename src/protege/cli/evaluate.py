"""``protege evaluate MODEL --eval FILE [--compare TEACHER]`` (or ``--sts``/``--probe-*``/``--eval-text`` for general models)."""

from __future__ import annotations

import argparse

from protege.cli.options import add_config_arguments, config_from_args
from protege.recipes.evaluate import EvaluateConfig

__all__ = ["add_evaluate", "run_evaluate"]


def add_evaluate(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege evaluate`` (the fields of EvaluateConfig, the arguments of :func:`protege.evaluate`)."""
    add_config_arguments(parser, EvaluateConfig, recipes=False)


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print the report."""
    from protege.recipes.evaluate import evaluate

    cfg = config_from_args(EvaluateConfig, args, verb="evaluate")
    metrics = evaluate(config=cfg)
    if cfg.general:
        from protege.evaluation import format_general_report

        print(format_general_report(metrics))
    else:
        from protege.evaluation import format_report

        print(format_report(metrics))
    if cfg.out:
        print(f"metrics written to {cfg.out}")
    gates = (metrics.get("fidelity") or {}).get("gates")
    if gates:  # a failing budget exits 1 so CI can block the release
        import sys

        from protege.evaluation.gates import format_gates

        for line in format_gates(gates):
            print(line, file=sys.stderr if " failed:" in line else sys.stdout)
    from protege.cli.verdict import degenerate_status

    degenerate = degenerate_status(metrics, strict=cfg.strict)  # a warning line; 1 with --strict
    return 1 if gates and not gates["passed"] else degenerate
