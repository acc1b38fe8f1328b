"""The distillation recipes: ``finetune``, ``distill`` (task and general objectives), ``cache_teacher``.

``protege.distill(...)`` is :func:`protege.recipes.distill.api.distill`.
"""

from protege.utils.lazy import lazy_exports

__getattr__, __dir__, __all__ = lazy_exports(__name__, {
    "finetune": "protege.recipes.finetune", "distill": "api", "cache_teacher": "api",
    "FinetuneConfig": "protege.recipes.finetune", "DistillConfig": "config", "CacheConfig": "config", "OBJECTIVES": "config",
})
