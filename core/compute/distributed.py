"""Runs under ``torchrun``: which process this is, its share of the work, and the decisions
every process must take together.

DistributedDataParallel hangs when one rank skips a step, stops or raises while the others
wait in a collective. So every decision that depends on one rank's data or clock goes
through ``any_rank`` or ``largest``: all ranks see the same answer and act alike.
"""

from __future__ import annotations

import os


def distributed_rank() -> tuple[int, int, int]:
    """``(rank, world_size, local_rank)`` from torchrun's environment, or ``(0, 1, 0)``."""
    env = os.environ
    return int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0))


def shard(items: list, rank: int, world_size: int) -> list:
    """The share of ``items`` that process ``rank`` of ``world_size`` handles (disjoint, complete)."""
    return items[rank::world_size]


def join_process_group(backend: str) -> None:
    """Join torchrun's process group (once a process), and leave it at exit: a process that
    ends without ``destroy_process_group`` can be aborted by gloo's threads as the interpreter
    shuts down (SIGABRT, "terminate called without an active exception"), after its work is
    done, and torchrun then reports the run as failed."""
    import atexit

    import torch.distributed as dist

    if dist.is_initialized():
        return
    dist.init_process_group(backend)
    atexit.register(_leave_process_group)


def _leave_process_group() -> None:
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()


def _group_active() -> bool:
    import torch.distributed as dist

    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def largest(value: float, device) -> float:
    """The largest ``value`` over all ranks (``value`` itself outside a distributed run)."""
    if not _group_active():
        return value
    import torch
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def any_rank(flag: bool, device) -> bool:
    """True on every rank when ``flag`` is true on at least one."""
    return largest(1.0 if flag else 0.0, device) > 0.0
