"""One training loop for every recipe: a model, batches, and a function that returns loss terms.

AdamW (or Adafactor, SGD) with linear warmup and a linear, cosine or constant schedule
(:mod:`protege.engine.optim`), gradient accumulation and clipping, length-grouped dynamic
padding, autocast where it pays, periodic evaluation with best-checkpoint keeping and early
stopping, JSONL logs of every loss term, and atomic checkpoints from which ``resume`` continues
to the same weights as an uninterrupted run (data order is a function of seed and epoch; RNG,
optimizer and schedule state are restored). Callbacks (:mod:`protege.engine.events`) see every
step, log record, evaluation and checkpoint.

Several processes (``accelerate launch``, ``torchrun``) split each global batch; gradients are
averaged with one all-reduce, or the student is sharded with FSDP2 (:mod:`protege.engine.parallel`).
Checkpoints, ``best.pt`` and the returned model are full, unsharded weights either way.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from protege.data.batching import batch_indices, collate
from protege.engine.cadence import Cadence
from protege.engine.checkpoints import has_checkpoint, latest_step, load_checkpoint, save_best, save_best_model, save_checkpoint
from protege.engine.events import emit
from protege.engine.optim import build_optimizer, build_schedule
from protege.engine.reporters import close_reporters, open_reporters
from protege.engine.parallel import all_reduce_grads, broadcast_flag, clip_grad_norm, full_model_state, reduce_terms, shard, use_fsdp
from protege.errors import ProtegeError
from protege.utils.device import barrier, process_group, resolve_device

__all__ = ["TrainResult", "train", "LossFn"]

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

    def summary(self) -> dict:
        """The ``training`` section of metrics.json."""
        return {"steps": self.steps, "seconds": round(self.seconds, 1), "examples_per_s": round(self.examples_per_s, 2),
                "best_step": self.best_step, "stopped_early": self.stopped_early, "final_loss": self.final_loss}


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


@dataclass
class _Loop:
    """Everything one run of the loop holds, so the steps below stay small functions."""

    s: object
    net: torch.nn.Module
    modules: dict
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: object
    autocast: Callable
    params: list
    replicated: list
    device: torch.device
    work_dir: Path
    rank: int
    world: int
    sharded: bool
    total_steps: int
    state: dict
    callbacks: Sequence = ()
    nonfinite: torch.Tensor | None = None
    lines: bool = False  # stderr is not a terminal: one plain line per log step instead of a progress bar
    model: torch.nn.Module | None = None  # the caller's module (``net`` itself unless sharded)
    write_model: Callable[[Path], None] | None = None  # writes ``model`` as a loadable folder (--save-best-model)

    @property
    def main(self) -> bool:
        return self.rank == 0


def train(model: torch.nn.Module, features: list[dict], *, settings, loss_fn: LossFn, work_dir: str | Path,
          pad_token_id: int, eval_fn: Callable[[torch.nn.Module], dict] | None = None, primary: str | None = None,
          extra_modules: torch.nn.Module | None = None, device: torch.device | None = None,
          log_name: str = "train_log.jsonl", callbacks: Sequence = (),
          write_model: Callable[[Path], None] | None = None) -> TrainResult:
    """Train ``model`` (and ``extra_modules``, e.g. projections) on ``features``; return a :class:`TrainResult`.

    ``loss_fn(model, batch)`` returns a dict of scalar tensors with key ``"loss"`` (the one
    optimised); the others are logged. ``eval_fn(model)`` returns metrics, of which ``primary``
    (higher is better) picks the best checkpoint. ``settings`` is a
    :class:`~protege.engine.config.TrainSettings` (or anything with its fields). Checkpoints,
    ``best.pt`` and the JSONL log go to ``work_dir``. ``callbacks`` see the loop's events
    (:mod:`protege.engine.events`); so do the reporters ``settings.report_to`` names
    (:mod:`protege.engine.reporters`: TensorBoard in ``work_dir/tensorboard``, wandb, mlflow).
    With ``settings.progress`` a bar shows on a terminal; elsewhere (a log file, CI) each log
    step is one plain line on stderr.

    A loss that becomes NaN or infinite stops the run with :class:`~protege.errors.ProtegeError`
    before anything is checkpointed or saved; the last good checkpoint stays resumable.

    With several processes and ``settings.fsdp`` (or an Accelerate FSDP config) a sharded copy of
    ``model`` trains and every process evaluates it; at the end ``model`` (a plain module again
    on every process) receives the trained weights. ``extra_modules`` stay replicated.

    Besides every ``checkpoint_every`` steps, a checkpoint is written once ``checkpoint_minutes``
    have passed since the last one (:mod:`protege.engine.cadence`). With ``save_best_model``,
    ``write_model(folder)`` (which writes ``model``, e.g. ``save_pretrained`` plus the tokenizer)
    keeps each new best as ``work_dir/best-model``. A Ctrl-C carries ``protege_interrupted``:
    ``(work_dir, what it lost)``, which the staging guard prints.
    """
    _check_best_model(settings, eval_fn, primary, write_model)
    loop = _setup(model, features, settings, Path(work_dir), extra_modules, device, callbacks)
    loop.model, loop.write_model = model, write_model
    s, state = loop.s, loop.state
    log_path = loop.work_dir / log_name
    if getattr(s, "resume", False) and has_checkpoint(loop.work_dir):
        loop.state = state = load_checkpoint(loop.work_dir, loop.modules, loop.optimizer, loop.scheduler, loop.scaler,
                                             sharded=loop.sharded)
        if loop.main:
            _truncate_log(log_path, state["step"])
    elif log_path.exists() and loop.main:
        log_path.unlink()
    lengths = [len(f["input_ids"]) for f in features]
    steps_per_epoch = math.ceil(math.ceil(len(features) / s.batch_size) / s.grad_accum)
    eval_every = s.eval_every or steps_per_epoch
    ckpt_every = s.checkpoint_every or eval_every
    cadence = Cadence.of(s, ckpt_every, loop.total_steps, step=state["step"], world=loop.world, device=loop.device)

    bar = _progress(s.progress and loop.main and sys.stderr.isatty(), loop.total_steps, state["step"])
    loop.lines = bool(s.progress and loop.main and bar is None)
    reporters = open_reporters(getattr(s, "report_to", "none"), loop.work_dir, config=s,
                               start_step=state["step"]) if loop.main else []
    loop.callbacks = (*loop.callbacks, *reporters)
    completed = False
    log = log_path.open("a") if loop.main else open(os.devnull, "w")
    started = time.perf_counter() - state["seconds"]
    window = [time.perf_counter(), 0]  # start time and examples of the current log window
    last_loss, stopped_early = None, False
    try:
        while state["step"] < loop.total_steps and not stopped_early:
            order = batch_indices(lengths, s.batch_size, shuffle=True, seed=s.seed, epoch=state["epoch"],
                                  group_by_length=s.group_by_length)
            groups = [order[i:i + s.grad_accum] for i in range(0, len(order), s.grad_accum)]
            while state["group"] < len(groups) and state["step"] < loop.total_steps:
                totals, n_group = _optimizer_step(loop, groups[state["group"]], features, loss_fn, pad_token_id)
                state["step"] += 1
                state["group"] += 1
                state["examples"] += n_group
                window[1] += n_group
                emit(loop.callbacks, "on_step", state["step"], loop.net)
                if bar is not None:
                    bar.update(1)
                at_end = state["step"] == loop.total_steps
                if state["step"] % s.log_every == 0 or at_end:
                    last_loss = _log_step(loop, totals, window, state["epoch"] + state["group"] / len(groups), log, bar)
                if eval_fn is not None and (state["step"] % eval_every == 0 or at_end):
                    _check_finite(loop)
                    if loop.main or loop.sharded:  # a sharded model's forward needs every process
                        stopped_early = _evaluate(loop, eval_fn, primary, log, bar)
                        for m in loop.modules.values():
                            m.train()
                    stopped_early = broadcast_flag(stopped_early, loop.world, device=loop.device)
                if not at_end and not stopped_early and cadence.due(state["step"]):
                    _check_finite(loop, weights=True)
                    state["seconds"] = time.perf_counter() - started
                    _checkpoint(loop)
                    cadence.written()
                if stopped_early:
                    break
            if state["group"] >= len(groups):
                state["epoch"] += 1
                state["group"] = 0
        _check_finite(loop, weights=True)
        completed = True
    except KeyboardInterrupt as err:  # what was lost, for the staging guard's message
        err.protege_interrupted = (loop.work_dir, cadence.lost(state["step"], latest_step(loop.work_dir) if loop.main else None))
        raise
    finally:
        log.close()
        if bar is not None:
            bar.close()
        close_reporters(reporters, failed=not completed)
    seconds = time.perf_counter() - started
    return _result(loop, model, seconds, last_loss, stopped_early)


def _setup(model, features, s, work_dir, extra_modules, device, callbacks) -> _Loop:
    rank, world = process_group()
    if rank == 0:
        work_dir.mkdir(parents=True, exist_ok=True)
    device = device or resolve_device(s.device)
    sharded = use_fsdp(s, world)
    if sharded and s.optimizer == "adafactor":  # on from an Accelerate FSDP config, not the flag
        raise ProtegeError("--optimizer adafactor cannot train a sharded (FSDP) student; use --optimizer adamw or sgd")
    torch.manual_seed(s.seed)
    random.seed(s.seed)
    np.random.seed(s.seed)
    net = shard(model, device, world) if sharded else model.to(device)  # the module that trains
    if sharded and rank == 0:
        print(f"[protege] FSDP2: the student is sharded over {world} processes (per transformer block); "
              "the teacher and projections are replicated", file=sys.stderr)
    modules = {"model": net} | ({"extra": extra_modules.to(device)} if extra_modules is not None else {})
    for m in modules.values():
        m.train()
    steps_per_epoch = math.ceil(math.ceil(len(features) / s.batch_size) / s.grad_accum)
    total_steps = s.max_steps or max(1, math.ceil(steps_per_epoch * s.epochs))
    optimizer = build_optimizer(s.optimizer, _param_groups(modules.values(), s.weight_decay), s.lr)
    scheduler = build_schedule(s.lr_scheduler, optimizer,
                               warmup_steps=int(s.warmup_ratio * total_steps), total_steps=total_steps)
    autocast, scaler = _autocast(device, s.precision)
    params = [p for g in optimizer.param_groups for p in g["params"]]
    replicated = params
    if sharded:  # FSDP reduce-scatters the student's gradients itself; only the projections need the all-reduce
        from torch.distributed.tensor import DTensor

        replicated = [p for p in params if not isinstance(p, DTensor)]
        if scaler and replicated:  # GradScaler.unscale_ cannot take DTensor and plain gradients in one list
            raise ProtegeError("--precision fp16 with --fsdp cannot unscale the replicated projections' gradients; "
                               "use --precision bf16 (or fp32)")
    state = {"step": 0, "epoch": 0, "group": 0, "best": None, "best_step": None, "bad_evals": 0, "history": [],
             "examples": 0, "seconds": 0.0}
    return _Loop(s=s, net=net, modules=modules, optimizer=optimizer, scheduler=scheduler, scaler=scaler, autocast=autocast,
                 params=params, replicated=replicated, device=device, work_dir=work_dir, rank=rank, world=world,
                 sharded=sharded, total_steps=total_steps, state=state, callbacks=tuple(callbacks),
                 nonfinite=torch.zeros((), dtype=torch.bool, device=device))


def _optimizer_step(loop: _Loop, group: list, features, loss_fn, pad_token_id) -> tuple[dict, int]:
    """Forward and backward over one accumulation group, then one optimizer step; returns the loss terms."""
    n_group = sum(len(b) for b in group)
    totals: dict[str, torch.Tensor] = {}
    for idx in group:
        local = idx[loop.rank::loop.world]  # each process takes its share of the global batch
        share = len(local) / n_group
        if not local:
            if not loop.sharded:
                continue
            local = idx[:1]  # FSDP's collectives need every process in every forward and backward
        batch = {k: v.to(loop.device, non_blocking=True)
                 for k, v in collate([features[i] for i in local], pad_token_id).items()}
        with loop.autocast():
            terms = loss_fn(loop.net, batch)
        loss = terms["loss"] * (share * loop.world)  # the all-reduce and FSDP's reduce-scatter both average over processes
        loop.nonfinite |= ~torch.isfinite(loss.detach())  # checked at the next host sync, not here
        (loop.scaler.scale(loss) if loop.scaler else loss).backward()
        for k, v in terms.items():
            totals[k] = totals.get(k, 0.0) + v.detach().float() * share
    if loop.world > 1 and loop.replicated:
        all_reduce_grads(loop.replicated, loop.world)
    if loop.scaler:
        loop.scaler.unscale_(loop.optimizer)
    if loop.s.max_grad_norm > 0:
        clip_grad_norm(loop.params, loop.s.max_grad_norm, sharded=loop.sharded)
    if loop.scaler:
        loop.scaler.step(loop.optimizer)
        loop.scaler.update()
    else:
        loop.optimizer.step()
    loop.scheduler.step()
    loop.optimizer.zero_grad(set_to_none=True)
    return totals, n_group


def _check_finite(loop: _Loop, *, weights: bool = False) -> None:
    """Stop before a NaN or infinite loss (or, with ``weights``, parameter) reaches a checkpoint or the saved model."""
    flag = loop.nonfinite.clone()
    if weights:
        for p in loop.params:
            local = p.to_local() if hasattr(p, "to_local") else p  # a DTensor shard under FSDP
            flag |= ~torch.isfinite(local.detach()).all()
    if loop.world > 1:
        import torch.distributed as dist

        flag = flag.to(torch.int32)
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    if bool(flag) and loop.scaler is None:  # fp16's GradScaler skips such steps by design
        kept = ("the last good checkpoint is kept: fix the setting and rerun with --resume"
                if has_checkpoint(loop.work_dir) else "no checkpoint was written yet")
        raise ProtegeError(f"the training loss or weights became NaN or infinite by step {loop.state['step']}; lower --lr "
                           f"(now {loop.s.lr:g}), check the data and --max-grad-norm; nothing was saved ({kept})")
    loop.nonfinite.zero_()


def _log_step(loop: _Loop, totals: dict, window: list, epoch: float, log, bar) -> float:
    values = {k: float(v) for k, v in reduce_terms(totals, loop.world).items()}  # the only host sync per log step
    now = time.perf_counter()
    speed = window[1] / max(now - window[0], 1e-9)
    if bar is not None:
        bar.set_postfix(loss=f"{values['loss']:.4f}", ex_s=f"{speed:.1f}", refresh=False)
    record = {"step": loop.state["step"], "epoch": round(epoch, 4), "lr": loop.scheduler.get_last_lr()[0],
              **{k: round(v, 6) for k, v in values.items()}, "examples_per_s": round(speed, 2)}
    _write_log(loop, log, record)
    window[0], window[1] = now, 0
    emit(loop.callbacks, "on_log", record)
    if loop.lines:
        print(f"[protege] {_log_line(record, loop.total_steps)}", file=sys.stderr, flush=True)
    return values["loss"]


def _log_line(record: dict, total: int) -> str:
    """One log record as a line for logs that are not a terminal: step/total, epoch, every loss term, lr, ex/s."""
    from protege.utils.fmt import fmt_num

    terms = " ".join(f"{k} {v:.4f}" for k, v in record.items() if k not in ("step", "epoch", "lr", "examples_per_s"))
    return (f"step {record['step']}/{total} epoch {record['epoch']:.2f} {terms} lr {record['lr']:.3g} "
            f"{fmt_num(record['examples_per_s'])} ex/s")


def _evaluate(loop: _Loop, eval_fn, primary, log, bar) -> bool:
    """Run ``eval_fn``, log it, keep the best weights; returns whether to stop early."""
    state, s = loop.state, loop.s
    loop.net.eval()
    with torch.inference_mode():
        metrics = eval_fn(loop.net)
    record = {"step": state["step"], "eval": metrics}
    state["history"].append(record)
    _write_log(loop, log, record)
    emit(loop.callbacks, "on_eval", state["step"], metrics)
    value = metrics.get(primary) if primary else None
    if bar is not None and value is not None:
        bar.write(f"step {state['step']}: eval {primary} {value:.4f}", file=sys.stderr)
    elif loop.lines and value is not None:
        print(f"[protege] step {state['step']}/{loop.total_steps} eval {primary} {value:.4f}", file=sys.stderr, flush=True)
    if value is None:
        return False
    if state["best"] is None or value > state["best"][primary]:
        state["best"], state["best_step"], state["bad_evals"] = metrics, state["step"], 0
        if s.keep_best:
            save_best(loop.work_dir, loop.net, sharded=loop.sharded, main=loop.main)
        if getattr(s, "save_best_model", False):
            _save_best_model(loop)
        return False
    state["bad_evals"] += 1
    return s.patience > 0 and state["bad_evals"] >= s.patience


def _check_best_model(s, eval_fn, primary, write_model) -> None:
    """``--save-best-model`` needs periodic evaluation (a best) and a way to write the model; refuse it before training."""
    if not getattr(s, "save_best_model", False):
        return
    if eval_fn is None or primary is None:
        raise ProtegeError("--save-best-model keeps the best evaluated model, but this run evaluates nothing while it "
                           "trains: pass --eval data (general distillation: --eval-every N)")
    if write_model is None:
        raise ProtegeError("--save-best-model is not available for this run (it writes no loadable model folder); drop it")


def _save_best_model(loop: _Loop) -> None:
    """Write the current (best) weights as ``work_dir/best-model`` through the caller's ``write_model``."""
    if loop.sharded:  # the caller's plain module receives the gathered weights; it is not the one training
        state = full_model_state(loop.net, True)
        if loop.main:
            loop.model.load_state_dict(state)
    if loop.main:
        save_best_model(loop.work_dir, loop.model, loop.write_model)


def _checkpoint(loop: _Loop) -> None:
    path = None
    if loop.main or loop.sharded:
        path = save_checkpoint(loop.work_dir, loop.state, loop.modules, loop.optimizer, loop.scheduler, loop.scaler,
                               sharded=loop.sharded, main=loop.main)
    barrier(loop.world)
    if path is not None:
        emit(loop.callbacks, "on_checkpoint", loop.state["step"], path)


def _result(loop: _Loop, model, seconds: float, last_loss, stopped_early: bool) -> TrainResult:
    state = loop.state
    if loop.sharded:  # back to one plain module: callers save, score and prune ``model`` on every process
        model.load_state_dict(full_model_state(loop.net, True, everywhere=True))
        model.to(loop.device)
    barrier(loop.world)
    best = loop.work_dir / "best.pt"
    if loop.s.keep_best and state["best_step"] is not None and best.exists():
        model.load_state_dict(torch.load(best, map_location=loop.device, weights_only=True))
    model.eval()
    return TrainResult(steps=state["step"], seconds=seconds, examples_per_s=state["examples"] / max(seconds, 1e-9),
                       history=state["history"], best=state["best"], best_step=state["best_step"],
                       stopped_early=stopped_early, final_loss=last_loss)


def _write_log(loop: _Loop, log, record: dict) -> None:
    """Append one JSON line to the run's log; a full disk ends the run with what it needs and what is kept."""
    from protege.engine.checkpoints import disk_full, no_space_error

    try:
        log.write(json.dumps(record) + "\n")
        log.flush()
    except OSError as err:
        if disk_full(err):
            raise no_space_error("writing the training log", 1 << 20, loop.work_dir) from None
        raise


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
                mininterval=0.5)
