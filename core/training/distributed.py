"""Data-parallel training across processes started by ``torchrun``.

Each rank trains on its own shard of every shuffled epoch; after backward the gradients are averaged
across ranks with one all-reduce of a flat buffer — the synchronisation DistributedDataParallel
performs — done explicitly because objectives may call pipeline methods other than ``forward``
(HGN's backward reconstruction does), which a DDP wrapper would not see. Rank 0 alone writes logs
and checkpoints.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

__all__ = ["all_ranks_finite", "average_gradients", "barrier", "broadcast_parameters", "init_world",
           "local_device_name", "ranks_in_sync", "share_from_main", "shutdown"]


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def active(self) -> bool:
        return self.size > 1


def init_world(device_name: str) -> World:
    """Join the process group if launched by torchrun (RANK/WORLD_SIZE set); a no-op otherwise."""
    if "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return World()
    world = World(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", "0")))
    use_cuda = device_name != "cpu" and torch.cuda.is_available()
    if use_cuda:
        torch.cuda.set_device(world.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return world


def local_device_name(world: World, device_name: str) -> str:
    if world.active and device_name in ("auto", "cuda") and torch.cuda.is_available():
        return f"cuda:{world.local_rank}"
    return device_name


def average_gradients(params: Sequence[Tensor], world: World) -> None:
    if not world.active:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = _flatten_dense_tensors(grads)
    dist.all_reduce(flat)
    flat.div_(world.size)
    for param, synced in zip(params, _unflatten_dense_tensors(flat, grads), strict=True):
        param.grad = synced


def all_ranks_finite(loss: Tensor, world: World) -> Tensor:
    """True (a device tensor, no host sync) when the loss is finite on every rank: after the gradient
    all-reduce one rank's NaN is everyone's, so all must skip the update and roll back together."""
    finite = torch.isfinite(loss.detach())
    if world.active:
        flag = finite.to(torch.float32).reshape(1)
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        finite = flag[0] > 0
    return finite


def share_from_main(value: Any, world: World) -> Any:
    """Rank 0's value on every rank (e.g. the run directory only rank 0 creates)."""
    if not world.active:
        return value
    holder = [value]
    dist.broadcast_object_list(holder, src=0)
    return holder[0]


def barrier(world: World) -> None:
    if world.active:
        dist.barrier()


def broadcast_parameters(params: Sequence[Tensor], world: World) -> None:
    """Start every rank from rank 0's weights."""
    if world.active:
        for param in params:
            dist.broadcast(param.data, src=0)


def ranks_in_sync(params: Sequence[Tensor], world: World) -> bool:
    """True when every rank holds exactly rank 0's weights (checked at the end of a run)."""
    if not world.active:
        return True
    flat = _flatten_dense_tensors([p.detach() for p in params])
    reference = flat.clone()
    dist.broadcast(reference, src=0)
    mismatch = (flat - reference).abs().max().reshape(1)
    dist.all_reduce(mismatch, op=dist.ReduceOp.MAX)
    return bool(mismatch.item() == 0.0)


def shutdown(world: World) -> None:
    """Leave the process group together: a rank that tears its connections down while rank 0 is
    still writing the run's files can make the other's transport abort."""
    if world.active and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
