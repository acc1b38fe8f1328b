"""One training loop for every verb: a student, batches, and a function that returns loss terms.

AdamW with linear warmup and decay, gradient accumulation and clipping, length-grouped dynamic
padding, autocast where it pays, periodic evaluation with best-checkpoint keeping and early
stopping, JSONL logs of every loss term, and atomic checkpoints from which ``resume`` continues
to the same weights as an uninterrupted run (data order is a function of seed and epoch; RNG,
optimizer and schedule state are restored).

Several processes (``accelerate launch``, ``torchrun``) split each global batch; gradients are
averaged with one all-reduce, or the student is sharded with FSDP2 (:mod:`protege.distill.parallel`).
Checkpoints, ``best.pt`` and the returned model are full, unsharded weights either way.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from protege.data.batching import batch_indices, collate
from protege.distill.parallel import (all_reduce_grads, barrier, broadcast_flag, clip_grad_norm, full_model_state,
                                     full_optimizer_state, param_names, process_group, reduce_terms, shard, use_fsdp)
from protege.errors import ProtegeError

__all__ = ["TrainResult", "train", "resolve_device", "has_checkpoint", "process_group", "barrier"]

LossFn = Callable[[torch.nn.Module, dict], dict]


@dataclass
class TrainResult:
    """What a finished run reports: steps, time, evaluations and the best one."""

    steps: int
    seconds: float
    examples_per_s: float
    history: list[dict] = field(default_factory=list)
    best: dict | None = None
    best_step: int | None = None
    stopped_early: bool = False
    final_loss: float | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` -> first CUDA device if present, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ProtegeError(f"--device {name} asked for a GPU but none is available; use --device cpu")
    return torch.device(name)


def _autocast(device: torch.device, precision: str):
    if precision == "auto":
        precision = "bf16" if device.type == "cuda" and torch.cuda.is_bf16_supported() else "fp32"
    if precision == "fp32":
        return contextlib.nullcontext, None
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    scaler = torch.amp.GradScaler(device.type) if precision == "fp16" else None
    return (lambda: torch.autocast(device.type, dtype=dtype)), scaler


def _param_groups(modules, weight_decay):
    decay, no_decay = [], []
    seen = set()
    for module in modules:
        for name, p in module.named_parameters():
            if not p.requires_grad or id(p) in seen:
                continue
            seen.add(id(p))
            (no_decay if p.ndim < 2 or "norm" in name.lower() else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def has_checkpoint(work_dir: Path) -> bool:
    """Whether ``work_dir`` holds a resumable checkpoint."""
    return (Path(work_dir) / "checkpoints" / "latest").is_file()


def _save_checkpoint(work_dir: Path, state: dict, modules: dict, optimizer, scheduler, scaler, *, sharded: bool = False,
                     main: bool = True) -> None:
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


def _load_checkpoint(work_dir: Path, modules: dict, optimizer, scheduler, scaler, *, sharded: bool = False) -> dict:
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


def _save_best(work_dir: Path, model, *, sharded: bool = False, main: bool = True) -> None:
    state = full_model_state(model, sharded)
    if not main:
        return
    tmp = work_dir / ".best.pt.tmp"
    torch.save(state, tmp)
    os.replace(tmp, work_dir / "best.pt")


def train(model: torch.nn.Module, features: list[dict], *, settings, loss_fn: LossFn, work_dir: str | Path,
          pad_token_id: int, eval_fn: Callable[[torch.nn.Module], dict] | None = None, primary: str | None = None,
          extra_modules: torch.nn.Module | None = None, device: torch.device | None = None,
          log_name: str = "train_log.jsonl") -> TrainResult:
    """Train ``model`` (and ``extra_modules``, e.g. projections) on ``features``; return a :class:`TrainResult`.

    ``loss_fn(model, batch)`` returns a dict of scalar tensors with key ``"loss"`` (the one
    optimised); the others are logged. ``eval_fn(model)`` returns metrics, of which ``primary``
    (higher is better) picks the best checkpoint. ``settings`` is a
    :class:`~protege.distill.config.TrainSettings`. Checkpoints, ``best.pt`` and the JSONL log go
    to ``work_dir``.

    With several processes and ``settings.fsdp`` (or an Accelerate FSDP config) a sharded copy of
    ``model`` trains and every process evaluates it; at the end ``model`` (a plain module again
    on every process) receives the trained weights. ``extra_modules`` stay replicated.
    """
    from transformers import get_linear_schedule_with_warmup

    s = settings
    work_dir = Path(work_dir)
    rank, world = process_group()
    main = rank == 0
    if main:
        work_dir.mkdir(parents=True, exist_ok=True)
    device = device or resolve_device(s.device)
    sharded = use_fsdp(s, world)
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    np.random.seed(s.seed)
    net = shard(model, device, world) if sharded else model.to(device)  # the module that trains
    if sharded and main:
        print(f"[protege] FSDP2: the student is sharded over {world} processes (per transformer block); "
              "the teacher and projections are replicated", file=sys.stderr)
    modules = {"model": net} | ({"extra": extra_modules.to(device)} if extra_modules is not None else {})
    for m in modules.values():
        m.train()
    lengths = [len(f["input_ids"]) for f in features]
    n_batches = math.ceil(len(features) / s.batch_size)
    steps_per_epoch = math.ceil(n_batches / s.grad_accum)
    total_steps = s.max_steps or max(1, math.ceil(steps_per_epoch * s.epochs))
    optimizer = torch.optim.AdamW(_param_groups(modules.values(), s.weight_decay), lr=s.lr)
    scheduler = get_linear_schedule_with_warmup(optimizer, int(s.warmup_ratio * total_steps), total_steps)
    autocast, scaler = _autocast(device, s.precision)
    eval_every = s.eval_every or steps_per_epoch
    ckpt_every = s.checkpoint_every or eval_every

    state = {"step": 0, "epoch": 0, "group": 0, "best": None, "best_step": None, "bad_evals": 0, "history": [],
             "examples": 0, "seconds": 0.0}
    log_path = work_dir / log_name
    if s.resume and has_checkpoint(work_dir):
        state = _load_checkpoint(work_dir, modules, optimizer, scheduler, scaler, sharded=sharded)
        if main:
            _truncate_log(log_path, state["step"])
    elif log_path.exists() and main:
        log_path.unlink()
    params = [p for g in optimizer.param_groups for p in g["params"]]
    if sharded:  # FSDP reduce-scatters the student's gradients itself; only the projections need the all-reduce
        from torch.distributed.tensor import DTensor

        replicated = [p for p in params if not isinstance(p, DTensor)]
        if scaler and replicated:  # GradScaler.unscale_ cannot take DTensor and plain gradients in one list
            raise ProtegeError("--precision fp16 with --fsdp cannot unscale the replicated projections' gradients; "
                               "use --precision bf16 (or fp32)")
    else:
        replicated = params

    bar = _progress(s.progress and main, total_steps, state["step"])
    log = log_path.open("a") if main else open(os.devnull, "w")
    started = time.perf_counter() - state["seconds"]
    window_t, window_n = time.perf_counter(), 0
    last_loss, stopped_early = None, False
    speed = 0.0
    try:
        while state["step"] < total_steps and not stopped_early:
            order = batch_indices(lengths, s.batch_size, shuffle=True, seed=s.seed, epoch=state["epoch"],
                                  group_by_length=s.group_by_length)
            groups = [order[i:i + s.grad_accum] for i in range(0, len(order), s.grad_accum)]
            while state["group"] < len(groups) and state["step"] < total_steps:
                group = groups[state["group"]]
                n_group = sum(len(b) for b in group)
                totals: dict[str, torch.Tensor] = {}
                for idx in group:
                    local = idx[rank::world]  # each process takes its share of the global batch
                    share = len(local) / n_group
                    if not local:
                        if not sharded:
                            continue
                        local = idx[:1]  # FSDP's collectives need every process in every forward and backward
                    batch = {k: v.to(device, non_blocking=True) for k, v in collate([features[i] for i in local], pad_token_id).items()}
                    with autocast():
                        terms = loss_fn(net, batch)
                    weight = share * world  # the all-reduce and FSDP's reduce-scatter both average over processes
                    loss = terms["loss"] * weight
                    (scaler.scale(loss) if scaler else loss).backward()
                    for k, v in terms.items():
                        totals[k] = totals.get(k, 0.0) + v.detach().float() * share
                if world > 1 and replicated:
                    all_reduce_grads(replicated, world)
                if scaler:
                    scaler.unscale_(optimizer)
                if s.max_grad_norm > 0:
                    clip_grad_norm(params, s.max_grad_norm, sharded=sharded)
                if scaler:
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                state["step"] += 1
                state["group"] += 1
                state["examples"] += n_group
                window_n += n_group
                if bar is not None:
                    bar.update(1)
                if state["step"] % s.log_every == 0 or state["step"] == total_steps:
                    values = {k: float(v) for k, v in reduce_terms(totals, world).items()}  # the only host sync
                    last_loss = values["loss"]
                    now = time.perf_counter()
                    speed = window_n / max(now - window_t, 1e-9)
                    if bar is not None:
                        bar.set_postfix(loss=f"{last_loss:.4f}", ex_s=f"{speed:.1f}", refresh=False)
                    record = {"step": state["step"], "epoch": round(state["epoch"] + state["group"] / len(groups), 4),
                              "lr": scheduler.get_last_lr()[0], **{k: round(v, 6) for k, v in values.items()},
                              "examples_per_s": round(speed, 2)}
                    log.write(json.dumps(record) + "\n")
                    log.flush()
                    window_t, window_n = now, 0
                at_end = state["step"] == total_steps
                if eval_fn is not None and (state["step"] % eval_every == 0 or at_end):
                    if main or sharded:  # a sharded model's forward needs every process
                        stopped_early = _evaluate(net, eval_fn, primary, state, s, work_dir, log, bar, sharded=sharded, main=main)
                        for m in modules.values():
                            m.train()
                    stopped_early = broadcast_flag(stopped_early, world)
                if state["step"] % ckpt_every == 0 and not at_end and not stopped_early:
                    state["seconds"] = time.perf_counter() - started
                    if main or sharded:
                        _save_checkpoint(work_dir, state, modules, optimizer, scheduler, scaler, sharded=sharded, main=main)
                    barrier(world)
                if stopped_early:
                    break
            if state["group"] >= len(groups):
                state["epoch"] += 1
                state["group"] = 0
    finally:
        log.close()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - started
    if sharded:  # back to one plain module: callers save, score and prune ``model`` on every process
        model.load_state_dict(full_model_state(net, True, everywhere=True))
        model.to(device)
    barrier(world)
    if s.keep_best and state["best_step"] is not None and (work_dir / "best.pt").exists():
        model.load_state_dict(torch.load(work_dir / "best.pt", map_location=device, weights_only=True))
    model.eval()
    return TrainResult(steps=state["step"], seconds=seconds, examples_per_s=state["examples"] / max(seconds, 1e-9),
                       history=state["history"], best=state["best"], best_step=state["best_step"],
                       stopped_early=stopped_early, final_loss=last_loss)


def _evaluate(model, eval_fn, primary, state, s, work_dir, log, bar, *, sharded: bool = False, main: bool = True) -> bool:
    model.eval()
    with torch.inference_mode():
        metrics = eval_fn(model)
    record = {"step": state["step"], "eval": metrics}
    state["history"].append(record)
    log.write(json.dumps(record) + "\n")
    log.flush()
    value = metrics.get(primary) if primary else None
    if bar is not None and value is not None:
        bar.write(f"step {state['step']}: eval {primary} {value:.4f}", file=sys.stderr)
    if value is None:
        return False
    if state["best"] is None or value > state["best"][primary]:
        state["best"], state["best_step"], state["bad_evals"] = metrics, state["step"], 0
        if s.keep_best:
            _save_best(work_dir, model, sharded=sharded, main=main)
        return False
    state["bad_evals"] += 1
    return s.patience > 0 and state["bad_evals"] >= s.patience


def _truncate_log(path: Path, step: int) -> None:
    if not path.exists():
        return
    kept = [line for line in path.read_text().splitlines() if line.strip() and json.loads(line)["step"] <= step]
    tmp = path.with_suffix(".tmp")
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _progress(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, desc="train", unit="step", file=sys.stderr, dynamic_ncols=True,
                mininterval=0.5 if sys.stderr.isatty() else 10.0)
