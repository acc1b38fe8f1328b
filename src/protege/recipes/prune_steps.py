"""The steps of each pruning method inside ``protege prune``: each returns (pruned model, extra fields).

One row of :data:`METHOD_STEPS` per ``--method`` (the configs are in :data:`protege.pruning.config.METHODS`);
the contract test checks that every registered method has its step here.
"""

from __future__ import annotations

import copy
import shutil
from pathlib import Path

from protege.recipes.prune import PruneRun, _log  # the same recipe: its run state and log line

__all__ = ["METHOD_STEPS"]


def _importance_batches(run: PruneRun) -> list[dict]:
    from protege.data.batching import collate

    features = (run.features if run.features else run.eval_features)[: run.method_cfg.importance_examples]
    size = run.cfg.batch_size
    return [collate(features[i:i + size], run.pad) for i in range(0, len(features), size)]


# --- the methods: each returns (pruned model, extra fields for metrics["pruning"]) -------------

def _magnitude(run: PruneRun):
    from protege.pruning.magnitude import magnitude_prune_

    model = magnitude_prune_(copy.deepcopy(run.dense), run.method_cfg)
    _log(f"pruned {100 * run.method_cfg.sparsity:.1f}% of the candidate weights by magnitude ({run.method_cfg.scope} scope)")
    if run.cfg.needs_training:
        run.train(model, run.stage)
    return model, {}


def _masks(run: PruneRun):
    from protege.pruning.magnitude import apply_masks_

    model = apply_masks_(copy.deepcopy(run.dense), run.method_cfg.masks)
    if run.cfg.needs_training:
        run.train(model, run.stage)
    return model, {"masks_from": str(run.method_cfg.masks)}


def _structured(run: PruneRun):
    from protege.models.students import parse_layer_spec
    from protege.pruning.structured import layout, structured_prune_

    mcfg = run.method_cfg
    model = copy.deepcopy(run.dense)
    before = layout(model)
    batches = _importance_batches(run) if mcfg.importance == "gradient" and (mcfg.keep_heads or mcfg.keep_ffn) else None
    after = structured_prune_(model, mcfg, batches)
    _log(f"structure: {before} -> {after}")
    kept = parse_layer_spec(mcfg.keep_layers, before["layers"]) if mcfg.keep_layers else None
    if run.cfg.needs_training:
        run.train(model, run.stage, layer_map=kept)
    return model, {"structure": {"before": before, "after": after, "kept_layers": kept, "importance": mcfg.importance}}


def _imp(run: PruneRun):
    from protege.pruning.lottery import find_ticket, reinitialized, rewind_, snapshot
    from protege.pruning.magnitude import apply_masks_, random_prune_
    from protege.engine import Callback

    mcfg, rounds_dir = run.method_cfg, run.stage / "rounds"
    model, theta = copy.deepcopy(run.dense), None
    if mcfg.rewind_step:
        saved = {}
        _log(f"round 0: training the dense model, keeping its weights at step {mcfg.rewind_step} to rewind to")
        keep = Callback(on_step=lambda n, _net: saved.setdefault("w", snapshot(model)) if n == mcfg.rewind_step else None)
        run.train(model, rounds_dir / "round-0", callbacks=[keep])
        _clean(rounds_dir / "round-0")
        theta = saved["w"]
    reference = run.reference[run.primary]

    def train_round(m, r):
        _log(f"round {r}: sparsity {100 * mcfg.sparsity_at(r):.1f}%, training")
        run.train(m, rounds_dir / f"round-{r}")
        _clean(rounds_dir / f"round-{r}")

    ticket = find_ticket(model, mcfg, train=train_round, evaluate=lambda m: run.eval_fn(m)[run.primary],
                         reference=reference, rewind_to=theta, metric_name=run.primary)
    _log(ticket.stopped_because)
    lottery = {"reference": reference, "tolerance": mcfg.tolerance, "rewind_step": mcfg.rewind_step, "rounds": ticket.rounds,
               "stopped_because": ticket.stopped_because,
               "ticket": {"round": ticket.round, "sparsity": ticket.sparsity, "metric": ticket.metric, "matching": ticket.matching}}
    if mcfg.controls:
        start = theta or snapshot(run.dense)
        zeros = {k: int((~m).sum()) for k, m in ticket.masks.items()}
        controls = {"random_mask": random_prune_(rewind_(copy.deepcopy(run.dense), start), zeros, seed=run.cfg.seed),
                    "reinit": apply_masks_(rewind_(copy.deepcopy(run.dense), reinitialized(run.dense, seed=run.cfg.seed)),
                                           ticket.masks)}
        lottery["controls"] = {}
        for name, control in controls.items():
            _log(f"control: {name} at sparsity {100 * ticket.sparsity:.1f}%")
            run.train(control, rounds_dir / name)
            _clean(rounds_dir / name)
            lottery["controls"][name] = {"metric": run.eval_fn(control)[run.primary]}
    return model, {"lottery": lottery}


def _gradual(run: PruneRun):
    from protege.pruning.magnitude import magnitude_prune_
    from protege.pruning.schedule import GradualSchedule, planned_steps, pruning_callback

    mcfg = run.method_cfg
    model = copy.deepcopy(run.dense)
    schedule = GradualSchedule(mcfg, planned_steps(run.settings(), len(run.features)))
    schedule.step_(model, 0)
    _log(f"gradual pruning to {100 * mcfg.sparsity:.1f}% between steps {schedule.start} and {schedule.end}")
    # the best checkpoint would be an earlier, denser one: keep the final weights
    run.train(model, run.stage, keep_best=False, callbacks=[pruning_callback(schedule, model)])
    magnitude_prune_(model, mcfg.at(mcfg.sparsity))  # exact final sparsity, whatever the step count
    return model, {"schedule": {"initial_sparsity": mcfg.initial_sparsity, "final_sparsity": mcfg.sparsity,
                                "start": schedule.start, "end": schedule.end, "every": schedule.every,
                                "events": schedule.events()}}


METHOD_STEPS = {"magnitude": _magnitude, "masks": _masks, "structured": _structured, "imp": _imp, "gradual": _gradual}


def _clean(work_dir: Path) -> None:
    # a round's checkpoints are scratch; its train_log.jsonl stays
    shutil.rmtree(work_dir / "checkpoints", ignore_errors=True)
    (work_dir / "best.pt").unlink(missing_ok=True)
