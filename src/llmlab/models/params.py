"""Exact parameter counts from a config alone (topic 35: what '7B' counts)."""

from __future__ import annotations

from llmlab.models.config import ModelConfig

GATED_FFN = ("swiglu", "geglu", "geglu_exact")  # three matrices; the rest have two


def _feed_forward(cfg: ModelConfig) -> int:
    """Weights of one feed-forward of the config's kind and width, a dense layer's or one MoE expert's:
    (gate,) up and down, no biases."""
    return (3 if cfg.ffn_kind in GATED_FFN else 2) * cfg.dim * cfg.hidden


def parameter_breakdown(cfg: ModelConfig) -> dict[str, int]:
    """Parameters by part. A tied output head adds nothing.

    >>> b = parameter_breakdown(ModelConfig(vocab_size=10, dim=8, n_layer=1, n_head=2, n_kv_head=1, ffn_hidden=16))
    >>> b["embedding"], b["attention"], b["ffn"], b["norms"], b["lm_head"]
    (80, 192, 384, 24, 0)
    """
    d, kv = cfg.dim, cfg.n_kv_head * cfg.head_dim
    attention = d * d + 2 * d * kv + d * d  # q, k, v, o projections, no biases
    ffn = _feed_forward(cfg)  # a dense layer's feed-forward, or one expert
    norm = d if cfg.norm == "rmsnorm" else 2 * d  # LayerNorm adds a bias
    final_norm = norm if cfg.norm_position == "pre" else 0
    n_moe = sum(cfg.is_moe_layer(i) for i in range(cfg.n_layer))
    moe = cfg.n_experts * ffn + d * cfg.n_experts  # experts + router
    return {
        "embedding": cfg.vocab_size * d + (cfg.max_seq_len * d if cfg.position == "learned" else 0),
        "attention": cfg.n_layer * attention,
        "ffn": (cfg.n_layer - n_moe) * ffn + n_moe * moe,
        "norms": cfg.n_layer * 2 * norm + final_norm,
        "lm_head": 0 if cfg.tie_embeddings else cfg.vocab_size * d,
    }


def count_parameters(cfg: ModelConfig, non_embedding: bool = False) -> int:
    """Total parameters; `non_embedding` leaves out the embedding (and an untied head), as the
    scaling-law papers count."""
    b = parameter_breakdown(cfg)
    total = sum(b.values())
    return total - b["embedding"] - b["lm_head"] if non_embedding else total


def human_count(n: int) -> str:
    """Short human form of a count.

    >>> human_count(6_738_415_616), human_count(124_000)
    ('6.74B', '124.0K')
    """
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.{2 if unit in 'TB' else 1}f}{unit}"
    return str(n)


def flops_per_token(cfg: ModelConfig, seq_len: int, training: bool = True) -> int:
    """Matmul FLOPs per token: 2 per multiply-add in the forward pass, 3x that with backward.

    Counts every weight matrix a token passes through (the embedding lookup is free, the output head
    is not; in MoE layers only the top-k experts and the router) plus attention
    scores and the weighted sum over `seq_len` keys (causal: on average half of them, as counted
    here by the full length, the PaLM convention). Norms and activations are left out (< 1%).

    >>> cfg = ModelConfig(vocab_size=10, dim=8, n_layer=1, n_head=2, n_kv_head=2, ffn_hidden=16)
    >>> flops_per_token(cfg, 4, training=False)  # 2 * (attn 256 + ffn 384 + head 80) + 2 * 2 * 4 * 8
    1568
    """
    b = parameter_breakdown(cfg)
    ffn = b["ffn"]
    if cfg.n_experts:  # a token runs through top_k experts only (plus the router)
        n_moe = sum(cfg.is_moe_layer(i) for i in range(cfg.n_layer))
        ffn -= n_moe * (cfg.n_experts - cfg.moe_top_k) * _feed_forward(cfg)
    matmul_params = b["attention"] + ffn + cfg.vocab_size * cfg.dim
    forward = 2 * matmul_params + 2 * 2 * cfg.n_layer * seq_len * cfg.dim
    return 3 * forward if training else forward
