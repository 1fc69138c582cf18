"""Transformer building blocks: norms, positions, attention, feed-forward, KV cache."""

from llmlab.nn.attention import Attention, KVCache
from llmlab.nn.ffn import SwiGLU
from llmlab.nn.norms import RMSNorm
from llmlab.nn.rope import RotaryEmbedding, apply_rope

__all__ = ["Attention", "KVCache", "RMSNorm", "RotaryEmbedding", "SwiGLU", "apply_rope"]
