"""``protege.compress``: from a teacher to a shipped artifact, chosen by a budget.

For each candidate student: distil it from the teacher (``protege.distill``, the teacher's own
layers ``uniform:K``), optionally prune its FFN neurons / heads with distillation recovery
(``protege.prune --method structured``), then export, quantize and verify it
(``protege.export``, timed interleaved with the fp32 teacher). Every (candidate, variant) that
passes parity is a point; the budget picks the winner:

- ``--target-speedup X``: the best-quality point at least X times faster than the teacher (batch 1);
- ``--target-latency-ms X``: the best-quality point with batch-1 p50 at most X ms;
- ``--min-retention R``: the fastest point keeping at least R of the teacher's primary metric.

The default grid (at most 7 candidates), for a teacher of L layers: L/2, L/3 and L/6 layers
(DistilBERT halves; a third and a sixth are where int8 x fewer layers reach 8x and beyond), each
with the full FFN and with half of it (FFN width is the largest share of a block's CPU time),
plus the teacher itself exported (what a user gets without training). Or give ``--candidates
FILE.yaml``: a list of ``{layers: K, ffn: 0.5, heads: 1.0}`` (keep ratios; ``name`` optional).

Each stage writes its own folder under ``candidates/NAME/`` (``student``, ``pruned``, ``export``);
candidates with the same layer count share one distillation (the first one's ``student``), so
the default grid trains three students, not six;
an interrupted run keeps them (the staging folder holds a checkpoint marker) and ``--resume``
reuses every finished stage. A budget nothing meets keeps them too and ends with exit 1, the
table and the closest point: rerun with ``--resume`` and another budget to reuse the work.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

from protege.engine.config import Optimization, TrainSettings
from protege.errors import ProtegeError
from protege.utils.config import check_number, check_positive, option

from protege.recipes.common import takes_objects
from protege.recipes.compress_pick import candidate_points, format_candidates, pareto, pick_winner  # noqa: F401

__all__ = ["CompressConfig", "compress", "default_grid", "pick_winner", "format_candidates"]

_BUDGETS = ("target_speedup", "target_latency_ms", "min_retention")
_STATE = "compress_state.json"
# settings that change no stage: a resumed run may change them
_NOT_STAGES = set(_BUDGETS) | {"out", "resume", "overwrite", "progress", "keep_candidates", "checkpoint_minutes"}


@dataclass(frozen=True, kw_only=True)
class CompressConfig(TrainSettings):
    """``protege compress --teacher T --train F --eval F --out DIR`` and one budget."""

    teacher: str = option(None, "fine-tuned classifier to compress: save_pretrained folder or hub id", required=True)
    target_speedup: float | None = option(None, "budget: the best-quality model at least X times faster than the teacher "
                                                "(fp32 PyTorch, batch 1, timed in the same session)")
    target_latency_ms: float | None = option(None, "budget: the best-quality model with batch-1 p50 latency at most X ms")
    min_retention: float | None = option(None, "budget: the fastest model keeping at least R (e.g. 0.98) of the teacher's metric")
    candidates: str | None = option(None, "YAML list of candidates ({layers: K, ffn: keep ratio, heads: keep ratio}); "
                                          "default: L/2, L/3, L/6 layers, each with the FFN whole and halved", path=True)
    include_teacher: bool = option(True, "also export the teacher itself as a candidate (no training)")
    variants: str = option("auto", "export variants of every candidate (as protege export --variants)")
    calibration: str | None = option(None, "text for static int8 calibration (as protege export --calibration)", path=True)
    calibration_examples: int = option(256, "use at most N calibration examples")
    min_agreement: float = option(0.99, "parity of every exported variant with its fp32 PyTorch model (as protege export)")
    memory: bool = option(False, "measure each variant's peak memory (a fresh process each; slow on many candidates)")
    keep_candidates: bool = option(True, "keep every candidate's folders under DIR/candidates (the evidence of the table)")

    def _check(self):
        if not self.teacher:
            raise ProtegeError("--teacher is required: the fine-tuned classifier to compress")
        if not self.eval:
            raise ProtegeError("--eval is required: candidates are compared by their quality on it")
        given = [b for b in _BUDGETS if getattr(self, b) is not None]
        if len(given) != 1:
            raise ProtegeError("give exactly one budget: --target-speedup X, --target-latency-ms X or --min-retention R"
                               + (f" (got {', '.join('--' + b.replace('_', '-') for b in given)})" if given else ""))
        check_number(self, "target_speedup", low=0, low_open=True, optional=True)
        check_number(self, "target_latency_ms", low=0, low_open=True, optional=True)
        check_number(self, "min_retention", low=0, high=1.5, low_open=True, optional=True)
        check_number(self, "min_agreement", low=0, high=1, low_open=True)
        check_positive(self, "calibration_examples")
        if not self.speed:
            raise ProtegeError("compress picks by measured speed; drop --no-speed")
        if self.save_best_model:
            raise ProtegeError("--save-best-model is not available for protege compress (each candidate keeps its best "
                               "weights with --keep-best); use it with protege distill")
        from protege.recipes.export import parse_variants

        parse_variants(self.variants, calibration=bool(self.calibration))

    @property
    def budget(self) -> dict:
        """``{"kind", "value", "text"}`` of the one budget given."""
        kind = next(b for b in _BUDGETS if getattr(self, b) is not None)
        value = getattr(self, kind)
        text = {"target_speedup": f">= {value:g}x the teacher's batch-1 speed", "target_latency_ms": f"batch-1 p50 <= {value:g} ms",
                "min_retention": f">= {100 * value:g}% of the teacher's metric"}[kind]
        return {"kind": kind, "value": value, "text": text}


# --- candidates ---------------------------------------------------------------------------------

def default_grid(layers: int) -> list[dict]:
    """L/2, L/3 and L/6 layers (at least 1, distinct, fewer than L), each with FFN kept whole and halved."""
    counts = sorted({max(1, round(layers * f)) for f in (1 / 2, 1 / 3, 1 / 6)} - {layers}, reverse=True)
    return [{"layers": k, "ffn": ffn, "heads": 1.0} for k in counts for ffn in (1.0, 0.5)]


def _name(c: dict) -> str:
    name = f"L{c['layers']}-ffn{round(100 * c['ffn'])}"
    return name + (f"-heads{round(100 * c['heads'])}" if c["heads"] < 1 else "")


def _read_candidates(path: str, layers: int) -> list[dict]:
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as err:
        raise ProtegeError(f"--candidates {path}: not a readable YAML file ({str(err).splitlines()[0]})") from None
    if isinstance(data, dict):
        data = data.get("candidates")
    if not isinstance(data, list) or not data:
        raise ProtegeError(f"--candidates {path}: expected a list of {{layers: K, ffn: R, heads: R}}")
    out = []
    for i, item in enumerate(data):
        if not isinstance(item, dict) or set(item) - {"name", "layers", "ffn", "heads"}:
            raise ProtegeError(f"--candidates {path} item {i + 1}: keys are layers, ffn, heads and name, got {item!r}")
        out.append({"layers": item.get("layers", layers), "ffn": item.get("ffn", 1.0), "heads": item.get("heads", 1.0),
                    **({"name": str(item["name"])} if item.get("name") else {})})
    return out


def _check_candidates(cands: list[dict], layers: int) -> list[dict]:
    seen = set()
    for c in cands:
        k, ffn, heads = c["layers"], c["ffn"], c["heads"]
        if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= layers:
            raise ProtegeError(f"candidate {c}: layers must be an integer from 1 to the teacher's {layers}")
        for key, v in (("ffn", ffn), ("heads", heads)):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                raise ProtegeError(f"candidate {c}: {key} is a keep ratio in (0, 1], got {v!r}")
        c.setdefault("name", _name(c))
        if c["name"] in seen or c["name"] == "teacher":
            raise ProtegeError(f"candidate name {c['name']!r} is used twice (or is 'teacher'); give distinct names")
        seen.add(c["name"])
    return cands


# --- the pipeline -------------------------------------------------------------------------------

@takes_objects
def compress(config: CompressConfig | None = None, **kwargs) -> dict:
    """Compress ``teacher`` into ``out`` under one budget; returns the metrics (``metrics["compress"]``).

    Keyword arguments are the fields of :class:`CompressConfig` (the flags of ``protege
    compress``). When no candidate meets the budget, nothing is moved to ``out``: the returned
    metrics have ``compress["winner"] = None`` and ``model`` names the kept staging folder.
    """
    from protege.engine import plan_stage
    from protege.models.loading import quiet_transformers
    from protege.recipes.common import make_config
    from protege.utils.extras import require_extra

    cfg = make_config(CompressConfig, config, kwargs)
    require_extra("export", "onnx", "onnxruntime", what="protege compress")
    quiet_transformers()
    stage = plan_stage(cfg, inputs=[cfg.teacher, cfg.train, cfg.eval, cfg.candidates, cfg.calibration])
    with stage.guard():
        cands, primary = _prepare(cfg)
        root = stage.begin()
        _state(cfg, root)
        results = _run_candidates(cfg, root, cands)
        return _finish(cfg, stage, results, primary)


def _prepare(cfg: CompressConfig) -> tuple[list[dict], str]:
    """Check the teacher, the data and the candidates before anything is written."""
    from protege.data import load_run_data
    from protege.evaluation.metrics import primary_metric
    from protege.models import check_max_length, load_classifier, problem_type_of
    from protege.models.adapters import num_layers

    teacher = load_classifier(cfg.teacher, role="teacher")
    check_max_length(teacher.config, cfg.max_length)
    load_run_data(cfg, labels_required=False)  # readable, with the columns it needs
    if cfg.calibration:
        from protege.recipes.export import load_calibration

        load_calibration(cfg)
    layers = num_layers(teacher.config)
    cands = _read_candidates(cfg.candidates, layers) if cfg.candidates else default_grid(layers)
    cands = _check_candidates(cands, layers)
    if cfg.include_teacher:
        cands.append({"name": "teacher", "layers": layers, "ffn": 1.0, "heads": 1.0})
    if not cands:
        raise ProtegeError(f"no candidate to try: the teacher has {layers} layer(s); pass --candidates or --include-teacher")
    return cands, primary_metric(problem_type_of(teacher.config))


def _state(cfg: CompressConfig, root: Path) -> None:
    """Record the stage settings (and a checkpoint marker, so an interruption keeps the work); on --resume, check them."""
    from protege.utils.io import write_json_atomic, write_text_atomic

    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in _NOT_STAGES}
    digest = hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]
    file = root / _STATE
    if cfg.resume and file.is_file():
        old = json.loads(file.read_text())
        if old.get("fingerprint") != digest:
            changed = sorted(k for k in settings if old.get("settings", {}).get(k) != settings[k])
            raise ProtegeError(f"--resume: settings that shape the candidates changed since the interrupted run "
                               f"({', '.join(changed) or 'unknown'}); restore them or pass --overwrite to start over")
    write_json_atomic(file, {"fingerprint": digest, "settings": settings})
    marker = root / "checkpoints" / "latest"
    if not marker.is_file():
        write_text_atomic(marker, "step-0\n")


def _mark(root: Path, done: int) -> None:
    from protege.utils.io import write_text_atomic

    write_text_atomic(root / "checkpoints" / "latest", f"step-{done}\n")


def _shared(cfg: CompressConfig, *names_from) -> dict:
    names = {f.name for cls in names_from for f in dataclasses.fields(cls)}
    return {k: getattr(cfg, k) for k in names if hasattr(cfg, k)}


def _run_candidates(cfg: CompressConfig, root: Path, cands: list[dict]) -> dict[str, dict]:
    from protege.engine.config import TrainData
    from protege.engine.staging import has_checkpoint, staging_dir
    from protege.models import load_config
    from protege.models.adapters import ffn_size_key, num_heads
    from protege.recipes.distill.api import distill
    from protege.recipes.export import export
    from protege.recipes.prune import prune
    from protege.utils.log import log

    tconf = load_config(cfg.teacher)
    train = {**_shared(cfg, TrainData, Optimization), "speed": False}
    results, done, started = {}, 0, time.perf_counter()
    spent: list[float] = []

    def run_stage(cand, what, out: Path, fn, resumable=False, **kw):
        nonlocal done
        if (out / "metrics.json").is_file():
            log(f"[{cand['name']}] {what}: reusing {out}")
            return json.loads((out / "metrics.json").read_text())
        eta = f", ETA {_eta(spent, len(cands) - len(results))}" if spent else ""
        log(f"candidate {len(results) + 1}/{len(cands)} {cand['name']}: {what}{eta}")
        resume = resumable and has_checkpoint(staging_dir(out))  # prune and export start their stage over
        metrics = fn(**kw, out=str(out), **({"resume": True} if resume else {"overwrite": True}))
        done += 1
        _mark(root, done)
        return metrics

    students: dict[int, Path] = {}  # one distillation per layer count, shared by the candidates that prune it differently
    for cand in cands:
        t0, ran = time.perf_counter(), done
        folder = root / "candidates" / cand["name"]
        source = cfg.teacher
        if cand["name"] != "teacher" and cand["layers"] < int(tconf.num_hidden_layers):
            student = students.setdefault(cand["layers"], folder / "student")
            if student.parent != folder:
                log(f"[{cand['name']}] distill: sharing the {cand['layers']}-layer student of {student.parent.name}")
            else:
                run_stage(cand, f"distill ({cand['layers']} layers)", student, distill, True, teacher=cfg.teacher,
                          student_layers=f"uniform:{cand['layers']}", **train)
            source = str(student)
        keep = {}
        if cand["ffn"] < 1:
            keep["keep_ffn"] = max(1, round(cand["ffn"] * int(getattr(tconf, ffn_size_key(tconf)))))
        if cand["heads"] < 1:
            keep["keep_heads"] = max(1, round(cand["heads"] * num_heads(tconf)))
        if keep:
            run_stage(cand, "prune + recover " + ", ".join(f"{k}={v}" for k, v in keep.items()), folder / "pruned", prune,
                  model=source, method="structured", recover="distill", **keep, **train)
            source = str(folder / "pruned")
        results[cand["name"]] = run_stage(cand, "export + quantize + verify", folder / "export", export, model=source,
                                      compare=cfg.teacher, **_export_options(cfg))
        if done > ran:  # a candidate whose stages were all reused says nothing about the time left
            spent.append(time.perf_counter() - t0)
    log(f"all {len(cands)} candidates measured in {time.perf_counter() - started:.0f} s")
    return results


def _export_options(cfg: CompressConfig) -> dict:
    keys = ("eval", "text_column", "text_pair_column", "label_column", "split", "max_eval_examples", "max_length", "speed",
            "speed_seconds", "variants", "calibration", "calibration_examples", "min_agreement", "memory")
    return {k: getattr(cfg, k) for k in keys}


def _eta(spent: list[float], remaining: int) -> str:
    seconds = sum(spent) / len(spent) * max(remaining, 0)
    return f"{seconds / 60:.0f} min" if seconds >= 90 else f"{seconds:.0f} s"


def _finish(cfg: CompressConfig, stage, results: dict, primary: str) -> dict:
    from protege.deploy.report import export_card
    from protege.engine import finish_run
    from protege.utils.io import write_json_atomic

    points = candidate_points(results, primary)
    winner, closest = pick_winner(points, cfg.budget)
    section = {"budget": cfg.budget, "primary": primary, "winner": winner, "closest": closest, "candidates": points,
               "pareto": pareto(points)}
    if winner is None:  # keep the work: a rerun with --resume and another budget reuses every stage
        report = {"model": str(stage.path), "method": "compress", "compress": section}
        write_json_atomic(stage.path / "compress.json", report)
        return report
    cand, variant = winner.split("/", 1)
    export_dir = stage.path / "candidates" / cand / "export"
    shutil.copytree(export_dir / variant, stage.path / variant)
    head = json.loads((export_dir / variant / "metrics.json").read_text())
    for key in ("schema_version", "protege_version", "model", "method"):
        head.pop(key, None)
    head["variant"] = variant
    chosen = results[cand]["export"]
    export_section = {**chosen, "variants": {variant: chosen["variants"][variant]}, "recommended": variant,
                      "recommended_by": f"protege compress budget: {cfg.budget['text']}"}
    if not cfg.keep_candidates:
        shutil.rmtree(stage.path / "candidates", ignore_errors=True)
    (stage.path / _STATE).unlink(missing_ok=True)
    (stage.path / "compress.json").unlink(missing_ok=True)  # an earlier unmet budget's table

    def card(metrics):
        return export_card(metrics) + "\n## How it was chosen\n\n```\n" + format_candidates(metrics) + "```\n"

    return finish_run(stage, cfg.out, method="compress", save=lambda _folder: None, measure=lambda: head,
                      config=dataclasses.asdict(cfg), extra={"export": export_section, "compress": section}, card=card,
                      settings=(cfg,))
