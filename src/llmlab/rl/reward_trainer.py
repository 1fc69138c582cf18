"""Training the reward model: the training engine (`llmlab.train.trainer.Trainer`: schedule, clipping,
checkpoints, exact resume, progress) on batches of comparisons instead of token windows.

A step draws `batch_size` comparisons (a function of seed and step, so a resumed run draws what the
uninterrupted one would), scores chosen and rejected answers in one padded forward and minimises the
Bradley-Terry loss. Validation is the loss and the pair accuracy on the held-out comparisons. Dropout is
off while training (eval mode, as TRL's RewardTrainer): a score is then a function of the answer alone,
the same in training as when the reward model is used.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch

from llmlab.adapt.batching import batch_indices
from llmlab.core.modes import eval_mode
from llmlab.rl.reward_model import pad_rows, pair_accuracy, preference_loss, sequence_scores
from llmlab.train.config import TrainConfig
from llmlab.train.trainer import Trainer

Pair = tuple[list[int], list[int], list[int]]  # prompt, chosen, rejected ids


def pair_rows(pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The chosen sequences then the rejected ones, right-padded: ids (2B, T), lengths (2B,)."""
    return pad_rows([p + c for p, c, _ in pairs] + [p + r for p, _, r in pairs], pad_id)


def score_pairs(rm, pairs: list[Pair], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (B,) of the chosen and of the rejected answers."""
    s = sequence_scores(rm, *pair_rows(pairs, pad_id))
    return s[: len(pairs)], s[len(pairs):]


class RewardTrainer(Trainer):
    counts_tokens = True  # each comparison's two sequences, prompt and reply
    dropout_in_training = False  # scores do not depend on dropout masks

    def __init__(self, rm, cfg: TrainConfig, train: list[Pair], dev: list[Pair], run_dir: str | Path, pad_id: int,
                 center_coef: float = 0.0):
        # seq_len is unused (a comparison is as long as it is) but checked against the model's context
        super().__init__(rm, dataclasses.replace(cfg, seq_len=min(cfg.seq_len, rm.config.max_seq_len)), None, None,
                         run_dir)
        self.pairs, self.dev, self.pad_id, self.center_coef = train, dev, pad_id, center_coef
        self.lengths = [len(p) + max(len(c), len(r)) for p, c, r in train]

    def batch(self, micro: int) -> tuple[list[Pair]]:
        seed = (self.cfg.seed * 1_000_003 + self.step) * 64 + micro
        return ([self.pairs[i] for i in batch_indices(self.lengths, self.cfg.batch_size, seed)],)

    def micro_step(self, pairs: list[Pair]) -> torch.Tensor:
        self.count(sum(2 * len(p) + len(c) + len(r) for p, c, r in pairs))
        chosen, rejected = score_pairs(self.model, pairs, self.pad_id)
        loss = preference_loss(chosen, rejected, center_coef=self.center_coef)
        (loss / self.cfg.grad_accum).backward()
        return loss.detach()

    @torch.no_grad()
    def scores(self, pairs: list[Pair], model=None) -> tuple[torch.Tensor, torch.Tensor]:
        """Chosen and rejected scores of `pairs`, in batches, in eval mode."""
        model = model or self.model
        bs = self.cfg.batch_size
        with eval_mode(model):
            parts = [score_pairs(model, pairs[i:i + bs], self.pad_id) for i in range(0, len(pairs), bs)]
        return torch.cat([c for c, _ in parts]).cpu(), torch.cat([r for _, r in parts]).cpu()

    def evaluate(self, max_batches: int | None, model=None) -> dict:
        if not self.dev:
            return {}
        dev = self.dev[: max_batches * self.cfg.batch_size] if max_batches else self.dev
        chosen, rejected = self.scores(dev, model)
        return {"step": self.step, "val_loss": float(preference_loss(chosen, rejected)),
                "val_accuracy": pair_accuracy(chosen, rejected), "val_pairs": len(dev)}
