"""Online DPO (Guo et al. 2024, "Direct Language Model Alignment from Online AI Feedback"; TRL's
``OnlineDPOTrainer``): DPO on comparisons of the *current* policy's own answers, made afresh each step.

Offline DPO (`llmlab.rl.dpo`) learns from a fixed set of comparisons of the starting model's answers;
as the policy moves, those answers stop being the ones it would give. Online DPO keeps the comparisons
on-policy with the RL loop's machinery (`llmlab.rl.trainer.RLTrainer`): each step

1. samples ``group_size`` answers (K, 2 by default) to each of the step's prompts from the policy, with
   the KV cache (`rollout`);
2. scores them with the task's reward: the exact-answer check, or a reward model (`Task.score`);
3. pairs each prompt's best answer (chosen) with its worst (rejected), and drops the prompts whose
   answers all score the same (`best_worst_pairs`): a tie says nothing about which to prefer;
4. computes the frozen reference's log-probabilities of the fresh pairs (no gradient) and takes one
   optimizer step on the DPO loss of the pairs (`llmlab.rl.dpo.pair_losses`, the offline run's loss,
   with its ``beta``, ``loss``, ``label_smoothing`` and RPO's ``nll_coef``).

Replies are as sampled: an answer that ended carries its ``<|end|>``, as the offline comparisons do.
The loss reads the model's own distribution (temperature 1) whatever the sampling temperature, so a
batch of comparisons costs exactly what the offline loss charges for it. Checkpoints, exact resume,
the learning-rate schedule and ``minibatches`` (the pairs split into that many optimizer steps, 1 by
default) are the RL loop's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from llmlab.rl.dpo import Pair, answer_logprobs, dpo_objective, pair_losses, reply_logps, reward_stats
from llmlab.rl.rollout import Rollouts
from llmlab.rl.trainer import RLTrainer


def best_worst_pairs(scores: torch.Tensor, group_size: int) -> torch.Tensor:
    """(P, 2) row indices of each group's best and worst answer, for the groups whose scores differ;
    among equal scores the first row is taken. Groups are consecutive runs of `group_size` rows.

    >>> best_worst_pairs(torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.2, 0.9, -1.0]), 3).tolist()
    [[1, 0], [7, 8]]
    """
    g = scores.view(-1, group_size)  # (G, K)
    first = torch.arange(len(g)) * group_size  # (G,)
    keep = g.max(1).values > g.min(1).values  # (G,) ties teach nothing
    return torch.stack([first + g.argmax(1), first + g.argmin(1)], 1)[keep]  # argmax/argmin: first of equals


@dataclass
class PairBatch:
    """A step's comparisons, the reference's log-probabilities of them, and their task scores."""

    pairs: list[Pair]  # (prompt, chosen, rejected) ids
    ref: torch.Tensor  # (P, 2) the reference's log-probability of each chosen and rejected reply
    scores: torch.Tensor  # (P, 2) the reward of each

    def __len__(self) -> int:
        return len(self.pairs)


def comparisons(ro: Rollouts, scores: torch.Tensor, group_size: int) -> tuple[list[Pair], torch.Tensor]:
    """The step's comparisons from its rollouts (each group's best vs worst answer, as sampled) and the
    scores (P, 2) of their replies."""
    rows = best_worst_pairs(scores, group_size)  # (P, 2)
    replies = ro.sampled_ids()
    pairs = [(ro.prompts[c], replies[c], replies[r]) for c, r in rows.tolist()]
    return pairs, scores[rows].reshape(-1, 2)


class OnlineDPOTrainer(RLTrainer):
    """`RLTrainer` for ``algo="online-dpo"``: its sampling, scoring, schedule, checkpoints and loop, with
    the step's comparisons in place of advantages and the DPO loss in place of the clipped surrogate."""

    @torch.no_grad()
    def prepare(self, ro: Rollouts, correct: torch.Tensor, scores: torch.Tensor) -> tuple[PairBatch, dict]:
        cfg = self.cfg
        pairs, pair_scores = comparisons(ro, scores, cfg.group_size)
        ref = torch.zeros(0, 2)
        if pairs:
            logp, mask = answer_logprobs(self.ref, pairs, self.pad_id)
            ref = torch.stack(reply_logps(logp, mask, average=cfg.loss == "ipo"), 1).cpu()  # (P, 2)
        prompts = len(ro) // cfg.group_size
        stats = {"pairs": len(pairs), "pair_share": len(pairs) / prompts, "trained_samples": 2 * len(pairs),
                 "kept_groups": len(pairs)}  # the groups trained on: those that made a comparison
        if pairs:
            stats["score_gap"] = float((pair_scores[:, 0] - pair_scores[:, 1]).mean())
        return PairBatch(pairs, ref, pair_scores), stats

    def minibatch(self, b: PairBatch, rows: torch.Tensor, policy: bool = True) -> dict:
        """One optimizer step on the DPO loss of some of the step's comparisons."""
        cfg, idx = self.cfg, rows.tolist()
        losses, parts = pair_losses(self.policy, [b.pairs[i] for i in idx], b.ref[rows], self.pad_id, cfg.beta,
                                    cfg.loss, cfg.label_smoothing)
        loss, objective = dpo_objective(losses, parts, cfg.nll_coef)
        stats = reward_stats(parts)  # the implicit rewards before this step moves the policy
        return {"dpo_loss": float(loss.detach()), **stats, "grad_norm": self._apply(objective)}
