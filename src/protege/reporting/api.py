"""``protege.report``: compare runs against their teachers in one table, plots and an HTML page."""

from __future__ import annotations

import dataclasses
import datetime
from pathlib import Path

from protege.utils.io import write_atomic
from protege.errors import ProtegeError
from protege.utils.io import write_json_atomic
from protege.reporting.collect import collect_runs, teacher_folder
from protege.reporting.fidelity import fidelity_section
from protege.reporting.html import render_html
from protege.reporting.plots import make_plots, require_matplotlib
from protege.reporting.remeasure import remeasure as retime
from protege.reporting.remeasure import timing_max_length, timing_texts
from protege.reporting.table import ALIASES, Table, build_table, sort_keys, sort_rows
from protege.reporting.text import format_markdown, format_text

__all__ = ["report", "Report"]

# files a report writes; an earlier report's plots that are not rewritten are removed
_PLOT_PATTERNS = ("quality-vs-*.png", "curves-*.png", "sparsity.png", "extraction.png", "fidelity-*.png")


@dataclasses.dataclass(frozen=True)
class Report:
    """What :func:`report` made: the table, its terminal text, the files written, the runs skipped."""

    out: Path
    table: Table
    text: str
    files: list[Path]
    skipped: list[tuple[str, str]]

    @property
    def rows(self) -> list[dict]:
        """The table's raw values, one dict per run (column key -> number, text or None)."""
        return [{c.key: r.get(c.key) for c in self.table.columns} for r in self.table.rows]


def report(runs, *, out, sort: str | None = None, remeasure: bool = False, speed_seconds: float = 10.0,
           max_length: int | None = None, plots: bool = True, title: str = "protege report") -> Report:
    """Compare runs with their teachers; write ``out/index.html``, ``out/report.md``, ``report.json`` and PNGs.

    ``runs`` are run folders (with ``metrics.json``), folders to search for them recursively, or
    metrics JSON files (``protege evaluate --out``), one or a list. A folder that is missing or
    malformed is skipped and listed in the result's ``skipped`` (the others are still reported);
    with nothing left to report, ProtegeError. ``sort`` names a column (``accuracy``,
    ``latency_p50``, ``speedup``, ...; best first). ``remeasure`` re-times every model and its
    teacher on this machine, interleaved in one session (``speed_seconds`` each, at
    ``max_length``, default the one the runs were timed with), so latencies and speedups compare.
    ``plots`` needs matplotlib (``pip install 'protege[report]'``).
    """
    from protege.reporting.config import ReportConfig
    from protege.utils.config import build_config

    many = [runs] if isinstance(runs, (str, Path)) else list(runs)
    build_config(ReportConfig, dict(runs=many, out=out, sort=sort, remeasure=remeasure, speed_seconds=speed_seconds,
                                    max_length=max_length, plots=plots, title=title), verb="report")  # the CLI's checks
    out = Path(out)
    _check_out(out)
    if plots:
        require_matplotlib()
    found, skipped = collect_runs(runs, exclude=[out])
    if not found:
        why = "; ".join(f"{p} ({reason})" for p, reason in skipped) or "no run folders given"
        raise ProtegeError(f"nothing to report: {why}")
    if sort is not None and ALIASES.get(sort, sort) not in sort_keys(found):
        raise ProtegeError(f"cannot sort by {sort!r}; choose one of: {', '.join(sort_keys(found))}")

    timings = folders = None
    problems = []
    if remeasure:
        length = timing_max_length(found, max_length)
        folders = {r.name: teacher_folder(r, found) for r in found}
        problems = [f"{r.name}: not re-timed (its model folder is not here)" for r in found if r.folder is None]
        models = [r.folder for r in found if r.folder] + [f for f in folders.values() if f]
        timings, failed = retime(models, texts=timing_texts(found), max_length=length, speed_seconds=speed_seconds)
        problems += failed
    table = build_table(found, timings=timings, teacher_folders=folders)
    table.notes += problems
    if sort is not None:
        sort_rows(table, sort)
    figures = make_plots(table) if plots else []
    fidelity = fidelity_section(found, plots=plots)  # what each student lost, from metrics.json["fidelity"]

    from protege import __version__

    when = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    meta = f"{len(table.rows)} run{'s' if len(table.rows) != 1 else ''} · made {when} with protege {__version__}"
    if skipped:
        meta += f" · {len(skipped)} skipped"
    out.mkdir(parents=True, exist_ok=True)
    files = []
    for fig in figures + fidelity.plots:
        files.append(write_atomic(out / fig.file, fig.png))
    files.append(write_atomic(out / "report.md", format_markdown(table, title=title, plots=figures + fidelity.plots).encode()))
    write_json_atomic(out / "report.json", {"columns": [{"key": c.key, "label": c.label} for c in table.columns],
                                            "rows": [{c.key: r.get(c.key) for c in table.columns} for r in table.rows],
                                            "notes": table.notes, "skipped": [list(s) for s in skipped]})
    files.append(out / "report.json")
    html = render_html(table, title=title, plots=figures, skipped=skipped, meta=meta, sections=[fidelity.html])
    files.append(write_atomic(out / "index.html", html.encode()))
    written = {f.name for f in files}
    for pattern in _PLOT_PATTERNS:
        for stale in out.glob(pattern):
            if stale.name not in written:
                stale.unlink()
    return Report(out=out, table=table, text=format_text(table), files=files, skipped=skipped)


def _check_out(out: Path) -> None:
    if out.exists() and not out.is_dir():
        raise ProtegeError(f"--out {out} is a file; give a folder for the report")
    if (out / "metrics.json").exists():
        raise ProtegeError(f"--out {out} is a run folder; give a separate folder for the report, e.g. report/")
    if out.is_dir() and any(out.iterdir()) and not (out / "index.html").exists():
        raise ProtegeError(f"--out {out} is not empty and holds no earlier report; give a new folder")

