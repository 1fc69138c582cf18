"""Decoding: sampling filters and autoregressive generation with a KV cache.

Names are imported on first use (PEP 562), so importing a config module does not load torch.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "GenerationConfig": "llmlab.generate.config",
    "generate": "llmlab.generate.autoregressive",
    "stream": "llmlab.generate.autoregressive",
    "sample_next": "llmlab.generate.sampling",
    "top_k_filter": "llmlab.generate.sampling",
    "top_p_filter": "llmlab.generate.sampling",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
