"""Keeping what a model knew while fine-tuning it (topic 43): the usual remedies for catastrophic
forgetting, as extra loss terms (and one structural choice) for `llmlab.adapt.sft`.

Each remedy anchors the fine-tuned model to the base it started from, in a different place:

- **Replay** (rehearsal): every step also trains on windows of general text with the ordinary language
  modelling loss, so the old task keeps getting gradient.
- **Distillation** (learning without forgetting, Li & Hoiem 2016): on the same general windows, the KL
  divergence from the frozen base model's next-token distribution to the model's; it keeps the *outputs*
  on general text, whatever the weights do.
- **EWC** (Kirkpatrick et al. 2017): ``lambda / 2 * sum_i F_i (theta_i - theta*_i)^2``, a pull back to the
  base weights theta* scaled per weight by the diagonal Fisher information F of the base model on general
  text: weights that general text depends on are held firmly, the others are free. F is the empirical
  Fisher, the mean over `fisher_samples` general windows of each weight's squared gradient of that
  window's mean token loss (one window at a time: the square of a batch's gradient is not the mean of
  the squares).
- **L2 to the initial weights** (L2-SP, Li et al. 2018): EWC with every F_i = 1.
- **Layer freezing**: the lowest `freeze_layers` blocks do not train at all (handled by `freeze_blocks`).

The anchor (theta*, F, the base model's copy) is taken when the `Anchor` is built, before any fine-tuning
step: a resumed run rebuilds it from the same base weights, so the penalty is the same.
"""

from __future__ import annotations

import copy
import logging

import torch
import torch.nn.functional as F

from llmlab.adapt.sft_config import ForgettingConfig
from llmlab.core.errors import InputError
from llmlab.core.modes import eval_mode
from llmlab.core.progress import progress
from llmlab.train.trainer import get_batch

log = logging.getLogger(__name__)
GENERAL_STREAM = 0x6E4E_5EED  # mixed into a batch's seed to draw its general windows


def _trainable(model) -> dict[str, torch.nn.Parameter]:
    return {name: p for name, p in model.named_parameters() if p.requires_grad}


def diagonal_fisher(model, tokens: torch.Tensor, samples: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """The empirical Fisher diagonal of `model`'s trainable weights on general text: the mean over `samples`
    windows of the squared gradient of each window's mean token loss. The model's gradients are left
    as they were found (None)."""
    params = _trainable(model)
    fisher = {name: torch.zeros_like(p) for name, p in params.items()}
    x, y = get_batch(tokens, samples, seq_len, seed)
    with eval_mode(model):  # no dropout: the information of the model itself
        for i in progress(range(samples), desc="EWC Fisher", unit="window"):
            model.zero_grad(set_to_none=True)
            logits = model(x[i:i + 1].to(next(model.parameters()).device))
            F.cross_entropy(logits.flatten(0, 1).float(), y[i].to(logits.device)).backward()
            for name, p in params.items():
                if p.grad is not None:
                    fisher[name] += p.grad.detach() ** 2
    model.zero_grad(set_to_none=True)
    return {name: f / samples for name, f in fisher.items()}


def freeze_blocks(model, n: int) -> int:
    """Freeze the lowest `n` transformer blocks (their weights get no gradient); returns how many weights froze."""
    if not 0 <= n <= len(model.layers):
        raise InputError(f"freeze_layers must be in [0, {len(model.layers)}] (the model's blocks), got {n}")
    frozen = 0
    for block in list(model.layers)[:n]:
        for p in block.parameters():
            if p.requires_grad:
                p.requires_grad_(False)
                frozen += p.numel()
    return frozen


class Anchor:
    """The extra loss terms of `cfg` against the base model as it is now (before fine-tuning).

    `general` is a token stream of general text (the base tokenizer's ids); `seq_len` the window length.
    """

    def __init__(self, model, cfg: ForgettingConfig, general: torch.Tensor | None, seq_len: int, seed: int = 0):
        if cfg.needs_general and (general is None or general.numel() < seq_len + 2):
            raise InputError("replay, distillation and EWC need general text of at least seq_len + 2 tokens")
        self.cfg, self.general, self.seq_len, self.seed = cfg, general, seq_len, seed
        self.theta0 = {name: p.detach().clone() for name, p in _trainable(model).items()}
        self.fisher = diagonal_fisher(model, general, cfg.fisher_samples, seq_len, seed) if cfg.ewc else None
        self.base = None
        if cfg.distill:
            self.base = copy.deepcopy(model).eval()
            self.base.requires_grad_(False)

    def penalty(self, model) -> torch.Tensor:
        """EWC + L2-SP: ``sum_i (ewc * F_i + l2_init) / 2 * (theta_i - theta*_i)^2`` over the anchored weights."""
        cfg = self.cfg
        total = torch.zeros((), device=next(model.parameters()).device)
        for name, p in model.named_parameters():
            if name not in self.theta0 or not (cfg.ewc or cfg.l2_init):
                continue
            weight = cfg.l2_init + (cfg.ewc * self.fisher[name] if self.fisher is not None else 0.0)
            total = total + 0.5 * (weight * (p - self.theta0[name]) ** 2).sum()
        return total

    def windows(self, seed: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """The general windows replay and distillation train on for batch `seed` (None when neither is on);
        drawn from their own stream, so the fine-tuning batches are the same with or without them."""
        if not (self.cfg.replay or self.cfg.distill):
            return None
        return get_batch(self.general, self.cfg.general_batch, self.seq_len, seed ^ GENERAL_STREAM)

    def loss(self, model, general: tuple[torch.Tensor, torch.Tensor] | None) -> tuple[torch.Tensor, dict[str, float]]:
        """The extra objective for one micro-batch, given its general windows (`windows`), and its parts
        (for the metrics log)."""
        cfg, stats = self.cfg, {}
        total = self.penalty(model)
        if cfg.ewc or cfg.l2_init:
            stats["anchor_penalty"] = float(total.detach())
        if cfg.replay or cfg.distill:
            if general is None:
                raise InputError("replay and distillation need the batch's general windows")
            device = next(model.parameters()).device
            x, y = (t.to(device) for t in general)
            logits = model(x)  # (B, T, V)
            if cfg.replay:
                lm = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten())
                total = total + cfg.replay * lm
                stats["replay_loss"] = float(lm.detach())
            if cfg.distill:
                with torch.no_grad():
                    base_logp = F.log_softmax(self.base(x).float(), dim=-1)
                kl = F.kl_div(F.log_softmax(logits.float(), dim=-1).flatten(0, 1), base_logp.flatten(0, 1),
                              log_target=True, reduction="batchmean")  # per token: sum_v p_base (log p_base - log p)
                total = total + cfg.distill * kl
                stats["distill_kl"] = float(kl.detach())
        return total, stats
