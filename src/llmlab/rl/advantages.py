"""Advantages for policy-gradient fine-tuning (topics 78, 82, 83): how much better than expected each
sampled completion, or each of its tokens, turned out.

Two estimators, over completions laid out as a batch of rows (B, T) whose real tokens are a prefix of
each row (``mask`` 1 there, 0 on padding):

- **Group-relative** (GRPO, DeepSeekMath 2024; DAPO keeps it): every prompt is answered ``group_size``
  times and a completion's advantage is its reward minus its group's mean, divided by the group's
  standard deviation (Bessel-corrected, as TRL computes it) plus ``eps``. Every token of the completion
  gets that one number. No value model: the group is the baseline. A group whose rewards are all equal
  (all right or all wrong) has advantage 0 everywhere and teaches nothing; DAPO's dynamic sampling keeps
  only `informative_groups`.
- **GAE** (Schulman et al. 2016), for PPO with a value model (VAPO): per-token TD errors
  ``delta_t = r_t + gamma * V_{t+1} - V_t`` summed backwards with weight ``(gamma * lam)^k``; the value
  after a completion's last token is 0 (the episode ends there). ``lam = 1`` gives the Monte-Carlo return
  minus the value (unbiased, high variance); ``lam = 0`` the one-step TD error. VAPO decouples the two
  uses: value targets with ``lam = 1`` and policy advantages with a smaller ``lam`` that grows with the
  completion's length, ``1 - 1 / (alpha * length)`` (`length_adaptive_lambda`), so long answers keep
  their long-range credit and short ones their low variance.

Rewards here are outcome rewards: one score per completion, placed on its last real token
(`terminal_rewards`). RLHF's PPO (Stiennon et al. 2020, InstructGPT) also charges every token for
leaving the starting policy, ``-kl_coef * (log pi_old - log pi_ref)`` (`kl_shaped_rewards`), so GAE sees
the KL as part of the return rather than as a separate loss term.
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError
from llmlab.rl.losses import masked_mean


def _groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    if rewards.dim() != 1:
        raise InputError(f"rewards must be one score per completion (N,), got shape {tuple(rewards.shape)}")
    if group_size < 1 or rewards.numel() % group_size:
        raise InputError(f"{rewards.numel()} rewards do not split into groups of {group_size}")
    return rewards.view(-1, group_size)


def group_advantages(rewards: torch.Tensor, group_size: int, scale: bool = True, eps: float = 1e-4) -> torch.Tensor:
    """GRPO's advantages (N,): each reward minus its group's mean, over the group's standard deviation
    + `eps` when `scale` (Dr. GRPO drops the division: ``scale=False``). Groups are consecutive runs of
    `group_size` rewards; a group of one has no spread (std taken as 0).

    >>> group_advantages(torch.tensor([1.0, 0.0, 0.0, 1.0, 1.0, 1.0]), 3, eps=0.0)
    tensor([ 1.1547, -0.5774, -0.5774,  0.0000,  0.0000,  0.0000])
    """
    g = _groups(rewards.float(), group_size)
    centred = g - g.mean(dim=1, keepdim=True)
    if scale:
        std = g.std(dim=1, keepdim=True) if group_size > 1 else torch.zeros_like(g[:, :1])
        centred = centred / (std + eps) if eps > 0 else torch.where(std > 0, centred / std, torch.zeros_like(centred))
    return centred.reshape(-1)


def informative_groups(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(N // group_size,) bool: the groups whose rewards are not all equal, the only ones with a nonzero
    group-relative advantage (DAPO's dynamic sampling keeps these).

    >>> informative_groups(torch.tensor([1.0, 1.0, 0.0, 1.0]), 2).tolist()
    [False, True]
    """
    g = _groups(rewards, group_size)
    return (g != g[:, :1]).any(dim=1)


def _check_rows(mask: torch.Tensor, *others: torch.Tensor) -> torch.Tensor:
    if mask.dim() != 2:
        raise InputError(f"mask must be (batch, tokens), got shape {tuple(mask.shape)}")
    for t in others:
        if t.shape != mask.shape:
            raise InputError(f"shape {tuple(t.shape)} does not match the mask's {tuple(mask.shape)}")
    m = mask.bool()
    if m.shape[1] > 1 and (m[:, 1:] & ~m[:, :-1]).any():
        raise InputError("each row's mask must be a prefix of ones (real tokens first, then padding)")
    return m


def terminal_rewards(scores: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T): each completion's score on its last real token, 0 elsewhere (an empty row gets nothing).

    >>> terminal_rewards(torch.tensor([2.0, -1.0]), torch.tensor([[1, 1, 0], [1, 1, 1]])).tolist()
    [[0.0, 2.0, 0.0], [0.0, 0.0, -1.0]]
    """
    m = _check_rows(mask)
    if scores.shape != (m.shape[0],):
        raise InputError(f"scores must be one per row ({m.shape[0]},), got shape {tuple(scores.shape)}")
    lengths = m.sum(dim=1)
    out = torch.zeros(m.shape, dtype=torch.float32, device=scores.device)
    rows = torch.nonzero(lengths > 0).squeeze(1)
    out[rows, lengths[rows] - 1] = scores[rows].float()
    return out


def kl_shaped_rewards(scores: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor, mask: torch.Tensor,
                      kl_coef: float) -> torch.Tensor:
    """(B, T) per-token rewards with the KL penalty inside (InstructGPT): ``-kl_coef * (old_logp - ref_logp)``
    on every real token (the sampled token's log-ratio of the sampling policy to the reference, a
    one-sample KL estimate), plus each completion's score on its last real token; 0 on padding.

    >>> kl_shaped_rewards(torch.tensor([1.0]), torch.tensor([[-1.0, -2.0, 0.0]]), torch.tensor([[-1.5, -1.0, 0.0]]),
    ...                   torch.tensor([[1, 1, 0]]), kl_coef=0.5).tolist()
    [[-0.25, 1.5, 0.0]]
    """
    _check_rows(mask, old_logp, ref_logp)
    if not kl_coef >= 0:
        raise InputError(f"kl_coef must be >= 0, got {kl_coef}")
    penalty = -kl_coef * (old_logp.float() - ref_logp.float()) * mask.float()  # (B, T)
    return terminal_rewards(scores, mask) + penalty


def gae(rewards: torch.Tensor, values: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0,
        lam: float | torch.Tensor = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalised advantage estimates and value targets, both (B, T) and 0 on padding.

    `lam` is one number or one per row (B,) (`length_adaptive_lambda`). The value after a row's last
    real token is 0; returns = advantages + values (with ``lam = 1`` and ``gamma = 1``: the sum of the
    rewards still to come).

    >>> adv, ret = gae(torch.tensor([[0.0, 1.0]]), torch.tensor([[0.5, 0.5]]), torch.ones(1, 2))
    >>> adv.tolist(), ret.tolist()
    ([[0.5, 0.5]], [[1.0, 1.0]])
    """
    m = _check_rows(mask, rewards, values)
    if not 0 <= gamma <= 1:
        raise InputError(f"gamma must be in [0, 1], got {gamma}")
    lam_rows = torch.as_tensor(lam, dtype=torch.float32, device=rewards.device).expand(m.shape[0])
    if ((lam_rows < 0) | (lam_rows > 1)).any():
        raise InputError(f"lam must be in [0, 1], got {lam}")
    mf = m.float()
    r, v = rewards.float() * mf, values.detach().float() * mf
    next_v = torch.cat([v[:, 1:], torch.zeros_like(v[:, :1])], dim=1)  # 0 past the end (padding is 0 too)
    delta = (r + gamma * next_v - v) * mf
    adv = torch.zeros_like(delta)
    running = torch.zeros(m.shape[0], device=delta.device)
    for t in range(m.shape[1] - 1, -1, -1):  # the recursion runs backwards; T is a completion's length
        running = delta[:, t] + gamma * lam_rows * running * mf[:, t]
        adv[:, t] = running
    adv = adv * mf
    return adv, (adv + v) * mf


def whiten(x: torch.Tensor, mask: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """`x` shifted and scaled to mean 0 and standard deviation 1 over the masked entries (0 elsewhere), as
    PPO implementations (verl's, which VAPO used) treat GAE advantages.

    >>> whiten(torch.tensor([[1.0, 3.0, 9.0]]), torch.tensor([[1.0, 1.0, 0.0]])).tolist()
    [[-1.0, 1.0, 0.0]]
    """
    mean = masked_mean(x, mask)
    var = masked_mean((x - mean) ** 2, mask)
    return (x - mean) * torch.rsqrt(var + eps) * mask


def length_adaptive_lambda(lengths: torch.Tensor, alpha: float = 0.05) -> torch.Tensor:
    """VAPO's per-completion GAE lambda for the policy: ``1 - 1 / (alpha * length)``, clamped to [0, 1]
    (a completion shorter than 1 / alpha tokens gets 0: its one-step TD errors alone).

    >>> length_adaptive_lambda(torch.tensor([10, 40, 200])).tolist()
    [0.0, 0.5, 0.8999999761581421]
    """
    if alpha <= 0:
        raise InputError(f"alpha must be > 0, got {alpha}")
    lengths = torch.as_tensor(lengths, dtype=torch.float32)
    lam = 1 - 1 / (alpha * lengths.clamp(min=1e-9))
    return lam.clamp(0.0, 1.0)
