"""Unstructured magnitude pruning on ``torch.nn.utils.prune`` masks.

The candidates are the linear layers of the encoder blocks (attention Q/K/V/output and the
FFN), optionally the pooler, the classification head and the embedding tables. Each pruned
module carries torch's reparametrisation (``weight_orig``, ``weight_mask`` and a forward
pre-hook), so training after pruning keeps pruned weights at zero. Masks are computed here
rather than by ``l1_unstructured``/``global_unstructured`` because torch's ``amount`` counts
the *remaining* weights; here ``sparsity`` is the absolute fraction of candidate weights that
are zero afterwards, exactly ``round(sparsity * n)`` of them (per matrix with ``scope="layer"``,
over all candidates with ``scope="global"``), and weights already pruned stay pruned.

Zeros in dense matrices do not make CPU inference faster: the kernels multiply them like any
other value. :func:`make_permanent_` turns the pruned model back into a stock one for saving.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

from protege.errors import ProtegeError
from protege.models.adapters import block_list
from protege.models.surgery import MASKS_FILE  # one name for the masks file; model loading skips it too

__all__ = ["prunable_weights", "magnitude_prune_", "random_prune_", "apply_masks_", "get_masks", "make_permanent_",
           "sparsity_report", "save_masks", "load_masks", "MASKS_FILE"]


def prunable_weights(model: nn.Module, target=None) -> dict[str, nn.Module]:
    """The modules whose ``weight`` may be pruned, keyed by the weight's name in ``model.state_dict()``.

    ``target`` (a :class:`~protege.pruning.config.PruneTarget`, default: encoder blocks only) adds
    the pooler, the classification head and the embedding tables.
    """
    _, _, blocks = block_list(model)
    in_blocks = {id(m) for m in blocks.modules()}
    base = getattr(model, "base_model", model)
    in_base = {id(m) for m in base.modules()}
    found = {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            if id(module) in in_blocks:
                kind = "encoder"
            elif id(module) in in_base:
                kind = "pooler"
            else:
                kind = "classifier"
        elif isinstance(module, nn.Embedding):
            kind = "embeddings"
        else:
            continue
        wanted = kind == "encoder" or (target is not None and getattr(target, f"include_{kind}", False))
        if wanted:
            found[f"{name}.weight"] = module
    return found


def _effective(module: nn.Module) -> torch.Tensor:
    # the weight as the forward pass sees it (masked when torch's pruning hook is attached)
    if hasattr(module, "weight_mask"):
        return module.weight_orig.detach() * module.weight_mask
    return module.weight.detach()


def _current_mask(module: nn.Module) -> torch.Tensor:
    if hasattr(module, "weight_mask"):
        return module.weight_mask.detach().bool()
    return torch.ones_like(module.weight, dtype=torch.bool)


def _set_mask(module: nn.Module, mask: torch.Tensor) -> None:
    """Attach (or update in place) torch's pruning reparametrisation with ``mask``."""
    mask = mask.to(device=_effective(module).device)
    if hasattr(module, "weight_mask"):
        # update the existing buffer rather than stacking another method into a PruningContainer
        module.weight_mask.copy_(mask.to(module.weight_mask.dtype))
        with torch.no_grad():
            module.weight = module.weight_orig * module.weight_mask
    else:
        torch_prune.custom_from_mask(module, "weight", mask)


@torch.no_grad()
def magnitude_prune_(model: nn.Module, config) -> nn.Module:
    """Zero the smallest-magnitude candidate weights of ``model`` in place; returns ``model``.

    ``config`` is a :class:`~protege.pruning.config.MagnitudeConfig`. Already-pruned weights count
    towards the target and stay pruned, so calling this again with a higher sparsity continues
    iterative pruning. Ties are broken by position, so the result is deterministic.
    """
    modules = prunable_weights(model, config)
    scores = {}
    for name, module in modules.items():
        score = _effective(module).abs().flatten().float()
        score[~_current_mask(module).flatten()] = -1.0  # pruned before: first to go, and stay gone
        scores[name] = score
    if config.scope == "layer":
        keeps = {name: _lowest_out(score, config.sparsity) for name, score in scores.items()}
    else:
        flat = _lowest_out(torch.cat([s.cpu() for s in scores.values()]), config.sparsity)
        keeps, start = {}, 0
        for name, score in scores.items():
            keeps[name] = flat[start:start + score.numel()]
            start += score.numel()
    for name, module in modules.items():
        # a lower target than the current sparsity never revives pruned weights
        keep = keeps[name].to(scores[name].device) & _current_mask(module).flatten()
        _set_mask(module, keep.view(_shape(module)))
    return model


def _shape(module):
    return (module.weight_orig if hasattr(module, "weight_orig") else module.weight).shape


def _lowest_out(scores: torch.Tensor, sparsity: float) -> torch.Tensor:
    """A boolean keep-mask with exactly ``round(sparsity * n)`` False entries at the lowest scores."""
    k = int(round(sparsity * scores.numel()))
    keep = torch.ones(scores.numel(), dtype=torch.bool, device=scores.device)
    if k:
        order = torch.argsort(scores, stable=True)
        keep[order[:k]] = False
    return keep


@torch.no_grad()
def random_prune_(model: nn.Module, zeros: dict[str, int], *, seed: int = 0) -> nn.Module:
    """Prune ``zeros[name]`` weights chosen uniformly at random in each named weight (the random-mask control)."""
    modules = _modules_for(model, zeros)
    gen = torch.Generator().manual_seed(seed)
    for name, count in zeros.items():
        module = modules[name]
        shape = _shape(module)
        n = shape.numel()
        keep = torch.ones(n, dtype=torch.bool)
        keep[torch.randperm(n, generator=gen)[:int(count)]] = False
        _set_mask(module, keep.view(shape))
    return model


@torch.no_grad()
def apply_masks_(model: nn.Module, masks: dict[str, torch.Tensor] | str | Path) -> nn.Module:
    """Prune ``model`` with saved masks (a dict, a masks file or a pruned run's folder); returns ``model``."""
    if not isinstance(masks, dict):
        masks = load_masks(masks)
    modules = _modules_for(model, masks)
    for name, mask in masks.items():
        if tuple(mask.shape) != tuple(_shape(modules[name])):
            raise ProtegeError(f"mask for {name} has shape {tuple(mask.shape)} but the model's weight is "
                               f"{tuple(_shape(modules[name]))}; masks only fit a model of the same architecture and size")
        _set_mask(modules[name], mask.bool())
    return model


def _modules_for(model, names) -> dict[str, nn.Module]:
    wanted = {}
    lookup = dict(model.named_modules())
    for name in names:
        module = lookup.get(name.rsplit(".", 1)[0]) if name.endswith(".weight") else None
        if module is None:
            raise ProtegeError(f"mask names weight '{name}' that this model does not have; the masks come from another architecture")
        wanted[name] = module
    return wanted


def get_masks(model: nn.Module) -> dict[str, torch.Tensor]:
    """Boolean masks (True = kept) of every pruned weight, keyed like :func:`prunable_weights`."""
    return {f"{name}.weight": m.weight_mask.detach().bool().cpu().clone()
            for name, m in model.named_modules() if hasattr(m, "weight_mask")}


def make_permanent_(model: nn.Module) -> nn.Module:
    """Fold every mask into its weight and drop torch's reparametrisation (a stock model again)."""
    for module in model.modules():
        if hasattr(module, "weight_mask"):
            torch_prune.remove(module, "weight")
    return model


def sparsity_report(model: nn.Module, names=None) -> dict:
    """Zeros per candidate weight and overall.

    ``names`` are the weights to report (default: every pruned weight, else the encoder's
    candidates). Zeros are read from the mask while pruning is attached and from the weight
    itself after :func:`make_permanent_`. Returns ``{"per_layer": {name: {"parameters", "zeros",
    "sparsity"}}, "parameters", "zeros", "sparsity"}``.
    """
    lookup = dict(model.named_modules())
    if names is None:
        names = list(get_masks(model)) or list(prunable_weights(model))
    per_layer, total, zeros = {}, 0, 0
    for name in names:
        module = lookup[name.rsplit(".", 1)[0]]
        z = int((~_current_mask(module)).sum()) if hasattr(module, "weight_mask") else int((module.weight == 0).sum())
        n = _shape(module).numel()
        per_layer[name] = {"parameters": n, "zeros": z, "sparsity": z / n}
        total, zeros = total + n, zeros + z
    return {"per_layer": per_layer, "parameters": total, "zeros": zeros, "sparsity": zeros / total if total else 0.0}


def save_masks(masks: dict[str, torch.Tensor], path: str | Path) -> Path:
    """Write boolean masks as safetensors."""
    from safetensors.torch import save_file

    path = Path(path)
    save_file({k: v.bool().contiguous() for k, v in masks.items()}, str(path), metadata={"format": "protege-masks"})
    return path


def load_masks(path: str | Path) -> dict[str, torch.Tensor]:
    """Read masks written by :func:`save_masks` (a file, or a folder holding ``pruning_masks.safetensors``)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    path = Path(path)
    if path.is_dir():
        path = path / MASKS_FILE
    if not path.is_file():
        raise ProtegeError(f"{path}: no such masks file; pass a {MASKS_FILE} or the folder of an unstructured pruning run")
    try:
        masks = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise ProtegeError(f"{path}: not a safetensors masks file ({str(err).splitlines()[0][:120]})") from None
    if not masks:
        raise ProtegeError(f"{path}: holds no masks")
    return {k: v.bool() for k, v in masks.items()}
