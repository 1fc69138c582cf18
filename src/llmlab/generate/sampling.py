"""Choosing the next token from logits: temperature, top-k and top-p (nucleus) filtering.

Filters are pure functions on a (..., V) logits tensor that set excluded entries to -inf.
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Keep the k largest logits (ties at the k-th value are all kept).

    >>> top_k_filter(torch.tensor([1.0, 3.0, 2.0]), 2).tolist()
    [-inf, 3.0, 2.0]
    """
    if k <= 0 or k >= logits.shape[-1]:
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Keep the smallest set of most likely tokens whose probability reaches p (at least one token).

    >>> top_p_filter(torch.tensor([0.5, 0.3, 0.2]).log(), 0.7).isinf().tolist()
    [False, False, True]
    """
    if p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
    probs = sorted_logits.softmax(-1)
    # a token is dropped when the mass of the tokens before it already reaches p
    drop_sorted = probs.cumsum(-1) - probs >= p
    drop_sorted[..., 0] = False  # the most likely token stays, whatever p (p <= 0 dropped it too)
    drop = drop_sorted.scatter(-1, order, drop_sorted)
    return logits.masked_fill(drop, float("-inf"))


def sample_next(logits: torch.Tensor, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
    """Next token ids (...,) from logits (..., V). Temperature 0 means greedy (argmax). Logits with NaN
    or +inf (a diverged model's) are an InputError."""
    top = logits.amax(-1, keepdim=True)
    if not torch.isfinite(top).all():
        raise InputError("the model's logits are not finite (NaN or inf): its weights have diverged")
    if temperature == 0:
        return logits.argmax(-1)
    # shift the maximum to 0 before dividing: a tiny temperature then sends the others to -inf (greedy
    # in the limit, ties shared), where dividing first overflowed to inf and softmax gave NaN. The maxima
    # stay 0 even where the temperature is below float32's range (7e-46 is 0 there, and 0 / 0 is NaN)
    shifted = logits.float() - top.float()
    logits = torch.where(shifted == 0, shifted, shifted / temperature)
    logits = top_p_filter(top_k_filter(logits, top_k), top_p)
    probs = logits.softmax(-1)
    flat = probs.reshape(-1, probs.shape[-1])
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])
