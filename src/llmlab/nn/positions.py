"""Absolute and relative position schemes other than RoPE (which lives in `llmlab.nn.rope`).

- Learned absolute (GPT-2, BERT): one trained vector per position, added to the token embedding;
  nothing is known beyond the last trained position.
- Sinusoidal absolute (Vaswani et al. 2017): PE[p, 2i] = sin(p / 10000^(2i/d)),
  PE[p, 2i+1] = cos(p / 10000^(2i/d)); fixed, defined for any position.
- ALiBi (Press et al. 2022): no position vectors at all; each head adds -slope * distance to its
  attention scores, with slopes a geometric sequence over the heads.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from llmlab.core.errors import InputError


def sinusoidal_table(n_positions: int, dim: int, base: float = 10000.0) -> torch.Tensor:
    """(n_positions, dim) table of Vaswani's sinusoids, sin on even channels and cos on odd ones.

    >>> [round(x, 4) for x in sinusoidal_table(2, 4, base=100.0)[1].tolist()]  # sin 1, cos 1, sin .1, cos .1
    [0.8415, 0.5403, 0.0998, 0.995]
    """
    if dim % 2 or dim <= 0:
        raise InputError(f"sinusoidal embedding dim must be even and > 0, got {dim}")
    inv_freq = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)  # (d/2,)
    angles = torch.outer(torch.arange(n_positions, dtype=torch.float64), inv_freq)  # (P, d/2)
    table = torch.stack((angles.sin(), angles.cos()), dim=-1)  # (P, d/2, 2): interleave sin, cos
    return table.reshape(n_positions, dim).float()


class SinusoidalPositions(nn.Module):
    """`forward(positions)` gives the (T, d) sinusoids to add to token embeddings; no parameters.

    `scale` multiplies the table. Position and token signals must start at comparable sizes: Vaswani et al.
    multiply embeddings by sqrt(d); a model whose embeddings start at std 0.02 scales the table to that
    instead (at 1 the fixed table drowns the tokens and a small model learns little more than unigram
    statistics: tiny preset, 300 steps, dev perplexity 571 at scale 1, 158 at 0.02).
    """

    def __init__(self, dim: int, max_positions: int, base: float = 10000.0, scale: float = 1.0):
        super().__init__()
        # a buffer, not a parameter: derived from the config, so not saved in checkpoints
        self.register_buffer("table", scale * sinusoidal_table(max_positions, dim, base), persistent=False)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        # callers check positions against the table size with Python ints (no device sync here)
        return self.table[positions]  # (T, d)


class LearnedPositions(nn.Module):
    """`forward(positions)` gives trained (T, d) vectors to add to token embeddings (GPT-2's `wpe`)."""

    def __init__(self, dim: int, max_positions: int):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_positions, dim))
        nn.init.normal_(self.weight, std=0.02)

    def forward(self, positions: torch.Tensor) -> torch.Tensor:
        return self.weight[positions]  # (T, d)


def segment_positions(segments: torch.Tensor) -> torch.Tensor:
    """(B, T): each token's position within its document of a packed row, restarting at 0 wherever the
    segment id changes (the document boundaries of `llmlab.nn.masks.document_index`).

    >>> segment_positions(torch.tensor([[7, 7, 7, 2, 2, 7]])).tolist()
    [[0, 1, 2, 0, 1, 0]]
    """
    B, T = segments.shape
    t = torch.arange(T, device=segments.device).expand(B, T)  # (B, T)
    starts = torch.ones_like(segments, dtype=torch.bool)  # (B, T): a document starts at t
    starts[:, 1:] = segments[:, 1:] != segments[:, :-1]
    first = torch.where(starts, t, 0).cummax(dim=1).values  # (B, T): where each token's document starts
    return t - first


def _power_of_two_slopes(n: int) -> list[float]:
    start = 2 ** (-(2 ** -(math.log2(n) - 3)))  # 2^(-8/n)
    return [start ** (i + 1) for i in range(n)]


def alibi_slopes(n_head: int) -> torch.Tensor:
    """Per-head ALiBi slopes (n_head,): 2^(-8/n), 2^(-16/n), ... for a power of two n; otherwise the
    slopes of the power of two below, then every other slope of the power of two above (the paper's code).

    >>> alibi_slopes(4).tolist()
    [0.25, 0.0625, 0.015625, 0.00390625]
    >>> alibi_slopes(3).tolist()  # 2 heads' slopes, then the first odd one of 4 heads'
    [0.0625, 0.00390625, 0.25]
    """
    if n_head <= 0:
        raise InputError(f"n_head must be > 0, got {n_head}")
    below = 2 ** math.floor(math.log2(n_head))
    slopes = _power_of_two_slopes(below)
    if below != n_head:
        slopes += _power_of_two_slopes(2 * below)[0::2][: n_head - below]
    return torch.tensor(slopes, dtype=torch.float32)


def alibi_bias(n_head: int, q_len: int, past: int = 0, causal: bool = True, device=None) -> torch.Tensor:
    """Additive attention bias (nh, T, past + T) for queries at positions past..past+T-1: -slope * distance.

    Causal: keys after the query get -inf, so the bias is the whole mask for SDPA's `attn_mask`.
    Otherwise (encoders) the distance is |i - j|. With a KV cache, the rows for positions past.. are
    exactly those of the bias for the full sequence.

    >>> alibi_bias(1, 3)[0].tolist()  # slope 1/256
    [[0.0, -inf, -inf], [-0.00390625, 0.0, -inf], [-0.0078125, -0.00390625, 0.0]]
    """
    q_pos = torch.arange(past, past + q_len, device=device)[:, None]  # (T, 1)
    k_pos = torch.arange(past + q_len, device=device)[None, :]  # (1, S)
    offset = (k_pos - q_pos).float()  # (T, S): -distance, <= 0 for keys at or before the query
    slopes = alibi_slopes(n_head).to(device)[:, None, None]  # (nh, 1, 1)
    if not causal:
        return -slopes * offset.abs()  # (nh, T, S)
    bias = slopes * offset.clamp(max=0)  # (nh, T, S)
    return bias.masked_fill(offset > 0, float("-inf"))
