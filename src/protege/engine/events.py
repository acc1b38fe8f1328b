"""Events of the training loop, and the callbacks that plug into them.

Schedules that act on the model while it trains (gradual pruning, lottery-ticket rewinding) and
user hooks (logging to another tool) are callbacks on the loop's events, not hooks on every
optimizer in the process. Each callback is a plain object with any of these fields set::

    on_step(step, model)        after the optimizer step ``step`` (1, 2, ...; counting resumed steps)
    on_log(record)              after a log record (losses, lr, examples/s) is written
    on_eval(step, metrics)      after a periodic evaluation
    on_checkpoint(step, path)   after a resumable checkpoint is written (main process)
    on_save(path, metrics)      after the finished run's folder is in place (``finish_run``, main process)

Verbs take them as ``callbacks=[...]`` (``protege.distill(..., callbacks=[MyCallback()])``);
reporters (:mod:`protege.engine.reporters`) are callbacks too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

__all__ = ["Callback", "EVENTS", "emit", "as_callbacks"]

EVENTS = ("on_step", "on_log", "on_eval", "on_checkpoint", "on_save")


@dataclass(frozen=True)
class Callback:
    """Functions called at the loop's events; leave out the ones you don't need."""

    on_step: Callable | None = None
    on_log: Callable | None = None
    on_eval: Callable | None = None
    on_checkpoint: Callable | None = None
    on_save: Callable | None = None


def as_callbacks(callbacks) -> tuple:
    """``callbacks`` as a tuple, each checked to have at least one event (a bare function or object is refused)."""
    if callbacks is None:
        return ()
    if not isinstance(callbacks, (list, tuple)):
        raise TypeError(f"callbacks must be a list of callback objects, got {type(callbacks).__name__}; "
                        "wrap one in a list: callbacks=[cb]")
    for i, callback in enumerate(callbacks):
        if not any(callable(getattr(callback, event, None)) for event in EVENTS):
            raise TypeError(f"callbacks[{i}] ({type(callback).__name__}) has none of the events {', '.join(EVENTS)}; "
                            "use protege.engine.Callback(on_log=...) or an object with such methods")
    return tuple(callbacks)


def emit(callbacks: Sequence, event: str, *args) -> None:
    """Call ``event`` on every callback that has it (objects with methods of these names work too)."""
    if event not in EVENTS:
        raise ValueError(f"unknown event {event!r}; one of {', '.join(EVENTS)}")
    for callback in callbacks:
        fn = getattr(callback, event, None)
        if fn is not None:
            fn(*args)
