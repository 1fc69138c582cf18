"""The fine-tuning run's config: plain data, importable without torch (the CLI builds flags from it)."""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.train.config import TrainConfig

SFT_TRAIN = TrainConfig(steps=300, batch_size=16, seq_len=64, lr=1e-3, min_lr=1e-4, warmup_steps=20, weight_decay=0.0,
                        eval_every=100, eval_batches=4, checkpoint_every=100, log_every=10)


@dataclass(frozen=True)
class ForgettingConfig:
    """Remedies for forgetting during fine-tuning (`llmlab.adapt.forgetting`); all off by default."""

    replay: float = 0.0  # weight of a language-modelling loss on general-text windows each step (0 = off)
    distill: float = 0.0  # weight of KL(base model || model) on the same general windows (0 = off)
    ewc: float = 0.0  # EWC strength: pull to the base weights scaled by their Fisher information on general text
    l2_init: float = 0.0  # L2-SP strength: pull to the base weights, the same for every weight (0 = off)
    freeze_layers: int = 0  # the lowest this many transformer blocks do not train
    general_batch: int = 8  # general windows per step for replay and distillation
    fisher_samples: int = 64  # general windows the EWC Fisher information is averaged over

    def __post_init__(self):
        for name in ("replay", "distill", "ewc", "l2_init"):
            v = getattr(self, name)
            if not 0 <= v < float("inf"):
                raise InputError(f"{name} must be a finite number >= 0, got {v}")
        if self.freeze_layers < 0:
            raise InputError(f"freeze_layers must be >= 0, got {self.freeze_layers}")
        for name in ("general_batch", "fisher_samples"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")

    @property
    def active(self) -> bool:
        """Whether any loss term is on (freezing is not a loss term)."""
        return any((self.replay, self.distill, self.ewc, self.l2_init))

    @property
    def needs_general(self) -> bool:
        """Whether general text is read during fine-tuning."""
        return any((self.replay, self.distill, self.ewc))


@dataclass(frozen=True)
class SFTConfig:
    name: str = "sft"  # run directory name under the output root
    model: str = ""  # the base model directory (an llmlab model folder with its tokenizer)
    data: str = "arithmetic"  # "arithmetic" (built-in problems) or a .jsonl file of conversations / prompt-response
    train: TrainConfig = SFT_TRAIN  # the loop; seq_len cuts conversations to seq_len + 1 tokens (see encode_examples)
    prompt_loss_weight: float = 0.0  # weight of prompt tokens in the loss: 0 = prompt masking, 1 = every token
    bucket: bool = False  # draw each batch from conversations of similar length (less padding)
    arithmetic_train: int = 20000  # arithmetic problems to train on (data=arithmetic)
    arithmetic_max_digits: int = 5  # operands have 2..this many digits (train and test)
    arithmetic_ops: str = "+-*"  # operators of the arithmetic problems
    eval_problems: int = 200  # arithmetic test problems answered before and after (0 = skip)
    answer_tokens: int = 12  # most tokens generated per answer
    general_corpus: str = "pfr1998"  # corpus whose dev split measures general ability (perplexity)
    general_tokens: int = 20000  # dev tokens scored for it (0 = skip)
    lora_r: int = 0  # LoRA rank on lora_targets (the rest frozen, but the new chat tokens' rows); 0 = full fine-tuning
    lora_alpha: float = 16.0  # LoRA scaling numerator: updates are scaled by lora_alpha / lora_r
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")  # Linear layers LoRA adapts (last name of the path)
    forgetting: ForgettingConfig = ForgettingConfig()  # replay, distillation, EWC, L2-SP, freezing (general_corpus)

    def __post_init__(self):
        if self.name in ("", ".", "..") or any(c in self.name for c in "/\\\0"):
            raise InputError(f"the run name must be a plain folder name, got {self.name!r}")
        if not self.data:
            raise InputError("data must be 'arithmetic' or a .jsonl file")
        if not 0 <= self.prompt_loss_weight <= 1:
            raise InputError(f"prompt_loss_weight must be in [0, 1], got {self.prompt_loss_weight}")
        for name in ("arithmetic_train", "answer_tokens"):
            if getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("eval_problems", "general_tokens"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.arithmetic_max_digits < 2:
            raise InputError(f"arithmetic_max_digits must be >= 2, got {self.arithmetic_max_digits}")
        if self.lora_r < 0:
            raise InputError(f"lora_r must be >= 0 (0 = full fine-tuning), got {self.lora_r}")
        if self.lora_r and self.train.weight_decay:
            raise InputError(f"LoRA trains the new chat tokens' embedding rows through a gradient mask, which "
                             f"weight decay ({self.train.weight_decay}) would bypass: use --weight-decay 0")
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if not self.arithmetic_ops or set(self.arithmetic_ops) - set("+-*"):
            raise InputError(f"arithmetic_ops must be a non-empty subset of '+-*', got {self.arithmetic_ops!r}")

    @property
    def corpus(self) -> str:
        """The data, under the name the run-directory checks use for a run's corpus."""
        return self.data

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SFTConfig:
        d = dict(d)
        d["train"] = config_from_dict(TrainConfig, d.get("train", {}), "train")
        d["forgetting"] = config_from_dict(ForgettingConfig, d.get("forgetting", {}), "forgetting")
        return config_from_dict(cls, d, "sft config")
