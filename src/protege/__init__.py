"""protege: turn a large transformer into a small, fast one that behaves like it.

Public API (imported lazily, so ``import protege`` is cheap)::

    protege.finetune(model=..., train=..., eval=..., out=...)
    protege.distill(teacher=..., train=..., eval=..., student_layers="0,2,4", out=...)
    protege.evaluate("runs/student", eval="test.tsv", compare="runs/teacher")
    protege.keep_layers(teacher, [0, 2, 4]); protege.smaller_student(config, num_layers=4)
    protege.losses.soft_cross_entropy(student_logits, teacher_logits, temperature=2.0)
"""

import importlib

from protege.utils.lazy import lazy_exports

__version__ = "0.1.0"

# the verbs are plain functions; their packages have other names (recipes.distill, evaluation, pruning, ...)
_lazy, _dir, _names = lazy_exports(__name__, {
    "finetune": "protege.recipes.finetune",
    "distill": "protege.recipes.distill.api",
    "cache_teacher": "protege.recipes.distill.api",
    "evaluate": "protege.recipes.evaluate",
    "compare_models": "protege.evaluation.api",
    "prune": "protege.recipes.prune",
    "prune_": "protege.pruning.apply",
    "report": "protege.reporting.api",
    "export": "protege.recipes.export",
    "ExportConfig": "protege.recipes.export",
    "compress": "protege.recipes.compress",
    "CompressConfig": "protege.recipes.compress",
    "extract": "protege.recipes.extract",
    "serve": "protege.extraction.server",
    "Victim": "protege.extraction.victim",
    "verify_watermark": "protege.extraction.defenses.watermark",
    "run_demo": "protege.recipes.demo",
    "DistillConfig": "protege.recipes.distill.config",
    "FinetuneConfig": "protege.recipes.finetune",
    "TrainSettings": "protege.engine.config",
    "Callback": "protege.engine.events",
    "keep_layers": "protege.models.students",
    "smaller_student": "protege.models.students",
    "pretrained_student": "protege.models.students",
    "parse_layer_spec": "protege.models.students",
    "load_examples": "protege.data.tables",
    "ProtegeError": "protege.errors",
})
_SUBPACKAGES = ("utils", "data", "models", "losses", "objectives", "evaluation", "engine", "recipes", "pruning",
                "extraction", "reporting", "deploy", "cli")
__all__ = _names + list(_SUBPACKAGES)


def __getattr__(name):
    if name in _SUBPACKAGES:
        return importlib.import_module(f"protege.{name}")
    return _lazy(name)


def __dir__():
    return __all__ + ["__version__"]
