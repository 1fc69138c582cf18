"""Training: objectives, optimizers, schedules, precision, checkpoints, memory, the loop.

Names are imported on first use (PEP 562), so importing a config module does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "TrainConfig": "llmlab.train.config",
    "Trainer": "llmlab.train.trainer",
    "causal_lm_loss": "llmlab.train.objectives",
    "cosine_with_warmup": "llmlab.train.schedule",
    "evaluate_loss": "llmlab.train.trainer",
    "latest_checkpoint": "llmlab.train.checkpoint",
    "load_checkpoint": "llmlab.train.checkpoint",
    "save_checkpoint": "llmlab.train.checkpoint",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
