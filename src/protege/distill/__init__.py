"""Task distillation: configs, the objective, the trainer, the teacher cache, and finetune/distill.

The package is callable: ``protege.distill(...)`` is :func:`protege.distill.api.distill`.
"""

from protege._callable import make_callable
from protege.distill.config import CacheConfig, DistillConfig, FinetuneConfig, TrainSettings

__all__ = ["CacheConfig", "DistillConfig", "FinetuneConfig", "TrainSettings", "finetune", "distill", "cache_teacher"]


def __getattr__(name):
    if name in ("finetune", "distill", "cache_teacher"):
        from protege.distill import api

        return getattr(api, name)
    raise AttributeError(name)


make_callable(__name__, "protege.distill.api", "distill")
