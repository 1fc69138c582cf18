"""Losses for policy-gradient fine-tuning (topics 78, 82, 83), over completion tokens laid out as (B, T)
rows with a mask (1 on real tokens).

- `policy_loss`: PPO's clipped surrogate (Schulman et al. 2017). The probability ratio of a token under
  the policy being trained and the policy that sampled it is clipped to ``[1 - clip_low, 1 + clip_high]``
  and the pessimistic (smaller) of the clipped and unclipped objectives is kept, so one batch cannot
  move the policy far. DAPO's *clip-higher* is ``clip_high > clip_low`` (0.28 against 0.2): a token the
  policy thought unlikely may grow more before the clip stops it, which keeps exploration (entropy) up.
  How the token losses become one number is the ``aggregation``: ``"sequence"`` averages each
  completion's tokens and then the completions (GRPO as published: a long answer's tokens weigh less
  each), ``"token"`` averages all tokens of the batch at once (DAPO and VAPO's token-level loss: every
  token weighs the same, so long answers are not diluted).
- `kl_k3`: the per-token estimator ``exp(q - p) - (q - p) - 1`` of KL(policy || reference) that GRPO
  adds to the loss (Schulman's k3: unbiased on the policy's own samples, never negative).
- `value_loss`: a critic's squared error to its targets, optionally with PPO's value clipping.
- `nll_loss`: plain negative log-likelihood; VAPO adds it on the completions that earned the reward
  (positive-example LM loss), so rare successes are imitated directly.
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError

AGGREGATIONS = ("token", "sequence")


def masked_mean(x: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `x` where `mask` is nonzero (over everything, or along `dim`); 0 where nothing is masked in
    (and still differentiable, so an empty batch gives a zero gradient, not NaN).

    >>> masked_mean(torch.tensor([[1.0, 5.0], [3.0, 0.0]]), torch.tensor([[1, 0], [1, 0]]))
    tensor(2.)
    """
    m = mask.to(x.dtype)
    total = (x * m).sum() if dim is None else (x * m).sum(dim=dim)
    count = m.sum() if dim is None else m.sum(dim=dim)
    return total / count.clamp(min=1)


def aggregate(x: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """Per-token values (B, T) as one number: their mean over all masked tokens ("token"), or the mean
    over rows with tokens of each row's token mean ("sequence"); 0 (differentiably) when nothing is masked.

    >>> aggregate(torch.tensor([[1.0, 3.0], [5.0, 0.0]]), torch.tensor([[1.0, 1.0], [1.0, 0.0]]), "sequence")
    tensor(3.5000)
    """
    if how not in AGGREGATIONS:
        raise InputError(f"aggregation must be one of {AGGREGATIONS}, got {how!r}")
    if how == "token":
        return masked_mean(x, mask)
    rows = mask.sum(dim=1) > 0
    return masked_mean(x, mask, dim=1)[rows].mean() if rows.any() else (x * mask).sum()


def _check(mask: torch.Tensor, *tensors: torch.Tensor) -> None:
    for t in tensors:
        if t.shape != mask.shape:
            raise InputError(f"shape {tuple(t.shape)} does not match the mask's {tuple(mask.shape)}")


def policy_loss(logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, mask: torch.Tensor,
                clip_low: float = 0.2, clip_high: float = 0.2, aggregation: str = "token"
                ) -> tuple[torch.Tensor, dict[str, float]]:
    """The clipped surrogate loss (to minimise) and statistics: ``clip_fraction`` (share of tokens where
    the clip is binding), ``approx_kl`` (k3 estimate of KL(old || new) per token) and ``ratio_mean``.

    `advantages` are per token (B, T) or per completion (B,), broadcast over its tokens.

    >>> lp = torch.zeros(1, 2)
    >>> policy_loss(lp, lp, torch.tensor([1.0]), torch.ones(1, 2))[0]
    tensor(-1.)
    """
    if aggregation not in AGGREGATIONS:
        raise InputError(f"aggregation must be one of {AGGREGATIONS}, got {aggregation!r}")
    if not (0 <= clip_low < 1 and clip_high >= 0):
        raise InputError(f"clip range must satisfy 0 <= clip_low < 1 and clip_high >= 0, got {clip_low}, {clip_high}")
    if advantages.dim() == 1:
        advantages = advantages[:, None].expand_as(mask)
    _check(mask, logp, old_logp, advantages)
    m = mask.to(logp.dtype)
    log_ratio = logp - old_logp.detach()
    ratio = torch.exp(log_ratio)
    adv = advantages.detach().to(logp.dtype)
    unclipped = ratio * adv
    clipped = torch.clamp(ratio, 1 - clip_low, 1 + clip_high) * adv
    per_token = -torch.minimum(unclipped, clipped)
    loss = aggregate(per_token, m, aggregation)
    with torch.no_grad():
        stats = {"clip_fraction": float(masked_mean((clipped < unclipped).to(m.dtype), m)),
                 "approx_kl": float(masked_mean(ratio - 1 - log_ratio, m)),
                 "ratio_mean": float(masked_mean(ratio, m))}
    return loss, stats


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token k3 estimate of KL(policy || reference) from the sampled tokens' log-probabilities.

    >>> kl_k3(torch.tensor([-1.0, -2.0]), torch.tensor([-1.0, -1.0]))
    tensor([0.0000, 0.7183])
    """
    d = ref_logp.detach() - logp
    return torch.exp(d) - d - 1


def value_loss(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor, old_values: torch.Tensor | None = None,
               clip: float | None = None) -> torch.Tensor:
    """Half the token-mean squared error of `values` to `returns`; with `clip` (and `old_values`), PPO's
    clipped version: the larger of the errors of the new values and of the old ones moved at most `clip`.

    >>> value_loss(torch.tensor([[1.0, 3.0]]), torch.tensor([[0.0, 1.0]]), torch.tensor([[1, 1]]))
    tensor(1.2500)
    """
    _check(mask, values, returns)
    target = returns.detach()
    err = (values - target) ** 2
    if clip is not None:
        if old_values is None:
            raise InputError("value clipping needs the old values")
        if clip <= 0:
            raise InputError(f"value clip must be > 0, got {clip}")
        _check(mask, old_values)
        old = old_values.detach()
        moved = old + torch.clamp(values - old, -clip, clip)
        err = torch.maximum(err, (moved - target) ** 2)
    return 0.5 * masked_mean(err, mask)


def nll_loss(logp: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Token-mean negative log-likelihood of the masked tokens (0 when none is masked in).

    >>> nll_loss(torch.tensor([[-1.0, -3.0]]), torch.tensor([[1, 1]]))
    tensor(2.)
    """
    _check(mask, logp)
    return -masked_mean(logp, mask)
