"""``protege report``'s options: one field is one flag and one keyword argument of :func:`protege.report`."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from protege.engine.config import MAX_SPEED_SECONDS
from protege.errors import ProtegeError
from protege.utils.config import Section, check_number, check_positive, option

__all__ = ["ReportConfig"]


@dataclass(frozen=True, kw_only=True)
class ReportConfig(Section):
    """``protege report RUN... --out DIR``: every run against its teacher, as a table, plots and an HTML page."""

    runs: tuple[str, ...] = option((), "run folders (with metrics.json), folders to search for them, or metrics .json files",
                                   positional=True, many=True, metavar="RUN", required=True)
    out: str = option(None, "folder for index.html, report.md, report.json and the plots", required=True, metavar="DIR")
    sort: str | None = option(None, "sort the table by this column, best first (accuracy, agreement, retention, latency_p50, "
                                    "speedup, parameters, disk_mb, sparsity, run, ...)", metavar="COLUMN")
    remeasure: bool = option(False, "re-time every model (and its teacher) on this machine, interleaved in one session")
    speed_seconds: float = option(10.0, f"time budget per model for --remeasure (at most {MAX_SPEED_SECONDS:g})")
    max_length: int | None = option(None, "max tokens for --remeasure (default: the one the runs were timed with)")
    plots: bool = option(True, "draw the PNG plots (needs matplotlib: pip install 'protege[report]')")
    title: str = option("protege report", "title of the page")

    def _check(self):
        if not self.runs:
            raise ProtegeError("name at least one run folder: protege report runs/ --out report/")
        if not self.out:
            raise ProtegeError("--out is required (a folder for the report)")
        out = Path(self.out)
        if out.exists() and not out.is_dir():
            raise ProtegeError(f"--out {self.out} is a file; the report is a folder (index.html, report.md, plots): "
                               "choose a folder name")
        parent = out if out.exists() else out.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise ProtegeError(f"--out {self.out}: cannot write in {parent}; choose a writable folder")
        check_number(self, "speed_seconds", low=0, high=MAX_SPEED_SECONDS, low_open=True)
        check_positive(self, "max_length", optional=True)
