"""Mixture-of-experts feed-forward: a router picks k experts per token (softmax top-k as in Mixtral,
or Switch top-1), experts have a capacity and drop the tokens over it, and two auxiliary losses keep the
router healthy: the Switch load-balancing loss and the ST-MoE router z-loss.

Each expert is a `FeedForward` of any kind: SwiGLU as in Mixtral (the same parameters as
`llmlab.nn.ffn.SwiGLU`), ReLU as in the Switch Transformer.

A dropped token gets zero from that expert, so in a residual block it rides the residual stream unchanged.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.core.errors import InputError
from llmlab.nn.ffn_variants import KINDS, FeedForward

ROUTERS = ("softmax-topk", "switch")


@dataclass(frozen=True)
class MoEConfig:
    n_experts: int = 8  # experts per MoE layer
    top_k: int = 2  # experts each token is sent to; 1 <= top_k <= n_experts ("switch" needs 1)
    capacity_factor: float = 0.0  # expert capacity = ceil(tokens * top_k * factor / n_experts); 0 = no dropping
    router: str = "softmax-topk"  # "softmax-topk" (Mixtral, GShard) or "switch" (top-1, Switch Transformer)
    aux_loss_coef: float = 0.01  # weight of the load-balancing loss in MoEAux.loss (Switch uses 0.01)
    z_loss_coef: float = 0.001  # weight of the router z-loss in MoEAux.loss (ST-MoE uses 0.001)
    normalize_topk: bool = True  # rescale the k chosen probabilities to sum to 1; "switch" keeps the raw one
    expert_kind: str = "swiglu"  # each expert's feed-forward, a `llmlab.nn.ffn_variants` kind (Switch: "relu")

    def __post_init__(self):
        if self.n_experts < 1:
            raise InputError(f"n_experts must be >= 1, got {self.n_experts}")
        if not 1 <= self.top_k <= self.n_experts:
            raise InputError(f"top_k must be in [1, n_experts={self.n_experts}], got {self.top_k}")
        if self.router not in ROUTERS:
            raise InputError(f"router must be one of {ROUTERS}, got {self.router!r}")
        if self.expert_kind not in KINDS:
            raise InputError(f"expert_kind must be one of {KINDS}, got {self.expert_kind!r}")
        if self.router == "switch" and self.top_k != 1:
            raise InputError(f"the switch router sends each token to one expert: top_k must be 1, got {self.top_k}")
        for name in ("capacity_factor", "aux_loss_coef", "z_loss_coef"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class MoEAux:
    """What an MoE layer reports besides its output. `loss` is what training adds to the objective."""

    loss: torch.Tensor  # aux_loss_coef * load_balancing_loss + z_loss_coef * z_loss, scalar
    load_balancing_loss: torch.Tensor  # Switch formula N * sum_i f_i P_i, scalar
    z_loss: torch.Tensor  # mean over tokens of logsumexp(logits)^2, scalar
    tokens_per_expert: torch.Tensor  # (E,) token assignments each expert processed (after dropping)
    dropped_fraction: torch.Tensor  # assignments dropped for capacity / all assignments, scalar


def route(logits: torch.Tensor, top_k: int, normalize: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax over experts, then keep the k most probable: (weights, experts), each (..., k).

    With `normalize` the k weights are rescaled to sum to 1 (Mixtral); without, they are the raw
    probabilities (Switch, where top-1 renormalised would always be 1 and give the router no gradient).

    >>> w, e = route(torch.tensor([[6.0, 1.0, 3.0]]).log(), top_k=2)  # probabilities 0.6, 0.1, 0.3
    >>> [round(v, 4) for v in w[0].tolist()], e.tolist()
    ([0.6, 0.3], [[0, 2]])
    >>> [round(v, 4) for v in route(torch.tensor([[6.0, 1.0, 3.0]]).log(), 2, normalize=True)[0][0].tolist()]
    [0.6667, 0.3333]
    """
    probs = logits.float().softmax(dim=-1)  # (..., E)
    weights, experts = probs.topk(top_k, dim=-1)  # (..., k)
    if normalize:
        weights = weights / weights.sum(dim=-1, keepdim=True)
    return weights.to(logits.dtype), experts


def expert_capacity(n_tokens: int, n_experts: int, top_k: int, capacity_factor: float) -> int:
    """Most token assignments one expert takes: ceil(n_tokens * top_k * factor / n_experts).

    A factor of 0 means no limit (n_tokens: a token never picks the same expert twice).

    >>> expert_capacity(10, 4, 2, 1.25), expert_capacity(10, 4, 2, 0)
    (7, 10)
    """
    if capacity_factor == 0:
        return n_tokens
    return math.ceil(n_tokens * top_k * capacity_factor / n_experts)


def load_balancing_loss(router_probs: torch.Tensor, expert_mask: torch.Tensor,
                        token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Switch Transformer aux loss N * sum_i f_i * P_i over N experts.

    f_i is the fraction of tokens routed to expert i (`expert_mask` (..., N), 1 where the router chose i),
    P_i the mean router probability of i (`router_probs` (..., N)). Uniform top-1 routing gives 1; with
    top-k the f_i sum to k and the minimum is k (as in HF Mixtral's `load_balancing_loss_func`).
    `token_mask` (...) leaves out padding tokens (False) from both means.

    >>> probs = torch.tensor([[0.5, 0.5], [0.5, 0.5]])
    >>> float(load_balancing_loss(probs, torch.tensor([[1, 0], [1, 0]])))  # 2 * (1 * 0.5 + 0 * 0.5)
    1.0
    """
    n = router_probs.shape[-1]
    f, p = expert_mask.reshape(-1, n).float(), router_probs.reshape(-1, n).float()  # (T, N) each
    if token_mask is not None:
        w = token_mask.reshape(-1, 1).float()  # (T, 1)
        w = w * len(w) / w.sum().clamp(min=1)  # so that plain means become means over real tokens
        f, p = f * w, p * w
    return n * (f.mean(dim=0) * p.mean(dim=0)).sum()


def router_z_loss(logits: torch.Tensor, token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """ST-MoE z-loss: mean over tokens of logsumexp(logits)^2; keeps router logits small and stable.
    `token_mask` (...) leaves out padding tokens (False).

    >>> float(router_z_loss(torch.zeros(3, 1)))  # logsumexp of one zero logit is 0
    0.0
    """
    z = logits.float().logsumexp(dim=-1).square()  # (...)
    if token_mask is None:
        return z.mean()
    m = token_mask.float()
    return (z * m).sum() / m.sum().clamp(min=1)


def capacity_keep(experts: torch.Tensor, n_experts: int, capacity: int,
                  token_mask: torch.Tensor | None = None) -> torch.Tensor:
    """Which assignments (T, k) fit in their expert's capacity, first choices before second choices.

    Assignments queue per expert in order (choice rank, token index), as in GShard and Switch: every
    token's first choice is served before any token's second choice. Tokens with `token_mask` (T,)
    False (padding) take no place in the queues and are never kept.

    >>> capacity_keep(torch.tensor([[0], [0], [0], [1]]), n_experts=2, capacity=2).squeeze(1).tolist()
    [True, True, False, True]
    """
    T, k = experts.shape
    one_hot = F.one_hot(experts.t().reshape(-1), n_experts)  # (k * T, E) in rank-major order
    if token_mask is not None:
        one_hot = one_hot * token_mask.repeat(k)[:, None]
    position = (one_hot.cumsum(dim=0) * one_hot).sum(dim=-1) - 1  # (k * T,) place in its queue, -1 = none
    return ((position >= 0) & (position < capacity)).view(k, T).t()  # (T, k)


class MoEFeedForward(nn.Module):
    """A drop-in for a feed-forward block: x (..., dim) -> (y (..., dim), MoEAux).

    `token_mask` (...) marks real tokens; padding (False) is not routed, gets zero output and is left out
    of the losses and stats.
    """

    def __init__(self, dim: int, hidden: int, cfg: MoEConfig):
        super().__init__()
        self.cfg = cfg
        self.gate = nn.Linear(dim, cfg.n_experts, bias=False)  # the router
        self.experts = nn.ModuleList(FeedForward(dim, hidden, cfg.expert_kind) for _ in range(cfg.n_experts))

    def forward(self, x: torch.Tensor, token_mask: torch.Tensor | None = None) -> tuple[torch.Tensor, MoEAux]:
        cfg, shape = self.cfg, x.shape
        x = x.reshape(-1, shape[-1])  # (T, d) all tokens of the batch
        if token_mask is not None:
            token_mask = token_mask.reshape(-1).bool()  # (T,)
        n_real = x.shape[0] if token_mask is None else int(token_mask.sum())
        logits = self.gate(x)  # (T, E)
        normalize = cfg.normalize_topk and cfg.router == "softmax-topk"
        weights, experts = route(logits, cfg.top_k, normalize)  # (T, k) each
        # capacity limits are a training-time device; at inference every token reaches its experts, so
        # cached (token by token) and full decoding agree
        factor = cfg.capacity_factor if self.training else 0.0
        capacity = expert_capacity(n_real, cfg.n_experts, cfg.top_k, factor)
        keep = capacity_keep(experts, cfg.n_experts, capacity, token_mask)  # (T, k)
        y = torch.zeros_like(x)  # (T, d)
        for e, expert in enumerate(self.experts):
            token, rank = torch.where((experts == e) & keep)  # (n_e,) each
            if token.numel():
                # under autocast the expert computes in 16 bits; the sum stays in the stream's dtype
                y.index_add_(0, token, (expert(x[token]) * weights[token, rank, None]).to(y.dtype))
        return y.view(shape), self._aux(logits, experts, keep, token_mask)

    def _aux(self, logits: torch.Tensor, experts: torch.Tensor, keep: torch.Tensor,
             token_mask: torch.Tensor | None) -> MoEAux:
        cfg = self.cfg
        chosen = F.one_hot(experts, cfg.n_experts).amax(dim=1)  # (T, E) router's choices, before dropping
        lb = load_balancing_loss(logits.float().softmax(dim=-1), chosen, token_mask)
        z = router_z_loss(logits, token_mask)
        real = keep.new_ones(keep.shape[0]) if token_mask is None else token_mask  # (T,)
        assigned = real.sum() * cfg.top_k
        return MoEAux(
            loss=cfg.aux_loss_coef * lb + cfg.z_loss_coef * z,
            load_balancing_loss=lb,
            z_loss=z,
            tokens_per_expert=F.one_hot(experts[keep], cfg.n_experts).sum(dim=0),
            dropped_fraction=1.0 - keep.sum() / assigned.clamp(min=1),
        )
