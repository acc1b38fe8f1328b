"""``protege evaluate MODEL --eval FILE [--compare TEACHER]``."""

from __future__ import annotations

import argparse

__all__ = ["add_evaluate", "run_evaluate"]


def add_evaluate(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege evaluate`` (the arguments of :func:`protege.evaluate`)."""
    parser.add_argument("model", help="classifier folder or hub id to evaluate")
    parser.add_argument("--eval", help="labeled data (TSV/CSV/JSONL/Parquet or datasets name)")
    parser.add_argument("--compare", metavar="TEACHER", help="a reference model (the teacher) measured side by side")
    parser.add_argument("--text-column")
    parser.add_argument("--text-pair-column")
    parser.add_argument("--label-column")
    parser.add_argument("--split", help="split of a datasets hub name (default validation)")
    parser.add_argument("--max-eval-examples", type=int, metavar="N")
    parser.add_argument("--max-length", type=int, default=128, metavar="N")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N")
    parser.add_argument("--speed", action=argparse.BooleanOptionalAction, default=True, help="measure CPU latency and throughput")
    parser.add_argument("--speed-seconds", type=float, default=10.0, metavar="X", help="time budget per model for the speed measurement")
    parser.add_argument("--out", metavar="FILE.json", help="also write the metrics to this JSON file")
    parser.add_argument("--device", default="auto")


def run_evaluate(args: argparse.Namespace) -> int:
    """Evaluate and print the report."""
    from protege.errors import ProtegeError
    from protege.evaluate.api import evaluate
    from protege.evaluate.report import format_report
    from protege.models.loading import quiet_transformers

    for name in ("max_length", "batch_size", "max_eval_examples"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ProtegeError(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
    quiet_transformers()
    kwargs = {k: v for k, v in vars(args).items() if k not in ("verb", "model")}
    metrics = evaluate(args.model, **kwargs)
    print(format_report(metrics))
    if args.out:
        print(f"metrics written to {args.out}")
    return 0
