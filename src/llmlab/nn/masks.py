"""Boolean attention masks for `F.scaled_dot_product_attention`: True = the query may attend to the key.

Shapes broadcast against scores (B, nh, T, S): a mask shared by the batch is (T, S), a per-sequence one
(B, 1, T, S), a key padding mask (B, 1, 1, S). `combine_masks` ANDs any of them together.

A query row with no visible key (a padded query under left padding and a causal mask) gets zeros from
recent PyTorch SDPA, NaN from older versions and from a hand-written softmax; such positions are padding,
so their outputs must be ignored (and never used as keys: 0 * NaN is NaN).
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError


def causal_mask(T: int, past: int = 0, device=None) -> torch.Tensor:
    """(T, past + T): query i, at position past + i, sees keys 0..past + i (never the future).

    >>> causal_mask(2, past=1).int().tolist()
    [[1, 1, 0], [1, 1, 1]]
    """
    q_pos = torch.arange(past, past + T, device=device)[:, None]  # (T, 1)
    k_pos = torch.arange(past + T, device=device)[None, :]  # (1, S)
    return k_pos <= q_pos


def bidirectional_mask(T: int, S: int | None = None, device=None) -> torch.Tensor:
    """(T, S) all True: every query sees every key (encoders, BERT).

    >>> bidirectional_mask(1, 2).tolist()
    [[True, True]]
    """
    return torch.ones(T, T if S is None else S, dtype=torch.bool, device=device)


def prefix_lm_mask(prefix_len: int | torch.Tensor, T: int, past: int = 0, device=None) -> torch.Tensor:
    """Prefix-LM (GLM, U-PaLM): keys in the prefix are visible to all; after it, causal.

    Query at position q sees key k iff k < prefix_len or k <= q. An int prefix gives (T, past + T);
    a tensor of per-sequence lengths (B,) gives (B, 1, T, past + T).

    >>> prefix_lm_mask(2, 4).int().tolist()
    [[1, 1, 0, 0], [1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1]]
    """
    S = past + T
    lengths = torch.as_tensor(prefix_len, device=device)
    if lengths.dtype.is_floating_point or lengths.dim() > 1 or bool(((lengths < 0) | (lengths > S)).any()):
        raise InputError(f"prefix_len must be integers in [0, {S}] (one per sequence at most), got {prefix_len}")
    k_pos = torch.arange(S, device=lengths.device)  # (S,)
    in_prefix = k_pos < lengths[..., None]  # (S,) or (B, S)
    mask = causal_mask(T, past, lengths.device) | in_prefix[..., None, :]  # (T, S) or (B, T, S)
    return mask if lengths.dim() == 0 else mask[:, None]  # (B, 1, T, S)


def padding_mask(lengths: torch.Tensor, S: int, left: bool = False) -> torch.Tensor:
    """(B, 1, 1, S): key s of sequence b is real (not padding). Right padding keeps the first
    lengths[b] keys; left padding (batched generation) keeps the last lengths[b].

    >>> padding_mask(torch.tensor([1, 3]), 3).int().view(2, 3).tolist()
    [[1, 0, 0], [1, 1, 1]]
    >>> padding_mask(torch.tensor([1]), 3, left=True).int().view(1, 3).tolist()
    [[0, 0, 1]]
    """
    lengths = torch.as_tensor(lengths)
    if lengths.dim() != 1 or lengths.dtype.is_floating_point or bool(((lengths < 0) | (lengths > S)).any()):
        raise InputError(f"lengths must be a 1-D integer tensor with values in [0, {S}], got {lengths}")
    pos = torch.arange(S, device=lengths.device)  # (S,)
    real = pos >= S - lengths[:, None] if left else pos < lengths[:, None]  # (B, S)
    return real[:, None, None, :]


def left_padded_mask(real: torch.Tensor, T: int) -> torch.Tensor:
    """(B, 1, T, S) for rows of S key slots whose last T are the queries (a prefill, or T = 1 per decode
    step of batched generation), `real` (B, S) marking real keys (False: left padding): causal, real keys
    only, and each query its own slot, so that a padding query still sees a key (with none, older SDPA and
    ALiBi's float mask give NaN, which would reach later layers through its keys and values: 0 * NaN).

    >>> left_padded_mask(torch.tensor([[False, True, True]]), 3).int()[0, 0].tolist()
    [[1, 0, 0], [0, 1, 0], [0, 1, 1]]
    """
    S = real.shape[1]
    causal = causal_mask(T, S - T, real.device)  # (T, S)
    own = torch.arange(S, device=real.device) == torch.arange(S - T, S, device=real.device)[:, None]  # (T, S)
    return ((causal & real[:, None, :]) | own)[:, None]  # (B, 1, T, S)


def cross_mask(T: int, S: int, key_lengths: torch.Tensor | None = None, device=None) -> torch.Tensor:
    """Decoder queries (T) over encoder keys (S): all visible, except encoder padding when `key_lengths`
    (B,) is given, which gives (B, 1, T, S).

    >>> cross_mask(2, 3, torch.tensor([2])).int().tolist()
    [[[[1, 1, 0], [1, 1, 0]]]]
    """
    mask = bidirectional_mask(T, S, device)  # (T, S)
    if key_lengths is None:
        return mask
    return combine_masks(mask, padding_mask(key_lengths.to(mask.device), S))


def document_index(segments: torch.Tensor) -> torch.Tensor:
    """(B, T): for packed rows, which document of its row each token is in, counting from 0: a new document
    starts wherever the segment id changes (so ids need not be unique or sorted, only contiguous runs).

    >>> document_index(torch.tensor([[7, 7, 3, 3, 3, 7]])).tolist()
    [[0, 0, 1, 1, 1, 2]]
    """
    if segments.dim() != 2 or segments.dtype.is_floating_point or segments.dtype == torch.bool:
        raise InputError(f"segments must be a (B, T) integer tensor, got {segments.dtype} of shape "
                         f"{tuple(segments.shape)}")
    starts = segments[:, 1:] != segments[:, :-1]  # (B, T-1): token t + 1 starts a document
    return torch.cat([torch.zeros_like(segments[:, :1]), starts.long().cumsum(1)], dim=1)  # (B, T)


def segment_mask(segments: torch.Tensor) -> torch.Tensor:
    """(B, 1, T, T) for packed rows (padding-free batching): query t sees key s iff s <= t and both are in
    the same document (see `document_index`), a block-diagonal causal pattern, so each document is read
    as if alone.

    >>> segment_mask(torch.tensor([[0, 0, 1]])).int()[0, 0].tolist()
    [[1, 0, 0], [1, 1, 0], [0, 0, 1]]
    """
    doc = document_index(segments)  # (B, T)
    same = doc[:, :, None] == doc[:, None, :]  # (B, T, T)
    return (same & causal_mask(segments.shape[1], device=segments.device))[:, None]  # (B, 1, T, T)


def combine_masks(*masks: torch.Tensor) -> torch.Tensor:
    """AND of masks, broadcast to a common shape: e.g. causal (T, T) and padding (B, 1, 1, T) -> (B, 1, T, T).

    >>> combine_masks(causal_mask(2), padding_mask(torch.tensor([1]), 2)).int().tolist()
    [[[[1, 0], [1, 0]]]]
    """
    if not masks:
        raise InputError("combine_masks needs at least one mask")
    out = masks[0]
    for m in masks[1:]:
        out = out & m
    return out
