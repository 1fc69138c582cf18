"""Decoding: sampling filters and autoregressive generation with a KV cache."""

from llmlab.generate.generate import GenerationConfig, generate
from llmlab.generate.sampling import sample_next, top_k_filter, top_p_filter

__all__ = ["GenerationConfig", "generate", "sample_next", "top_k_filter", "top_p_filter"]
