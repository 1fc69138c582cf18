"""Training objectives. Models return logits; every loss is computed here."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def causal_lm_loss(logits: torch.Tensor, targets: torch.Tensor, ignore_index: int = -100,
                   reduction: str = "mean") -> torch.Tensor:
    """Next-token negative log-likelihood (topic 25).

    `logits` (B, T, V) are the model's outputs at positions 0..T-1 and `targets` (B, T) the tokens
    at positions 1..T, i.e. the input shifted left by one. Targets equal to `ignore_index` (padding,
    prompt tokens) contribute nothing.
    """
    B, T, V = logits.shape
    return F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T),
                           ignore_index=ignore_index, reduction=reduction)


def prefix_lm_loss(logits: torch.Tensor, targets: torch.Tensor, prefix_len: int | torch.Tensor) -> torch.Tensor:
    """Next-token loss on the part after the prefix only (topics 32, 58): the prefix is context, seen
    bidirectionally, and is never predicted. `targets` are the inputs shifted left by one, so target t
    is token t + 1, and it counts when t + 1 >= prefix_len. `prefix_len` is an int or a (B,) tensor.
    """
    B, T = targets.shape
    p = torch.as_tensor(prefix_len, device=targets.device).reshape(-1, 1)  # (B or 1, 1)
    in_prefix = torch.arange(1, T + 1, device=targets.device)[None, :] < p  # (B or 1, T)
    return causal_lm_loss(logits, targets.masked_fill(in_prefix, -100))


def mlm_nsp_loss(mlm_logits: torch.Tensor, labels: torch.Tensor, nsp_logits: torch.Tensor | None = None,
                 is_next: torch.Tensor | None = None) -> torch.Tensor:
    """BERT pretraining loss: cross-entropy on the masked positions (labels -100 elsewhere, as
    `llmlab.train.corruption.mlm_corrupt` returns them) plus next-sentence classification."""
    loss = causal_lm_loss(mlm_logits, labels)
    if nsp_logits is not None:
        loss = loss + F.cross_entropy(nsp_logits.float(), is_next)
    return loss


def moe_aux_loss(model) -> torch.Tensor | None:
    """The weighted load-balancing and z-losses of a mixture-of-experts model's last forward (None if
    the model has no MoE layers); training adds it to the language-modelling loss."""
    get = getattr(model, "moe_loss", None)
    return get() if get is not None else None


def weighted_lm_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Next-token loss with a weight per target: sum(w * nll) / sum(w), targets -100 counting nothing.

    Supervised fine-tuning weighs the reply's tokens 1 and the prompt's `prompt_loss_weight` (topic 39):
    with weight 0 on the prompt this is `causal_lm_loss` with the prompt's targets set to -100 (prompt
    masking), with 1 everywhere it is `causal_lm_loss` itself.
    """
    B, T, V = logits.shape
    nll = F.cross_entropy(logits.reshape(B * T, V).float(), targets.reshape(B * T), ignore_index=-100,
                          reduction="none")  # (B*T,)
    w = weights.reshape(B * T).float() * (targets.reshape(B * T) != -100)
    return (w * nll).sum() / w.sum().clamp_min(1e-12)
