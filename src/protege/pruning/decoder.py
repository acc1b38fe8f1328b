"""Structured pruning of causal LMs, Minitron-style: whole layers, KV groups and FFN neurons, ranked on data.

    from protege.pruning.decoder import DecoderPruneConfig, calibration_batches, decoder_importance, prune_decoder_
    batches = calibration_batches(tokenizer, texts, max_length=512, num_sequences=128, batch_size=8)
    importance = decoder_importance(model, batches)                  # measured on the dense model
    summary = prune_decoder_(model, DecoderPruneConfig(keep_layers=24, keep_heads=6, keep_ffn=1024), importance)
    model.save_pretrained("pruned")  # stock AutoModelForCausalLM.from_pretrained loads it, same logits

Importance is measured with forward passes over calibration tokens (Muralidharan et al. 2024,
"Compact Language Models via Pruning and Knowledge Distillation"; Sreenivas et al. 2024, "LLM
Pruning and Distillation in Practice: The Minitron Approach"):

- **layer** (``layers="kl"``, the default): the mean per-token ``KL(p_full || p_skip)`` of the
  final next-token distribution when that one block is skipped (its output replaced by its
  input), i.e. how much the model's output changes without it; Minitron ranks depth by the LM
  loss change of the same removal. ``layers="bi"``: ShortGPT's Block Influence, ``1 - mean
  cos(x_in, x_out)`` of the block's hidden states (Men et al. 2024), one pass and no extra cost.
  The block influence is always reported beside the KL.
- **FFN neuron**: the mean ``|act(gate(x)) * up(x)|`` (Llama family) or ``|act(c_fc(x))|``
  (GPT-2) over calibration tokens, the input of the down projection (Minitron).
- **attention, per KV group**: the mean over tokens of the L2 norm of each query head's
  attention output (the input of ``o_proj``; Minitron's head importance), summed over the query
  heads that share a key/value head. A KV group (its K/V head and all its query heads) is kept
  or removed whole, so grouped-query attention stays valid; with MHA a group is one head.

Pruning is uniform (the same number of heads and neurons in every layer), so the result is a
stock config: ``num_hidden_layers``, ``num_attention_heads``, ``num_key_value_heads``,
``head_dim`` (written explicitly), ``intermediate_size`` (``n_inner`` for GPT-2) and
``layer_types``; kept blocks renumber their ``layer_idx`` so KV caches and ``generate`` work.
GPT-2 derives its head size from ``n_embd / n_head``, so its heads cannot be pruned in a stock
config (layers and FFN can). Supported: Llama, Mistral, Qwen2/3, Gemma and other models whose
blocks hold ``self_attn.{q,k,v,o}_proj`` and ``mlp.{gate,up,down}_proj`` (gate optional), and GPT-2
(the slicing itself: :mod:`protege.models.decoder_surgery`). The recipe, ``protege prune LM --method
structured --train-text FILE``, is :mod:`protege.recipes.prune_decoder`.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from protege.errors import ProtegeError
from protege.models.adapters import replace_blocks
from protege.models.decoder_surgery import (check_stock_shape, decoder_layout, decoder_parts, decoder_shape, keep_kv_groups_,
                                            keep_neurons_, set_decoder_widths)

__all__ = ["DecoderPruneConfig", "DecoderImportance", "LAYER_METRICS", "decoder_shape", "decoder_layout",
           "check_decoder_prune", "ranked_parts", "calibration_batches", "decoder_importance", "choose_layers",
           "prune_decoder_"]

LAYER_METRICS = ("kl", "bi")


@dataclass(frozen=True, kw_only=True)
class DecoderPruneConfig:
    """What a pruned causal LM keeps (None: all of it).

    ``keep_layers``: an int K keeps the K most important layers (drops the rest, lowest measured
    importance first; ``contiguous`` drops one contiguous run instead, the run of lowest summed
    importance, as in Gromov et al. 2024), or a sequence of layer indices kept as given.
    ``keep_heads``: query heads kept per layer = ``num_attention_heads`` of the result; a multiple
    of the group size ``num_attention_heads / num_key_value_heads`` (whole KV groups go).
    ``keep_ffn``: FFN neurons kept per layer (``intermediate_size`` of the result).
    """

    keep_layers: int | tuple[int, ...] | None = None
    keep_heads: int | None = None
    keep_ffn: int | None = None
    contiguous: bool = False

    def __post_init__(self):
        for name in ("keep_heads", "keep_ffn"):
            _positive(name, getattr(self, name))
        if isinstance(self.keep_layers, (list, tuple)):
            layers = tuple(self.keep_layers)
            if not layers or any(isinstance(i, bool) or not isinstance(i, int) or i < 0 for i in layers) \
                    or any(b <= a for a, b in zip(layers, layers[1:])):
                raise ProtegeError(f"keep_layers must be increasing layer indices >= 0, got {self.keep_layers!r}")
            object.__setattr__(self, "keep_layers", layers)  # frozen: normalised once
        else:
            _positive("keep_layers", self.keep_layers)
        if not isinstance(self.contiguous, bool):
            raise ProtegeError(f"contiguous must be true or false, got {self.contiguous!r}")


def _positive(name: str, value) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ProtegeError(f"--{name.replace('_', '-')} must be an integer >= 1, got {value!r}")


@dataclass(frozen=True)
class DecoderImportance:
    """Measured importance of a decoder's parts (CPU tensors; index = position in the measured model).

    ``layers`` [N]: the ranking metric (``layer_metric``: ``kl`` or ``bi``; None when not measured);
    ``block_influence`` [N]; ``heads`` [N, KV groups]; ``ffn`` [N, intermediate]; ``tokens`` scored.
    """

    layers: torch.Tensor | None
    layer_metric: str | None
    block_influence: torch.Tensor
    heads: torch.Tensor | None
    ffn: torch.Tensor | None
    tokens: int

    def summary(self) -> dict:
        """A JSON-friendly record: per-layer scores and what they measure."""
        out = {"tokens": self.tokens, "layer_metric": self.layer_metric,
               "block_influence": [round(float(x), 6) for x in self.block_influence]}
        if self.layers is not None:
            out["layers"] = [round(float(x), 6) for x in self.layers]
        return out


# --- checks (config only: before any weight is loaded) ---------------------------------------------

def _layers_kept(cfg: DecoderPruneConfig, n: int) -> int:
    if cfg.keep_layers is None:
        return n
    if isinstance(cfg.keep_layers, tuple):
        if cfg.keep_layers[-1] >= n:
            raise ProtegeError(f"--keep-layers: layer {cfg.keep_layers[-1]} is outside 0..{n - 1} (the model has {n} layers)")
        return len(cfg.keep_layers)
    if cfg.keep_layers > n:
        raise ProtegeError(f"--keep-layers {cfg.keep_layers} is more than the model's {n} layers; choose 1..{n}")
    return cfg.keep_layers


def check_decoder_prune(config, cfg: DecoderPruneConfig) -> dict:
    """Fail with one line when ``cfg`` does not fit the model of ``config``; return the pruned :func:`decoder_shape`.

    Checks the counts, that heads go in whole KV groups, and that the stock config class of the
    model expresses the result (a meta-device model built from the pruned config has the
    pruned weights' shapes).
    """
    shape = decoder_shape(config)
    n, heads, kv, ffn = shape["layers"], shape["heads"], shape["kv_heads"], shape["ffn"]
    layers = _layers_kept(cfg, n)
    group = heads // kv
    keep_heads, keep_ffn = cfg.keep_heads or heads, cfg.keep_ffn or ffn
    if keep_heads > heads:
        raise ProtegeError(f"--keep-heads {keep_heads} is more than the {heads} attention heads per layer; choose at most {heads}")
    if keep_heads % group:
        raise ProtegeError(f"--keep-heads {keep_heads} does not divide into whole KV groups: {config.model_type} shares each "
                           f"key/value head among {group} query heads; choose a multiple of {group} (up to {heads})")
    if keep_ffn > ffn:
        raise ProtegeError(f"--keep-ffn {keep_ffn} is more than the {ffn} FFN neurons per layer; choose 1..{ffn}")
    if shape["family"] == "gpt2":
        if keep_heads != heads:
            raise ProtegeError("GPT-2 computes its head size as n_embd / n_head, so a stock config cannot hold fewer heads; "
                               "prune --keep-layers and --keep-ffn only")
        if layers != n and getattr(config, "scale_attn_by_inverse_layer_idx", False):
            raise ProtegeError("this GPT-2 scales attention by 1/(layer index + 1), which renumbered layers would change; "
                               "prune --keep-ffn only")
    after = {**shape, "layers": layers, "heads": keep_heads, "kv_heads": keep_heads // group, "ffn": keep_ffn}
    check_stock_shape(config, after)
    return after


def ranked_parts(config, cfg: DecoderPruneConfig) -> set[str]:
    """Which of ``layers``, ``heads``, ``ffn`` need measured importance (a count below the model's)."""
    shape = decoder_shape(config)
    need = set()
    if isinstance(cfg.keep_layers, int) and cfg.keep_layers < shape["layers"]:
        need.add("layers")
    if cfg.keep_heads is not None and cfg.keep_heads < shape["heads"]:
        need.add("heads")
    if cfg.keep_ffn is not None and cfg.keep_ffn < shape["ffn"]:
        need.add("ffn")
    return need


# --- importance ------------------------------------------------------------------------------------

def calibration_batches(tokenizer, texts: list[str], *, max_length: int = 512, num_sequences: int = 128,
                        batch_size: int = 8) -> list[dict]:
    """Texts packed into ``num_sequences`` sequences of ``max_length`` tokens, in padded batches of tensors."""
    from protege.data.batching import collate
    from protege.data.text import pack_sequences, tokenize_lines

    features = pack_sequences(tokenize_lines(list(texts), tokenizer), tokenizer, max_length=max_length)[:num_sequences]
    if not features:
        raise ProtegeError("no calibration tokens: pass some text")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    return [collate(features[i:i + batch_size], pad) for i in range(0, len(features), batch_size)]


def _hidden_in(args, kwargs):
    return args[0] if args else kwargs["hidden_states"]


def _hidden_out(output):
    return output[0] if isinstance(output, tuple) else output


@contextlib.contextmanager
def _skipped(block):
    """Run ``block`` as the identity: its output is its input."""
    def hook(module, args, kwargs, output):
        x = _hidden_in(args, kwargs)
        return (x, *output[1:]) if isinstance(output, tuple) else x

    handle = block.register_forward_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


@contextlib.contextmanager
def _recorders(parts: list[dict], shape: dict, state: dict):
    """Hooks that add each block's influence, each head's output norm and each neuron's |activation| to ``state``."""
    d, group = shape["head_dim"], shape["heads"] // shape["kv_heads"]
    handles = []
    for i, p in enumerate(parts):
        def on_block(module, args, kwargs, output, i=i):
            x, y = _hidden_in(args, kwargs).float(), _hidden_out(output).float()
            cos = nn.functional.cosine_similarity(x, y, dim=-1)
            state["bi"][i] += ((1 - cos) * state["mask"]).sum().double()

        def on_o(module, args, i=i):
            x = args[0]
            norms = x.float().view(*x.shape[:-1], -1, d).norm(dim=-1)  # [B, S, heads]
            per_head = (norms * state["mask"][..., None]).sum((0, 1)).double()
            state["heads"][i] += per_head.view(-1, group).sum(-1)

        def on_ffn(module, args, i=i):
            state["ffn"][i] += (args[0].float().abs() * state["mask"][..., None]).sum((0, 1)).double()

        handles.append(p["block"].register_forward_hook(on_block, with_kwargs=True))
        if state["heads"] is not None:
            handles.append(p["o"].register_forward_pre_hook(on_o))
        if state["ffn"] is not None:
            handles.append(p["ffn_out"].register_forward_pre_hook(on_ffn))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _kl(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """Per-position ``KL(p || q)`` of two log-distributions over the last axis."""
    return (log_p.exp() * (log_p - log_q)).sum(-1)


@torch.no_grad()
def decoder_importance(model, batches, *, layers: str | None = "kl", heads: bool = True, ffn: bool = True) -> DecoderImportance:
    """Measure the importance of every layer, KV group and FFN neuron of ``model`` on ``batches``.

    ``batches``: dicts with ``input_ids`` [B, S] and optionally ``attention_mask`` (padding is not
    scored), e.g. from :func:`calibration_batches`. ``layers``: ``"kl"`` (one extra forward pass
    per layer and batch), ``"bi"`` (block influence, free) or None. Costs one forward pass per
    batch, plus N with ``"kl"``; the model's weights are not changed.
    """
    if layers not in (*LAYER_METRICS, None):
        raise ProtegeError(f"layer importance must be one of {', '.join(LAYER_METRICS)}, got {layers!r}")
    shape, parts = decoder_shape(model.config), decoder_parts(model)
    n, device = len(parts), next(model.parameters()).device
    width = decoder_layout(model)
    zeros = lambda *s: torch.zeros(*s, dtype=torch.float64, device=device)  # noqa: E731
    state = {"bi": zeros(n), "heads": zeros(n, width["kv_heads"][0]) if heads else None,
             "ffn": zeros(n, width["ffn"][0]) if ffn else None, "mask": None}
    kl, tokens = zeros(n), 0
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            ids = batch["input_ids"].to(device)
            mask = batch.get("attention_mask")
            mask = (torch.ones_like(ids) if mask is None else mask.to(device)).float()
            state["mask"] = mask
            tokens += int(mask.sum())
            with _recorders(parts, shape, state):
                full = model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits.float().log_softmax(-1)
            if layers == "kl":
                for i, p in enumerate(parts):
                    with _skipped(p["block"]):
                        skip = model(input_ids=ids, attention_mask=mask.long(), use_cache=False).logits.float().log_softmax(-1)
                    kl[i] += (_kl(full, skip) * mask).sum().double()
    finally:
        model.train(was_training)
    if not tokens:
        raise ProtegeError("no calibration tokens: every batch is padding")
    bi = (state["bi"] / tokens).float().cpu()
    ranked = {"kl": (kl / tokens).float().cpu(), "bi": bi, None: None}[layers]
    per_token = lambda t: None if t is None else (t / tokens).float().cpu()  # noqa: E731
    return DecoderImportance(layers=ranked, layer_metric=layers, block_influence=bi, heads=per_token(state["heads"]),
                             ffn=per_token(state["ffn"]), tokens=tokens)


# --- pruning ---------------------------------------------------------------------------------------

def choose_layers(scores, keep: int, *, contiguous: bool = False) -> list[int]:
    """Indices of the ``keep`` layers kept: the rest are the least important (or the contiguous run of lowest sum)."""
    scores = torch.as_tensor(scores, dtype=torch.float64)
    n, drop = len(scores), len(scores) - keep
    if not 1 <= keep <= n:
        raise ProtegeError(f"cannot keep {keep} of {n} layers")
    if drop == 0:
        return list(range(n))
    if contiguous:
        sums = torch.stack([scores[s:s + drop].sum() for s in range(n - drop + 1)])
        start = int(torch.argmin(sums))  # first of equal runs
        return [i for i in range(n) if not start <= i < start + drop]
    dropped = set(torch.argsort(scores, stable=True)[:drop].tolist())
    return [i for i in range(n) if i not in dropped]


def _top(scores: torch.Tensor, k: int) -> list[int]:
    # highest first, ties to the lower index; returned in increasing order
    return sorted(torch.argsort(-scores.double(), stable=True)[:k].tolist())


def _check_importance(importance, need: set[str], shape: dict) -> None:
    if not need:
        return
    if importance is None:
        raise ProtegeError(f"pruning {', '.join(sorted(need))} by importance needs measured importance: "
                           "importance = decoder_importance(model, calibration_batches(tokenizer, texts))")
    n = shape["layers"]
    expected = {"layers": (importance.layers, (n,)), "heads": (importance.heads, (n, shape["kv_heads"])),
                "ffn": (importance.ffn, (n, shape["ffn"]))}
    for part in sorted(need):
        scores, want = expected[part]
        if scores is None:
            how = "layers='kl' or 'bi'" if part == "layers" else f"{part}=True"
            raise ProtegeError(f"pruning {part} needs measured importance of {part}: decoder_importance(model, batches, {how})")
        if tuple(scores.shape) != want:
            raise ProtegeError(f"the {part} importance has shape {tuple(scores.shape)}, this model needs {want}; measure it "
                               "on this model (before pruning) with decoder_importance")


def prune_decoder_(model, cfg: DecoderPruneConfig, importance: DecoderImportance | None = None) -> dict:
    """Prune the causal LM ``model`` in place as ``cfg`` says, ranking by ``importance`` (measured on this model).

    Removes the least important layers, then keeps the most important ``keep_heads / group``
    KV groups and ``keep_ffn`` neurons in every kept layer, and rewrites the config so that
    ``save_pretrained`` + ``AutoModelForCausalLM.from_pretrained`` gives the same model.
    Returns ``{"before", "after"}`` (:func:`decoder_layout`), ``kept_layers``, ``dropped_layers``
    and ``kept_kv_groups`` ({layer after pruning: original group indices}).
    """
    after_shape = check_decoder_prune(model.config, cfg)
    shape, before = decoder_shape(model.config), decoder_layout(model)
    if len(set(before["heads"])) > 1 or len(set(before["ffn"])) > 1 or before["heads"][0] != shape["heads"] \
            or before["ffn"][0] != shape["ffn"]:
        raise ProtegeError("this model's layers differ from its config (already pruned unevenly?); prune a stock model")
    need = ranked_parts(model.config, cfg)
    _check_importance(importance, need, shape)
    n = shape["layers"]
    if isinstance(cfg.keep_layers, tuple):
        kept = list(cfg.keep_layers)
    elif "layers" in need:
        kept = choose_layers(importance.layers, cfg.keep_layers, contiguous=cfg.contiguous)
    else:
        kept = list(range(n))
    parts = decoder_parts(model)
    groups = {}
    for new, old in enumerate(kept):
        if "heads" in need:
            groups[new] = _top(importance.heads[old], after_shape["kv_heads"])
            keep_kv_groups_(parts[old], groups[new], shape)
        if "ffn" in need:
            keep_neurons_(parts[old], _top(importance.ffn[old], after_shape["ffn"]))
    if len(kept) < n:
        replace_blocks(model, kept)  # renumbers layer_idx, fixes num_hidden_layers and layer_types
    set_decoder_widths(model.config, after_shape)
    return {"before": before, "after": decoder_layout(model), "kept_layers": kept,
            "dropped_layers": [i for i in range(n) if i not in kept],
            "kept_kv_groups": {str(k): v for k, v in groups.items()} if groups else None}
