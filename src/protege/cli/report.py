"""``protege report RUN... --out DIR``: every run against its teacher, as a table, plots and an HTML page."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_report", "run_report"]


def add_report(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege report`` (the arguments of :func:`protege.report`)."""
    parser.add_argument("runs", nargs="+", metavar="RUN",
                        help="run folders (with metrics.json), folders to search for them, or metrics .json files")
    parser.add_argument("--out", required=True, metavar="DIR", help="folder for index.html, report.md, report.json and the plots")
    parser.add_argument("--sort", metavar="COLUMN",
                        help="sort the table by this column, best first (accuracy, agreement, retention, latency_p50, "
                             "speedup, parameters, disk_mb, sparsity, run, ...)")
    parser.add_argument("--remeasure", action="store_true",
                        help="re-time every model (and its teacher) on this machine, interleaved in one session")
    parser.add_argument("--speed-seconds", type=float, default=10.0, metavar="X", help="time budget per model for --remeasure")
    parser.add_argument("--max-length", type=int, metavar="N",
                        help="max tokens for --remeasure (default: the one the runs were timed with)")
    parser.add_argument("--plots", action=argparse.BooleanOptionalAction, default=True,
                        help="draw the PNG plots (needs matplotlib: pip install 'protege[report]')")
    parser.add_argument("--title", default="protege report", help="title of the page")


def run_report(args: argparse.Namespace) -> int:
    """Build the report; name each skipped folder on stderr; print the table."""
    from protege.reporting.api import report

    result = report(args.runs, out=args.out, sort=args.sort, remeasure=args.remeasure, speed_seconds=args.speed_seconds,
                    max_length=args.max_length, plots=args.plots, title=args.title)
    for path, reason in result.skipped:
        print(f"protege: skipped {path}: {reason}", file=sys.stderr)
    print(result.text)
    print(f"report written to {result.out / 'index.html'} (and report.md, report.json"
          + (f", {sum(f.suffix == '.png' for f in result.files)} plots)" if args.plots else ")"))
    return 0
