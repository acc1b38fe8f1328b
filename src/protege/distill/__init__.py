"""Task distillation: configs, the objective, the trainer, and the finetune/distill functions."""

from protege.distill.config import DistillConfig, FinetuneConfig, TrainSettings

__all__ = ["DistillConfig", "FinetuneConfig", "TrainSettings", "finetune", "distill"]


def __getattr__(name):
    if name in ("finetune", "distill"):
        from protege.distill import api

        return getattr(api, name)
    raise AttributeError(name)
