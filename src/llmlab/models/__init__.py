"""Model families and their configs, exact parameter counting, saving and loading.

Names are imported on first use (PEP 562), so importing a config module does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "CausalLM": "llmlab.models.decoder",
    "ModelConfig": "llmlab.models.config",
    "count_parameters": "llmlab.models.params",
    "load_model": "llmlab.models.io",
    "parameter_breakdown": "llmlab.models.params",
    "save_model": "llmlab.models.io",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
