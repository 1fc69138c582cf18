"""Decoding: sampling filters and autoregressive generation with a KV cache.

Names are imported on first use (PEP 562), so importing a config module does not load torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "GenerationConfig": "llmlab.generate.config",
    "generate": "llmlab.generate.autoregressive",
    "stream": "llmlab.generate.autoregressive",
    "sample_next": "llmlab.generate.sampling",
    "top_k_filter": "llmlab.generate.sampling",
    "top_p_filter": "llmlab.generate.sampling",
})
