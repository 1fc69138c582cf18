"""The DPO run's config: plain data, importable without torch (the CLI builds flags from it).

Its comparisons are the reward model's (`llmlab.rl.reward_config.RewardConfig` has the same data fields
and defaults): a JSONL file, or the chat model's own arithmetic answers against the right ones, with
optional near misses. The same seed and settings give the very comparisons `llmlab rm train` trains on,
so DPO and reward model + PPO can be compared on one dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.core.errors import InputError
from llmlab.rl.reward_config import ComparisonRun, check_comparison_settings
from llmlab.train.config import TrainConfig

LOSSES = ("sigmoid", "hinge", "ipo")  # losses on comparisons (offline and online DPO)
OFFLINE_LOSSES = LOSSES + ("simpo", "orpo", "kto")  # kto: comparisons unpaired into labelled examples (rl.kto)
REFERENCE_FREE = ("simpo", "orpo")  # losses on the policy's own log-probabilities: no reference table
AVERAGED = ("ipo", "simpo", "orpo")  # losses on log-probabilities averaged per token

# batch_size counts comparisons (each is two sequences); seq_len is unused (a comparison is as long as it is)
DPO_TRAIN = TrainConfig(steps=1000, batch_size=32, lr=1e-4, min_lr=1e-5, warmup_steps=20, weight_decay=0.0,
                        grad_clip=1.0, eval_every=200, eval_batches=8, checkpoint_every=200, log_every=20)


@dataclass(frozen=True)
class DPOConfig(ComparisonRun):
    KIND = "DPO config"

    name: str = "dpo"  # run directory name under the output root
    model: str = ""  # the chat model to train, and the frozen reference (a folder written by llmlab sft)
    pairs: str = ""  # JSONL of {"prompt", "chosen", "rejected"} (kto also {prompt, completion, label}); "" = sampled
    train: TrainConfig = DPO_TRAIN  # the loop: steps, lr, batch_size (comparisons, or kto examples, per step), seed
    beta: float = 0.1  # the KL coefficient: implicit reward = beta x log(policy / reference)
    loss: str = "sigmoid"  # sigmoid (DPO), hinge (SLiC), ipo (IPO), simpo, orpo (no reference) or kto (KTO)
    label_smoothing: float = 0.0  # sigmoid and simpo: the share of labels taken as flipped (conservative DPO)
    nll_coef: float = 0.0  # weight of the chosen (kto: desirable) replies' token NLL added to the loss (RPO; 0 = off)
    desirable_weight: float = 1.0  # kto only: weight of the desirable examples' losses (TRL's)
    undesirable_weight: float = 1.0  # kto only: weight of the undesirable examples' losses (TRL's)
    simpo_gamma: float = 0.5  # simpo only: the target margin gamma in -log sigmoid(beta (c - r) - gamma) (TRL's)
    samples: int = 4  # built-in pairs: answers sampled per problem, each wrong one paired with the right answer
    temperature: float = 1.0  # built-in pairs: sampling temperature of those answers
    near_misses: int = 0  # built-in pairs: also this many one-digit slips of each right answer, each against it
    max_new_tokens: int = 8  # built-in pairs and the test answers: most tokens per answer
    arithmetic_train: int = 20000  # built-in pairs: train problems sampled (dev pairs: a tenth as many dev problems)
    arithmetic_max_digits: int = 2  # operands have 2..this many digits
    arithmetic_ops: str = "+"  # operators of the arithmetic problems
    eval_problems: int = 300  # report: greedy exact match on this many test problems, before and after (0 = skip)

    APPLIES = {**ComparisonRun.APPLIES,  # the settings of one loss (`check_applies`)
               "desirable_weight": (lambda c: c.loss == "kto", "to KTO's examples (--loss kto), not {cfg.loss}"),
               "undesirable_weight": (lambda c: c.loss == "kto", "to KTO's examples (--loss kto), not {cfg.loss}"),
               "simpo_gamma": (lambda c: c.loss == "simpo", "to SimPO's target margin (--loss simpo), not {cfg.loss}")}

    def __post_init__(self):
        check_comparison_settings(self, "DPO run")
        if self.eval_problems < 0:
            raise InputError(f"eval_problems must be >= 0, got {self.eval_problems}")
        check_dpo_loss(self, OFFLINE_LOSSES)
        for k in ("desirable_weight", "undesirable_weight"):
            w = getattr(self, k)
            if not 0 < w < float("inf"):
                raise InputError(f"{k} must be a finite number > 0, got {w}")
        if not 0 <= self.simpo_gamma < float("inf"):
            raise InputError(f"simpo_gamma must be a finite number >= 0, got {self.simpo_gamma}")
        if self.loss == "orpo" and self.nll_coef:
            raise InputError("ORPO's loss holds the chosen replies' NLL at weight 1 already; leave nll_coef at 0")
        if self.loss == "kto" and self.train.batch_size < 2:
            raise InputError(f"KTO needs a batch of at least 2 examples (each prompt takes another example's "
                             f"completion for its KL estimate), got batch_size {self.train.batch_size}")


def check_dpo_loss(cfg, losses: tuple[str, ...] = LOSSES) -> None:
    """InputError unless `cfg`'s loss, beta, label_smoothing and nll_coef are one of `losses` (the offline
    run's, with kto, and `llmlab rl --algo online-dpo`'s)."""
    if cfg.loss not in losses:
        raise InputError(f"loss must be one of {', '.join(losses)}, got {cfg.loss!r}")
    if not 0 < cfg.beta < float("inf"):
        raise InputError(f"beta must be a finite number > 0, got {cfg.beta}")
    if not 0 <= cfg.label_smoothing < 0.5:
        raise InputError(f"label_smoothing must be in [0, 0.5), got {cfg.label_smoothing}")
    if cfg.label_smoothing and cfg.loss not in ("sigmoid", "simpo"):
        raise InputError(f"label_smoothing applies to the sigmoid loss (and simpo), not {cfg.loss!r}")
    if not 0 <= cfg.nll_coef < float("inf"):
        raise InputError(f"nll_coef must be a finite number >= 0, got {cfg.nll_coef}")
