"""Training: objectives, distillation, optimizers, schedules, precision, checkpoints, memory, the loop.

Names are imported on first use (PEP 562), so importing a config module does not load torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "TrainConfig": "llmlab.train.config",
    "Trainer": "llmlab.train.trainer",
    "causal_lm_loss": "llmlab.train.objectives",
    "cosine_with_warmup": "llmlab.train.schedule",
    "distillation_loss": "llmlab.train.distill",
    "evaluate_loss": "llmlab.train.trainer",
    "latest_checkpoint": "llmlab.train.checkpoint",
    "load_checkpoint": "llmlab.train.checkpoint",
    "save_checkpoint": "llmlab.train.checkpoint",
})
