"""Reports across runs: one table of every run against its teacher, plots, an HTML page.

    protege.report(["runs/"], out="report/", sort="accuracy", remeasure=False)

writes ``report/index.html`` (self-contained), ``report/report.md``, ``report/report.json`` and
PNG plots, and returns a :class:`~protege.report.api.Report`. Modules: ``collect`` (find and read
run folders, match teachers), ``table`` (the comparison table), ``pareto``, ``plots``, ``text``
(terminal and Markdown), ``html``, ``remeasure`` (re-time all models in one session), ``api``.

This package is also callable, so ``protege.report(...)`` is the function
:func:`protege.report.api.report` whether or not the package has been imported.
"""

import inspect
import sys
import types

from protege.report.api import Report, report

__all__ = ["report", "Report"]


class _CallableModule(types.ModuleType):
    # importing protege.report.* binds the package itself to the attribute protege.report,
    # where the lazy public API would otherwise put the function; calling it calls the function
    def __call__(self, *args, **kwargs):
        return report(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
__signature__ = inspect.signature(report)
