"""``protege demo``: the built-in default end to end (see :mod:`protege.recipes.demo`)."""

from __future__ import annotations

import argparse

__all__ = ["add_demo", "run_demo"]


def add_demo(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege demo`` (the arguments of :func:`protege.run_demo`)."""
    parser.add_argument("--out", default="runs/demo", help="folder for teacher/, student/ and test_report.json (default runs/demo)")
    parser.add_argument("--epochs", type=float, default=1.0, help="epochs for each of the two training stages (default 1)")
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--student-layers", default="0,2,4")
    parser.add_argument("--overwrite", action="store_true", help="redo every stage instead of reusing finished ones")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True)


def run_demo(args: argparse.Namespace) -> int:
    """Run the demo and print the test-set report."""
    from protege.recipes.demo import run_demo as demo
    from protege.evaluation.report import format_report
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    result = demo(args.out, epochs=args.epochs, max_length=args.max_length, batch_size=args.batch_size,
                  student_layers=args.student_layers, overwrite=args.overwrite, progress=args.progress)
    print(format_report(result))
    print(f"models in {args.out}/teacher and {args.out}/student; report in {args.out}/test_report.json")
    return 0
