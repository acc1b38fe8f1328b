"""Several fine-tuned classifiers as one teacher: the (weighted) mean of their probabilities or logits.

Hinton et al. (2015) distilled an ensemble into one model by matching the mean of the members'
softened distributions. Members must read text the same way (one vocabulary) and answer in one
label space (same labels, same order); :func:`load_ensemble` checks both before any weights load.

Which temperature the mean is taken at matters. Knowledge distillation at temperature T compares
``softmax(z_s / T)`` with the target; for one teacher that is ``softmax(z_t / T)``. For an ensemble
of probabilities the target is the mean of the *softened* member distributions::

    p_T = sum_i w_i softmax(z_i / T)

This is not ``softmax(log(sum_i w_i softmax(z_i)) / T)``: softening the T=1 mean raises it to the
power 1/T and renormalises, which agrees with ``p_T`` only at T = 1 or when the members agree. The
losses take logits and divide by T themselves, so an ensemble built for temperature T returns::

    ell_T = T * log p_T - mean over classes      (softmax(ell_T / T) == p_T exactly)

Built at T = 1 (the default) it returns the log of the mean probabilities: its argmax is the
ensemble's answer, which agreement and the report use. Subtracting the mean over classes changes
no softmax; it keeps the outputs on a classifier's logit scale (for ``--alpha-mse``) and makes
them equal each member's centred logits when all members agree.
``mode="logits"`` averages the logits instead (``sum_i w_i z_i``, the same at every temperature:
the renormalised geometric mean of the members' distributions). Regression members (one output)
are averaged in either mode. Multi-label members (independent sigmoids) average each label's
probability the same way: ``T * logit(sum_i w_i sigmoid(z_i / T))``, whose sigmoid at T is the mean.
"""

from __future__ import annotations

import copy
from types import SimpleNamespace

import torch
from torch import nn

from protege.errors import ProtegeError

__all__ = ["MODES", "combine_logits", "normalized_weights", "Ensemble", "check_same_labels", "check_same_tokenizer",
           "load_ensemble", "ensemble_name"]

MODES = ("probs", "logits")


def combine_logits(logits, weights=None, *, mode: str = "probs", temperature: float = 1.0,
                   multi_label: bool = False) -> torch.Tensor:
    """The ensemble's logits from its members' ``logits`` (a list of (N, C) tensors), in float32.

    ``weights`` (one per member, >= 0, not all 0) are normalised to sum to 1 (default: equal).
    ``mode="probs"``: ``T * log(sum_i w_i softmax(z_i / T))`` centred over the classes, so
    ``softmax(result / T)`` is exactly the weighted mean of the members' distributions at ``T``.
    ``mode="logits"``: ``sum_i w_i z_i``. One output (regression): the weighted mean in both modes.
    ``multi_label``: each output is a label's own sigmoid; ``mode="probs"`` gives ``T * logit(sum_i w_i
    sigmoid(z_i / T))`` (not centred: the labels are independent).
    """
    if mode not in MODES:
        raise ProtegeError(f"ensemble mode must be one of {', '.join(MODES)}, got {mode!r}")
    z = torch.stack([x.float() for x in logits])  # (M, N, C)
    w = torch.tensor(normalized_weights(weights, len(logits)), dtype=torch.float32, device=z.device)
    if mode == "logits" or z.shape[-1] == 1:
        return torch.einsum("m,m...->...", w, z)
    log_w = w.log().view(-1, *[1] * (z.dim() - 1))  # log 0 = -inf drops a member of weight 0 from the sums
    if multi_label:  # log p and log(1 - p) of the mean probability, each from log-sigmoids (no 1 - p cancellation)
        log_p = torch.logsumexp(log_w + nn.functional.logsigmoid(z / temperature), dim=0)
        log_q = torch.logsumexp(log_w + nn.functional.logsigmoid(-z / temperature), dim=0)
        return temperature * (log_p - log_q)
    out = temperature * torch.logsumexp(log_w + torch.log_softmax(z / temperature, dim=-1), dim=0)
    return out - out.mean(dim=-1, keepdim=True)


def normalized_weights(weights, n: int) -> list[float]:
    """``weights`` scaled to sum to 1 (equal weights when None), checked: ``n`` finite numbers >= 0, not all 0."""
    if weights is None:
        return [1.0 / n] * n
    values = [float(w) for w in weights]
    if len(values) != n or any(not (w >= 0 and w < float("inf")) for w in values) or sum(values) <= 0:
        raise ProtegeError(f"ensemble weights must be {n} finite numbers >= 0, not all 0; got {list(weights)}")
    total = sum(values)
    return [w / total for w in values]


def ensemble_name(names) -> str:
    """How an ensemble is named in reports: ``ensemble(A, B, C)``."""
    return f"ensemble({', '.join(map(str, names))})"


class Ensemble(nn.Module):
    """Classifiers answering as one: ``forward(**inputs).logits`` is :func:`combine_logits` of the members'.

    ``config`` is a copy of the first member's, tagged ``protege_ensemble`` (mode, weights,
    temperature), so the teacher-output cache's fingerprint tells ensembles apart. Members take
    no gradient here and return no hidden states: an ensemble has no single set of internals.
    """

    def __init__(self, members, *, weights=None, mode: str = "probs", temperature: float = 1.0, names=None):
        super().__init__()
        members = list(members)
        if len(members) < 2:
            raise ProtegeError("an ensemble needs at least two members")
        if mode not in MODES:
            raise ProtegeError(f"ensemble mode must be one of {', '.join(MODES)}, got {mode!r}")
        if not temperature > 0:
            raise ProtegeError(f"the ensemble's temperature must be > 0, got {temperature}")
        self.members = nn.ModuleList(members)
        self.weights = normalized_weights(weights, len(members))
        self.mode, self.temperature = mode, float(temperature)
        self.names = tuple(str(n) for n in names) if names is not None else tuple(f"member {i}" for i in range(len(members)))
        self.config = copy.deepcopy(members[0].config)
        self.config.protege_ensemble = {"members": len(members), "mode": mode, "weights": self.weights,
                                        "temperature": self.temperature}
        self.multi_label = getattr(self.config, "problem_type", None) == "multi_label_classification"

    @property
    def name(self) -> str:
        """``ensemble(A, B, ...)`` from the members' names."""
        return ensemble_name(self.names)

    def softened(self, temperature: float) -> "Ensemble":
        """The same members (shared, not copied) averaged at ``temperature``: the targets of KD at that temperature."""
        return Ensemble(list(self.members), weights=self.weights, mode=self.mode, temperature=temperature, names=self.names)

    def forward(self, output_hidden_states: bool = False, output_attentions: bool = False, **inputs) -> SimpleNamespace:
        """``SimpleNamespace(logits=...)``: the members' logits on ``inputs``, combined."""
        if output_hidden_states or output_attentions:
            raise ProtegeError("an ensemble teacher has no single set of hidden states or attention maps; "
                               "set --alpha-hidden 0 --alpha-attn 0 --alpha-embed 0")
        logits = [member(**inputs).logits for member in self.members]
        return SimpleNamespace(logits=combine_logits(logits, self.weights, mode=self.mode, temperature=self.temperature,
                                                     multi_label=self.multi_label))


def _label_space(config, multi_label: bool) -> tuple:
    from protege.models.loading import problem_type_of

    problem = problem_type_of(config, multi_label=multi_label)
    if problem == "regression":
        return problem, config.num_labels, None
    labels = {int(k): str(v) for k, v in (config.id2label or {}).items()}
    return problem, config.num_labels, tuple(labels[i] for i in sorted(labels))


def check_same_labels(configs, names, *, multi_label: bool = False) -> None:
    """Refuse members whose label spaces differ (problem type, number of labels, label names in order)."""
    first = _label_space(configs[0], multi_label)
    for config, name in zip(configs[1:], names[1:]):
        other = _label_space(config, multi_label)
        if other != first:
            what = lambda s: s[0] if s[0] == "regression" else f"{s[1]} labels {list(s[2])}"  # noqa: E731
            raise ProtegeError(f"teacher '{name}' answers in another label space ({what(other)}) than '{names[0]}' "
                               f"({what(first)}); ensemble members must share their labels, in the same order")


def check_same_tokenizer(tokenizers, names) -> None:
    """Refuse members that do not read text the same way (different vocabularies)."""
    vocab = tokenizers[0].get_vocab()
    for tok, name in zip(tokenizers[1:], names[1:]):
        if tok.get_vocab() != vocab:
            raise ProtegeError(f"teacher '{name}' has a different vocabulary from '{names[0]}' ({len(tok)} vs "
                               f"{len(tokenizers[0])} tokens); ensemble members must share one tokenizer")


def load_ensemble(names, *, weights=None, mode: str = "probs", attn_implementation: str | None = None,
                  multi_label: bool = False):
    """``(Ensemble, tokenizer)`` of the classifiers ``names``, after checking they share labels and a tokenizer.

    Configs and tokenizers are checked before any weights are read; the tokenizer is the first
    member's. ``multi_label`` accepts multi-label heads (as :func:`~protege.models.loading.load_classifier`).
    """
    from protege.models.loading import load_classifier, load_config, load_tokenizer

    names = [str(n) for n in names]
    check_same_labels([load_config(n) for n in names], names, multi_label=multi_label)
    tokenizers = [load_tokenizer(n) for n in names]
    check_same_tokenizer(tokenizers, names)
    members = [load_classifier(n, attn_implementation=attn_implementation, multi_label=multi_label) for n in names]
    return Ensemble(members, weights=weights, mode=mode, names=names).eval(), tokenizers[0]
