"""Sharded data parallelism, ZeRO-3 style, with PyTorch FSDP2 (`fully_shard`).

Plain data parallelism keeps a full copy of the weights, gradients and optimizer state on every rank.
ZeRO-3 keeps only 1/N of each on each rank: every parameter is cut along its first dimension and rank r
stores shard r (a `DTensor` whose `to_local()` is that shard). A block's full weights exist only
while it runs:

    forward, per block:  all-gather the block's shards -> compute -> free the gathered weights
    backward, per block: all-gather again -> compute gradients -> reduce-scatter them (each rank keeps
                         the average of its own shard's gradient) -> free
    optimizer step:      on the local shards only (AdamW's moments are sharded too)

Wrapping each decoder block separately (then the root, for the embeddings, final norm and head) makes
the block the unit of gathering, so peak memory holds the shards plus about one full block, and the
next block's all-gather can overlap the current block's compute. The price is communication: per step
each rank moves (N-1)/N of the weights in each of the two all-gathers and (N-1)/N of the gradients in
the reduce-scatter, 3 (N-1)/N * P bytes against plain data parallelism's 2 (N-1)/N * P
(`step_bytes`). `reshard_after_forward=False` keeps gathered weights from forward to backward
(ZeRO-2-like memory for parameters, one all-gather fewer).

It runs on CPU with gloo as on GPUs with NCCL (checked with torch 2.13: sharding, llmlab's optimizers on
the sharded parameters and `full_tensor()` all work on CPU).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable

import torch
import torch.distributed as dist
from torch import nn

from llmlab.core.errors import InputError


def shard_model(model: nn.Module, blocks: Iterable[nn.Module] | None = None, mesh=None,
                reshard_after_forward: bool = True, **kwargs) -> nn.Module:
    """Shard `model` in place over all ranks (or `mesh`): each of `blocks` (default `model.layers`), then the root.

    Extra keyword arguments go to `fully_shard` (e.g. ``mp_policy=MixedPrecisionPolicy(...)``). Returns
    the model, whose parameters are now DTensors; build the optimizer after this call.
    """
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    if blocks is None:
        if not isinstance(getattr(model, "layers", None), nn.ModuleList):
            raise InputError(f"{type(model).__name__} has no `layers` ModuleList; pass the modules to shard as blocks")
        blocks = model.layers
    if mesh is None:
        device = next(model.parameters()).device
        mesh = init_device_mesh(device.type, (dist.get_world_size(),))
    for block in blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=reshard_after_forward, **kwargs)
    fully_shard(model, mesh=mesh, reshard_after_forward=reshard_after_forward, **kwargs)
    return model


@contextlib.contextmanager
def no_sync(model: nn.Module):
    """Accumulate unsharded gradients locally (earlier micro-batches); the next backward reduce-scatters."""
    model.set_requires_gradient_sync(False)
    try:
        yield
    finally:
        model.set_requires_gradient_sync(True)


def _local(t: torch.Tensor) -> torch.Tensor:
    return t.to_local() if hasattr(t, "to_local") else t


def local_param_bytes(model: nn.Module) -> int:
    """Bytes of parameters this rank stores: about 1/N of `full_param_bytes` once sharded."""
    return sum(_local(p).numel() * p.element_size() for p in model.parameters())


def full_param_bytes(model: nn.Module) -> int:
    """Bytes of the whole (unsharded) model's parameters."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def gather_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The full, unsharded state dict on every rank (a collective: all ranks must call it)."""
    return {k: v.full_tensor() if hasattr(v, "full_tensor") else v for k, v in model.state_dict().items()}


def step_bytes(param_bytes: int, world: int, reshard_after_forward: bool = True) -> float:
    """Bytes each rank sends per training step under ZeRO-3 (ring collectives): all-gathers plus reduce-scatter.

    >>> step_bytes(1000, 4)  # 3 * (N-1)/N * P
    2250.0
    >>> step_bytes(1000, 4, reshard_after_forward=False)  # one all-gather: 2 (N-1)/N * P, as plain DDP
    1500.0
    """
    if world < 1 or param_bytes < 0:
        raise InputError(f"need world >= 1 and param_bytes >= 0, got {world}, {param_bytes}")
    passes = 3 if reshard_after_forward else 2
    return passes * (world - 1) / world * param_bytes
