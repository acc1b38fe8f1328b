"""The exit status of a verb that measured a model: a degenerate model is a warning line, or with ``--strict`` exit 1."""

from __future__ import annotations

import sys

__all__ = ["degenerate_status"]


def degenerate_status(metrics: dict, *, strict: bool) -> int:
    """Print one warning line on stderr when ``metrics`` describe a degenerate model; return 1 with ``strict``, else 0.

    The finding is ``metrics["degenerate"]`` (see :func:`protege.evaluation.find_degenerate`); the
    other processes of a multi-process run get ``{}`` and print nothing.
    """
    from protege.evaluation import degenerate_warning

    warning = degenerate_warning(metrics or {})
    if warning is None:
        return 0
    print(f"protege: {warning}" + (" (--strict: exit 1)" if strict else " (--strict makes this exit 1)"), file=sys.stderr)
    return 1 if strict else 0
