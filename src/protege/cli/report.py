"""``protege report RUN... --out DIR``: every run against its teacher, as a table, plots and an HTML page."""

from __future__ import annotations

import argparse
import dataclasses
import sys

from protege.cli.options import add_config_arguments, config_from_args
from protege.reporting.config import ReportConfig

__all__ = ["add_report", "run_report"]


def add_report(parser: argparse.ArgumentParser) -> None:
    """Flags of ``protege report`` (the fields of ReportConfig, the arguments of :func:`protege.report`)."""
    add_config_arguments(parser, ReportConfig, recipes=False)


def run_report(args: argparse.Namespace) -> int:
    """Build the report; name each skipped folder on stderr; print the table."""
    cfg = config_from_args(ReportConfig, args, verb="report")
    from protege.reporting.api import report

    options = dataclasses.asdict(cfg)
    result = report(list(options.pop("runs")), **options)
    for path, reason in result.skipped:
        print(f"protege: skipped {path}: {reason}", file=sys.stderr)
    print(result.text)
    print(f"report written to {result.out / 'index.html'} (and report.md, report.json"
          + (f", {sum(f.suffix == '.png' for f in result.files)} plots)" if cfg.plots else ")"))
    return 0
