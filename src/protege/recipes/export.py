"""``protege.export``: a classifier folder to every runtime/precision variant, each verified and timed.

One path, as every recipe: check the flags (before torch loads), plan the output folder, load
and check every input (model, tokenizer, evaluation data, teacher, calibration text), then
build the variants in the staging folder, verify and time them all together
(:func:`protege.deploy.verify.verify_variants`), and finish through
:func:`protege.engine.finish_run` (``metrics.json`` with an ``export`` section, the model
card, the config), moving the folder into place only when all of it is written.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from protege.engine.config import EvalData, Output, Speed
from protege.errors import ProtegeError
from protege.utils.config import check_number, check_positive, option

__all__ = ["ExportConfig", "export", "parse_variants", "load_calibration"]

_NAMES = ("pytorch-fp32", "onnx-fp32", "onnx-int8-dynamic", "onnx-int8-static", "onnx-int8-mixed")
_CALIBRATED = ("onnx-int8-static", "onnx-int8-mixed")  # need --calibration text


def parse_variants(spec: str | None, *, calibration: bool) -> list[str]:
    """The variants to build from ``--variants`` (``auto``: all; static and mixed int8 only with calibration data)."""
    if spec in (None, "", "auto", "all"):
        return [v for v in _NAMES if v not in _CALIBRATED or calibration]
    names = [s.strip() for s in str(spec).split(",") if s.strip()]
    unknown = [n for n in names if n not in _NAMES]
    if unknown or not names:
        raise ProtegeError(f"--variants: unknown variant {(unknown or [spec])[0]!r}; "
                           f"choose from {', '.join(_NAMES)} (comma-separated) or auto")
    needs = [n for n in names if n in _CALIBRATED]
    if needs and not calibration:
        raise ProtegeError(f"--variants {needs[0]} needs calibration text: "
                           "pass --calibration FILE (a sample of the training data)")
    if calibration and not needs:
        raise ProtegeError("--calibration is only used by onnx-int8-static and onnx-int8-mixed; add one to --variants "
                           "or drop --calibration")
    # the fp32 PyTorch model is the reference every variant is verified against
    return ["pytorch-fp32"] + [n for n in _NAMES if n in names and n != "pytorch-fp32"]


@dataclass(frozen=True, kw_only=True)
class ExportConfig(EvalData, Speed, Output):
    """``protege export MODEL --eval FILE --out DIR``: every runtime/precision variant, verified and timed."""

    model: str = option(None, "classifier folder to export (protege or Hugging Face save_pretrained, pruned ones included)",
                        required=True, positional=True)
    compare: str | None = option(None, "the teacher: agreement with it, and timed in the same session for the ratios",
                                 metavar="TEACHER")
    variants: str = option("auto", f"comma-separated subset of {', '.join(_NAMES)}; auto: all (static and mixed int8 "
                                   "only with --calibration)")
    calibration: str | None = option(None, "a sample of the training data (any table with a text column; labels not "
                                           "needed): calibrates static int8 and picks mixed int8's fp32 MatMuls",
                                     path=True)
    calibration_examples: int = option(256, "use at most N calibration examples")
    min_agreement: float = option(0.99, "parity: a variant agreeing with the fp32 PyTorch model on fewer than this share "
                                        "of --eval examples (Pearson for regression) fails and is never recommended")
    batch_size: int = option(64, "examples per forward pass when scoring")
    memory: bool = option(True, "measure each variant's peak memory (a fresh process per variant)")
    opset: int = option(17, "ONNX opset of the exported graphs (14 or later)")

    def _check(self):
        if not self.model:
            raise ProtegeError("a model to export is required: protege export MODEL --eval FILE --out DIR")
        if not self.eval:
            raise ProtegeError("--eval is required: every variant is verified on labeled data before it is recommended")
        if self.resume:
            raise ProtegeError("protege export has no checkpoints to --resume; run it again (with --overwrite to replace --out)")
        check_positive(self, "batch_size", "calibration_examples", "opset")
        check_number(self, "min_agreement", low=0, high=1, low_open=True)
        if self.opset < 14:
            raise ProtegeError(f"--opset must be 14 or later (attention needs it), got {self.opset}")
        parse_variants(self.variants, calibration=bool(self.calibration))


def export(model: str | None = None, *, config: ExportConfig | None = None, **kwargs) -> dict:
    """Export ``model`` into ``out``: one folder per variant, verified; returns the metrics written to ``out/metrics.json``.

    Keyword arguments are the fields of :class:`ExportConfig` (the flags of ``protege export``).
    ``metrics["export"]`` lists every variant (parity, logits difference, metrics, agreement,
    latency, throughput, memory, disk size) and the ``recommended`` one; the top-level sections
    (``eval``, ``size``, ``speed``, ``teacher``, ``ratios``) describe the recommended variant.
    """
    from protege.recipes.common import make_config
    from protege.utils.extras import require_extra

    cfg = make_config(ExportConfig, config, {**kwargs, **({"model": model} if model is not None else {})})
    require_extra("export", "onnx", "onnxruntime", what="protege export")
    from protege.engine import plan_stage
    from protege.models.loading import quiet_transformers

    quiet_transformers()
    stage = plan_stage(cfg, inputs=[cfg.model, cfg.eval, cfg.compare, cfg.calibration])
    with stage.guard():
        run = _prepare(cfg)
        stage.begin()
        models = build_variants(run["model"], run["tokenizer"], stage.path, run["names"], calibration=run["calibration"],
                                max_length=cfg.max_length, opset=cfg.opset, source=cfg.model, min_agreement=cfg.min_agreement)
        return _finish(cfg, stage, run, models)


def _prepare(cfg: ExportConfig) -> dict:
    """Load and check every input before anything is written."""
    import torch

    from protege.data import load_examples
    from protege.deploy.folders import is_exported, load_model
    from protege.models import check_max_length, load_tokenizer, problem_type_of
    from protege.objectives.pairing import map_to_teacher_labels

    if is_exported(cfg.model) and not _is_pytorch_variant(cfg.model):
        raise ProtegeError(f"{cfg.model} is already an exported ONNX model; export the PyTorch model it came from "
                           "(or its pytorch-fp32 folder)")
    model, folder = load_model(cfg.model, role="model")
    if not isinstance(model, torch.nn.Module) or hasattr(model, "session"):
        raise ProtegeError(f"{cfg.model}: not a PyTorch classifier")
    tokenizer = load_tokenizer(str(folder))
    problem = problem_type_of(model.config)
    check_max_length(model.config, cfg.max_length)
    common = dict(text_column=cfg.text_column, text_pair_column=cfg.text_pair_column)
    examples = map_to_teacher_labels(load_examples(cfg.eval, label_column=cfg.label_column, split=cfg.split or "validation",
                                                   require_labels=True, max_examples=cfg.max_eval_examples, **common),
                                     model.config)
    if not len(examples):
        raise ProtegeError(f"--eval {cfg.eval} has no examples; every variant is verified on them")
    teacher = None
    if cfg.compare:
        t_model, t_folder = load_model(cfg.compare, role="teacher")
        if hasattr(t_model, "session"):
            raise ProtegeError(f"--compare {cfg.compare}: the teacher must be a PyTorch classifier (the fp32 baseline)")
        if problem_type_of(t_model.config) != problem or t_model.config.num_labels != model.config.num_labels:
            raise ProtegeError(f"{cfg.model} and {cfg.compare} predict different label spaces; compare a student with its own teacher")
        check_max_length(t_model.config, cfg.max_length)
        t_dir = t_folder if Path(str(t_folder)).is_dir() else None
        teacher = (cfg.compare, t_model.eval(), load_tokenizer(str(t_folder)), t_dir)
    calibration = None
    names = parse_variants(cfg.variants, calibration=bool(cfg.calibration))
    if cfg.calibration:
        calibration = load_calibration(cfg)
    return {"model": model.eval(), "tokenizer": tokenizer, "problem": problem, "examples": examples, "teacher": teacher,
            "calibration": calibration, "names": names}


def load_calibration(cfg):
    """The calibration texts of ``cfg.calibration`` (labels not needed), or a one-line error naming the flag."""
    from protege.data import load_examples

    try:
        calibration = load_examples(cfg.calibration, text_column=cfg.text_column, text_pair_column=cfg.text_pair_column,
                                    split=cfg.split or "train", require_labels=False, max_examples=cfg.calibration_examples)
    except ProtegeError as err:
        raise ProtegeError(f"--calibration {cfg.calibration}: {err}") from None
    if not len(calibration):
        raise ProtegeError(f"--calibration {cfg.calibration} has no examples; pass a sample of the training data")
    return calibration


def _is_pytorch_variant(path) -> bool:
    from protege.deploy.folders import exported_folder, read_manifest

    info = read_manifest(exported_folder(path))
    return info is None or info.get("runtime") == "pytorch"


def build_variants(model, tokenizer, root: Path, names: list[str], *, calibration=None, max_length: int = 128,
                   opset: int = 17, source: str = "model", min_agreement: float = 0.99) -> dict:
    """Write each variant's folder under ``root`` and load it back as it ships; returns name -> ``(model, folder)``.

    The ONNX variants are loaded from their files (what is measured is what ships).
    """
    from protege.deploy.folders import ONNX_FILE, VARIANTS, load_exported, write_manifest
    from protege.deploy.onnx_export import export_onnx, input_names_of
    from protege.deploy.mixed import quantize_mixed_onnx
    from protege.deploy.quantize import TextCalibrationReader, quantize_dynamic_onnx, quantize_static_onnx
    from protege.engine import save_model
    from protege.evaluation.size import parameter_counts
    from protege.utils.log import log

    counts = parameter_counts(model)
    root = Path(root)
    fp32_file = root / ".onnx-fp32.onnx"  # the exported graph, also the input of quantization
    built = {}
    graph = None
    for name in names:
        runtime, precision = VARIANTS[name]
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        info = {"variant": name, "runtime": runtime, "precision": precision, "source": str(source), **counts}
        if name == "pytorch-fp32":
            save_model(model, tokenizer, folder)
        else:
            if graph is None:
                log(f"exporting {source} to ONNX (opset {opset})")
                graph = export_onnx(model, tokenizer, fp32_file, opset=opset, name=str(source))
            info.update(graph, file=ONNX_FILE)
            if name == "onnx-fp32":
                import shutil

                shutil.copyfile(fp32_file, folder / ONNX_FILE)
            elif name == "onnx-int8-dynamic":
                log("quantizing: dynamic int8")
                info.update(quantize_dynamic_onnx(fp32_file, folder / ONNX_FILE))
            elif name == "onnx-int8-mixed":
                log(f"quantizing: mixed int8, fp32 fallback chosen on {len(calibration)} examples of {calibration.source}")
                reader = TextCalibrationReader(calibration, tokenizer, input_names_of(model, tokenizer), max_length=max_length)
                info.update(quantize_mixed_onnx(fp32_file, folder / ONNX_FILE, reader.batches, min_agreement=min_agreement,
                                                log=log))
            else:
                log(f"quantizing: static int8, calibrated on {len(calibration)} examples of {calibration.source}")
                reader = TextCalibrationReader(calibration, tokenizer, input_names_of(model, tokenizer), max_length=max_length)
                info.update(quantize_static_onnx(fp32_file, folder / ONNX_FILE, reader))
            model.config.save_pretrained(folder)
            tokenizer.save_pretrained(folder)
        write_manifest(folder, info)
        built[name] = (model, folder) if name == "pytorch-fp32" else (load_exported(folder)[0], folder)
    fp32_file.unlink(missing_ok=True)
    return built


def _finish(cfg: ExportConfig, stage, run: dict, models: dict) -> dict:
    from protege.deploy.report import export_card
    from protege.deploy.verify import verify_variants
    from protege.engine import finish_run
    from protege.evaluation.metrics import primary_metric
    from protege.evaluation.report import speedup_and_ratios
    from protege.utils.log import log
    from protege.utils.io import write_json_atomic

    log(f"verifying {len(models)} variants on {len(run['examples'])} examples of {cfg.eval}")
    result = verify_variants(models, run["tokenizer"], run["examples"], problem_type=run["problem"], teacher=run["teacher"],
                             max_length=cfg.max_length, batch_size=cfg.batch_size, min_agreement=cfg.min_agreement,
                             speed=cfg.speed, speed_seconds=cfg.speed_seconds, memory=cfg.memory, log=log)
    teacher = result.pop("teacher")
    pick = result["recommended"] or "pytorch-fp32"
    best = result["variants"][pick]
    head = {"problem_type": run["problem"], "primary_metric": primary_metric(run["problem"]),
            "runtime": best["runtime"], "precision": best["precision"], "variant": pick,
            "eval": {k: v for k, v in best["eval"].items() if k != "agreement_with_reference"},
            "size": best["size"], **({"speed": best["speed"]} if "speed" in best else {})}
    if teacher is not None:
        head["teacher"] = teacher
        head["ratios"] = speedup_and_ratios(head, teacher, problem_type=run["problem"])
    for name, section in result["variants"].items():  # each variant folder is a measured run of its own
        part = {"model": str(Path(cfg.out) / name), "method": "export", "problem_type": run["problem"],
                **{k: v for k, v in section.items() if k != "folder"}}
        if teacher is not None:
            part["teacher"], part["ratios"] = teacher, speedup_and_ratios(section, teacher, problem_type=run["problem"])
        from protege.engine import stamp

        write_json_atomic(stage.path / name / "metrics.json", stamp(part))
    return finish_run(stage, cfg.out, method="export", save=lambda _folder: None, measure=lambda: head,
                      config=dataclasses.asdict(cfg), extra={"export": result}, card=export_card, settings=(cfg,))
