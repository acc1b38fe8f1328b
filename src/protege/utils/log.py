"""One-line status messages on stderr, from the main process only (a multi-process run logs once)."""

from __future__ import annotations

import sys

__all__ = ["log"]


def log(msg: str) -> None:
    """Print ``[protege] msg`` to stderr on the main process."""
    from protege.utils.device import process_group

    if process_group()[0] == 0:
        print(f"[protege] {msg}", file=sys.stderr, flush=True)
