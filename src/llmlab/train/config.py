"""The training-loop config: plain data, importable without torch (the CLI builds flags from it)."""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.core.errors import InputError
from llmlab.train.schedule import SCHEDULES

# the optimizers of llmlab.train.optim, by the names the trainer accepts
OPTIMIZER_NAMES = ("sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw")
# settings only pretraining uses (distillation from a teacher): the other training commands show no flag for them
PRETRAIN_ONLY = ("kd_alpha", "kd_temperature")


@dataclass(frozen=True)
class TrainConfig:
    steps: int = 1000  # optimizer steps
    batch_size: int = 16  # sequences per micro-batch
    grad_accum: int = 1  # micro-batches per optimizer step (effective batch = batch_size * grad_accum)
    seq_len: int = 256  # tokens per training sequence; at most the model's max_seq_len
    optimizer: str = "adamw"  # sgd | momentum | nesterov | adagrad | rmsprop | adam | adamw (llmlab.train.optim)
    schedule: str = "cosine"  # cosine | linear | constant | inverse_sqrt | wsd (all with linear warmup)
    lr: float = 1e-3  # peak learning rate
    min_lr: float = 1e-4  # learning rate at the end of the decay
    warmup_steps: int = 50  # linear warmup steps
    weight_decay: float = 0.1  # weight decay on matrices only (not norms); decoupled for adamw, L2 otherwise
    beta1: float = 0.9  # Adam first-moment decay; the momentum coefficient of momentum/nesterov
    beta2: float = 0.95  # Adam second-moment decay; RMSProp's alpha
    grad_clip: float = 1.0  # clip the global gradient norm to this; 0 disables clipping
    precision: str = "fp32"  # fp32 | bf16 (autocast) | fp16 (autocast + dynamic loss scaling, fp32 weights)
    grad_checkpoint: bool = False  # recompute each block in backward instead of keeping its activations
    compile: bool = False  # run the forward pass through torch.compile (speed-up measured in bench/train.py)
    eval_every: int = 100  # evaluate on validation data every N steps (0 = only at the end)
    eval_batches: int = 8  # validation batches per periodic evaluation
    checkpoint_every: int = 100  # save a checkpoint every N steps (0 = only at the end)
    keep_checkpoints: int = 2  # checkpoints kept on disk, the newest (0 = keep all)
    log_every: int = 10  # write a training metrics record every N steps
    seed: int = 1337  # seeds initialisation, batches and dropout
    device: str = "auto"  # auto | cpu | cuda
    max_minutes: float = 0.0  # stop (with a checkpoint) after this much training per invocation; 0 = no limit
    kd_alpha: float = 0.0  # weight of the distillation term against a teacher (llmlab.train.distill); 0 = data only
    kd_temperature: float = 1.0  # softmax temperature of the distillation term (its weight is scaled by T^2)

    # settings one optimizer, schedule or term reads (`llmlab.core.config.check_applies`), checked for the flags
    # given: the config does not check them itself, so runs saved with an unused value still load
    APPLIES = {
        "beta1": (lambda c: c.optimizer in ("adam", "adamw", "momentum", "nesterov"),
                  "to adam, adamw (first moment) and momentum, nesterov (the momentum), not {cfg.optimizer}"),
        "beta2": (lambda c: c.optimizer in ("adam", "adamw", "rmsprop"),
                  "to adam, adamw (second moment) and rmsprop (its alpha), not {cfg.optimizer}"),
        "min_lr": (lambda c: c.schedule != "constant", "to the schedules that decay, not constant"),
        "kd_temperature": (lambda c: c.kd_alpha > 0, "to the distillation term (--kd-alpha > 0 and --teacher)"),
        "eval_batches": (lambda c: c.eval_every > 0, "to the evaluations every --eval-every steps, and there "
                         "are none at --eval-every 0 (the final evaluation reads all the validation text)"),
    }

    def __post_init__(self):
        for name in ("steps", "batch_size", "grad_accum", "seq_len", "log_every", "eval_batches"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        for name in ("eval_every", "checkpoint_every", "warmup_steps", "keep_checkpoints"):
            if getattr(self, name) < 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip", "max_minutes"):  # 0 turns grad_clip and max_minutes off
            if not getattr(self, name) >= 0:
                raise InputError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not 0 <= self.seed < 2**32:  # each micro-batch's seed, (seed * 1_000_003 + step) * 64 + micro, fits int64
            raise InputError(f"seed must be in [0, 2**32), got {self.seed}")
        if self.grad_accum > 64:  # 64 micro-batch seeds a step: the 65th would draw the next step's first
            raise InputError(f"grad_accum must be <= 64, got {self.grad_accum}")
        if not 0 < self.lr <= 1:
            raise InputError(f"lr must be in (0, 1], got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise InputError(f"min_lr must be in [0, lr], got {self.min_lr}")
        if not 0 <= self.kd_alpha <= 1:
            raise InputError(f"kd_alpha must be in [0, 1], got {self.kd_alpha}")
        if not self.kd_temperature > 0:
            raise InputError(f"kd_temperature must be > 0, got {self.kd_temperature}")
        if self.optimizer not in OPTIMIZER_NAMES:
            raise InputError(f"optimizer must be one of {sorted(OPTIMIZER_NAMES)}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise InputError(f"schedule must be one of {sorted(SCHEDULES)}, got {self.schedule!r}")
        if self.precision not in ("fp32", "bf16", "fp16"):
            raise InputError(f"precision must be fp32, bf16 or fp16, got {self.precision!r}")
        if self.device not in ("auto", "cpu", "cuda"):
            raise InputError(f"device must be auto, cpu or cuda, got {self.device!r}")

    def out_of_time(self, session_seconds: float) -> bool:
        """Whether `session_seconds` of training in this invocation reach `max_minutes` (never when it is 0).

        >>> TrainConfig(max_minutes=0.5).out_of_time(30.0), TrainConfig().out_of_time(1e9)
        (True, False)
        """
        return bool(self.max_minutes) and session_seconds >= self.max_minutes * 60
