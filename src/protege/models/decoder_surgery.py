"""Decoder surgery: where a causal LM keeps its attention and FFN weights, and slicing whole KV groups and neurons out.

The counterpart of :mod:`protege.models.surgery` (encoders) for decoders: Llama-family blocks
(``self_attn.{q,k,v,o}_proj``, ``mlp.{gate,up,down}_proj``; Llama, Mistral, Qwen2/3, Gemma ...)
with grouped-query attention, and GPT-2 (``attn.c_attn``/``c_proj``, ``mlp.c_fc``/``c_proj``
Conv1D layers). A pruned decoder stays a stock model: the same widths in every layer, written
to the config (``num_attention_heads``, ``num_key_value_heads``, an explicit ``head_dim``,
``intermediate_size``; GPT-2's ``n_inner``), which :func:`check_stock_shape` verifies by building
the pruned config on the meta device. Which parts to remove is :mod:`protege.pruning.decoder`'s business.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from protege.errors import ProtegeError
from protege.models.adapters import block_list

__all__ = ["decoder_shape", "decoder_parts", "decoder_layout", "keep_kv_groups_", "keep_neurons_", "set_decoder_widths",
           "check_stock_shape"]


def _family(config) -> str:
    return "gpt2" if config.model_type == "gpt2" else "llama"


def decoder_shape(config) -> dict:
    """``{"family", "layers", "heads", "kv_heads", "head_dim", "ffn"}`` that ``config`` describes (no weights needed)."""
    heads = int(config.num_attention_heads)
    hidden = int(config.hidden_size)
    if _family(config) == "gpt2":
        return {"family": "gpt2", "layers": int(config.num_hidden_layers), "heads": heads, "kv_heads": heads,
                "head_dim": hidden // heads, "ffn": int(config.n_inner or 4 * hidden)}
    if getattr(config, "intermediate_size", None) is None:
        raise ProtegeError(f"structured pruning of causal LMs supports Llama-family models (intermediate_size, GQA) and "
                           f"GPT-2; a {config.model_type} config has no intermediate_size")
    kv = getattr(config, "num_key_value_heads", None) or heads
    return {"family": "llama", "layers": int(config.num_hidden_layers), "heads": heads, "kv_heads": int(kv),
            "head_dim": int(getattr(config, "head_dim", None) or hidden // heads), "ffn": int(config.intermediate_size)}


def decoder_parts(model) -> list[dict]:
    """Per block: ``block``, ``attn``, ``mlp``, the projections ``q``/``k``/``v`` (Llama family), ``o``, ``ffn_in``, ``ffn_out``."""
    from transformers.pytorch_utils import Conv1D

    _, _, blocks = block_list(model)
    out = []
    for block in blocks:
        attn, mlp = getattr(block, "self_attn", None), getattr(block, "mlp", None)
        if attn is not None and all(isinstance(getattr(attn, n, None), nn.Linear) for n in ("q_proj", "k_proj", "v_proj", "o_proj")) \
                and all(isinstance(getattr(mlp, n, None), nn.Linear) for n in ("up_proj", "down_proj")):
            ffn_in = [getattr(mlp, n) for n in ("gate_proj", "up_proj") if isinstance(getattr(mlp, n, None), nn.Linear)]
            out.append({"block": block, "attn": attn, "mlp": mlp, "q": attn.q_proj, "k": attn.k_proj, "v": attn.v_proj,
                        "o": attn.o_proj, "ffn_in": ffn_in, "ffn_out": mlp.down_proj})
            continue
        attn = getattr(block, "attn", None)
        if isinstance(getattr(attn, "c_attn", None), Conv1D) and isinstance(getattr(mlp, "c_fc", None), Conv1D):
            out.append({"block": block, "attn": attn, "mlp": mlp, "o": attn.c_proj, "ffn_in": [mlp.c_fc], "ffn_out": mlp.c_proj})
            continue
        raise ProtegeError(f"structured pruning does not know the blocks of {type(model).__name__} (it needs self_attn."
                           "{q,k,v,o}_proj and mlp.{gate,up,down}_proj, or GPT-2's attn.c_attn and mlp.c_fc); "
                           "fused projections (Phi-3 qkv_proj) are not supported")
    return out


def decoder_layout(model) -> dict:
    """The model as it is now: ``{"layers", "heads" [per layer], "kv_heads" [per layer], "head_dim", "ffn" [per layer]}``."""
    shape = decoder_shape(model.config)
    parts, d, gpt2 = decoder_parts(model), shape["head_dim"], shape["family"] == "gpt2"
    if gpt2:
        heads = kv = [p["o"].weight.shape[0] // d for p in parts]  # Conv1D weights are [in, out]
    else:
        heads, kv = [p["q"].out_features // d for p in parts], [p["k"].out_features // d for p in parts]
    return {"layers": len(parts), "heads": heads, "kv_heads": kv, "head_dim": d,
            "ffn": [p["ffn_out"].weight.shape[0 if gpt2 else 1] for p in parts]}


def _slice(layer: nn.Module, index: torch.Tensor, *, outputs: bool) -> None:
    """Keep output features (``outputs``) or input features ``index`` of an nn.Linear or a GPT-2 Conv1D, in place."""
    conv = not isinstance(layer, nn.Linear)  # Conv1D: weight [in, out], out features ``nf``
    dim = (1 if conv else 0) if outputs else (0 if conv else 1)
    index = index.to(layer.weight.device)
    layer.weight = nn.Parameter(layer.weight.index_select(dim, index).clone(), requires_grad=layer.weight.requires_grad)
    if outputs and layer.bias is not None:
        layer.bias = nn.Parameter(layer.bias.index_select(0, index).clone(), requires_grad=layer.bias.requires_grad)
    if conv:
        layer.nf = layer.weight.shape[1]
    elif outputs:
        layer.out_features = len(index)
    else:
        layer.in_features = len(index)


def keep_kv_groups_(part: dict, groups: list[int], shape: dict) -> None:
    """Keep KV groups ``groups`` (current indices) of one Llama-family block: each one's K/V head and its query heads.

    Query head ``h`` reads KV head ``h // group`` (transformers' ``repeat_kv``), so group ``g``
    is query heads ``g*group .. g*group + group - 1``; q/k/v rows and o_proj columns are sliced.
    """
    d, group = shape["head_dim"], shape["heads"] // shape["kv_heads"]
    q_heads = [g * group + j for g in groups for j in range(group)]

    def rows(heads):
        return torch.cat([torch.arange(h * d, (h + 1) * d) for h in heads])

    for name, heads in (("q", q_heads), ("k", groups), ("v", groups)):
        _slice(part[name], rows(heads), outputs=True)
    _slice(part["o"], rows(q_heads), outputs=False)
    for attr, value in (("num_heads", len(q_heads)), ("num_attention_heads", len(q_heads)),
                        ("num_key_value_heads", len(groups)), ("num_kv_heads", len(groups))):
        if isinstance(getattr(part["attn"], attr, None), int):  # some attention modules reshape with these
            setattr(part["attn"], attr, value)


def keep_neurons_(part: dict, neurons: list[int]) -> None:
    """Keep FFN neurons ``neurons`` of one block: rows of gate/up (c_fc), columns of down (c_proj)."""
    index = torch.as_tensor(neurons, dtype=torch.long)
    for layer in part["ffn_in"]:
        _slice(layer, index, outputs=True)
    _slice(part["ffn_out"], index, outputs=False)
    if isinstance(getattr(part["mlp"], "intermediate_size", None), int):
        part["mlp"].intermediate_size = len(neurons)


def set_decoder_widths(config, shape: dict) -> None:
    """Write the widths of ``shape`` (a :func:`decoder_shape`) into ``config``; ``head_dim`` explicitly (not hidden / heads)."""
    if shape["family"] == "gpt2":
        config.n_inner = shape["ffn"]
    else:
        config.num_attention_heads, config.num_key_value_heads = shape["heads"], shape["kv_heads"]
        config.head_dim, config.intermediate_size = shape["head_dim"], shape["ffn"]


def _one_layer_config(config, shape: dict):
    new = copy.deepcopy(config)
    types = getattr(config, "layer_types", None)
    if isinstance(types, (list, tuple)) and len(types) == int(config.num_hidden_layers):
        new.layer_types = list(types[:1])
    new.num_hidden_layers = 1
    set_decoder_widths(new, shape)
    return new


def check_stock_shape(config, shape: dict) -> None:
    """Fail with one line unless the stock model class of ``config`` builds the widths of ``shape`` (meta device, no memory)."""
    from transformers import AutoModelForCausalLM

    if shape["family"] == "gpt2":  # its head size is n_embd / n_head: only the FFN width changes, which n_inner holds
        return
    try:
        with torch.device("meta"):
            probe = AutoModelForCausalLM.from_config(_one_layer_config(config, shape))
    except (ValueError, TypeError, KeyError) as err:
        raise ProtegeError(f"transformers cannot build a {config.model_type} model of the pruned size ({str(err)[:120]}); "
                           "prune fewer heads") from None
    p = decoder_parts(probe)[0]
    d = shape["head_dim"]
    got = (p["q"].out_features, p["k"].out_features, p["ffn_out"].in_features)
    want = (shape["heads"] * d, shape["kv_heads"] * d, shape["ffn"])
    if got != want:
        raise ProtegeError(f"a stock {config.model_type} config cannot express {shape['heads']} heads of size {d} "
                           f"(it builds q/k/ffn widths {got}, pruning needs {want}); prune --keep-layers and --keep-ffn only")
