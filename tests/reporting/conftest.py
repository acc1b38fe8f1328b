"""Run folders written directly: metrics.json (the layout protege writes) and train_log.jsonl."""

import copy
import json
from types import SimpleNamespace

import pytest

SPEED = {"latency_runs": 50, "throughput_batch_size": 32, "throughput_runs": 10, "threads": 2, "device": "cpu",
         "cpu": "Test CPU", "torch": "2.13.0+cpu", "max_length": 64}


def speed(p50, p95, throughput, **setting):
    """A speed section with the given numbers (and setting overrides, e.g. threads=16)."""
    return {"latency_ms_p50": p50, "latency_ms_p95": p95, "throughput_per_s": throughput, **SPEED, **setting}


def teacher_metrics(out="runs/teacher", accuracy=0.90, p50=10.0, source="data/dev.tsv", **extra):
    m = {"model": out, "problem_type": "single_label_classification", "primary_metric": "accuracy",
         "eval": {"source": source, "n": 100, "metrics": {"accuracy": accuracy, "f1": 0.89, "mcc": 0.8}},
         "size": {"parameters": 22_700_000, "non_embedding_parameters": 10_800_000, "disk_bytes": 90_000_000},
         "speed": speed(p50, p50 * 1.5, 100.0),
         "training": {"steps": 100, "seconds": 125.0},
         "config": {"train": "data/train.tsv", "eval": source, "out": out, "epochs": 1.0, "lr": 1e-4,
                    "model": "backbones/minilm"},
         "method": "finetune",
         "history": [{"step": 50, "eval": {"accuracy": accuracy - 0.02}}, {"step": 100, "eval": {"accuracy": accuracy}}]}
    return _merge(m, extra)


def student_metrics(out="runs/student", teacher="runs/teacher", accuracy=0.88, p50=5.0, teacher_p50=10.0,
                    teacher_accuracy=0.90, source="data/dev.tsv", **extra):
    m = {"model": out, "problem_type": "single_label_classification", "primary_metric": "accuracy",
         "eval": {"source": source, "n": 100, "metrics": {"accuracy": accuracy, "f1": 0.87, "mcc": 0.75},
                  "agreement": {"agreement": 0.95, "kl": 0.04}},
         "size": {"parameters": 17_400_000, "non_embedding_parameters": 5_500_000, "disk_bytes": 70_000_000},
         "speed": speed(p50, p50 * 1.4, 200.0),
         "teacher": {"model": teacher, "eval": {"source": source, "n": 100, "metrics": {"accuracy": teacher_accuracy}},
                     "size": {"parameters": 22_700_000}, "speed": speed(teacher_p50, teacher_p50 * 1.5, 100.0)},
         "training": {"steps": 60, "seconds": 61.0},
         "config": {"train": "data/train.tsv", "out": out, "teacher": teacher, "alpha_kd": 1.0, "alpha_ce": 0.5,
                    "alpha_hidden": 0.0, "temperature": 2.0, "epochs": 2.0, "lr": 1e-4},
         "method": "distill",
         "student": {"kind": "layers", "description": "3 layers kept from the teacher (0,2,4)"}}
    return _merge(m, extra)


def _merge(base, extra):
    out = copy.deepcopy(base)
    for k, v in extra.items():
        if v is None:
            out.pop(k, None)
        elif isinstance(v, dict) and isinstance(out.get(k), dict):
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


LOG = [{"step": 10, "epoch": 0.5, "lr": 1e-4, "kd": 2.0, "ce": 0.7, "loss": 2.35, "examples_per_s": 80.0},
       {"step": 20, "epoch": 1.0, "lr": 5e-5, "kd": 1.5, "ce": 0.5, "loss": 1.75, "examples_per_s": 82.0},
       {"step": 20, "eval": {"accuracy": 0.85, "agreement": 0.9}}]


def write_run(folder, metrics, log=None):
    """A run folder as protege leaves it (weights aside): metrics.json and train_log.jsonl."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "metrics.json").write_text(json.dumps(metrics, indent=2))
    if log is not None:
        (folder / "train_log.jsonl").write_text("".join(json.dumps(r) + "\n" for r in log))
    return folder


@pytest.fixture
def fx():
    """The builders: fx.teacher(...), fx.student(...), fx.speed(...), fx.write(folder, metrics, log), fx.LOG."""
    return SimpleNamespace(teacher=teacher_metrics, student=student_metrics, speed=speed, write=write_run, LOG=LOG)


@pytest.fixture
def pair(tmp_path):
    """runs/teacher and runs/student made from tmp_path (paths recorded relative to it)."""
    runs = tmp_path / "runs"
    write_run(runs / "teacher", teacher_metrics(), log=[{k: v for k, v in r.items() if k not in ("kd", "ce")} for r in LOG])
    write_run(runs / "student", student_metrics(), log=LOG)
    return runs
