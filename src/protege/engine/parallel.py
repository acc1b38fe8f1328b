"""Several processes for one training run: data parallelism and FSDP2 sharding of the student.

``accelerate launch`` and ``torchrun`` start the processes; :func:`process_group` joins them.
Each global batch is split across processes and gradients are averaged with one flattened
all-reduce (what DDP does), or, with ``--fsdp`` or an Accelerate FSDP config, the student is
sharded with FSDP2 (``fully_shard`` per transformer block, then the root) and its gradients
reduce-scattered. Full, unsharded state dicts are gathered for checkpoints and the result.
"""

from __future__ import annotations

import copy
import os

import torch

from protege.errors import ProtegeError

__all__ = ["use_fsdp", "shard", "full_model_state", "param_names", "full_optimizer_state",
           "clip_grad_norm", "all_reduce_grads", "reduce_terms", "broadcast_flag"]


def use_fsdp(settings, world: int) -> bool:
    """``--fsdp`` or an Accelerate FSDP config (it sets ``ACCELERATE_USE_FSDP``); one process has nothing to shard."""
    asked = getattr(settings, "fsdp", False) or os.environ.get("ACCELERATE_USE_FSDP", "").lower() in ("1", "true")
    return bool(asked) and world > 1


def shard(model: torch.nn.Module, device: torch.device, world: int) -> torch.nn.Module:
    """A copy of ``model`` sharded with FSDP2: each transformer block is one unit, the root (embeddings, head) another.

    The caller's ``model`` stays a plain module on the CPU (callers hold it, and closures may
    too); :func:`train` loads the trained weights back into it at the end.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from protege.models.adapters import block_list

    # pruning masks (and the schedules that update them) act on the caller's module, which FSDP does not train
    if any(hasattr(m, "weight_mask") for m in model.modules()):
        raise ProtegeError("--fsdp cannot train a model being pruned (masks or a pruning schedule); run without --fsdp")
    sharded = copy.deepcopy(model.cpu())
    mesh = init_device_mesh(device.type, (world,))
    try:
        blocks = list(block_list(sharded)[2])
    except (ProtegeError, AttributeError):  # unknown layout: the root unit alone still shards, with a bigger all-gather
        blocks = []
    for block in blocks:
        fully_shard(block, mesh=mesh)
    fully_shard(sharded, mesh=mesh)
    _keep_output_capture(sharded)
    return sharded


def _keep_output_capture(model: torch.nn.Module) -> None:
    """Let a sharded transformers model still return hidden states and attentions when asked.

    transformers looks up what a model can record by the name of its class, and ``fully_shard``
    swaps in a subclass (``BertModel`` -> ``FSDPBertModel``): without this entry a sharded base
    model answers ``output_hidden_states=True`` with ``None``.
    """
    try:
        from transformers.utils.output_capturing import _CAN_RECORD_REGISTRY
    except ImportError:  # transformers versions that collect outputs inside forward need nothing
        return
    from torch.distributed.fsdp import FSDPModule

    for m in model.modules():
        if isinstance(m, FSDPModule) and hasattr(m, "_can_record_outputs"):
            _CAN_RECORD_REGISTRY[m] = m._can_record_outputs


def full_model_state(model: torch.nn.Module, sharded: bool, *, everywhere: bool = False) -> dict:
    """Full (unsharded) state dict; under FSDP a collective that only the main process receives unless ``everywhere``."""
    if not sharded:
        return model.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    return get_model_state_dict(model, options=StateDictOptions(full_state_dict=True, cpu_offload=not everywhere))


def param_names(modules: dict, optimizer) -> list[str]:
    """Names of the optimizer's parameters in its order: the bridge between torch's index keys and DCP's names."""
    names = {p: n for n, p in torch.nn.ModuleDict(modules).named_parameters()}
    return [names[p] for g in optimizer.param_groups for p in g["params"]]


def full_optimizer_state(modules: dict, optimizer, sharded: bool) -> dict:
    """The optimizer's full state in torch's index-keyed layout, so checkpoints are the same with and without FSDP."""
    if not sharded:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    state = get_optimizer_state_dict(torch.nn.ModuleDict(modules), optimizer,
                                     options=StateDictOptions(full_state_dict=True, cpu_offload=True))
    if not state:  # not the main process
        return state
    index = {n: i for i, n in enumerate(param_names(modules, optimizer))}
    return {"state": {index[n]: v for n, v in state["state"].items()},
            "param_groups": [{**g, "params": [index[n] for n in g["params"]]} for g in state["param_groups"]]}


def clip_grad_norm(params, max_norm: float, *, sharded: bool = False) -> None:
    """``torch.nn.utils.clip_grad_norm_``, also over FSDP's DTensor gradients mixed with plain ones.

    torch's foreach norm refuses a list mixing the two (``sharded``: a sharded student plus
    replicated projections), so each kind is normed on its own and the global norm combined.
    """
    if not sharded:
        torch.nn.utils.clip_grad_norm_(params, max_norm)
        return
    from torch.distributed.tensor import DTensor

    params = [p for p in params if p.grad is not None]
    split = ([p for p in params if isinstance(p.grad, DTensor)], [p for p in params if not isinstance(p.grad, DTensor)])
    kinds = [k for k in split if k]
    if not kinds:
        return
    norms = [torch.nn.utils.get_total_norm([p.grad for p in k]) for k in kinds]
    total = torch.linalg.vector_norm(torch.stack([n.full_tensor() if isinstance(n, DTensor) else n for n in norms]))
    for k in kinds:
        torch.nn.utils.clip_grads_with_norm_(k, max_norm, total)


def all_reduce_grads(params, world: int) -> None:
    """Average gradients over processes in one flattened all-reduce (equivalent to DDP's averaging)."""
    import torch.distributed as dist

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= world
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(p).clone()
        offset += n


def reduce_terms(totals: dict, world: int) -> dict:
    if world <= 1 or not totals:
        return totals
    import torch.distributed as dist

    keys = sorted(totals)
    stacked = torch.stack([torch.as_tensor(totals[k], dtype=torch.float32) for k in keys])
    dist.all_reduce(stacked)
    return dict(zip(keys, stacked))


def broadcast_flag(flag: bool, world: int, *, device=None) -> bool:
    """The main process's ``flag`` on every process (``device``: where the backend's collectives run; NCCL needs CUDA)."""
    if world <= 1:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())
