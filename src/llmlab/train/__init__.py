"""Training: objectives, schedules, checkpoints and the training loop."""

from llmlab.train.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from llmlab.train.objectives import causal_lm_loss
from llmlab.train.schedule import cosine_with_warmup
from llmlab.train.trainer import TrainConfig, Trainer, evaluate_loss

__all__ = [
    "TrainConfig",
    "Trainer",
    "causal_lm_loss",
    "cosine_with_warmup",
    "evaluate_loss",
    "latest_checkpoint",
    "load_checkpoint",
    "save_checkpoint",
]
