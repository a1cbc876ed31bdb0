"""Multi-process training with ``torchrun`` (DistributedDataParallel; gloo on CPU, NCCL on CUDA).

Without ``torchrun`` (no ``WORLD_SIZE`` in the environment) everything runs in one process and these functions
are no-ops. The environment variables read here are the ones torchrun defines for every worker; they select the
process's role, never a path.
"""

from __future__ import annotations

import os

import torch


def init(device: str) -> tuple[int, int]:
    """Join the process group when launched by torchrun; returns ``(rank, world_size)``."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1
    import torch.distributed as td

    if not td.is_initialized():
        backend = "nccl" if device.startswith("cuda") else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(local_rank())
        td.init_process_group(backend=backend)
    return td.get_rank(), td.get_world_size()


def local_rank() -> int:
    """This process's GPU index on its node."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def _active() -> bool:
    import torch.distributed as td

    return td.is_available() and td.is_initialized()


def is_main() -> bool:
    """True on rank 0 (or without distribution)."""
    if not _active():
        return True
    import torch.distributed as td

    return td.get_rank() == 0


def barrier() -> None:
    """Wait for every process."""
    if _active():
        import torch.distributed as td

        td.barrier()


def wrap(net: torch.nn.Module) -> torch.nn.Module:
    """Wrap a loss module in DistributedDataParallel when running distributed (gradients averaged across ranks)."""
    if not _active():
        return net
    from torch.nn.parallel import DistributedDataParallel

    device_ids = [local_rank()] if next(net.parameters()).is_cuda else None
    return DistributedDataParallel(net, device_ids=device_ids, find_unused_parameters=True)


def shutdown() -> None:
    """Leave the process group."""
    if _active():
        import torch.distributed as td

        td.destroy_process_group()
