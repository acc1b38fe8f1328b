"""Pruning configurations: one frozen, validated config per method, found in the table :data:`METHODS`.

A method's config is the transform itself, usable without any files:
``prune_(model, MagnitudeConfig(sparsity=0.5))``. One field is one CLI flag and one YAML key of
``protege prune --method NAME``; the run's own config (model, output, recovery training) is
:class:`protege.recipes.prune.PruneConfig`.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from protege.errors import ProtegeError
from protege.utils.config import option

__all__ = ["PruneTarget", "MagnitudeConfig", "LotteryConfig", "GradualConfig", "StructuredConfig", "MasksConfig",
           "METHODS"]



def _fraction(name: str, value, *, high_ok: bool = False) -> None:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or not (0 <= value <= 1 if high_ok else 0 <= value < 1):
        raise ProtegeError(f"--{name.replace('_', '-')} must be a fraction in [0, 1{']' if high_ok else ')'}, got {value!r}")


def _count(name: str, value, *, optional: bool = True, low: int = 1) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ProtegeError(f"--{name.replace('_', '-')} must be an integer >= {low}, got {value!r}")


@dataclass(frozen=True, kw_only=True)
class PruneTarget:
    """Which weights unstructured pruning may zero, and where their magnitudes are compared."""

    scope: str = option("global", "global: rank all candidate weights together (Chen et al. 2020); layer: the same sparsity in every matrix")
    include_pooler: bool = option(False, "also prune the pooler's linear layer")
    include_classifier: bool = option(False, "also prune the classification head's linear layers")
    include_embeddings: bool = option(False, "also prune the embedding tables (word, position, token type)")

    def __post_init__(self):
        if self.scope not in ("global", "layer"):
            raise ProtegeError(f"--scope must be global or layer, got {self.scope!r}")


@dataclass(frozen=True, kw_only=True)
class MagnitudeConfig(PruneTarget):
    """``--method magnitude``: zero the smallest-magnitude weights, once."""

    sparsity: float = option(None, "fraction of the candidate weights to zero, e.g. 0.6", required=True)

    def __post_init__(self):
        if self.sparsity is None:
            raise ProtegeError("--sparsity is required: the fraction of weights to zero, e.g. --sparsity 0.6")
        _fraction("sparsity", self.sparsity)
        super().__post_init__()


@dataclass(frozen=True, kw_only=True)
class LotteryConfig(PruneTarget):
    """``--method imp``: iterative magnitude pruning with rewinding (Frankle & Carbin 2019; Chen et al. 2020)."""

    rounds: int = option(5, "most pruning rounds; round r reaches sparsity 1 - (1 - rate)^r, and the search stops at the first round that misses --tolerance")
    rate: float = option(0.2, "fraction of the remaining weights pruned each round")
    rewind_step: int = option(0, "rewind surviving weights to the input model (0) or to its weights after this many training steps")
    tolerance: float = option(0.01, "a subnetwork 'matches' when its metric is at least the dense model's minus this (absolute)")
    controls: bool = option(False, "also train the two controls at the ticket's sparsity: a random mask, and the ticket's mask re-initialised")

    def __post_init__(self):
        _count("rounds", self.rounds)
        if not (isinstance(self.rate, (int, float)) and 0 < self.rate < 1):
            raise ProtegeError(f"--rate must be in (0, 1), got {self.rate!r}")
        _count("rewind_step", self.rewind_step, optional=False, low=0)
        if not (isinstance(self.tolerance, (int, float)) and self.tolerance >= 0 and math.isfinite(self.tolerance)):
            raise ProtegeError(f"--tolerance must be >= 0, got {self.tolerance!r}")
        super().__post_init__()

    def sparsity_at(self, round_: int) -> float:
        """Target sparsity after ``round_`` rounds: 1 - (1 - rate)^round."""
        return 1.0 - (1.0 - self.rate) ** round_

    def at(self, sparsity: float) -> MagnitudeConfig:
        """The one-shot magnitude config of one round."""
        return MagnitudeConfig(sparsity=sparsity, **_target_fields(self))


@dataclass(frozen=True, kw_only=True)
class GradualConfig(PruneTarget):
    """``--method gradual``: magnitude pruning on the cubic schedule of Zhu & Gupta (2017), during distillation."""

    sparsity: float = option(None, "final fraction of the candidate weights to zero", required=True)
    initial_sparsity: float = option(0.0, "sparsity at the first pruning step")
    prune_start: float = option(0.0, "fraction of the training steps after which pruning starts")
    prune_end: float = option(0.7, "fraction of the training steps at which the final sparsity is reached (the rest recovers)")
    prune_every: int | None = option(None, "steps between pruning events (default: 10 events from start to end)")

    def __post_init__(self):
        if self.sparsity is None:
            raise ProtegeError("--sparsity is required: the final fraction of weights to zero, e.g. --sparsity 0.8")
        _fraction("sparsity", self.sparsity)
        _fraction("initial_sparsity", self.initial_sparsity)
        _fraction("prune_start", self.prune_start, high_ok=True)
        _fraction("prune_end", self.prune_end, high_ok=True)
        if self.initial_sparsity > self.sparsity:
            raise ProtegeError(f"--initial-sparsity {self.initial_sparsity} is above --sparsity {self.sparsity}; the schedule only adds zeros")
        if self.prune_start >= self.prune_end:
            raise ProtegeError(f"--prune-start ({self.prune_start}) must be before --prune-end ({self.prune_end})")
        _count("prune_every", self.prune_every)
        super().__post_init__()

    def at(self, sparsity: float) -> MagnitudeConfig:
        """The one-shot magnitude config of one pruning event."""
        return MagnitudeConfig(sparsity=sparsity, **_target_fields(self))


@dataclass(frozen=True, kw_only=True)
class StructuredConfig:
    """``--method structured``: remove whole attention heads, FFN neurons and layers (weights are sliced).

    Causal LMs (Llama-family with GQA, GPT-2) are pruned the Minitron way
    (:mod:`protege.pruning.decoder`): importance measured on ``--train-text``, heads removed in
    whole KV groups, and the result is a stock ``AutoModelForCausalLM`` folder.
    """

    keep_heads: int | None = option(None, "attention heads kept in every layer (classifiers: saved models then need "
                                          "protege.pruning.load_pruned; causal LMs: query heads, a multiple of the KV group "
                                          "size, removed in whole KV groups, stock loading)")
    keep_ffn: int | None = option(None, "FFN neurons kept in every layer (intermediate_size; loads with stock from_pretrained)")
    keep_layers: str | None = option(None, "layers kept: 0,2,4 | every-other | uniform:K | first:K (loads with stock "
                                           "from_pretrained); causal LMs also K: the K most important layers", list=True)
    importance: str = option("gradient", "how heads and neurons are ranked: gradient (Michel et al. 2019) or magnitude; "
                                         "causal LMs: measured (activations, layer removal; the default for them)")
    importance_examples: int = option(256, "examples used to estimate gradient importance (from --train, else --eval); "
                                           "causal LMs: packed --max-length calibration sequences from --train-text")
    layer_importance: str = option("kl", "causal LMs, --keep-layers K: kl (output change when the layer is skipped) or bi "
                                         "(block influence, ShortGPT)")
    contiguous_layers: bool = option(False, "causal LMs, --keep-layers K: drop one contiguous run of layers (lowest summed "
                                            "importance) instead of the least important ones anywhere")

    def __post_init__(self):
        if self.keep_heads is None and self.keep_ffn is None and self.keep_layers is None:
            raise ProtegeError("--method structured needs at least one of --keep-heads, --keep-ffn, --keep-layers")
        _count("keep_heads", self.keep_heads)
        _count("keep_ffn", self.keep_ffn)
        _count("importance_examples", self.importance_examples, optional=False)
        if self.importance not in ("gradient", "magnitude", "measured"):
            raise ProtegeError(f"--importance must be gradient, magnitude or measured, got {self.importance!r}")
        if self.layer_importance not in ("kl", "bi"):
            raise ProtegeError(f"--layer-importance must be kl or bi, got {self.layer_importance!r}")
        if self.keep_layers is not None and not str(self.keep_layers).strip():
            raise ProtegeError("--keep-layers is empty; use e.g. 0,2,4, every-other, uniform:3 or first:3")

    def _unused(self):
        """The layer-ranking knobs act only when a causal LM keeps a count of layers by measured importance."""
        counted = self.keep_layers is not None and str(self.keep_layers).strip().isdigit()
        return set() if counted and self.importance == "measured" else {"layer_importance", "contiguous_layers"}


@dataclass(frozen=True, kw_only=True)
class MasksConfig:
    """``--method masks``: apply the masks of another pruning run (e.g. a lottery ticket) to this model."""

    masks: str = option(None, "pruning_masks.safetensors of another run, or the run's folder", required=True, path=True)

    def __post_init__(self):
        if not self.masks:
            raise ProtegeError("--masks is required: a pruning_masks.safetensors file or a pruned run's folder")


METHODS = {
    "magnitude": MagnitudeConfig,
    "imp": LotteryConfig,
    "gradual": GradualConfig,
    "structured": StructuredConfig,
    "masks": MasksConfig,
}
# what trains after (or, for imp and gradual, during) pruning when --recover is not given
def _target_fields(cfg) -> dict:
    return {f.name: getattr(cfg, f.name) for f in dataclasses.fields(PruneTarget)}
