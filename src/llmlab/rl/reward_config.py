"""The reward model run's config: plain data, importable without torch (the CLI builds flags from it)."""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.core.config import changed_settings, check_applies, config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.train.config import TrainConfig

# batch_size counts comparisons (each is two sequences); seq_len is unused (a comparison is as long as it is)
# lr 1e-3: on chat2's comparisons 1e-4 learned from the start (0.986 held out against 0.966) but PPO gamed
# that reward model (greedy 0.147 -> 0.050), and the near-miss one came out worse on every measure (README)
RM_TRAIN = TrainConfig(steps=10000, batch_size=32, lr=1e-3, min_lr=1e-4, warmup_steps=20, weight_decay=0.0,
                       eval_every=1000, eval_batches=8, checkpoint_every=1000, log_every=100)


class ComparisonRun:
    """What the configs of runs on comparisons (a reward model's, DPO's) share besides their checks
    (`check_comparison_settings`): the source of the comparisons, and (de)serialisation."""

    KIND = "comparison run"  # how errors name the config
    # the settings of the built-in pairs, which a --pairs file replaces (`check_applies`)
    APPLIES = {k: (lambda c: not c.pairs, "to the built-in pairs; a --pairs file brings its own comparisons")
               for k in ("samples", "temperature", "near_misses", "arithmetic_train")}

    @property
    def corpus(self) -> str:
        """The comparisons' source, under the name the run-directory checks use for a run's corpus."""
        return self.pairs or "arithmetic (sampled)"

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict):
        d = dict(d)
        d["train"] = config_from_dict(TrainConfig, d.get("train", {}), "train")
        return config_from_dict(cls, d, cls.KIND)


@dataclass(frozen=True)
class RewardConfig(ComparisonRun):
    KIND = "reward model config"

    name: str = "rm"  # run directory name under the output root
    model: str = ""  # the chat model the reward model starts from (a folder written by llmlab sft)
    pairs: str = ""  # JSONL of {"prompt", "chosen", "rejected"} (split kept, or last 5% held out); "" = sampled
    train: TrainConfig = RM_TRAIN  # the loop: steps, lr, batch_size (comparisons per step), seed, checkpoints
    center_coef: float = 0.0  # weight of the mean squared score sum that keeps scores near 0 (TRL's; 0 = off)
    samples: int = 4  # built-in pairs: answers sampled per problem, each wrong one paired with the right answer
    temperature: float = 1.0  # built-in pairs: sampling temperature of those answers
    near_misses: int = 0  # built-in pairs: also this many one-digit slips of each right answer, each against it
    max_new_tokens: int = 8  # built-in pairs and best-of-n: most tokens per sampled answer
    arithmetic_train: int = 20000  # built-in pairs: train problems sampled (dev pairs: a tenth as many dev problems)
    arithmetic_max_digits: int = 2  # operands have 2..this many digits
    arithmetic_ops: str = "+"  # operators of the arithmetic problems
    best_of: int = 8  # report: exact match when the reward model picks 1 of this many answers (0 = skip)
    eval_problems: int = 100  # test problems of that measurement

    def __post_init__(self):
        check_comparison_settings(self, "reward model")
        for k in ("best_of", "eval_problems"):
            if getattr(self, k) < 0:
                raise InputError(f"{k} must be >= 0, got {getattr(self, k)}")
        if not 0 <= self.center_coef < float("inf"):
            raise InputError(f"center_coef must be a finite number >= 0, got {self.center_coef}")



def check_comparison_settings(cfg, what: str) -> None:
    """The checks a reward model run and a DPO run share: run name, the comparisons' settings and the loop's
    precision (`what` names the run in the message)."""
    if cfg.name in ("", ".", "..") or any(c in cfg.name for c in "/\\\0"):
        raise InputError(f"the run name must be a plain folder name, got {cfg.name!r}")
    for k in ("samples", "max_new_tokens", "arithmetic_train"):
        if getattr(cfg, k) < 1:
            raise InputError(f"{k} must be >= 1, got {getattr(cfg, k)}")
    if cfg.near_misses < 0:
        raise InputError(f"near_misses must be >= 0, got {cfg.near_misses}")
    if not cfg.temperature > 0:
        raise InputError(f"temperature must be > 0 (answers are sampled), got {cfg.temperature}")
    if cfg.arithmetic_max_digits < 2:
        raise InputError(f"arithmetic_max_digits must be >= 2, got {cfg.arithmetic_max_digits}")
    if not cfg.arithmetic_ops or set(cfg.arithmetic_ops) - set("+-*"):
        raise InputError(f"arithmetic_ops must be a non-empty subset of '+-*', got {cfg.arithmetic_ops!r}")
    if cfg.train.precision != "fp32" or cfg.train.compile:
        raise InputError(f"the {what} trains in fp32 without compile")
    check_applies(cfg, changed_settings(cfg))
