"""What a memory estimate is for: the batch shape, optimizer, precision, checkpointing, ZeRO stage and LoRA
rank. Torch-free: `llmlab memory` builds its flags from `MemoryConfig`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from llmlab.core.config import changed_settings, check_applies
from llmlab.core.errors import InputError

STATE_COPIES = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
PRECISIONS = ("fp32", "amp", "mixed")


@dataclass(frozen=True)
class MemoryConfig:
    batch_size: int = 1  # sequences per micro-batch on one device
    seq_len: int = 2048  # tokens per sequence
    optimizer: str = "adamw"  # sgd | momentum | nesterov | adagrad | rmsprop | adam | adamw
    precision: str = "fp32"  # fp32 | amp (fp32 weights, 16-bit autocast) | mixed (16-bit weights, fp32 master)
    grad_checkpoint: bool = False  # keep only block inputs; recompute one block at a time in backward
    zero_stage: int = 0  # 0 none, 1 shard optimizer states, 2 + gradients, 3 + weights
    n_devices: int = 1  # data-parallel devices sharing the ZeRO shards
    lora_rank: int = 0  # LoRA rank on q_proj and v_proj (0 = full fine-tuning)

    # n_devices only divides what ZeRO shards: at stage 0 every device holds everything, so it changes no row
    APPLIES: ClassVar[dict] = {"n_devices": (lambda c: c.zero_stage >= 1, "with ZeRO (--zero-stage 1, 2 or 3), "
                                                                         "which shards across the devices")}

    def __post_init__(self):
        if self.optimizer not in STATE_COPIES:
            raise InputError(f"optimizer must be one of {sorted(STATE_COPIES)}, got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise InputError(f"zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        for name in ("batch_size", "seq_len", "n_devices"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lora_rank < 0:
            raise InputError(f"lora_rank must be >= 0, got {self.lora_rank}")
        check_applies(self, changed_settings(self))
