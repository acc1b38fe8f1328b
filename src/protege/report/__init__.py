"""Reports across runs: one table of every run against its teacher, plots, an HTML page.

    protege.report(["runs/"], out="report/", sort="accuracy", remeasure=False)

writes ``report/index.html`` (self-contained), ``report/report.md``, ``report/report.json`` and
PNG plots, and returns a :class:`~protege.report.api.Report`. Modules: ``collect`` (find and read
run folders, match teachers), ``table`` (the comparison table), ``pareto``, ``plots``, ``text``
(terminal and Markdown), ``html``, ``remeasure`` (re-time all models in one session), ``api``.

The package is callable: ``protege.report(...)`` is :func:`protege.report.api.report`.
"""

from protege._callable import make_callable

__all__ = ["report", "Report"]


def __getattr__(name):
    if name in __all__:
        from protege.report import api

        return getattr(api, name)
    raise AttributeError(name)


make_callable(__name__, "protege.report.api", "report")
