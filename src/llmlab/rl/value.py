"""VAPO's value model (Yue et al. 2025, after VC-PPO): the critic that PPO's GAE advantages need.

The critic is a copy of the starting policy whose vocabulary head is replaced by one linear output, so
it reads the prompt and completion with everything the policy learned and says, at each completion
token, how much reward is still to come. The head starts at zero (every value 0): a critic initialised
from a reward model, or left random, starts biased, and since GAE's advantages are differences of
values, that bias steers the policy's first updates. VAPO therefore *pretrains* the critic: before the
policy moves, it regresses on the Monte-Carlo returns (GAE with lambda = 1, which no value estimate
enters) of completions sampled from the starting policy (`pretrain_targets`).
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from llmlab.rl.advantages import gae
from llmlab.rl.rollout import completion_outputs


def make_critic(policy) -> nn.Module:
    """A deep copy of `policy` with its lm_head replaced by a zero-initialised ``Linear(dim, 1)``:
    ``critic(ids)`` is (B, T, 1). A tied head is untied (the copy's embedding stays)."""
    critic = copy.deepcopy(policy)
    head = nn.Linear(policy.config.dim, 1, device=policy.embed_tokens.weight.device)
    nn.init.zeros_(head.weight)
    nn.init.zeros_(head.bias)
    critic.lm_head = head
    for p in critic.parameters():
        p.requires_grad_(True)
    return critic


def completion_values(critic, prompts: list[list[int]], tokens: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Values (B, T) of the states before each completion token (0 where `mask` is 0)."""
    v = completion_outputs(critic, prompts, tokens, mask)[..., 0].float()  # (B, T)
    return v * mask.to(v.device)


def pretrain_targets(rewards: torch.Tensor, mask: torch.Tensor, gamma: float = 1.0) -> torch.Tensor:
    """Monte-Carlo returns (B, T): the discounted reward still to come at each token (GAE with lambda 1,
    whose returns do not depend on the values).

    >>> pretrain_targets(torch.tensor([[0.0, 0.0, 1.0]]), torch.ones(1, 3), gamma=0.5).tolist()
    [[0.25, 0.5, 1.0]]
    """
    return gae(rewards, torch.zeros_like(rewards), mask, gamma=gamma, lam=1.0)[1]


def explained_variance(values: torch.Tensor, returns: torch.Tensor, mask: torch.Tensor) -> float:
    """1 - Var(returns - values) / Var(returns) over the masked tokens: 1 is a perfect critic, 0 one no
    better than the mean, negative one worse (nan when the returns do not vary: a batch with no reward,
    whose returns differ from 0 only by rounding, would divide by ~1e-16).

    >>> explained_variance(torch.tensor([[1.0, 0.0]]), torch.tensor([[1.0, 0.0]]), torch.ones(1, 2))
    1.0
    """
    m = mask.bool()
    r, v = returns[m].float(), values[m].float()
    var = r.var(unbiased=False) if r.numel() else torch.tensor(0.0)
    if var <= 1e-8:
        return float("nan")
    return float(1 - (r - v).var(unbiased=False) / var)
