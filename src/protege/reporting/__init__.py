"""Reports across runs: one table of every run against its teacher, plots, an HTML page.

    protege.report(["runs/"], out="report/", sort="accuracy", remeasure=False)

writes ``report/index.html`` (self-contained), ``report/report.md``, ``report/report.json`` and
PNG plots, and returns a :class:`~protege.reporting.api.Report`. Modules: ``collect`` (find and read
run folders, match teachers), ``table`` (the comparison table), ``pareto``, ``plots``, ``text``
(terminal and Markdown), ``html``, ``remeasure`` (re-time all models in one session), ``api``.
It reads ``metrics.json`` files only.
"""

from protege.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {"report": "api", "Report": "api"})
