"""Data parallelism (topic 46): every rank holds the whole model, sees its own slice of the batch, and the
ranks average their gradients before each optimizer step, so all replicas take the same step.

Averaging gradients over N equal shards gives the gradient of the mean loss over the global batch, so
N ranks with batch B/N each compute exactly what one process computes with batch B (up to the order
of floating-point sums). What remains is to make the all-reduce cheap, which `GradientSync` does the
way PyTorch's DDP does:

* **Buckets.** One all-reduce per parameter pays a latency per message for many small tensors; one
  all-reduce of all gradients must wait for the whole backward. Gradients are instead packed into
  buckets of about `bucket_mb` megabytes, each reduced as one flat tensor.
* **Reverse order, overlapped.** Backward produces gradients roughly in reverse order of the forward,
  i.e. of parameter registration, so buckets are filled from the last parameters back. A hook
  (`register_post_accumulate_grad_hook`) fires when a parameter's gradient is final; when a bucket's
  last gradient arrives its all-reduce is launched asynchronously, and the network works while
  backward carries on through earlier layers. `finish()` waits for the buckets and writes the
  averages back into `.grad`.
* **Same order everywhere.** Collectives pair up by sequence, so buckets are launched strictly in
  index order (a ready bucket waits for its predecessors). A bucket with a parameter that got no
  gradient (unused in this forward) is launched by `finish()`, the missing gradient counted as zeros.
  With `find_unused=True` one more small all-reduce counts the ranks that used each parameter, and a
  parameter no rank used keeps `.grad = None`, as in single-process training (where the optimizer
  skips it); otherwise it gets a zero gradient.
* **Accumulation.** Inside `no_sync()` the hooks do nothing and gradients accumulate locally; the
  micro-batch after it triggers the one all-reduce of the summed gradients.

`GradientSync` also broadcasts rank 0's weights so replicas start equal, and counts the bytes it
all-reduces per step. `wrap_ddp` is the same mechanism from PyTorch, for comparison.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import torch
import torch.distributed as dist
from torch import nn

from llmlab.core.errors import InputError
from llmlab.dist.collectives import global_rank


@torch.no_grad()
def broadcast_parameters(model: nn.Module, group=None, src: int = 0) -> None:
    """Copy group rank `src`'s parameters and buffers to every rank, so replicas start equal."""
    for t in list(model.parameters()) + list(model.buffers()):
        dist.broadcast(t.data, src=global_rank(group, src), group=group)


def shard_rows(t: torch.Tensor, rank: int, world: int) -> torch.Tensor:
    """Rank `rank`'s contiguous slice of a global batch (first dimension), which must divide by `world`.

    >>> shard_rows(torch.arange(6), 1, 3)
    tensor([2, 3])
    """
    if t.shape[0] % world:
        raise InputError(f"the global batch ({t.shape[0]} rows) must divide by the number of ranks ({world})")
    n = t.shape[0] // world
    return t[rank * n:(rank + 1) * n]  # (B/N, ...)


@dataclass
class _Bucket:
    params: list[nn.Parameter]
    flat: torch.Tensor  # (sum of numels,) one buffer the all-reduce works on
    offsets: list[int]
    ready: set = field(default_factory=set)  # ids of parameters whose gradient is final
    work: object = None  # the async all-reduce once launched
    in_backward: bool = False  # launched by a hook, overlapping backward


def build_buckets(params: list[nn.Parameter], bucket_bytes: int) -> list[list[nn.Parameter]]:
    """Split `params` (already in reverse registration order) into consecutive groups of about `bucket_bytes`.

    A new bucket starts when the next parameter would overflow the current one or has another dtype; a
    parameter larger than the cap gets a bucket of its own.
    """
    buckets, cur, size = [], [], 0
    for p in params:
        nbytes = p.numel() * p.element_size()
        if cur and (size + nbytes > bucket_bytes or p.dtype != cur[0].dtype):
            buckets.append(cur)
            cur, size = [], 0
        cur.append(p)
        size += nbytes
    if cur:
        buckets.append(cur)
    return buckets


class GradientSync:
    """Averages gradients over the group with bucketed, backward-overlapped all-reduces.

    Usage, per optimizer step (the last micro-batch outside `no_sync`)::

        sync = GradientSync(model)            # broadcasts rank 0's weights
        with sync.no_sync():
            loss_fn(model(x0), y0).backward()  # accumulate locally
        loss_fn(model(x1), y1).backward()      # buckets all-reduce as they fill
        sync.finish()                          # wait, write averages into .grad
        optimizer.step()
    """

    def __init__(self, model: nn.Module, bucket_mb: float = 25.0, group=None, broadcast: bool = True,
                 find_unused: bool = False):
        if bucket_mb <= 0:
            raise InputError(f"bucket_mb must be > 0, got {bucket_mb}")
        self.group = group
        self.world = dist.get_world_size(group)
        if broadcast:
            broadcast_parameters(model, group)
        params = [p for p in model.parameters() if p.requires_grad][::-1]  # backward meets the last ones first
        self.buckets = []
        for ps in build_buckets(params, int(bucket_mb * 2**20)):
            sizes = [p.numel() for p in ps]
            offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
            self.buckets.append(_Bucket(ps, torch.zeros(offsets[-1], dtype=ps[0].dtype, device=ps[0].device),
                                        offsets))
        self._bucket_of = {id(p): i for i, b in enumerate(self.buckets) for p in b.params}
        self._next = 0  # first bucket not yet launched
        self._enabled = True
        self.find_unused = find_unused
        self._used: set[int] = set()  # ids of parameters that got a gradient since the last finish()
        self._params = params
        self.bytes_per_step = sum(b.flat.numel() * b.flat.element_size() for b in self.buckets)
        self.last_overlapped = 0  # buckets of the last step launched during backward
        self._handles = [p.register_post_accumulate_grad_hook(self._on_grad) for p in params]

    @contextlib.contextmanager
    def no_sync(self):
        """Accumulate gradients locally (earlier micro-batches of a step); no communication."""
        self._enabled = False
        try:
            yield
        finally:
            self._enabled = True

    def _on_grad(self, p: nn.Parameter) -> None:
        self._used.add(id(p))
        if not self._enabled:
            return
        i = self._bucket_of[id(p)]
        if i < self._next:
            raise InputError("a second backward before GradientSync.finish(): wrap earlier micro-batches in no_sync()")
        b = self.buckets[i]
        b.ready.add(id(p))
        while self._next < len(self.buckets) and self._full(self.buckets[self._next]):
            self._launch(self.buckets[self._next], in_backward=True)

    @staticmethod
    def _full(b: _Bucket) -> bool:
        return len(b.ready) == len(b.params)

    def _launch(self, b: _Bucket, in_backward: bool) -> None:
        with torch.no_grad():
            for p, lo, hi in zip(b.params, b.offsets, b.offsets[1:]):
                if p.grad is None:  # unused in this forward: contributes zeros
                    b.flat[lo:hi].zero_()
                else:
                    b.flat[lo:hi].copy_(p.grad.reshape(-1))
        b.work = dist.all_reduce(b.flat, group=self.group, async_op=True)
        b.in_backward = in_backward
        self._next += 1

    def finish(self) -> int:
        """Launch the buckets still waiting, wait for all, and set each `.grad` to the group's average.

        Returns the bytes all-reduced this step (the size of all gradients). Call once per step, after
        the last backward and before the optimizer step.
        """
        while self._next < len(self.buckets):
            self._launch(self.buckets[self._next], in_backward=False)
        unused = self._globally_unused() if self.find_unused else set()
        with torch.no_grad():
            for b in self.buckets:
                b.work.wait()
                b.flat /= self.world
                for p, lo, hi in zip(b.params, b.offsets, b.offsets[1:]):
                    avg = b.flat[lo:hi].view_as(p)  # (*p.shape)
                    if id(p) in unused:
                        p.grad = None
                    elif p.grad is None:
                        p.grad = avg.clone()
                    else:
                        p.grad.copy_(avg)
        self.last_overlapped = sum(b.in_backward for b in self.buckets)
        for b in self.buckets:
            b.ready.clear()
            b.work = None
        self._next = 0
        self._used.clear()
        return self.bytes_per_step

    def _globally_unused(self) -> set[int]:
        """Ids of the parameters that no rank computed a gradient for since the last step."""
        used = torch.tensor([float(id(p) in self._used) for p in self._params],
                            device=self._params[0].device)  # (n_params,)
        dist.all_reduce(used, group=self.group)
        return {id(p) for p, u in zip(self._params, used.tolist()) if u == 0}

    def remove(self) -> None:
        """Detach the hooks from the model."""
        for h in self._handles:
            h.remove()
        self._handles = []


def wrap_ddp(model: nn.Module, group=None, bucket_mb: float = 25.0, **kwargs) -> nn.Module:
    """PyTorch's `DistributedDataParallel` around `model` (on its device; CPU under gloo).

    DDP does what `GradientSync` does (broadcast at construction, reverse-order buckets, hooks that
    all-reduce during backward, `no_sync()` for accumulation) and returns averaged gradients after
    `backward()` itself, with no `finish()`.
    """
    from torch.nn.parallel import DistributedDataParallel

    if bucket_mb <= 0:
        raise InputError(f"bucket_mb must be > 0, got {bucket_mb}")
    device = next(model.parameters()).device
    device_ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(model, device_ids=device_ids, process_group=group, bucket_cap_mb=bucket_mb,
                                   **kwargs)
