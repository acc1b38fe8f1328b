"""protege: turn a large transformer into a small, fast one that behaves like it.

Public API (imported lazily, so ``import protege`` is cheap)::

    protege.finetune(model=..., train=..., eval=..., out=...)
    protege.distill(teacher=..., train=..., eval=..., student_layers="0,2,4", out=...)
    protege.evaluate("runs/student", eval="test.tsv", compare="runs/teacher")
    protege.keep_layers(teacher, [0, 2, 4]); protege.smaller_student(config, num_layers=4)
    protege.losses.soft_cross_entropy(student_logits, teacher_logits, temperature=2.0)
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "finetune": "protege.distill.api",
    "distill": "protege.distill.api",
    "cache_teacher": "protege.distill.api",
    "evaluate": "protege.evaluate.api",
    "prune": "protege.prune.api",
    "compare_models": "protege.evaluate.api",
    "report": "protege.report",
    "DistillConfig": "protege.distill.config",
    "FinetuneConfig": "protege.distill.config",
    "TrainSettings": "protege.distill.config",
    "keep_layers": "protege.models.students",
    "smaller_student": "protege.models.students",
    "pretrained_student": "protege.models.students",
    "parse_layer_spec": "protege.models.students",
    "load_examples": "protege.data.tables",
    "ProtegeError": "protege.errors",
    "run_demo": "protege.demo",
    "extract": "protege.extract.attack",
    "serve": "protege.extract.server",
    "Victim": "protege.extract.victim",
    "verify_watermark": "protege.extract.defenses.watermark",
}
_SUBPACKAGES = ("losses", "data", "models", "distill", "evaluate", "cli")

__all__ = sorted(_EXPORTS) + list(_SUBPACKAGES)


def __getattr__(name):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    if name in _SUBPACKAGES:
        return importlib.import_module(f"protege.{name}")
    raise AttributeError(f"module 'protege' has no attribute {name!r}")


def __dir__():
    return __all__ + ["__version__"]
