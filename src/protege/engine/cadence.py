"""When the training loop writes a resumable checkpoint, and what an interruption loses.

A checkpoint is due every ``--checkpoint-every`` steps (default: at each evaluation, which by
default is the end of an epoch) and also once ``--checkpoint-minutes`` have passed since the
last one (default 10), so a long epoch cannot lose more than that to a Ctrl-C or a crash.

Reading the clock is one ``time.monotonic()`` per step. Several processes must agree on the
step they checkpoint at (under FSDP writing one is a collective), so there the main process's
clock decides and its answer is broadcast, at the log steps only (``--log-every``, where the loop
synchronises anyway): no collective is added to the other steps.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from protege.engine.parallel import broadcast_flag

__all__ = ["Cadence", "duration"]


def duration(seconds: float) -> str:
    """``seconds`` in the unit a person reads best: ``45 s``, ``4.2 min``, ``1.5 h``."""
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


@dataclass
class Cadence:
    """The checkpoint schedule of one run of the loop: by steps (``every``) and by time (``seconds``; 0: off)."""

    every: int
    seconds: float
    total: int
    world: int = 1
    sync_every: int = 1
    device: object = None
    last: float = field(default_factory=lambda: time.monotonic())  # the last checkpoint (or the loop's start)
    started: float = field(default_factory=lambda: time.monotonic())
    first_step: int = 0  # the step this run of the loop started at (after a resume)

    @classmethod
    def of(cls, settings, every: int, total: int, *, step: int = 0, world: int = 1, device=None) -> "Cadence":
        """The schedule for ``settings`` (``checkpoint_minutes``, ``log_every``) and a step interval ``every``."""
        minutes = getattr(settings, "checkpoint_minutes", 0.0) or 0.0
        return cls(every=every, seconds=60.0 * minutes, total=total, world=world,
                   sync_every=getattr(settings, "log_every", 1) or 1, device=device, first_step=step)

    def due(self, step: int) -> bool:
        """Whether a checkpoint is due after optimizer step ``step``; every process gets the same answer.

        Every process must call it at the same steps (it may broadcast).
        """
        if step % self.every == 0:
            return True
        if not self.seconds:
            return False
        if self.world <= 1:
            return time.monotonic() - self.last >= self.seconds
        if step % self.sync_every:
            return False
        late = time.monotonic() - self.last >= self.seconds
        return broadcast_flag(late, self.world, device=self.device)  # the main process's clock decides

    def written(self) -> None:
        """A checkpoint was just written: the time interval starts again."""
        self.last = time.monotonic()

    def lost(self, step: int, kept: int | None) -> str:
        """What an interruption after ``step`` loses, given the step of the kept checkpoint (None: none yet)."""
        if kept is not None:
            since = step - kept
            redo = f" ({since} step{'s' if since != 1 else ''} since then will be trained again)" if since > 0 else ""
            return (f"at step {step} of {self.total}; the checkpoint at step {kept} is kept{redo}: "
                    "run the same command with --resume")
        trained = duration(time.monotonic() - self.started)
        nxt = (step // self.every + 1) * self.every
        when = [f"step {nxt} (--checkpoint-every)"] if nxt < self.total else []
        if self.seconds:
            when.append(f"in {duration(max(0.0, self.seconds - (time.monotonic() - self.last)))} (--checkpoint-minutes)")
        first = ("; the first checkpoint would have come at " + " or ".join(when)) if when else \
            "; no checkpoint was due before the end of the run"
        n = step - self.first_step
        gone = (f"the {n} steps trained ({trained}) are lost and " if n > 1 else
                f"the 1 step trained ({trained}) is lost and " if n else "")
        return f"at step {step} of {self.total}, before the first checkpoint: {gone}nothing can be resumed{first}"
