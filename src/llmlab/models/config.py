"""The model config: plain data that serialises to ``config.json``."""

from __future__ import annotations

from dataclasses import dataclass

from llmlab.core.errors import InputError


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256  # tokens in the vocabulary (embedding rows)
    dim: int = 256  # hidden size d_model; divisible by n_head
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # query heads; head size is dim / n_head (even, for RoPE)
    n_kv_head: int = 4  # key/value heads; n_head % n_kv_head == 0 (grouped-query attention)
    ffn_hidden: int = 0  # SwiGLU hidden size; 0 = 8/3 * dim rounded up to a multiple of 32
    max_seq_len: int = 256  # context length in tokens
    rope_base: float = 10000.0  # RoPE base frequency
    norm_eps: float = 1e-6  # RMSNorm epsilon
    tie_embeddings: bool = True  # output head shares the token embedding matrix
    dropout: float = 0.0  # dropout on attention weights and residual branches (training only)
    init_std: float = 0.02  # std of the normal weight init; residual outputs get / sqrt(2 n_layer)

    def __post_init__(self):
        positive = ("vocab_size", "dim", "n_layer", "n_head", "n_kv_head", "max_seq_len")
        for name in positive:
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.dim % self.n_head:
            raise InputError(f"dim ({self.dim}) must be divisible by n_head ({self.n_head})")
        if (self.dim // self.n_head) % 2:
            raise InputError(f"head size dim/n_head = {self.dim // self.n_head} must be even for RoPE")
        if self.n_head % self.n_kv_head:
            raise InputError(f"n_head ({self.n_head}) must be divisible by n_kv_head ({self.n_kv_head})")
        if self.ffn_hidden < 0:
            raise InputError(f"ffn_hidden must be >= 0 (0 = automatic), got {self.ffn_hidden}")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    @property
    def hidden(self) -> int:
        """SwiGLU hidden size: 8/3 * dim keeps the parameter count of a 4*dim two-matrix FFN.

        >>> ModelConfig(dim=96, n_head=4).hidden
        256
        """
        if self.ffn_hidden:
            return self.ffn_hidden
        return -(-int(8 * self.dim / 3) // 32) * 32
