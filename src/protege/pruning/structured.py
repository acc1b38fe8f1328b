"""Structured pruning that removes computation: attention heads, FFN neurons and whole layers.

Weights are physically sliced (smaller ``nn.Linear`` matrices), so the pruned model does less
work and runs faster on any kernel. Heads and neurons are ranked by the gradient-based
importance of Michel et al. (2019), ``I_h = E_x |dL(x)/dξ_h|`` for a gate ξ on each head's
(or neuron's) output, or by weight magnitude. Layers are chosen by position.

What a saved folder needs to load (transformers v5):

- fewer FFN neurons, the same count in every layer: ``intermediate_size`` says so, and stock
  ``from_pretrained`` loads it;
- fewer layers: ``num_hidden_layers`` says so, stock ``from_pretrained`` loads it;
- fewer attention heads: *not expressible in a stock config* (BERT computes the head size as
  ``hidden_size / num_attention_heads``), so stock ``from_pretrained`` refuses the weights with a
  size-mismatch error. The removed heads are recorded in ``config.json`` as
  ``protege_pruned_heads`` ({layer: [original head indices removed]}) and :func:`load_pruned`
  builds the stock model, slices it to that layout, then loads the weights.
"""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from protege.errors import ProtegeError
from protege.models.surgery import (ANATOMY, FFN_SIZES_KEY, PRUNED_HEADS_KEY, block_parts, drop_layers_, head_dim,  # noqa: F401
                                    layout, load_pruned, prune_ffn_, prune_heads_)

__all__ = ["structured_prune_", "check_structured", "importance_scores", "prune_heads_", "prune_ffn_", "drop_layers_",
           "layout", "load_pruned", "PRUNED_HEADS_KEY", "FFN_SIZES_KEY"]



def check_structured(model, config) -> None:
    """Fail before any work when ``config`` (a StructuredConfig) does not fit ``model``."""
    from protege.models.students import parse_layer_spec

    shape = layout(model)
    if config.keep_layers is not None:
        parse_layer_spec(config.keep_layers, shape["layers"])
    if config.keep_heads is not None and config.keep_heads > min(shape["heads"]):
        raise ProtegeError(f"--keep-heads {config.keep_heads} is more than the {min(shape['heads'])} heads per layer; "
                           f"choose 1..{min(shape['heads'])}")
    if config.keep_ffn is not None and config.keep_ffn > min(shape["ffn"]):
        raise ProtegeError(f"--keep-ffn {config.keep_ffn} is more than the {min(shape['ffn'])} FFN neurons per layer; "
                           f"choose 1..{min(shape['ffn'])}")


# --- slicing ---------------------------------------------------------------------------------

@torch.no_grad()
# --- importance ------------------------------------------------------------------------------

@contextlib.contextmanager
def _gates(parts: list[dict], head_dim: int):
    """Multiply each head's and each FFN neuron's output by a gate (1.0) that gradients can reach."""
    heads = [torch.ones(p["q"].out_features // head_dim, requires_grad=True, device=p["q"].weight.device) for p in parts]
    neurons = [torch.ones(p["ffn_in"].out_features, requires_grad=True, device=p["q"].weight.device) for p in parts]
    handles = []
    for p, hg, ng in zip(parts, heads, neurons):
        def head_hook(module, args, g=hg):
            x = args[0]
            return (x * g.repeat_interleave(head_dim).to(x.dtype),) + tuple(args[1:])

        def ffn_hook(module, args, g=ng):
            return (args[0] * g.to(args[0].dtype),) + tuple(args[1:])

        handles += [p["o"].register_forward_pre_hook(head_hook), p["ffn_out"].register_forward_pre_hook(ffn_hook)]
    try:
        yield heads, neurons
    finally:
        for h in handles:
            h.remove()


def importance_scores(model, batches=None, *, method: str = "gradient") -> dict[str, list[torch.Tensor]]:
    """Importance of every head and FFN neuron: ``{"heads": [per layer], "ffn": [per layer]}``.

    ``gradient`` (Michel et al. 2019): the summed absolute gradient of the loss with respect to
    a gate on each head's and neuron's output, over ``batches`` (dicts of tensors as the model
    takes them; the loss uses their ``labels``, or the model's own predictions when there are
    none). ``magnitude``: ``|V_h| * |O_h|`` for a head (Frobenius norms of its value rows and
    output columns) and ``|W_in[i]| * |W_out[:, i]|`` for a neuron; no data needed.
    """
    parts, d = block_parts(model), head_dim(model)
    if method == "magnitude":
        with torch.no_grad():
            heads, ffn = [], []
            for p in parts:
                n = p["q"].out_features // d
                v = torch.cat([p["v"].weight, p["v"].bias[:, None]], 1) if p["v"].bias is not None else p["v"].weight
                heads.append(v.view(n, d, -1).norm(dim=(1, 2)) * p["o"].weight.view(-1, n, d).norm(dim=(0, 2)))
                w_in = torch.cat([p["ffn_in"].weight, p["ffn_in"].bias[:, None]], 1) if p["ffn_in"].bias is not None \
                    else p["ffn_in"].weight
                ffn.append(w_in.norm(dim=1) * p["ffn_out"].weight.norm(dim=0))
        return {"heads": [h.cpu() for h in heads], "ffn": [f.cpu() for f in ffn]}
    if method != "gradient":
        raise ProtegeError(f"importance must be gradient or magnitude, got {method!r}")
    if not batches:
        raise ProtegeError("gradient importance needs data; pass --train or --eval, or use --importance magnitude")
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    with _gates(parts, d) as (heads, neurons):
        totals_h = [torch.zeros_like(g) for g in heads]
        totals_n = [torch.zeros_like(g) for g in neurons]
        for batch in batches:
            batch = {k: v.to(device) for k, v in batch.items()}
            loss = _loss(model, batch)
            grads = torch.autograd.grad(loss, heads + neurons)
            for t, g in zip(totals_h + totals_n, grads):
                t += g.detach().abs()
    model.train(was_training)
    return {"heads": [t.cpu() for t in totals_h], "ffn": [t.cpu() for t in totals_n]}


def _loss(model, batch):
    if "labels" in batch:
        return model(**batch).loss
    if getattr(model.config, "num_labels", 2) == 1:
        raise ProtegeError("gradient importance of a regression model needs labels; pass labelled data or --importance magnitude")
    logits = model(**batch).logits
    return nn.functional.cross_entropy(logits.float(), logits.argmax(-1).detach())


def _top(scores: torch.Tensor, k: int) -> list[int]:
    # highest scores first, ties to the lower index; returned in increasing order
    order = torch.argsort(-scores.float(), stable=True)
    return sorted(order[:k].tolist())


def structured_prune_(model, config, batches=None) -> dict:
    """Remove layers, then heads and FFN neurons, as ``config`` (a StructuredConfig) says; returns :func:`layout`.

    Layers go first (by position), then heads and neurons are ranked on what remains
    (``config.importance``; gradient importance needs ``batches``) and the
    ``keep_heads``/``keep_ffn`` most important in every layer are kept.
    """
    from protege.models.students import parse_layer_spec

    check_structured(model, config)
    if config.keep_layers is not None:
        drop_layers_(model, parse_layer_spec(config.keep_layers, layout(model)["layers"]))
    if config.keep_heads is not None or config.keep_ffn is not None:
        scores = importance_scores(model, batches, method=config.importance)
        if config.keep_heads is not None:
            prune_heads_(model, {i: _top(s, config.keep_heads) for i, s in enumerate(scores["heads"])
                                 if len(s) > config.keep_heads})
        if config.keep_ffn is not None:
            prune_ffn_(model, {i: _top(s, config.keep_ffn) for i, s in enumerate(scores["ffn"]) if len(s) > config.keep_ffn})
    return layout(model)


# --- loading ---------------------------------------------------------------------------------

