"""Training-memory estimator (topic 40) and the measurements that validate it.

For a model with P parameters (T of them trainable) the per-device bytes are:

    weights      P * w                      w = 4 (fp32, amp) or 2 (mixed: 16-bit working weights)
    gradients    T * g                      g = 4 (fp32, amp) or 2 (mixed)
    optimizer    T * (4k + m)               k fp32 state copies (Adam 2, momentum 1, SGD 0);
                                            m = 4 for the fp32 master copy under `mixed`, else 0
    activations  sum of layers + head       what autograd saves for backward (see below)
    temporary    2 * B*S*V * 4              logits and their gradient, alive around the loss

ZeRO divides across N devices: stage 1 the optimizer states, stage 2 also the gradients, stage 3
also the weights. LoRA freezes the base weights: only adapter parameters have gradients and states.

Activations are counted the way llmlab's decoder actually saves them (each storage once, measured
with ``torch.autograd.graph.saved_tensors_hooks`` in the tests). Per layer, in elements of B*S:
10*d (block input; per RMSNorm its normalised value and its scaled output, twice; q, k, v and the
attention output as SDPA saves them; the mid-block residual) + 4*h (SwiGLU: gate, silu(gate), up,
their product) at the activation width, plus 2 + n_head fp32 values (RMSNorm inverse RMS,
attention log-sum-exp). The head saves 3*d (final norm), the fp32 log-softmax, B*S*V, the int64
token ids and targets and the loss's scalar weight; the RoPE tables are views of buffers. With
gradient checkpointing each layer keeps only its input (d), and one layer's full set is rebuilt
during backward (the largest one). Dropout is taken as 0 (masks would add B*S*d bytes each).

A mixture-of-experts layer (``llmlab.nn.moe``, E experts of the model's feed-forward kind, top-k routing)
keeps the 10*d attention part and replaces the dense feed-forward with, in fp32 (T = B*S tokens, A routed
token-expert assignments, n the kind's hidden tensors: 4 for SwiGLU, as below):

    router       T * ((3E + 1) * 4 + 8k)    logits (z-loss), softmax probabilities twice (routing and
                                            load-balancing), log-sum-exp, int64 top-k indices
                 + T * (k + 1) * 4          softmax-topk only: the k weights and their sum (renormalising)
                 + E * 4                    the load-balancing loss's routed fractions
    experts      A * ((3d + n*h + 1) * 4 + 16)  per assignment: the gathered input, the n hidden tensors,
                                            the expert output and the weighted output (the combine's
                                            multiply and index_add_), the routing weight, (token, rank)

A depends on routing: every token reaches its k experts unless capacity drops some, so the
estimator takes A = min(T*k, E*capacity), capacity = ceil(T*k*factor/E) (factor 0: no limit). That is
exact when nothing is dropped and an upper bound otherwise (dropping only removes assignments).

In 16 bits (``amp`` and ``mixed``) q, k, v, the attention output and the feed-forward's hidden
tensors are 16-bit, and each RMSNorm saves 8d bytes per token: under ``amp`` its fp32 input and
normalised value, under ``mixed`` the fp32 copy of its 16-bit input plus its normalised value and
scaled output in 16 bits. Under ``mixed`` that is all: a layer saves B*S*(4d x 4 B + (4d + n*h) x 2 B
+ (2 + n_head) x 4 B) with n the feed-forward's hidden tensors (4 for SwiGLU), the head B*S*(2d + V)
x 4 B and the indices, and a checkpointed layer its 16-bit input, B*S*d x 2 B.

Autocast (``amp``) adds copies: each Linear saves its own 16-bit copy of its fp32 input (3d for q/k/v,
d per up projection, d for the head) and autocast keeps a 16-bit copy of every weight matrix it used
until backward. Under ``mixed`` the weights and the Linear inputs are 16-bit already: no copies. For
MoE layers under ``mixed`` the router is as in fp32 (it computes in fp32) and each assignment saves
(3d + n*h + 1) 16-bit values and 16 index bytes. Under autocast the router also has its 16-bit input
copy, each assignment saves ((u + 1)d + n*h + 1) 16-bit values (a copy of the input per up projection,
u = 2 for gated kinds, instead of one gathered input) plus an fp32 combine input (4d bytes) and 16 index
bytes, and the weight copies are the router's and all E experts' (an upper bound: an expert with no
tokens makes none). ``MoEFeedForward`` casts each expert's 16-bit output to the fp32 stream for the
combine, so these figures match the measurement exactly.

The source document's rule, 4P + 8P + activations, leaves out the gradients (another 4P in fp32).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from llmlab.core.errors import InputError
from llmlab.models.config import ModelConfig
from llmlab.models.params import count_parameters

STATE_COPIES = {"sgd": 0, "momentum": 1, "nesterov": 1, "adagrad": 1, "rmsprop": 1, "adam": 2, "adamw": 2}
PRECISIONS = ("fp32", "amp", "mixed")


@dataclass(frozen=True)
class MemoryConfig:
    batch_size: int = 1  # sequences per micro-batch on one device
    seq_len: int = 2048  # tokens per sequence
    optimizer: str = "adamw"  # sgd | momentum | nesterov | adagrad | rmsprop | adam | adamw
    precision: str = "fp32"  # fp32 | amp (fp32 weights, 16-bit autocast) | mixed (16-bit weights, fp32 master)
    grad_checkpoint: bool = False  # keep only block inputs; recompute one block at a time in backward
    zero_stage: int = 0  # 0 none, 1 shard optimizer states, 2 + gradients, 3 + weights
    n_devices: int = 1  # data-parallel devices sharing the ZeRO shards
    lora_rank: int = 0  # LoRA rank on q_proj and v_proj (0 = full fine-tuning)

    def __post_init__(self):
        if self.optimizer not in STATE_COPIES:
            raise InputError(f"optimizer must be one of {sorted(STATE_COPIES)}, got {self.optimizer!r}")
        if self.precision not in PRECISIONS:
            raise InputError(f"precision must be one of {PRECISIONS}, got {self.precision!r}")
        if self.zero_stage not in (0, 1, 2, 3):
            raise InputError(f"zero_stage must be 0, 1, 2 or 3, got {self.zero_stage}")
        for name in ("batch_size", "seq_len", "n_devices"):
            if getattr(self, name) <= 0:
                raise InputError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.lora_rank < 0:
            raise InputError(f"lora_rank must be >= 0, got {self.lora_rank}")


def lora_parameters(model: ModelConfig, rank: int) -> int:
    """Adapter parameters for rank-r LoRA on q_proj (d -> d) and v_proj (d -> kv): r * (in + out) each."""
    kv = model.n_kv_head * model.head_dim
    return model.n_layer * rank * ((model.dim + model.dim) + (model.dim + kv))


def moe_assignments(model: ModelConfig, tokens: int) -> int:
    """Upper bound on the token-expert assignments one MoE layer computes for `tokens` tokens:
    min(tokens * k, E * capacity), exact when capacity drops nothing (see `llmlab.nn.moe.expert_capacity`).

    >>> cfg = ModelConfig(n_experts=4, moe_top_k=2, moe_capacity_factor=0.5)
    >>> moe_assignments(cfg, 64), moe_assignments(ModelConfig(n_experts=4, moe_top_k=2), 64)  # 4 x 16; 64 x 2
    (64, 128)
    """
    k, E, f = model.moe_top_k, model.n_experts, model.moe_capacity_factor
    if f == 0:
        return tokens * k
    return min(tokens * k, E * math.ceil(tokens * k * f / E))


def _attention_part(model: ModelConfig, mem: MemoryConfig) -> int:
    """Bytes one layer saves outside its feed-forward (norms, attention, the feed-forward's input)."""
    B, S, d = mem.batch_size, mem.seq_len, model.dim
    small = (2 + model.n_head) * 4  # fp32 inverse RMS (two norms) and attention log-sum-exp, per token
    if mem.precision == "fp32":
        return B * S * (10 * d * 4 + small)
    # each RMSNorm saves 8d bytes (amp: fp32 input and normalised value; mixed: fp32 copy of the 16-bit input,
    # 16-bit normalised value and scaled output); q, k, v and the attention output are 16-bit
    part = B * S * (4 * d * 4 + 4 * d * 2 + small)
    if mem.precision == "amp":  # autocast: q/k/v each save a 16-bit copy of the input, and the weights' copies
        kv = model.n_kv_head * model.head_dim
        part += B * S * 3 * d * 2 + 2 * (2 * d * d + 2 * d * kv)
    return part


def approximate_parts(model: ModelConfig) -> list[str]:
    """The model's choices the activation formulas do not model exactly (they count RMSNorm, pre-norm
    blocks and the other position schemes; every feed-forward kind is exact). Measured at dim 64 the
    totals are over by 10% for LayerNorm and 4% for post-norm, under by 6-11% for ALiBi, and over by
    14-17% for a GPT-3-shaped block (LayerNorm, GELU, learned positions, pre- or post-norm). Under `mixed`
    the errors about double (a 16-bit LayerNorm saves about half the bytes the RMSNorm formula counts):
    over by 20-28% for LayerNorm and 23-34% for a GPT-3-shaped pre-norm block, under by 20% for ALiBi.

    >>> approximate_parts(ModelConfig(norm="layernorm", position="learned")), approximate_parts(ModelConfig())
    (['LayerNorm'], [])
    """
    parts = [("LayerNorm", model.norm == "layernorm"), ("post-norm blocks", model.norm_position == "post"),
             ("ALiBi", model.position == "alibi")]
    return [name for name, used in parts if used]


def _ffn_counts(model: ModelConfig) -> tuple[int, int]:
    """(up projections reading the input, hidden-size tensors saved) of the dense feed-forward."""
    if model.ffn_kind in ("swiglu", "geglu", "geglu_exact"):
        return 2, 4
    return 1, 1 if model.ffn_kind == "relu" else 2


def _dense_ffn(model: ModelConfig, mem: MemoryConfig) -> int:
    """Bytes a dense feed-forward saves: hidden-size tensors (its input is counted with the attention
    part), and under autocast a 16-bit copy of the input per up projection and of the weights. A gated kind
    (SwiGLU, GeGLU) keeps 4 of h (gate, up, act(gate), product), ReLU 1 (its output, which is also
    the down projection's input), the other activations 2 (their input and output)."""
    B, S, d, h = mem.batch_size, mem.seq_len, model.dim, model.hidden
    n_in, n_h = _ffn_counts(model)
    if mem.precision == "fp32":
        return B * S * n_h * h * 4
    if mem.precision == "mixed":  # the input is 16-bit already: no copies
        return B * S * n_h * h * 2
    return B * S * (n_in * d + n_h * h) * 2 + 2 * (n_in + 1) * d * h


def _moe_ffn(model: ModelConfig, mem: MemoryConfig) -> int:
    """Bytes an MoE feed-forward saves (router + experts, see the module docstring), routing assignments
    taken at their upper bound `moe_assignments`."""
    T, d, h = mem.batch_size * mem.seq_len, model.dim, model.hidden
    E, k = model.n_experts, model.moe_top_k
    n_in, n_h = _ffn_counts(model)  # every expert is a feed-forward of the model's kind
    router = T * ((3 * E + 1) * 4 + 8 * k) + E * 4
    if model.moe_router == "softmax-topk":  # the k chosen probabilities and their sum, for renormalising
        router += T * (k + 1) * 4
    A = moe_assignments(model, T)
    if mem.precision == "fp32":
        return router + A * ((3 * d + n_h * h + 1) * 4 + 16)
    if mem.precision == "mixed":  # gathered input, hidden tensors, expert and weighted outputs, weight: 16-bit
        return router + A * ((3 * d + n_h * h + 1) * 2 + 16)
    # autocast: the router's 16-bit input copy; per assignment a 16-bit input copy per up projection, the hidden
    # tensors, the expert output and its weight in 16-bit, the combine's fp32 input and the indices
    ffn = router + T * d * 2 + A * (((n_in + 1) * d + n_h * h + 1) * 2 + 4 * d + 16)
    return ffn + 2 * (E * d + E * (n_in + 1) * d * h)


def activation_bytes(model: ModelConfig, mem: MemoryConfig) -> dict[str, int]:
    """Bytes saved for backward: per dense and per MoE layer (0 where the model has none), per layer (the
    largest), a checkpointed layer's (its input, in the residual stream's dtype), all layers, the head and
    the total.

    >>> cfg = ModelConfig(vocab_size=100, dim=64, n_layer=2, n_head=4, n_kv_head=2, ffn_hidden=128)
    >>> [activation_bytes(cfg, MemoryConfig(batch_size=2, seq_len=32, precision=p))["per_layer"]
    ...  for p in PRECISIONS]  # mixed: 64 tokens x (4 x 64 x 4 + (4 x 64 + 4 x 128) x 2 + 6 x 4)
    [296448, 280064, 165376]
    """
    B, S, d, V = mem.batch_size, mem.seq_len, model.dim, model.vocab_size
    attn = _attention_part(model, mem)
    n_moe = sum(model.is_moe_layer(i) for i in range(model.n_layer))
    dense = attn + _dense_ffn(model, mem) if n_moe < model.n_layer else 0
    moe = attn + _moe_ffn(model, mem) if n_moe else 0
    if mem.precision == "fp32":
        head = B * S * (3 * d + V) * 4
    else:  # the final norm's 8d bytes (see _attention_part) and the fp32 log-softmax
        head = B * S * (2 * d + V) * 4
        if mem.precision == "amp":  # the head's 16-bit input copy and weight copy
            head += B * S * d * 2 + 2 * V * d
    head += B * S * (4 + 2 * 8) + 4  # final inverse RMS, int64 ids and targets, the loss's scalar weight
    largest = max(dense, moe)
    block_input = B * S * d * (2 if mem.precision == "mixed" else 4)  # the residual stream is 16-bit under mixed
    if mem.grad_checkpoint:
        kept = model.n_layer * block_input + largest  # block inputs + one block rebuilt in backward
    else:
        kept = (model.n_layer - n_moe) * dense + n_moe * moe
    return {"per_layer": largest, "per_dense_layer": dense, "per_moe_layer": moe, "block_input": block_input,
            "layers": kept, "head": head, "total": kept + head}


def _layer_rows(model: ModelConfig, mem: MemoryConfig, act: dict[str, int]) -> list[tuple[str, int, str]]:
    """The per-layer activation rows: one for a dense model, per dense and per MoE layer otherwise."""
    fp32, amp = mem.precision == "fp32", mem.precision == "amp"
    n_in, n_h = _ffn_counts(model)
    dense = (f"B*S*(10d+{n_h}h) x 4 B + B*S*(2+n_head) x 4 B" if fp32
             else f"B*S*(4d x 4 B + ({7 + n_in if amp else 4}d+{n_h}h) x 2 B) + B*S*(2+n_head) x 4 B"
             + (" + 16-bit weight copies" if amp else ""))
    if not model.n_experts:
        return [("activations (per layer)", act["per_layer"], dense)]
    E, k = model.n_experts, model.moe_top_k
    A = moe_assignments(model, mem.batch_size * mem.seq_len)
    router = f"router B*S*((3E+{'k+2' if model.moe_router == 'softmax-topk' else '1'}) x 4 B + 8k B) + 4E B"
    if fp32:
        moe = f"B*S*(10d+2+n_head) x 4 B + {router} + A x ((3d+{n_h}h+1) x 4 B + 16 B)"
    elif amp:
        moe = (f"B*S*(4d x 4 B + 8d x 2 B + (2+n_head) x 4 B) + {router} + A x (({n_in + 1}d+{n_h}h+1) x 2 B + "
               "4d B + 16 B) + 16-bit weight copies (router, all E experts)")
    else:
        moe = f"B*S*(4d x 4 B + 4d x 2 B + (2+n_head) x 4 B) + {router} + A x ((3d+{n_h}h+1) x 2 B + 16 B)"
    bound = "no dropping" if model.moe_capacity_factor == 0 else "an upper bound: capacity can drop some"
    moe += f"; E={E}, k={k}, A = min(B*S*k, E*capacity) = {A:,} ({bound})"
    rows = [("activations (per MoE layer)", act["per_moe_layer"], moe)]
    if act["per_dense_layer"]:
        rows.insert(0, ("activations (per dense layer)", act["per_dense_layer"], dense))
    return rows


_HEAD_FORMULA = {"fp32": "B*S*(3d + V) x 4 B + indices", "mixed": "B*S*(2d + V) x 4 B + indices",
                 "amp": "B*S*((2d + V) x 4 B + d x 2 B) + indices + 16-bit head weight copy"}


def _all_layers_formula(model: ModelConfig, mem: MemoryConfig) -> str:
    if mem.grad_checkpoint:
        return f"L x B*S*d x {2 if mem.precision == 'mixed' else 4} B + the largest layer, rebuilt"
    n_moe = sum(model.is_moe_layer(i) for i in range(model.n_layer))
    if not n_moe:
        return f"{model.n_layer} layers x per layer"
    return f"{model.n_layer - n_moe} dense + {n_moe} MoE layers" if n_moe < model.n_layer else f"{n_moe} MoE layers"


def static_rows(P: int, mem: MemoryConfig, lora: int = 0) -> list[tuple[str, int, str]]:
    """Weights, gradients and optimizer states per device for `P` parameters under the precision,
    optimizer and ZeRO stage of `mem`; with `lora` adapter parameters only those train.

    >>> [b for _, b, _ in static_rows(1000, MemoryConfig(precision="fp32", optimizer="adamw"))]
    [4000, 4000, 8000]
    """
    T = lora or P
    N, z = mem.n_devices, mem.zero_stage
    w = 2 if mem.precision == "mixed" else 4
    k = STATE_COPIES[mem.optimizer]
    master = 4 if mem.precision == "mixed" else 0
    shard = {"optimizer": z >= 1, "gradients": z >= 2, "weights": z >= 3}

    def div(x: int, on: bool) -> int:
        return -(-x // N) if on else x

    return [
        ("weights", div((P + lora) * w, shard["weights"]), f"{P:,} params x {w} B"
         + (" / N" if shard["weights"] else "") + (f" + LoRA {T:,} x {w} B" if lora else "")),
        ("gradients", div(T * w, shard["gradients"]),
         f"{T:,} trainable x {w} B" + (" / N" if shard["gradients"] else "")),
        ("optimizer states", div(T * (4 * k + master), shard["optimizer"]),
         f"{T:,} x ({k} x 4 B {mem.optimizer} state" + (" + 4 B fp32 master" if master else "") + ")"
         + (" / N" if shard["optimizer"] else "")),
    ]


def estimate_memory(model: ModelConfig, mem: MemoryConfig) -> list[tuple[str, int, str]]:
    """Rows of (part, bytes per device, formula). The last row is the total."""
    P = count_parameters(model)
    act = activation_bytes(model, mem)
    temp = 2 * mem.batch_size * mem.seq_len * model.vocab_size * 4
    rows = [
        *static_rows(P, mem, lora_parameters(model, mem.lora_rank) if mem.lora_rank else 0),
        *_layer_rows(model, mem, act),
        ("activations (all layers)", act["layers"], _all_layers_formula(model, mem)),
        ("activations (head)", act["head"], _HEAD_FORMULA[mem.precision]),
        ("temporary (logits + grad)", temp, "2 x B*S*V x 4 B"),
    ]
    total = sum(b for name, b, _ in rows if not name.startswith("activations (per "))
    rows.append(("total per device", total, "sum of the rows above (per-layer rows excluded)"))
    return rows


def rule_of_thumb(params: int) -> dict[str, int]:
    """The source document's fp32 rule: 4P weights + 8P Adam states (no gradients, no activations),
    beside the full static count, which adds 4P of gradients.

    >>> r = rule_of_thumb(1_000_000_000)
    >>> r["document"] / 1e9, r["full_static"] / 1e9
    (12.0, 16.0)
    """
    return {"document": 12 * params, "full_static": 16 * params}


def format_bytes(n: float) -> str:
    """Bytes in binary units.

    >>> format_bytes(3 * 2**30), format_bytes(1536)
    ('3.00 GiB', '1.50 KiB')
    """
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"


def measure_saved_bytes(model, idx, targets, autocast_dtype=None) -> int:
    """Bytes of every distinct storage autograd saves for backward in one forward + loss, leaving out
    parameters and buffers (those are counted as weights)."""
    import torch

    from llmlab.train.objectives import causal_lm_loss

    owned = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in owned:
            saved[s.data_ptr()] = s.nbytes()
        return t

    device = idx.device.type
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast(device, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        causal_lm_loss(model(idx), targets)
    return sum(saved.values())


def measure_static_bytes(model, optimizer) -> dict[str, int]:
    """Bytes held by weights, gradients and optimizer state right after an optimizer step."""
    from llmlab.train.optim import state_bytes

    params = list(model.parameters())
    return {
        "weights": sum(p.untyped_storage().nbytes() for p in params),
        "gradients": sum(p.grad.untyped_storage().nbytes() for p in params if p.grad is not None),
        "optimizer states": state_bytes(optimizer),
    }
