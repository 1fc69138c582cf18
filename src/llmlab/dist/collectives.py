"""All-reduce written out with point-to-point messages (topic 47), and what each scheme costs.

All-reduce leaves every rank holding the sum of all ranks' tensors; data parallelism runs one per step
on the gradients. Two ways to build it from `send`/`recv`, for N ranks and a tensor of S bytes:

* **Reduce to a root, then broadcast** (`naive_all_reduce`): every rank sends its tensor to the root,
  the root adds them up and sends the sum back. The root receives (N-1)S and sends (N-1)S bytes while
  the others send S and receive S: the root's link carries all the traffic, so time grows with N.
* **Ring** (`ring_all_reduce`): the ranks form a ring and the tensor is cut into N chunks. In N-1
  *reduce-scatter* steps each rank sends one chunk to its right neighbour and adds the chunk arriving
  from its left; afterwards rank r holds the full sum of chunk (r+1) mod N. In N-1 *all-gather* steps
  the finished chunks travel once around the ring. Each rank sends (and receives) 2(N-1) chunks of
  S/N bytes, 2(N-1)/N * S, which is below 2S whatever N is: every link is busy and none is a hot spot.

Both sum in place over any process group and return a `CommStats` with the bytes this rank sent and
received (message payloads only; the transport's headers are not counted). `theoretical_bytes` gives
the formulas, which the tests hold equal to the measured counts. `count_collectives` records the
collectives other code (GradientSync, FSDP) issues through `torch.distributed`, so their traffic can be
set against the same formulas.

Worked example (2 ranks, ring; rank 0 holds [a0, a1], rank 1 holds [b0, b1]). Reduce-scatter: rank 0
sends a0 and adds the b1 it receives -> [a0, a1+b1]; rank 1 sends b1 and adds a0 -> [a0+b0, b1].
All-gather: each sends its finished chunk and overwrites the other -> both hold [a0+b0, a1+b1].
Each rank sent 2 half-tensors: 2(N-1)/N * S = S.
"""

from __future__ import annotations

import contextlib
import inspect
from dataclasses import dataclass

import torch
import torch.distributed as dist

from llmlab.core.errors import InputError

SCHEMES = ("naive", "ring")


@dataclass
class CommStats:
    """Payload bytes one rank sent and received during one or more collectives."""

    sent: float = 0
    received: float = 0

    def __add__(self, other: CommStats) -> CommStats:
        return CommStats(self.sent + other.sent, self.received + other.received)


def theoretical_bytes(scheme: str, nbytes: int, world: int, rank: int = 0) -> CommStats:
    """Bytes rank `rank` (its rank in the group) sends and receives to all-reduce `nbytes` over `world` ranks.

    naive (root = group rank 0): the root receives and sends (N-1) * nbytes, every other rank sends and
    receives nbytes. ring: every rank sends and receives 2 (N-1)/N * nbytes (exact when the element
    count divides by N; otherwise ranks differ by a few elements and only the total over ranks,
    2 (N-1) * nbytes, is exact).

    >>> theoretical_bytes("ring", 4000, 4)
    CommStats(sent=6000.0, received=6000.0)
    >>> theoretical_bytes("naive", 4000, 4, rank=0), theoretical_bytes("naive", 4000, 4, rank=3)
    (CommStats(sent=12000, received=12000), CommStats(sent=4000, received=4000))
    """
    if scheme not in SCHEMES:
        raise InputError(f"scheme must be one of {SCHEMES}, got {scheme!r}")
    if world < 1 or nbytes < 0 or not 0 <= rank < world:
        raise InputError(f"need world >= 1, nbytes >= 0 and 0 <= rank < world, got {world}, {nbytes}, {rank}")
    if world == 1:
        return CommStats(0, 0)
    if scheme == "ring":
        b = 2 * (world - 1) / world * nbytes
        return CommStats(b, b)
    b = (world - 1) * nbytes if rank == 0 else nbytes
    return CommStats(b, b)


def _flat(tensor: torch.Tensor) -> torch.Tensor:
    if not isinstance(tensor, torch.Tensor):
        raise InputError(f"all-reduce needs a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.is_contiguous():
        raise InputError("all-reduce works in place on a contiguous tensor; call .contiguous() first")
    return tensor.detach().view(-1)  # (S,) sharing storage with `tensor`


def global_rank(group, i: int) -> int:
    """The global rank of group rank `i` (`dist.send`/`recv` address peers by global rank)."""
    return dist.get_global_rank(group, i) if group is not None else i


def _position(group) -> tuple[int, int]:
    """(world size, this rank's rank) in `group`."""
    world, me = dist.get_world_size(group), dist.get_rank(group)
    if me < 0:
        raise InputError(f"rank {dist.get_rank()} is not a member of the group it was asked to all-reduce over")
    return world, me


def _nbytes(t: torch.Tensor) -> int:
    return t.numel() * t.element_size()


def naive_all_reduce(tensor: torch.Tensor, group=None, root: int = 0) -> CommStats:
    """Sum `tensor` over the group in place: everyone sends to group rank `root`, which sends the sum back."""
    flat = _flat(tensor)
    world, me = _position(group)
    if not 0 <= root < world:
        raise InputError(f"root must be a rank in the group (0..{world - 1}), got {root}")
    stats = CommStats(0, 0)
    if world == 1:
        return stats
    if me == root:
        buf = torch.empty_like(flat)  # (S,)
        for i in range(world):  # sum in group-rank order, one message at a time (the root's link is the bottleneck)
            if i != root:
                dist.recv(buf, src=global_rank(group, i), group=group)
                flat += buf
                stats.received += _nbytes(buf)
        for i in range(world):
            if i != root:
                dist.send(flat, dst=global_rank(group, i), group=group)
                stats.sent += _nbytes(flat)
    else:
        dist.send(flat, dst=global_rank(group, root), group=group)
        dist.recv(flat, src=global_rank(group, root), group=group)
        stats.sent += _nbytes(flat)
        stats.received += _nbytes(flat)
    return stats


def _exchange(send: torch.Tensor, recv: torch.Tensor, right: int, left: int, group, stats: CommStats) -> None:
    """Send `send` to the right neighbour while receiving `recv` from the left one (both may be empty)."""
    reqs = []
    if send.numel():
        reqs.append(dist.isend(send, dst=right, group=group))
        stats.sent += _nbytes(send)
    if recv.numel():
        reqs.append(dist.irecv(recv, src=left, group=group))
        stats.received += _nbytes(recv)
    for r in reqs:
        r.wait()


def ring_all_reduce(tensor: torch.Tensor, group=None) -> CommStats:
    """Sum `tensor` over the group in place with a ring: N-1 reduce-scatter steps, then N-1 all-gather steps.

    The tensor is cut into N nearly equal chunks (`tensor_split`: sizes differ by at most one element,
    and chunks may be empty when it has fewer than N elements; empty chunks are not sent).
    """
    flat = _flat(tensor)
    world, me = _position(group)
    stats = CommStats(0, 0)
    if world == 1:
        return stats
    right, left = global_rank(group, (me + 1) % world), global_rank(group, (me - 1) % world)
    chunks = torch.tensor_split(flat, world)  # N views of (S/N,)
    # reduce-scatter: at step s rank r passes on chunk r-s (its partial sum so far) and adds chunk r-s-1
    for s in range(world - 1):
        out, into = chunks[(me - s) % world], chunks[(me - s - 1) % world]
        buf = torch.empty_like(into)  # (S/N,)
        _exchange(out, buf, right, left, group, stats)
        into += buf
    # now chunk (r+1) mod N is complete on rank r; all-gather passes finished chunks around the ring
    for s in range(world - 1):
        out, into = chunks[(me + 1 - s) % world], chunks[(me - s) % world]
        _exchange(out, into, right, left, group, stats)
    return stats


ALL_REDUCES = {"naive": naive_all_reduce, "ring": ring_all_reduce}


# torch.distributed collectives `count_collectives` intercepts: name -> (argument holding the full-size
# tensor, bytes each rank sends per byte of it under a ring of N ranks)
_COUNTED = {
    "all_reduce": ("tensor", lambda n: 2 * (n - 1) / n),
    "all_gather_into_tensor": ("output_tensor", lambda n: (n - 1) / n),
    "all_gather_single": ("output_tensor", lambda n: (n - 1) / n),
    "reduce_scatter_tensor": ("input", lambda n: (n - 1) / n),
    "reduce_scatter_single": ("input", lambda n: (n - 1) / n),
}


@dataclass
class CollectiveCall:
    op: str
    payload: int  # bytes of the full tensor: the all-reduced one, the gathered output, the scattered input
    world: int  # ranks in the group

    @property
    def ring_bytes(self) -> float:
        """Bytes each rank sends for this call with ring algorithms (all-reduce 2(N-1)/N, the others (N-1)/N)."""
        return _COUNTED[self.op][1](self.world) * self.payload


@contextlib.contextmanager
def count_collectives():
    """Record the all-reduce / all-gather / reduce-scatter calls made through `torch.distributed` meanwhile.

    Yields a list that fills with `CollectiveCall`s. Calls from C++ (DDP's reducer) are not seen.
    """
    calls: list[CollectiveCall] = []
    originals = {name: getattr(dist, name) for name in _COUNTED}

    def counted(name, fn):
        arg, sig = _COUNTED[name][0], inspect.signature(fn)

        def wrapper(*args, **kwargs):
            bound = sig.bind(*args, **kwargs).arguments
            t, group = bound[arg], bound.get("group")
            calls.append(CollectiveCall(name, t.numel() * t.element_size(), dist.get_world_size(group)))
            return fn(*args, **kwargs)

        return wrapper

    for name, fn in originals.items():
        setattr(dist, name, counted(name, fn))
    try:
        yield calls
    finally:
        for name, fn in originals.items():
            setattr(dist, name, fn)
