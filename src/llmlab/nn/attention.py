"""Multi-head causal self-attention with grouped-query heads, RoPE and a KV cache; attention weights on
request (for plotting), and q/k/v as one matrix while fused for inference."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.nn.masks import causal_mask
from llmlab.nn.rope import apply_rope


def available_memory(device=None) -> int | None:
    """Bytes that `device` can still allocate: on CUDA its free memory plus what torch's caching allocator
    holds unused; on a CPU Linux's MemAvailable (/proc/meminfo); None where that is not known."""
    device = torch.device(device if device is not None else "cpu")
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type != "cpu":
        return None
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024  # given in kB
    except (OSError, ValueError, IndexError):
        pass
    return None


class KVCache:
    """Keys and values of past positions for each layer, grown in place up to `max_len`.

    Preallocated so decoding a token appends without copying the whole history. Its size is checked against
    the memory available before any of it is allocated: each layer's tensors alone may fit where all of them
    do not, and on a CPU, allocations past the free memory are granted (overcommit) until the process is
    killed, so too many beams or rows would end the process with no message. It raises MemoryError
    instead, which the CLI turns into one line saying how much was asked for.
    """

    def __init__(self, n_layer: int, batch: int, n_kv_head: int, max_len: int, head_dim: int,
                 device=None, dtype=torch.float32):
        shape = (batch, n_kv_head, max_len, head_dim)
        nbytes = 2 * n_layer * math.prod(shape) * dtype.itemsize  # keys and values of every layer
        free = available_memory(device)
        if free is not None and nbytes > free:
            raise MemoryError(f"a KV cache of {n_layer} layers x 2 (keys, values) x {batch} rows x {n_kv_head} heads "
                              f"x {max_len} positions x {head_dim} x {dtype.itemsize} bytes would allocate {nbytes} "
                              f"bytes; {free} are available")
        self.k = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.v = [torch.zeros(shape, device=device, dtype=dtype) for _ in range(n_layer)]
        self.max_len = max_len
        self.length = 0  # positions filled, shared by all layers

    def update(self, layer: int, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store k, v (B, nkv, T, hs) after the cached positions; return all keys/values so far."""
        start, T = self.length, k.shape[2]
        if start + T > self.max_len:
            raise ValueError(f"KV cache full: {start} + {T} positions > max_len {self.max_len}")
        K, V = self.k[layer], self.v[layer]
        K.narrow(2, start, T).copy_(k)  # narrow: cheaper per decoded token than slice indexing
        V.narrow(2, start, T).copy_(v)
        return K.narrow(2, 0, start + T), V.narrow(2, 0, start + T)

    def advance(self, T: int) -> None:
        """Called once per forward pass, after every layer has stored its T new positions."""
        self.length += T

    def reorder(self, rows: torch.Tensor) -> None:
        """Keep batch row ``rows[i]`` as row i (beam search: each new beam continues an old one)."""
        self.k = [K.index_select(0, rows) for K in self.k]
        self.v = [V.index_select(0, rows) for V in self.v]


def attention_probs(q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """softmax(q k^T / sqrt(hs) + mask): the weights (B, nh, T, S) SDPA applies to the values.

    A bool mask (True = may attend) hides keys with -inf; a float mask is added to the scores.

    >>> q = k = torch.zeros(1, 1, 2, 4)
    >>> attention_probs(q, k, causal_mask(2)).tolist()  # equal scores: uniform over the visible keys
    [[[[1.0, 0.0], [0.5, 0.5]]]]
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])  # (B, nh, T, S)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf")) if mask.dtype == torch.bool else scores + mask
    return scores.softmax(dim=-1)


class Attention(nn.Module):
    """Causal self-attention; `n_kv_head < n_head` gives grouped-query attention (1 = multi-query)."""

    def __init__(self, dim: int, n_head: int, n_kv_head: int, bias: bool = False, dropout: float = 0.0):
        super().__init__()
        self.n_head, self.n_kv_head, self.head_dim = n_head, n_kv_head, dim // n_head
        self.q_proj = nn.Linear(dim, n_head * self.head_dim, bias=bias)
        self.k_proj = nn.Linear(dim, n_kv_head * self.head_dim, bias=bias)
        self.v_proj = nn.Linear(dim, n_kv_head * self.head_dim, bias=bias)
        self.o_proj = nn.Linear(n_head * self.head_dim, dim, bias=bias)
        self.dropout = dropout
        self.qkv_weight: torch.Tensor | None = None  # q, k, v weights as one matrix while fused (inference)

    def fuse(self) -> bool:
        """Concatenate the q/k/v weights so inference runs one projection (see `CausalLM.fused_inference`).

        Only plain bias-free `nn.Linear` projections fuse; replaced ones (e.g. LoRA) keep the modular path.
        """
        projs = (self.q_proj, self.k_proj, self.v_proj)
        if not all(type(p) is nn.Linear and p.bias is None for p in projs):
            return False
        self.qkv_weight = torch.cat([p.weight.detach() for p in projs])  # ((nh + 2 nkv) hs, d)
        return True

    def unfuse(self) -> None:
        self.qkv_weight = None

    def project(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None):
        """q (B, nh, T, hs), k and v (B, nkv, T, hs), with RoPE applied to q and k."""
        B, T, _ = x.shape
        nh, nkv, hs = self.n_head, self.n_kv_head, self.head_dim
        if self.qkv_weight is not None and not torch.is_grad_enabled():
            qkv = F.linear(x, self.qkv_weight).view(B, T, nh + 2 * nkv, hs).transpose(1, 2)  # (B, nh+2nkv, T, hs)
            if cos is None:
                return qkv.split((nh, nkv, nkv), dim=1)
            q, k = apply_rope(qkv[:, :nh + nkv], cos, sin).split((nh, nkv), dim=1)  # one rotation for both
            return q, k, qkv[:, nh + nkv:]
        q = self.q_proj(x).view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = self.k_proj(x).view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = self.v_proj(x).view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        if cos is not None:
            q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        return q, k, v

    def forward(self, x: torch.Tensor, cos: torch.Tensor | None, sin: torch.Tensor | None,
                cache: KVCache | None = None, layer: int = 0, mask: torch.Tensor | None = None,
                need_weights: bool = False) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """`mask` (bool, True = may attend; (T, S) or (B, 1, T, S), S = cached + new keys) replaces the
        default causal pattern, e.g. a prefix-LM or padding mask from `llmlab.nn.masks`; a float mask is
        added to the scores (ALiBi, `llmlab.nn.positions.alibi_bias`). cos/sin None: no rotation.

        `need_weights` (for plotting, topic 17): return (output, weights (B, nh, T, S)), computed by hand
        instead of by the fused kernel, without dropout."""
        B, T, _ = x.shape
        hs = self.head_dim
        q, k, v = self.project(x, cos, sin)  # (B, nh, T, hs), (B, nkv, T, hs) x 2
        past = 0
        if cache is not None:
            past = cache.length
            k, v = cache.update(layer, k, v)  # (B, nkv, past + T, hs)
        if self.n_kv_head != self.n_head:  # each kv head serves n_head / n_kv_head query heads
            rep = self.n_head // self.n_kv_head
            k = k.repeat_interleave(rep, dim=1)  # (B, nh, S, hs)
            v = v.repeat_interleave(rep, dim=1)
        # default: one new query may see every cached key (no mask); a block of new queries after a
        # cached prefix needs the offset causal mask; a fresh sequence uses SDPA's built-in causal path
        is_causal = False
        if mask is None:
            mask = causal_mask(T, past, x.device) if past and T > 1 else None
            is_causal = not past and T > 1
        if need_weights:
            w = attention_probs(q, k, causal_mask(T, past, x.device) if is_causal else mask)  # (B, nh, T, S)
            y = w @ v  # (B, nh, T, hs)
            return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * hs)), w
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, is_causal=is_causal,
            dropout_p=self.dropout if self.training else 0.0,
        )  # (B, nh, T, hs)
        return self.o_proj(y.transpose(1, 2).reshape(B, T, self.n_head * hs))


