"""Output folders that are never half-written, and never lost.

A run works in a hidden staging folder beside ``--out`` (``.NAME.partial``) that also holds its
checkpoints; only a finished run is moved into place. The rules:

- ``--out`` may not be, contain or lie inside an input (a teacher folder, a data file's folder):
  replacing it would destroy the input.
- A staging folder with a resumable checkpoint is never thrown away silently: a rerun without
  ``--resume`` is refused (``--overwrite`` starts over on purpose).
- Nothing is created on disk before :meth:`Stage.begin`, which a recipe calls after validating its
  inputs; a run that fails before its first checkpoint leaves nothing behind.
- Replacing an existing ``--out`` is three renames (old away, new in, old deleted) after a
  completion marker is written, so a crash at any point is rolled forward by the next run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from protege.errors import NothingToDo, ProtegeError
from protege.utils.device import barrier, process_group

__all__ = ["Stage", "staging_dir", "prepare_output", "plan_stage", "finalize_output", "has_checkpoint", "recover_output",
           "check_not_overlapping"]

_SCRATCH = ("checkpoints", "best.pt")
_COMPLETE = ".complete"  # written into the staging folder when it holds a finished run


def staging_dir(out: str | Path) -> Path:
    """The hidden folder where a run into ``out`` works until it finishes."""
    out = Path(out)
    return out.parent / f".{out.name}.partial"


def _old_dir(out: Path) -> Path:
    return out.parent / f".{out.name}.old"


def has_checkpoint(work_dir: str | Path) -> bool:
    """Whether ``work_dir`` holds a resumable checkpoint."""
    return (Path(work_dir) / "checkpoints" / "latest").is_file()


def _checkpoint_step(work_dir: Path) -> str:
    try:
        return (work_dir / "checkpoints" / "latest").read_text().strip().removeprefix("step-")
    except OSError:
        return "?"


def check_not_overlapping(out: str | Path, inputs) -> None:
    """Refuse an ``out`` that is, contains or lies inside one of ``inputs`` (local paths; hub ids are skipped)."""
    out_r = Path(out).expanduser().resolve()
    for item in inputs:
        if not item or not isinstance(item, (str, os.PathLike)):
            continue
        path = Path(item).expanduser()
        if not path.exists():
            continue  # a hub id or a datasets name
        inp = path.resolve()
        if out_r == inp:
            raise ProtegeError(f"--out {out} is the input {item}; writing there would replace it: choose another --out")
        if inp.is_dir() and inp in out_r.parents:
            raise ProtegeError(f"--out {out} is inside the input folder {item}; choose an --out outside it")
        if out_r in inp.parents:
            raise ProtegeError(f"--out {out} contains the input {item}; replacing it would delete the input: "
                               "choose another --out")


def recover_output(out: str | Path) -> bool:
    """Finish (or undo) a replacement of ``out`` that a crash interrupted; returns whether a finished run was moved in.

    A staging folder marked complete is a finished run: it is moved into place. Otherwise an old
    result moved aside is put back.
    """
    out = Path(out)
    stage, old = staging_dir(out), _old_dir(out)
    recovered = False
    if (stage / _COMPLETE).is_file() and not out.exists():
        os.replace(stage, out)
        recovered = True
    (out / _COMPLETE).unlink(missing_ok=True)
    if old.exists():
        if out.exists():
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(old, out)
    return recovered


@dataclass
class Stage:
    """A planned run into ``out``: checked, but not created until :meth:`begin`."""

    out: Path
    path: Path
    resume: bool
    overwrite: bool
    main: bool = True
    world: int = 1
    _begun: bool = False

    def begin(self) -> Path:
        """Create the staging folder (after the inputs are validated); a stale one is reset only now.

        Every process of a multi-process run calls it; the main process creates, the others wait.
        """
        if self._begun:
            return self.path
        self._begun = True
        if self.main and not self.resume:
            shutil.rmtree(self.path, ignore_errors=True)  # a failed run's scratch, or one --overwrite starts over
            try:
                self.path.mkdir(parents=True)
            except OSError as err:
                raise ProtegeError(f"cannot create {self.path} ({err.strerror}); choose a writable --out") from None
        barrier(self.world)
        return self.path

    def discard_if_empty(self) -> None:
        """After a failure: remove the staging folder unless it holds a resumable checkpoint."""
        if self.main and self._begun and not self.resume and not has_checkpoint(self.path):
            shutil.rmtree(self.path, ignore_errors=True)

    @contextlib.contextmanager
    def guard(self):
        """Around a run: on any failure or Ctrl-C, leave nothing behind but a resumable checkpoint, and say which."""
        try:
            yield self
        except BaseException as err:
            self.discard_if_empty()
            if isinstance(err, KeyboardInterrupt) and self.main and self._begun:
                # the training loop says at which step and what is lost, when it trained in this folder
                where, lost = getattr(err, "protege_interrupted", (None, None))
                if lost and Path(where) == self.path:
                    print(f"[protege] interrupted {lost}", file=sys.stderr, flush=True)
                else:
                    what = (f"the checkpoint at step {_checkpoint_step(self.path)} is kept: run the same command with --resume"
                            if has_checkpoint(self.path) else "no checkpoint had been written yet, so nothing can be resumed")
                    print(f"[protege] interrupted; {what}", file=sys.stderr, flush=True)
            raise

    def __fspath__(self) -> str:
        return str(self.path)

    def __truediv__(self, name: str) -> Path:
        return self.path / name


def prepare_output(out: str | Path, *, overwrite: bool, resume: bool, inputs=()) -> Stage:
    """Check that ``out`` can be written and return its :class:`Stage`; nothing is written yet."""
    out = Path(out)
    check_not_overlapping(out, inputs)
    if recover_output(out) and resume:
        raise NothingToDo(f"{out} is complete: the run had finished and its interrupted move into place is now done; "
                          "nothing to resume")
    if out.exists() and not out.is_dir():
        raise ProtegeError(f"{out} exists and is a file; choose another --out")
    if out.exists() and not overwrite and not resume:
        raise ProtegeError(f"{out} already exists; pass --overwrite to replace it or choose another --out")
    stage = staging_dir(out)
    if resume:
        if not has_checkpoint(stage):
            raise ProtegeError(f"nothing to resume: no checkpoint in {stage}; run again without --resume")
    elif has_checkpoint(stage) and not overwrite:
        raise ProtegeError(f"an interrupted run into {out} has a checkpoint (step {_checkpoint_step(stage)}) in {stage}; "
                           "pass --resume to continue it, or --overwrite to discard it and start over")
    if not out.parent.exists() and not resume:
        parent = out.parent
        while not parent.exists():
            parent = parent.parent
        if not os.access(parent, os.W_OK):
            raise ProtegeError(f"cannot create {out}: {parent} is not writable; choose a writable --out")
    return Stage(out=out, path=stage, resume=resume, overwrite=overwrite)


def plan_stage(cfg, *, inputs=()) -> Stage:
    """The :class:`Stage` of a run whose config has ``out``, ``overwrite`` and ``resume`` (checked by the main process)."""
    rank, world = process_group()
    if rank == 0:
        stage = prepare_output(cfg.out, overwrite=cfg.overwrite, resume=cfg.resume, inputs=inputs)
    else:
        stage = Stage(out=Path(cfg.out), path=staging_dir(cfg.out), resume=cfg.resume, overwrite=cfg.overwrite, main=False)
    stage.world = world
    barrier(world)
    return stage


def finalize_output(stage: Stage | Path, out: str | Path) -> Path:
    """Drop scratch files and move the staging folder to ``out``, replacing it atomically if it exists."""
    stage = Path(stage.path if isinstance(stage, Stage) else stage)
    out = Path(out)
    for name in _SCRATCH:
        path = stage / name
        shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
    marker = stage / _COMPLETE
    marker.write_text("")
    _fsync_dir(stage)
    old = _old_dir(out)
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(out, old)
    os.replace(stage, out)
    _fsync_dir(out.parent)
    (out / _COMPLETE).unlink(missing_ok=True)
    shutil.rmtree(old, ignore_errors=True)
    return out


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
