"""Rotary position embeddings (RoPE).

Each pair of channels (i, i + d/2) of a query or key at position m is rotated by the angle
m * theta_i, theta_i = base^(-2i/d). The dot product of a rotated query and key then depends only
on their distance. The half-split pairing matches Hugging Face LLaMA (`rotate_half`), so exported
weights need no permutation.
"""

import torch
from torch import nn


def rope_frequencies(head_dim: int, base: float = 10000.0) -> torch.Tensor:
    """theta_i = base^(-2i/d) for i in [0, d/2).

    >>> rope_frequencies(4, base=100.0).tolist()
    [1.0, 0.10000000149011612]
    """
    if head_dim % 2:
        raise ValueError(f"head_dim must be even for RoPE, got {head_dim}")
    return base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x (B, nh, T, hs) by the angles whose cos/sin are given as (T, hs)."""
    x1, x2 = x.chunk(2, dim=-1)  # (B, nh, T, hs/2) views
    rotated = torch.cat((-x2, x1), dim=-1)  # rotate_half
    out = torch.addcmul(x * cos, rotated, sin)  # x cos + rotate_half(x) sin, few ops: runs per decoded token
    return out if out.dtype == x.dtype else out.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """Caches cos/sin tables; `forward(positions)` returns the (T, hs) tables for those positions."""

    def __init__(self, head_dim: int, max_positions: int, base: float = 10000.0):
        super().__init__()
        inv_freq = rope_frequencies(head_dim, base)
        t = torch.arange(max_positions, dtype=torch.float32)
        angles = torch.outer(t, inv_freq)  # (P, hs/2)
        angles = torch.cat((angles, angles), dim=-1)  # (P, hs)
        # buffers, not parameters: derived from the config, so not saved in checkpoints
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, positions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # callers check positions against the table size with Python ints (no device sync here)
        return self.cos[positions], self.sin[positions]
