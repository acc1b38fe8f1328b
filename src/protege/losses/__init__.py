"""protege.losses: pure distillation loss functions on tensors.

Every loss returns a 0-dim tensor (mean reduction) and detaches the teacher tensors, so
gradients reach only the student (and any projection applied to it).
"""

from protege.losses.attention import attention_kl, attention_mse
from protege.losses.hidden import (
    HiddenProjection,
    embedding_mse,
    hidden_cosine,
    hidden_mse,
    uniform_layer_map,
)
from protege.losses.logits import (
    hard_cross_entropy,
    kl_divergence,
    logits_mse,
    multilabel_bce,
    regression_mse,
    sigmoid_kl_divergence,
    soft_cross_entropy,
)

__all__ = [
    "soft_cross_entropy",
    "kl_divergence",
    "hard_cross_entropy",
    "logits_mse",
    "regression_mse",
    "sigmoid_kl_divergence",
    "multilabel_bce",
    "hidden_mse",
    "hidden_cosine",
    "embedding_mse",
    "uniform_layer_map",
    "HiddenProjection",
    "attention_mse",
    "attention_kl",
]
