"""Tensor (model) parallelism, Megatron style (topic 48), with the collectives written out.

A linear layer y = x W^T can be split two ways over the N ranks of a group:

- column-parallel: each rank holds a slice of W's *output* rows and computes its slice of y from the
  full x. No communication forward; backward, each rank's dx is partial (it saw only its outputs), so
  the dx are summed with one all-reduce (`copy_to_parallel`: identity forward, all-reduce backward).
- row-parallel: each rank holds a slice of W's *input* columns, takes its slice of x and computes a
  partial y; one all-reduce sums the partial y (`reduce_from_parallel`: all-reduce forward, identity
  backward).

Column then row needs no communication in between: the column layer's output slice is exactly the row
layer's input slice, and anything elementwise between them (SwiGLU's act(gate) * up, or attention,
which is independent per head) runs on the slice. So a transformer block costs one all-reduce of
(B, T, d) per sub-block in the forward (after o_proj, after down_proj) and one per sub-block in the
backward (at the input of q/k/v, at the input of gate/up): 4 * B*T*d elements per block per step.

`parallelize_decoder(model, group)` shards a `CausalLM` in place: attention by heads (q/k/v column,
o_proj row, n_head and n_kv_head divided by the group size), the FFN by hidden units (gate/up column,
down row). Embeddings, norms and the output head stay replicated: their inputs and output gradients
are the same on every rank (the all-reduces above make them so), so every rank computes the same
gradient for them and no extra synchronisation is needed.

Use (on a subgroup of a larger mesh, every rank of the job calls `new_group` for every group):

    tp_group = dist.new_group([0, 1])
    model = parallelize_decoder(CausalLM(cfg), tp_group)  # same weights on each rank of tp_group
    state = unsharded(model, tp_group)  # full weights under CausalLM's names, e.g. for a checkpoint
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from llmlab.core.errors import InputError
from llmlab.dist.rules import check_tensor_parallel


@dataclass
class CommCounter:
    """All-reduces issued and the bytes of the tensors reduced (not wire bytes: a ring all-reduce of S
    bytes sends 2(N-1)/N * S per rank)."""

    calls: int = 0
    bytes: int = 0

    def add(self, t: torch.Tensor) -> None:
        self.calls += 1
        self.bytes += t.numel() * t.element_size()

    def reset(self) -> None:
        self.calls = self.bytes = 0


def tp_allreduce_bytes(n_layer: int, batch: int, seq: int, dim: int, bytes_per_elem: int = 4) -> int:
    """Theory: bytes all-reduced by a tensor-parallel decoder in one forward + backward.

    Each block: 2 all-reduces of (B, T, d) forward (after o_proj, down_proj), 2 backward (inputs of
    q/k/v and gate/up). Independent of the TP size.

    >>> tp_allreduce_bytes(n_layer=2, batch=2, seq=8, dim=32)
    16384
    """
    return n_layer * 4 * batch * seq * dim * bytes_per_elem


def _all_reduce(t: torch.Tensor, group, counter: CommCounter | None) -> torch.Tensor:
    if counter is not None:
        counter.add(t)
    dist.all_reduce(t, group=group)
    return t


def _gather_along(t: torch.Tensor, dim: int, group) -> torch.Tensor:
    parts = [torch.empty_like(t) for _ in range(dist.get_world_size(group))]
    dist.all_gather(parts, t.contiguous(), group=group)
    return torch.cat(parts, dim=dim)


class _CopyToParallel(torch.autograd.Function):
    """Identity forward; all-reduce of the gradient backward (the input of column-parallel layers)."""

    @staticmethod
    def forward(ctx, x, group, counter):
        ctx.group, ctx.counter = group, counter
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return _all_reduce(grad.contiguous().clone(), ctx.group, ctx.counter), None, None


class _ReduceFromParallel(torch.autograd.Function):
    """All-reduce forward (sum of partial outputs); identity backward (the output of row-parallel layers)."""

    @staticmethod
    def forward(ctx, x, group, counter):
        return _all_reduce(x.contiguous().clone(), group, counter)

    @staticmethod
    def backward(ctx, grad):
        return grad, None, None


class _GatherFromParallel(torch.autograd.Function):
    """All-gather of the last dimension forward; keep this rank's slice of the gradient backward."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        return _gather_along(x, -1, group)  # (..., N * out_local)

    @staticmethod
    def backward(ctx, grad):
        n, r = dist.get_world_size(ctx.group), dist.get_rank(ctx.group)
        return grad.chunk(n, dim=-1)[r].contiguous(), None


class _ScatterToParallel(torch.autograd.Function):
    """Keep this rank's slice of the last dimension forward; all-gather the gradient backward."""

    @staticmethod
    def forward(ctx, x, group):
        ctx.group = group
        n, r = dist.get_world_size(group), dist.get_rank(group)
        return x.chunk(n, dim=-1)[r].contiguous()  # (..., in/N)

    @staticmethod
    def backward(ctx, grad):
        return _gather_along(grad, -1, ctx.group), None  # (..., in)


def copy_to_parallel(x: torch.Tensor, group=None, counter: CommCounter | None = None) -> torch.Tensor:
    return _CopyToParallel.apply(x, group, counter)


def reduce_from_parallel(x: torch.Tensor, group=None, counter: CommCounter | None = None) -> torch.Tensor:
    return _ReduceFromParallel.apply(x, group, counter)


def gather_from_parallel(x: torch.Tensor, group=None) -> torch.Tensor:
    return _GatherFromParallel.apply(x, group)


def scatter_to_parallel(x: torch.Tensor, group=None) -> torch.Tensor:
    return _ScatterToParallel.apply(x, group)


def _shard(n: int, group, what: str) -> tuple[int, int]:
    """(start, size) of this rank's contiguous share of n items; n must divide evenly."""
    size = dist.get_world_size(group)
    if n % size:
        raise InputError(f"{what} ({n}) must be divisible by the tensor-parallel size ({size})")
    local = n // size
    return dist.get_rank(group) * local, local


class ColumnParallelLinear(nn.Module):
    """This rank's slice of `full`'s output features: y[..., start:start+out/N] = x W[start:...]^T (+ b).

    `copy_input`: apply `copy_to_parallel` to the input (turn off when the caller already did, so the
    partial input gradients of several column layers sharing an input are all-reduced once).
    `gather_output`: all-gather the slices into the full output (for standalone use).
    """

    def __init__(self, full: nn.Linear, group=None, gather_output: bool = False, copy_input: bool = True,
                 counter: CommCounter | None = None):
        super().__init__()
        start, local = _shard(full.out_features, group, f"{full} output features")
        self.group, self.gather_output, self.copy_input, self.counter = group, gather_output, copy_input, counter
        self.in_features, self.out_features = full.in_features, local
        self.weight = nn.Parameter(full.weight.detach()[start:start + local].clone())  # (out/N, in)
        self.bias = nn.Parameter(full.bias.detach()[start:start + local].clone()) if full.bias is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.copy_input:
            x = copy_to_parallel(x, self.group, self.counter)
        y = nn.functional.linear(x, self.weight, self.bias)  # (..., out/N)
        return gather_from_parallel(y, self.group) if self.gather_output else y


class RowParallelLinear(nn.Module):
    """This rank's slice of `full`'s input features; the partial products are summed by one all-reduce.

    `input_is_parallel`: the input is already this rank's slice (the output of a column layer); else
    the full input is given and sliced here (`scatter_to_parallel`: its gradient is all-gathered back).
    The bias is added once, after the sum.
    """

    def __init__(self, full: nn.Linear, group=None, input_is_parallel: bool = True,
                 counter: CommCounter | None = None):
        super().__init__()
        start, local = _shard(full.in_features, group, f"{full} input features")
        self.group, self.input_is_parallel, self.counter = group, input_is_parallel, counter
        self.in_features, self.out_features = local, full.out_features
        self.weight = nn.Parameter(full.weight.detach()[:, start:start + local].clone())  # (out, in/N)
        self.bias = nn.Parameter(full.bias.detach().clone()) if full.bias is not None else None  # replicated

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.input_is_parallel:
            x = scatter_to_parallel(x, self.group)  # (..., in/N)
        partial = nn.functional.linear(x, self.weight)  # (..., out), this rank's share of the sum
        y = reduce_from_parallel(partial, self.group, self.counter)  # (..., out)
        return y + self.bias if self.bias is not None else y


def _copy_input_hook(group, counter):
    """A forward pre-hook: the sub-block's (replicated) input goes through `copy_to_parallel` once."""

    def hook(module, args):
        return (copy_to_parallel(args[0], group, counter), *args[1:])

    return hook


def parallelize_decoder(model: nn.Module, group=None) -> nn.Module:
    """Shard a dense `llmlab.models.CausalLM` over `group` in place (and return it); every rank of the
    group must call it with the same weights. Attention is split by heads, the FFN by hidden units;
    embeddings, norms and the head stay replicated. `model.tp_comm` counts the all-reduces.

    The KV cache of a sharded model holds n_kv_head / N heads per rank (`model.new_cache` sizes it so);
    every rank of the group runs `generate` with the same prompt and settings.
    """
    size = dist.get_world_size(group)
    check_tensor_parallel(model.config, size)
    if any(isinstance(m, ColumnParallelLinear) for m in model.modules()):
        raise InputError("this model is tensor-parallel already; parallelize an unsharded copy")
    counter = CommCounter()
    for block in model.layers:
        attn, mlp = block.self_attn, block.mlp
        attn.q_proj = ColumnParallelLinear(attn.q_proj, group, copy_input=False, counter=counter)
        attn.k_proj = ColumnParallelLinear(attn.k_proj, group, copy_input=False, counter=counter)
        attn.v_proj = ColumnParallelLinear(attn.v_proj, group, copy_input=False, counter=counter)
        attn.o_proj = RowParallelLinear(attn.o_proj, group, counter=counter)
        # contiguous head blocks: rank r's query heads map onto its own kv heads (n_head/N = rep * n_kv_head/N)
        attn.n_head, attn.n_kv_head = attn.n_head // size, attn.n_kv_head // size
        attn.register_forward_pre_hook(_copy_input_hook(group, counter))
        if mlp.gate_proj is not None:
            mlp.gate_proj = ColumnParallelLinear(mlp.gate_proj, group, copy_input=False, counter=counter)
        mlp.up_proj = ColumnParallelLinear(mlp.up_proj, group, copy_input=False, counter=counter)
        mlp.down_proj = RowParallelLinear(mlp.down_proj, group, counter=counter)
        mlp.register_forward_pre_hook(_copy_input_hook(group, counter))
    model.tp_comm = counter
    return model


def shard_dims(model: nn.Module) -> dict[str, int]:
    """The parameters this rank holds a slice of, by name, with the dim they are split along: column
    weights and biases along outputs (0), row weights along inputs (1). The rest are replicated."""
    out = {}
    for name, m in model.named_modules():
        if isinstance(m, ColumnParallelLinear):
            out[f"{name}.weight"] = out[f"{name}.bias"] = 0
        elif isinstance(m, RowParallelLinear):
            out[f"{name}.weight"] = 1
    return out


def unsharded(model: nn.Module, group=None, grads: bool = False) -> dict[str, torch.Tensor]:
    """The full parameters (or their gradients) of a `parallelize_decoder` model, all-gathered on every
    rank under the unsharded names: a state dict an unsharded `CausalLM` loads (for checkpoints and tests).

    Column shards are stacked along the output dim (0), row shards along the input dim (1); row biases and
    replicated parameters are taken as they are.
    """
    shard_dim = shard_dims(model)
    out = {}
    for name, p in model.named_parameters():
        t = p.grad if grads else p.detach()
        out[name] = _gather_along(t, shard_dim[name], group) if name in shard_dim else t.clone()
    return out
