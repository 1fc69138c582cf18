"""The fine-tuning run's config: plain data, importable without torch (the CLI builds flags from it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmlab.core.config import changed_settings, check_applies, config_from_dict, config_to_dict
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
    data: str = "arithmetic"  # "arithmetic", "arithmetic-tools" (replies call the calculator) or a .jsonl file
    train: TrainConfig = SFT_TRAIN  # the loop; seq_len cuts conversations to seq_len + 1 tokens (see encode_examples)
    prompt_loss_weight: float = 0.0  # weight of prompt tokens in the loss: 0 = prompt masking, 1 = every token
    learn_tool_results: bool = False  # arithmetic-tools: learn each call's result and ']' too (Toolformer's loss)
    bucket: bool = False  # draw each batch from conversations of similar length (less padding)
    packing: bool = False  # pack each step's batch_size conversations into rows of <= seq_len tokens (no padding)
    arithmetic_train: int = 20000  # arithmetic problems to train on (data=arithmetic or arithmetic-tools)
    arithmetic_max_digits: int = 5  # operands have 2..this many digits (train and test)
    arithmetic_ops: str = "+-*"  # operators of the arithmetic problems
    eval_problems: int = 200  # arithmetic test problems answered before and after (0 = skip)
    answer_tokens: int = 12  # most tokens generated per answer
    general_corpus: str = "pfr1998"  # corpus whose dev split measures general ability (perplexity)
    general_tokens: int = 20000  # dev tokens scored for it (0 = skip)
    lora_r: int = 0  # LoRA rank on lora_targets (the rest frozen, but the new chat tokens' rows); 0 = full fine-tuning
    lora_alpha: float = 16.0  # LoRA scaling numerator: updates are scaled by lora_alpha / lora_r
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")  # Linear layers LoRA adapts (last name of the path)
    prompt_tuning: int = 0  # virtual tokens of a soft prompt that trains alone (and the chat tokens' rows); 0 = off
    prompt_init: str = "vocab"  # how the soft prompt starts: random | vocab (sampled tokens) | text (prompt_init_text)
    prompt_init_text: str = ""  # prompt_init=text: the text whose token embeddings start the prompt
    prompt_deep: bool = False  # P-tuning v2: a key/value prefix in every layer instead of input vectors
    forgetting: ForgettingConfig = ForgettingConfig()  # replay, distillation, EWC, L2-SP, freezing (general_corpus)

    # the settings that reach the run only with another one (`check_applies`): the test, the rule
    APPLIES = {
        "lora_alpha": (lambda c: c.lora_r > 0, "with LoRA (--lora-r N)"),
        "lora_targets": (lambda c: c.lora_r > 0, "with LoRA (--lora-r N)"),
        "forgetting.general_batch": (lambda c: c.forgetting.replay or c.forgetting.distill,
                                     "to the general windows of --replay and --distill"),
        "forgetting.fisher_samples": (lambda c: c.forgetting.ewc > 0, "to the Fisher information of --ewc"),
        "general_corpus": (lambda c: c.general_tokens > 0 or c.forgetting.needs_general,
                           "to the general perplexity (--general-tokens > 0) and to --replay, --distill and --ewc"),
        "arithmetic_train": (lambda c: c.builtin_data, "to the built-in arithmetic data, not --data {cfg.data}"),
        "arithmetic_max_digits": (lambda c: c.builtin_data or c.eval_problems > 0,
                                  "to the built-in arithmetic data and test (--eval-problems > 0)"),
        "arithmetic_ops": (lambda c: c.builtin_data or c.eval_problems > 0,
                           "to the built-in arithmetic data and test (--eval-problems > 0)"),
        "answer_tokens": (lambda c: c.eval_problems > 0, "to the arithmetic test (--eval-problems > 0)"),
    }

    def __post_init__(self):
        if self.name in ("", ".", "..") or any(c in self.name for c in "/\\\0"):
            raise InputError(f"the run name must be a plain folder name, got {self.name!r}")
        if not self.builtin_data and Path(self.data).suffix != ".jsonl":  # first: which settings apply depends on it
            raise InputError(f"data must be 'arithmetic', 'arithmetic-tools' or a .jsonl file, got {self.data!r}")
        if not 0 <= self.prompt_loss_weight <= 1:
            raise InputError(f"prompt_loss_weight must be in [0, 1], got {self.prompt_loss_weight}")
        if self.learn_tool_results and not self.tools:
            raise InputError(f"learn_tool_results is about the calculator calls of data 'arithmetic-tools', and data "
                             f"is {self.data!r}")
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
        self._check_prompt()
        object.__setattr__(self, "lora_targets", tuple(self.lora_targets))
        if not self.arithmetic_ops or set(self.arithmetic_ops) - set("+-*"):
            raise InputError(f"arithmetic_ops must be a non-empty subset of '+-*', got {self.arithmetic_ops!r}")
        check_applies(self, changed_settings(self))

    def _check_prompt(self) -> None:
        if self.prompt_tuning < 0:
            raise InputError(f"prompt_tuning must be >= 0 (0 = off), got {self.prompt_tuning}")
        if not self.prompt_tuning:
            if self.prompt_deep or self.prompt_init_text or self.prompt_init != "vocab":
                raise InputError("--prompt-init, --prompt-init-text and --deep set up a soft prompt: "
                                 "give its length with --prompt-tuning N")
            return
        if self.lora_r:
            raise InputError("--prompt-tuning trains a soft prompt with the model frozen, --lora-r trains adapters "
                             "inside it: choose one")
        if self.train.weight_decay:
            raise InputError(f"prompt tuning trains the new chat tokens' embedding rows through a gradient mask, "
                             f"which weight decay ({self.train.weight_decay}) would bypass: use --weight-decay 0")
        if self.prompt_init_text and self.prompt_init != "text":
            raise InputError(f"--prompt-init-text is read by --prompt-init text, not {self.prompt_init!r}")
        self.prompt_config  # noqa: B018 (validates n_virtual, init, text)

    @property
    def prompt_config(self):
        """The soft prompt's settings (`llmlab.adapt.prompt_config.PromptConfig`), seeded by the run's seed."""
        from llmlab.adapt.prompt_config import PromptConfig

        return PromptConfig(n_virtual=self.prompt_tuning, init=self.prompt_init, init_text=self.prompt_init_text,
                            deep=self.prompt_deep, seed=self.train.seed)

    @property
    def builtin_data(self) -> bool:
        """Whether the run trains on the built-in arithmetic problems (not a --data file)."""
        return self.data in ("arithmetic", "arithmetic-tools")

    @property
    def tools(self) -> bool:
        """Whether the replies call the calculator (`llmlab.adapt.tools`)."""
        return self.data == "arithmetic-tools"

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
