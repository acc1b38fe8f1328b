"""Resumable checkpoints: model, optimizer, schedule, scaler and RNG state, written atomically.

A checkpoint is a folder ``checkpoints/step-N`` written under a temp name and renamed, then the
``latest`` pointer is replaced; so the newest complete checkpoint is always readable. Under FSDP
every process takes part in gathering the full state and the main process writes it, so the
layout is the same with or without sharding.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from protege.engine.parallel import full_model_state, full_optimizer_state, param_names
from protege.engine.staging import has_checkpoint

__all__ = ["has_checkpoint", "save_checkpoint", "load_checkpoint", "save_best", "latest_step"]


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
    root.mkdir(parents=True, exist_ok=True)
    name = f"step-{state['step']}"
    tmp = root / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    torch.save(module_states, tmp / "modules.pt")
    torch.save({"optimizer": optimizer_state, "scheduler": scheduler.state_dict(),
                "scaler": scaler.state_dict() if scaler else None}, tmp / "optim.pt")
    rng = {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state(),
           "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}
    torch.save(rng, tmp / "rng.pt")
    (tmp / "state.json").write_text(json.dumps(state))
    shutil.rmtree(root / name, ignore_errors=True)
    os.replace(tmp, root / name)
    pointer = root / ".latest.tmp"
    pointer.write_text(name)
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
    torch.save(state, tmp)
    os.replace(tmp, work_dir / "best.pt")
