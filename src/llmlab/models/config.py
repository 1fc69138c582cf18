"""The model config: plain data that serialises to ``config.json``."""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmlab.core.errors import InputError

# Names of the llmlab.nn choices, spelled out so this module (and `llmlab --help`) stays torch-free;
# tests/models/test_config.py holds them equal to the nn modules' own tables.
FFN_KINDS = ("relu", "gelu", "gelu_tanh", "silu", "swiglu", "geglu", "geglu_exact")
ROPE_SCALINGS = ("none", "linear", "ntk", "dynamic", "yarn")
POSITIONS = ("rope", "alibi", "sinusoidal", "learned", "none")
NORMS = ("rmsnorm", "layernorm")


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256  # tokens in the vocabulary (embedding rows)
    dim: int = 256  # hidden size d_model; divisible by n_head
    n_layer: int = 4  # transformer blocks
    n_head: int = 4  # query heads; head size is dim / n_head (even, for RoPE)
    n_kv_head: int = 4  # key/value heads; n_head % n_kv_head == 0 (grouped-query attention)
    ffn_hidden: int = 0  # FFN hidden size; 0 = 8/3 * dim (gated) or 4 * dim, rounded up to a multiple of 32
    ffn_kind: str = "swiglu"  # relu|gelu|gelu_tanh|silu (2 matrices), swiglu|geglu|geglu_exact (3); MoE experts too
    position: str = "rope"  # rope | alibi | sinusoidal | learned | none (NoPE)
    rope_scaling: str = "none"  # none | linear | ntk | dynamic | yarn: RoPE length extrapolation
    rope_factor: float = 1.0  # rope_scaling's context extension factor s >= 1
    rope_original_max_seq_len: int = 0  # context trained on, for dynamic / yarn; 0 = max_seq_len
    norm: str = "rmsnorm"  # rmsnorm | layernorm
    norm_position: str = "pre"  # pre: x + f(norm(x)) (GPT-2, LLaMA); post: norm(x + f(x)) (Vaswani)
    max_seq_len: int = 256  # context length in tokens
    rope_base: float = 10000.0  # RoPE base frequency
    norm_eps: float = 1e-6  # RMSNorm epsilon
    tie_embeddings: bool = True  # output head shares the token embedding matrix
    dropout: float = 0.0  # dropout on attention weights and residual branches (training only)
    init_std: float = 0.02  # std of the normal weight init; residual outputs get / sqrt(2 n_layer)
    n_experts: int = 0  # experts (ffn_kind feed-forwards of width hidden) per MoE layer; 0 = dense in every layer
    moe_top_k: int = 2  # experts each token is routed to (1 with the switch router)
    moe_router: str = "softmax-topk"  # softmax-topk | switch (top-1, raw probability as weight)
    moe_capacity_factor: float = 1.25  # training-time expert capacity factor; 0 = never drop (eval never drops)
    moe_every: int = 1  # MoE in layers i with i % moe_every == moe_every - 1 (2 alternates dense and MoE)
    moe_aux_loss_coef: float = 0.01  # weight of the Switch load-balancing loss
    moe_z_loss_coef: float = 0.001  # weight of the router z-loss

    # settings of one architecture choice (`llmlab.core.config.check_applies`), checked for the flags given:
    # the config does not check them itself, so models saved with an unused value still load
    APPLIES = {
        **{k: (lambda c: c.n_experts > 0, "to a mixture of experts (--n-experts N)")
           for k in ("moe_top_k", "moe_router", "moe_capacity_factor", "moe_every", "moe_aux_loss_coef",
                     "moe_z_loss_coef")},
        "rope_base": (lambda c: c.position == "rope", "to RoPE (--position rope), not {cfg.position}"),
        "rope_original_max_seq_len": (lambda c: c.rope_scaling in ("dynamic", "yarn"),
                                      "to --rope-scaling dynamic and yarn, not {cfg.rope_scaling}"),
    }

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
        if self.n_experts < 0 or self.moe_every < 1:
            raise InputError(f"need n_experts >= 0 and moe_every >= 1, got {self.n_experts}, {self.moe_every}")
        if self.n_experts and self.moe_every > self.n_layer:
            raise InputError(f"moe_every={self.moe_every} with {self.n_layer} layers makes no layer a mixture of "
                             "experts: lower moe_every or drop n_experts")
        if self.n_experts and not 1 <= self.moe_top_k <= self.n_experts:
            raise InputError(f"moe_top_k must be in [1, n_experts={self.n_experts}], got {self.moe_top_k}")
        if self.moe_router not in ("softmax-topk", "switch"):
            raise InputError(f"moe_router must be 'softmax-topk' or 'switch', got {self.moe_router!r}")
        choices = {"ffn_kind": FFN_KINDS, "position": POSITIONS, "rope_scaling": ROPE_SCALINGS, "norm": NORMS,
                   "norm_position": ("pre", "post")}
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise InputError(f"{name} must be one of {allowed}, got {getattr(self, name)!r}")
        if self.position == "rope" and self.dim // self.n_head <= 2:  # RoPE's frequencies need two pairs
            raise InputError(f"head size dim/n_head = {self.dim // self.n_head} must be > 2 for RoPE")
        if self.rope_scaling != "none" and self.position != "rope":
            raise InputError(f"rope_scaling={self.rope_scaling!r} needs position='rope', got {self.position!r}")
        if self.rope_scaling != "none":
            _ = self.rope  # RopeScaling validates factor and lengths (imports torch only then)
        elif self.rope_factor != 1.0:
            raise InputError(f"rope_factor={self.rope_factor} does nothing without rope_scaling (linear, ntk, "
                             "dynamic or yarn)")
        if not 0.0 <= self.dropout < 1.0:
            raise InputError(f"dropout must be in [0, 1), got {self.dropout}")
        # NaN fails these too; a bad RoPE base or eps gives NaN tables that attention silently zeroes
        for name in ("rope_base", "norm_eps", "init_std"):
            if not 0 < getattr(self, name) < math.inf:
                raise InputError(f"{name} must be a finite number > 0, got {getattr(self, name)}")
        for name in ("moe_capacity_factor", "moe_aux_loss_coef", "moe_z_loss_coef", "rope_original_max_seq_len"):
            if not 0 <= getattr(self, name) < math.inf:
                raise InputError(f"{name} must be a finite number >= 0, got {getattr(self, name)}")

    @property
    def head_dim(self) -> int:
        return self.dim // self.n_head

    def is_moe_layer(self, i: int) -> bool:
        """Whether layer `i` has a mixture-of-experts feed-forward.

        >>> [ModelConfig(n_experts=4, moe_every=2).is_moe_layer(i) for i in range(4)]
        [False, True, False, True]
        """
        return self.n_experts > 0 and i % self.moe_every == self.moe_every - 1

    @property
    def hidden(self) -> int:
        """Feed-forward (and expert) hidden size: 4 * dim, or 8/3 * dim for a gated kind, which keeps the
        parameter count of a 4*dim two-matrix FFN.

        >>> ModelConfig(dim=96, n_head=4).hidden
        256
        """
        if self.ffn_hidden:
            return self.ffn_hidden
        from llmlab.nn.ffn_variants import matched_hidden

        return matched_hidden(self.dim, self.ffn_kind, multiple_of=32)

    @property
    def rope(self):
        """The RoPE scaling (`llmlab.nn.rope_scaling.RopeScaling`) these fields describe."""
        from llmlab.nn.rope_scaling import RopeScaling

        return RopeScaling(self.rope_scaling, self.rope_factor, self.rope_original_max_seq_len or self.max_seq_len)
