"""Devices and the process group of a multi-process launch (``accelerate launch``, ``torchrun``)."""

from __future__ import annotations

import os

from protege.errors import ProtegeError

__all__ = ["resolve_device", "process_group", "barrier", "is_main"]


def resolve_device(name: str):
    """``auto`` -> the first CUDA device if present, else the CPU; a CUDA name without a GPU is bad input."""
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ProtegeError(f"--device {name} asked for a GPU but none is available; use --device cpu")
    return torch.device(name)


def process_group() -> tuple[int, int]:
    """``(rank, world_size)``; initialises the process group when a launcher started several processes.

    ``accelerate launch`` and ``torchrun`` set ``WORLD_SIZE``/``RANK``; Accelerate's
    ``PartialState`` then sets up the backend (gloo on CPU, NCCL on GPUs).
    """
    launched = int(os.environ.get("WORLD_SIZE", "1"))
    if launched <= 1:
        return 0, 1
    import torch
    from accelerate import PartialState

    # Without a GPU, Accelerate only sets up gloo when told "cpu" (an FSDP or multi-GPU config
    # launched on a CPU machine would otherwise give every process a world of its own).
    state = PartialState(cpu=not torch.cuda.is_available())
    if state.num_processes != launched:
        raise ProtegeError(f"{launched} processes were launched but Accelerate set up {state.num_processes}; "
                           "launch with `accelerate launch` or `torchrun`")
    return state.process_index, state.num_processes


def is_main() -> bool:
    """Whether this is the process that writes outputs (rank 0, or the only process)."""
    return process_group()[0] == 0


def barrier(world: int) -> None:
    """Wait for every process (no-op in a single process)."""
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
