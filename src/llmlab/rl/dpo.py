"""Direct preference optimisation (DPO; Rafailov et al. 2023): RLHF's objective without a reward model,
without sampling and without a critic.

RLHF maximises reward less β x KL(policy || reference). Its optimum is the reference reweighted by
exp(reward / β), so a policy defines an *implicit* reward r(x, y) = β log(π(y|x) / π_ref(y|x)) (up to a
term of the prompt alone, which cancels in a comparison). Putting that reward into the reward model's
Bradley-Terry loss trains the policy on the comparisons directly: with h the difference of log-ratios of
the chosen and the rejected reply,

    h = (log π(chosen) - log π_ref(chosen)) - (log π(rejected) - log π_ref(rejected))
    sigmoid   -log σ(β h)                                         DPO
              -(1 - ε) log σ(β h) - ε log σ(-β h)                 with label smoothing ε (conservative DPO)
    hinge     max(0, 1 - β h)                                     SLiC / RSO
    ipo       (h - 1 / (2β))^2, log-probs averaged per token       IPO (Azar et al. 2023)

as TRL's `DPOTrainer` names them. Two losses need no reference, with c and r the chosen and rejected
replies' log-probabilities averaged per token (a reward that does not grow with length):

    simpo     -log σ(β (c - r) - γ)                                SimPO (Meng et al. 2024; TRL's CPOTrainer)
    orpo      -β log σ(log odds(c) - log odds(r)), odds(p) = p / (1 - p), plus the chosen replies' NLL
                                                                   ORPO (Hong et al. 2024; TRL's ORPOTrainer)

SimPO's γ (``simpo_gamma``) is a target margin, taken with label smoothing as the sigmoid loss takes it.
ORPO is supervised fine-tuning on the chosen replies with an odds-ratio penalty weighted β, so its NLL
term is part of the loss, at weight 1. A reply's log-probability is the sum over its tokens, its closing
``<|end|>`` included (the policy must learn to stop), given the chat prompt. The gradient of the sigmoid
loss is β σ(-β h) x (∇log π(rejected) - ∇log π(chosen)): pairs the policy already ranks by a wide
implicit margin weigh little. ``nll_coef`` adds the chosen replies' mean token negative log-likelihood
(RPO, Pang et al. 2024), which keeps the chosen replies' own likelihood from falling while the margin
grows.

The reference is the starting model, frozen; its log-probabilities of every comparison are computed once
(`answer_logprobs` in eval mode) and held in a table, as TRL's ``precompute_ref_log_probs``. The policy
trains in eval mode too (dropout off, as TRL's ``disable_dropout``): otherwise a model with dropout would
not be its own reference at the start, and the first step's rewards would be noise, not 0.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
import torch.nn.functional as F

from llmlab.adapt.batching import batch_indices
from llmlab.core.errors import InputError
from llmlab.core.modes import eval_mode
from llmlab.rl.dpo_config import AVERAGED, OFFLINE_LOSSES
from llmlab.rl.rollout import sequence_logprobs
from llmlab.train.config import TrainConfig
from llmlab.train.trainer import Trainer

Pair = tuple[list[int], list[int], list[int]]  # prompt, chosen, rejected ids


def dpo_loss(chosen: torch.Tensor, rejected: torch.Tensor, ref_chosen: torch.Tensor, ref_rejected: torch.Tensor,
             beta: float, loss: str = "sigmoid", label_smoothing: float = 0.0, simpo_gamma: float = 0.5
             ) -> torch.Tensor:
    """Per-comparison losses (B,) from the replies' log-probabilities (B,) under the policy and the reference
    (which simpo and orpo do not read; orpo's NLL term is not in them).

    >>> z = torch.zeros(1)
    >>> round(float(dpo_loss(z, z, z, z, beta=0.1)), 6)  # the policy is the reference: log 2
    0.693147
    """
    if loss == "simpo":
        return smoothed(beta * (chosen - rejected) - simpo_gamma, label_smoothing)
    if loss == "orpo":
        log_odds = (chosen - log1mexp(chosen)) - (rejected - log1mexp(rejected))
        return -beta * F.logsigmoid(log_odds)
    h = (chosen - ref_chosen) - (rejected - ref_rejected)
    if loss == "sigmoid":
        return smoothed(beta * h, label_smoothing)
    if loss == "hinge":
        return torch.relu(1 - beta * h)
    if loss == "ipo":
        return (h - 1 / (2 * beta)) ** 2
    raise InputError(f"unknown DPO loss {loss!r}; choose from {', '.join(x for x in OFFLINE_LOSSES if x != 'kto')}")


def smoothed(x: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """-log σ(x), with the share `label_smoothing` of labels taken as flipped."""
    return -(1 - label_smoothing) * F.logsigmoid(x) - label_smoothing * F.logsigmoid(-x)


def log1mexp(x: torch.Tensor) -> torch.Tensor:
    """log(1 - exp(x)) for x < 0, through expm1, exact where exp(x) is near 1.

    >>> round(float(log1mexp(torch.tensor(-1e-6))), 4)  # log(1e-6): 1 - exp(x) is about -x
    -13.8155
    """
    return torch.log(-torch.expm1(x))


def pair_losses(model, pairs: list[Pair], ref: torch.Tensor, pad_id: int, beta: float, loss: str = "sigmoid",
                label_smoothing: float = 0.0, simpo_gamma: float = 0.5) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-comparison losses (B,) of `model` on `pairs` against the reference's reply log-probabilities
    `ref` (B, 2) (zeros for a loss without reference: the rewards are then β x the policy's own), with the
    implicit rewards (B,) and the chosen replies' mean token NLL (differentiable)."""
    logp, mask = answer_logprobs(model, pairs, pad_id)
    chosen, rejected = reply_logps(logp, mask, average=loss in AVERAGED)
    ref = ref.to(chosen.device)
    losses = dpo_loss(chosen, rejected, ref[:, 0], ref[:, 1], beta, loss, label_smoothing, simpo_gamma)
    B = len(pairs)
    m = mask[:B].to(logp.device)
    parts = {"chosen_reward": beta * (chosen - ref[:, 0]).detach(),
             "rejected_reward": beta * (rejected - ref[:, 1]).detach(),
             "chosen_nll": -(logp[:B] * m).sum() / m.sum()}
    return losses, parts


def dpo_objective(losses: torch.Tensor, parts: dict[str, torch.Tensor], nll_coef: float) -> tuple[torch.Tensor, ...]:
    """(the batch's mean DPO loss, what is minimised: that loss plus nll_coef x the chosen replies' NLL; RPO)."""
    loss = losses.mean()
    return loss, loss + nll_coef * parts["chosen_nll"] if nll_coef else loss


def answer_logprobs(model, pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities (2B, T) of the chosen replies then the rejected ones, each given its
    prompt (0 past a reply's end), and the replies' masks (2B, T); one right-padded forward."""
    answers = [c for _, c, _ in pairs] + [r for _, _, r in pairs]
    return completion_logprobs(model, [p for p, _, _ in pairs] * 2, answers, pad_id)


def completion_logprobs(model, prompts: list[list[int]], completions: list[list[int]], pad_id: int
                        ) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token log-probabilities (B, T) of each completion given its prompt (0 past its end), and the
    completions' mask (B, T); one right-padded forward."""
    T = max(map(len, completions))
    tokens = torch.full((len(completions), T), pad_id, dtype=torch.long)
    mask = torch.zeros(len(completions), T)
    for b, c in enumerate(completions):
        tokens[b, :len(c)] = torch.tensor(c)
        mask[b, :len(c)] = 1.0
    return sequence_logprobs(model, prompts, tokens, mask), mask


def reply_logps(logp: torch.Tensor, mask: torch.Tensor, average: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Each reply's log-probability, summed over its tokens (or averaged: IPO, SimPO, ORPO): chosen (B,),
    rejected (B,)."""
    m = mask.to(logp.device)
    s = logp.sum(1) / (m.sum(1) if average else 1.0)
    B = len(s) // 2
    return s[:B], s[B:]


class DPOTrainer(Trainer):
    """The training engine on batches of comparisons, with the DPO loss against the reference's table
    (`ref`: (N, 2) log-probabilities of each training comparison's chosen and rejected reply, as
    `reply_logps` gives them for `loss`; `dev_ref` the same for `dev`)."""

    counts_tokens = True  # each comparison's two sequences, prompt and reply
    dropout_in_training = False  # the reference table is computed without dropout (KTO's too)

    def __init__(self, policy, cfg: TrainConfig, train: list[Pair], dev: list[Pair], ref: torch.Tensor,
                 dev_ref: torch.Tensor, run_dir: str | Path, pad_id: int, beta: float, loss: str = "sigmoid",
                 label_smoothing: float = 0.0, nll_coef: float = 0.0, simpo_gamma: float = 0.5):
        # seq_len is unused (a comparison is as long as it is) but checked against the model's context
        super().__init__(policy, dataclasses.replace(cfg, seq_len=min(cfg.seq_len, policy.config.max_seq_len)),
                         None, None, run_dir)
        if len(ref) != len(train) or len(dev_ref) != len(dev):
            raise InputError("the reference table must hold one row per comparison")
        self.pairs, self.dev, self.ref, self.dev_ref = train, dev, ref, dev_ref
        self.pad_id, self.beta, self.loss, self.label_smoothing = pad_id, beta, loss, label_smoothing
        self.nll_coef = 1.0 if loss == "orpo" else nll_coef  # ORPO's loss holds the chosen replies' NLL
        self.simpo_gamma = simpo_gamma
        self.lengths = [len(p) + max(len(c), len(r)) for p, c, r in train]
        self._stats: dict[str, float] = {}

    def batch(self, micro: int) -> tuple[list[int]]:
        seed = (self.cfg.seed * 1_000_003 + self.step) * 64 + micro
        return (batch_indices(self.lengths, self.cfg.batch_size, seed),)

    def losses(self, model, pairs: list[Pair], ref: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Per-comparison losses (B,), with the implicit rewards and the chosen replies' token NLL."""
        return pair_losses(model, pairs, ref, self.pad_id, self.beta, self.loss, self.label_smoothing, self.simpo_gamma)

    def micro_step(self, idx: list[int]) -> torch.Tensor:
        pairs = [self.pairs[i] for i in idx]
        self.count(sum(2 * len(p) + len(c) + len(r) for p, c, r in pairs))
        losses, parts = self.losses(self.model, pairs, self.ref[idx])
        loss, objective = dpo_objective(losses, parts, self.nll_coef)
        (objective / self.cfg.grad_accum).backward()
        self._stats = reward_stats(parts)
        return loss.detach()

    def train_step(self) -> dict:
        record = super().train_step()
        record.update(self._stats)  # the last micro-batch's rewards
        return record

    @torch.no_grad()
    def evaluate(self, max_batches: int | None, model=None) -> dict:
        """DPO loss, implicit-reward accuracy and margin, and how often the policy itself gives the chosen
        reply the higher log-probability, on the held-out comparisons."""
        if not self.dev:
            return {}
        model = model or self.model
        bs = self.cfg.batch_size
        n = min(len(self.dev), max_batches * bs) if max_batches else len(self.dev)
        losses, parts = [], []
        with eval_mode(model):
            for i in range(0, n, bs):
                lo, pa = self.losses(model, self.dev[i:i + bs], self.dev_ref[i:i + bs])
                losses.append(lo)
                parts.append(pa)
        cat = {k: torch.cat([p[k] for p in parts]) for k in ("chosen_reward", "rejected_reward")}
        stats = reward_stats(cat)
        own = (cat["chosen_reward"] - cat["rejected_reward"]) / self.beta + (self.dev_ref[:n, 0] - self.dev_ref[:n, 1])
        return {"step": self.step, "val_loss": float(torch.cat(losses).mean()),
                "val_accuracy": stats["reward_accuracy"], "val_margin": stats["reward_margin"],
                "val_policy_prefers_chosen": float((own > 0).float().mean()), "val_pairs": n}


def reward_stats(parts: dict[str, torch.Tensor]) -> dict[str, float]:
    """TRL's logged figures: mean implicit rewards, their margin, and the share of comparisons whose
    chosen reply has the higher implicit reward (0 at the start, where every reward is 0)."""
    c, r = parts["chosen_reward"].float(), parts["rejected_reward"].float()
    out = {"reward_chosen": float(c.mean()), "reward_rejected": float(r.mean()),
           "reward_margin": float((c - r).mean()), "reward_accuracy": float((c > r).float().mean())}
    if "chosen_nll" in parts:
        out["chosen_nll"] = float(parts["chosen_nll"].detach())
    return out


@torch.no_grad()
def reference_table(model, pairs: list[Pair], pad_id: int, average: bool, batch_size: int = 64) -> torch.Tensor:
    """(N, 2) log-probabilities of each comparison's chosen and rejected reply under `model` (eval mode)."""
    rows = []
    with eval_mode(model):
        for i in range(0, len(pairs), batch_size):
            logp, mask = answer_logprobs(model, pairs[i:i + batch_size], pad_id)
            rows.append(torch.stack(reply_logps(logp, mask, average), 1).cpu())
    return torch.cat(rows) if rows else torch.zeros(0, 2)
