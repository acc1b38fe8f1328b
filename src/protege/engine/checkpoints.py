"""Resumable checkpoints: model, optimizer, schedule, scaler and RNG state, written atomically.

A checkpoint is a folder ``checkpoints/step-N`` written under a temp name and renamed, then the
``latest`` pointer is replaced; so the newest complete checkpoint is always readable. Under FSDP
every process takes part in gathering the full state and the main process writes it, so the
layout is the same with or without sharding.

A full disk while writing one ends the run with a one-line :class:`~protege.errors.ProtegeError`
saying about how much space the checkpoint needs; the half-written temp folder is removed and
the previous checkpoint stays the ``latest``.

With ``--save-best-model`` the best evaluated model is also kept as a loadable folder
(:data:`BEST_MODEL`), replaced whole at each new best.
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from protege.engine.parallel import full_model_state, full_optimizer_state, param_names
from protege.engine.staging import has_checkpoint
from protege.errors import ProtegeError

__all__ = ["has_checkpoint", "save_checkpoint", "load_checkpoint", "save_best", "save_best_model", "BEST_MODEL",
           "latest_step", "disk_full", "tensor_bytes", "no_space_error"]

BEST_MODEL = "best-model"  # --save-best-model's folder in the run's folder; it ships with the output


def disk_full(err: BaseException) -> bool:
    """Whether ``err`` says the disk (or the user's quota) is full."""
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


def tensor_bytes(obj) -> int:
    """The bytes of every tensor in a nested state (dicts, lists, tuples): what saving it writes, roughly."""
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return 0


def no_space_error(what: str, needed: int, work_dir: str | Path) -> ProtegeError:
    """The one-line error for a full disk while ``what``: the space needed, and what is kept to resume from."""
    step = latest_step(work_dir)
    kept = (f"the last checkpoint (step {step}) is kept in {work_dir}: free space, then run the same command with --resume"
            if step is not None else "no checkpoint had been written yet: free space, then run the command again")
    return ProtegeError(f"no space left on the disk while {what}: it needs about {_size(needed)} free; {kept}")


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def _save(obj, path: Path) -> None:
    # through a Python file: a full disk then raises OSError(ENOSPC), not torch's opaque writer error
    with open(path, "wb") as fh:
        torch.save(obj, fh)


def latest_step(work_dir: str | Path) -> int | None:
    """The step of the newest checkpoint in ``work_dir``, or None."""
    if not has_checkpoint(work_dir):
        return None
    return int((Path(work_dir) / "checkpoints" / "latest").read_text().strip().removeprefix("step-"))


def save_checkpoint(work_dir: Path, state: dict, modules: dict, optimizer, scheduler, scaler, *, sharded: bool = False,
                    main: bool = True) -> Path | None:
    """Write a checkpoint of the loop ``state`` and every module; returns its folder on the main process."""
    # under FSDP every process takes part in gathering the full state; the main one writes it
    module_states = {k: full_model_state(m, sharded and k == "model") for k, m in modules.items()}
    optimizer_state = full_optimizer_state(modules, optimizer, sharded)
    if not main:
        return
    root = work_dir / "checkpoints"
    name = f"step-{state['step']}"
    tmp = root / f".{name}.tmp"
    optim = {"optimizer": optimizer_state, "scheduler": scheduler.state_dict(), "scaler": scaler.state_dict() if scaler else None,
             "optimizer_class": type(optimizer).__name__}
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        _save(module_states, tmp / "modules.pt")
        _save(optim, tmp / "optim.pt")
        _save(rng, tmp / "rng.pt")
        (tmp / "state.json").write_text(json.dumps(state))
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)  # the previous checkpoint stays the latest
        if not disk_full(err):
            raise
        needed = tensor_bytes(module_states) + tensor_bytes(optim) + tensor_bytes(rng)
        raise no_space_error(f"writing the checkpoint at step {state['step']}", needed, work_dir) from None
    shutil.rmtree(root / name, ignore_errors=True)
    os.replace(tmp, root / name)
    pointer = root / ".latest.tmp"
    try:
        pointer.write_text(name)
    except OSError as err:
        pointer.unlink(missing_ok=True)  # "latest" still names the previous checkpoint, which is whole
        if not disk_full(err):
            raise
        raise no_space_error(f"writing the checkpoint at step {state['step']}", len(name), work_dir) from None
    os.replace(pointer, root / "latest")
    for old in root.glob("step-*"):
        if old.name != name:
            shutil.rmtree(old, ignore_errors=True)
    return root / name


def load_checkpoint(work_dir: Path, modules: dict, optimizer, scheduler, scaler, *, sharded: bool = False) -> dict:
    """Restore every module, the optimizer, schedule, scaler and RNG from the latest checkpoint; return the loop state."""
    root = work_dir / "checkpoints"
    ckpt = root / (root / "latest").read_text().strip()
    saved = torch.load(ckpt / "modules.pt", map_location="cpu", weights_only=False)
    optim = torch.load(ckpt / "optim.pt", map_location="cpu", weights_only=False)
    made_by = optim.get("optimizer_class", type(optimizer).__name__)
    if made_by != type(optimizer).__name__:  # its state would not fit (SGD has no moments, AdamW no momentum buffer)
        raise ProtegeError(f"the checkpoint in {work_dir} was trained with the {made_by} optimizer, this run asks for "
                           f"{type(optimizer).__name__}: resume with the --optimizer it started with, or pass --overwrite")
    if sharded:  # every process reads the full state and keeps its shard
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict, set_optimizer_state_dict

        full = StateDictOptions(full_state_dict=True)
        set_model_state_dict(modules["model"], saved["model"], options=full)
        if "extra" in modules:
            modules["extra"].load_state_dict(saved["extra"])
        names = param_names(modules, optimizer)
        o = optim["optimizer"]
        by_name = {"state": {names[i]: v for i, v in o["state"].items()},
                   "param_groups": [{**g, "params": [names[i] for i in g["params"]]} for g in o["param_groups"]]}
        # not strict: parameters the loss never reached (a pooler) have no AdamW state, as in optimizer.load_state_dict
        set_optimizer_state_dict(torch.nn.ModuleDict(modules), optimizer, by_name,
                                 options=StateDictOptions(full_state_dict=True, strict=False))
    else:
        for k, m in modules.items():
            m.load_state_dict(saved[k])
        optimizer.load_state_dict(optim["optimizer"])
    scheduler.load_state_dict(optim["scheduler"])
    if scaler and optim["scaler"]:
        scaler.load_state_dict(optim["scaler"])
    rng = torch.load(ckpt / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((ckpt / "state.json").read_text())


def save_best(work_dir: Path, model, *, sharded: bool = False, main: bool = True) -> None:
    """Keep the model's full weights as ``best.pt`` (restored at the end with ``keep_best``)."""
    state = full_model_state(model, sharded)
    if not main:
        return
    tmp = work_dir / ".best.pt.tmp"
    try:
        _save(state, tmp)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if not disk_full(err):
            raise
        raise no_space_error("keeping the best weights (best.pt)", tensor_bytes(state), work_dir) from None
    os.replace(tmp, work_dir / "best.pt")


def save_best_model(work_dir: Path, model, write) -> Path:
    """Keep ``model`` as the loadable folder ``work_dir/best-model``, written by ``write(folder)`` and swapped in whole.

    The previous best stays in place until the new one is complete; a full disk removes the
    half-written folder and raises the one-line error.
    """
    from protege.engine.finish import readable_by_others

    final, tmp, old = work_dir / BEST_MODEL, work_dir / f".{BEST_MODEL}.tmp", work_dir / f".{BEST_MODEL}.old"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        write(tmp)
        readable_by_others(tmp)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if not disk_full(err):
            raise
        raise no_space_error(f"keeping the best model ({BEST_MODEL})", tensor_bytes(model.state_dict()), work_dir) from None
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        os.replace(final, old)
    os.replace(tmp, final)
    shutil.rmtree(old, ignore_errors=True)
    return final
