"""Events of the training loop, and the callbacks that plug into them.

Schedules that act on the model while it trains (gradual pruning, lottery-ticket rewinding) and
user hooks (logging to another tool) are callbacks on the loop's events, not hooks on every
optimizer in the process. Each callback is a plain object with any of these fields set::

    on_step(step, model)        after the optimizer step ``step`` (1, 2, ...; counting resumed steps)
    on_log(record)              after a log record (losses, lr, examples/s) is written
    on_eval(step, metrics)      after a periodic evaluation
    on_checkpoint(step, path)   after a resumable checkpoint is written (main process)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Callback", "EVENTS", "emit"]

EVENTS = ("on_step", "on_log", "on_eval", "on_checkpoint")


@dataclass(frozen=True)
class Callback:
    """Functions called at the loop's events; leave out the ones you don't need."""

    on_step: Callable | None = None
    on_log: Callable | None = None
    on_eval: Callable | None = None
    on_checkpoint: Callable | None = None


def emit(callbacks: Sequence, event: str, *args) -> None:
    """Call ``event`` on every callback that has it (objects with methods of these names work too)."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
    for callback in callbacks:
        fn = getattr(callback, event, None)
        if fn is not None:
            fn(*args)
