"""What autograd saves for backward in llmlab's decoder, in bytes and as the formulas `llmlab memory` prints.

Activations are counted the way llmlab's decoder actually saves them (each storage once, measured
with ``torch.autograd.graph.saved_tensors_hooks`` in the tests, on PyTorch's CPU kernels). Per layer and
token, in fp32 values (d the width, h the feed-forward width):

    norms         2 x (2d + 1)    RMSNorm (pow/mean/rsqrt/mul): its input, normalised value, inverse RMS
                  2 x (d + 2)     LayerNorm (one kernel): its input, mean and inverse std
    attention     6d + n_head     q/k/v's input (the first norm's output), q, k, v and the output as SDPA
                                  saves them, the feed-forward's input, one log-sum-exp per head
    feed-forward  n*h             n hidden tensors: gated kinds 4 (gate, up, act(gate), product), ReLU 1
                                  (its output), GELU/SiLU 2 (input and output)

so 10d + n*h + 2 + n_head for RMSNorm, 8d + n*h + 4 + n_head for LayerNorm. A post-norm block saves as
much: its input stands in for the first norm's output, and its second norm's output is the next block's
input. The head saves the final norm (pre-norm only: post-norm blocks end normalised and the model has no
final norm), the projection's input d, the fp32 log-softmax (V per token), the int64 token ids and targets,
the loss's scalar weight and, for learned positions, the int64 position ids (S, shared by the batch); the
sinusoidal table is a buffer and RoPE's tables are views of buffers. ALiBi adds its bias: one
(1, n_head, S, S) tensor per forward, 16-bit unless fp32 (cast once under autocast), which every layer's
SDPA saves: n_head*S*S values once, whatever the batch (its own row). With gradient checkpointing each
layer keeps only its input (d), and one layer's full set is rebuilt during backward (the largest one).
Dropout is taken as 0 (masks would add B*S*d bytes each).

A mixture-of-experts layer (``llmlab.nn.moe``, E experts of the model's feed-forward kind, top-k routing)
keeps the norms and attention part and replaces the dense feed-forward with, in fp32 (T = B*S tokens, A routed
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

In 16 bits (``amp`` and ``mixed``) q, k, v, the attention output and the feed-forward's hidden tensors
are 16-bit. Under ``amp`` the norms save as in fp32 (RMSNorm computes in fp32, autocast runs LayerNorm in
fp32). Under ``mixed`` RMSNorm saves the fp32 copy of its 16-bit input, its inverse RMS and a 16-bit
normalised value, LayerNorm its 16-bit input, mean and inverse std (the CPU kernel keeps the statistics in
the weights' dtype), and the norm outputs the Linears save are 16-bit: a layer saves B*S*((2d + 2 + n_head)
x 4 B + (8d + n*h) x 2 B) with RMSNorm, B*S*(n_head x 4 B + (8d + 4 + n*h) x 2 B) with LayerNorm, the head
the final norm, its 16-bit input and the fp32 log-softmax, and a checkpointed layer its 16-bit input,
B*S*d x 2 B. ``llmlab memory`` prints each row's formula for the model at hand.

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

Under LoRA (``--lora-rank``) frozen Linears and norms keep less, and the first layer less than the others:
see `_LORA_NORM_SAVES`. Those counts are measured for dense pre-norm models in fp32 and mixed precision;
mixtures of experts, post-norm blocks and amp are refused with LoRA rather than estimated.

The counts are exact for the CPU kernels the tests measure with. Other kernels save other things; from
PyTorch's sources (not measured here), on CUDA: ``F.rms_norm`` runs a fused kernel that saves no normalised
value (d x 4 B less per RMSNorm and token under fp32 and amp), LayerNorm keeps fp32 statistics under
``mixed`` (4 B more per norm and token), and the attention kernel that takes ALiBi's float bias
(memory-efficient or cuDNN) pads its log-sum-exp to 32 queries and may save a padded copy of the bias.
"""

from __future__ import annotations

import math

from llmlab.core.errors import InputError
from llmlab.models.config import ModelConfig
from llmlab.train.memory.config import MemoryConfig


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


# Per-token counts as ({fp32}, {16-bit}) maps from a symbol to how many: "d" a vector of the model width, "h" of
# the feed-forward width, "V" of the vocabulary, "1" a scalar, "n_head" one scalar per head.
Terms = tuple[dict[str, int], dict[str, int]]
_SYMBOLS = ("d", "h", "V", "1", "n_head", "r")

# What one norm saves per token besides its output (the Linear after it saves that). RMSNorm runs as
# pow/mean/rsqrt/mul: its input, inverse RMS and normalised value (under mixed: the input's fp32 copy and a
# 16-bit normalised value). LayerNorm is one kernel: its input, mean and inverse std (the CPU kernel keeps the
# statistics in the weights' dtype: 16-bit under mixed).
_NORM_SAVES: dict[tuple[str, str], Terms] = {
    ("rmsnorm", "fp32"): ({"d": 2, "1": 1}, {}), ("rmsnorm", "amp"): ({"d": 2, "1": 1}, {}),
    ("rmsnorm", "mixed"): ({"d": 1, "1": 1}, {"d": 1}),
    ("layernorm", "fp32"): ({"d": 1, "1": 2}, {}), ("layernorm", "amp"): ({"d": 1, "1": 2}, {}),
    ("layernorm", "mixed"): ({}, {"d": 1, "1": 2}),
}


def _add(*terms: Terms) -> Terms:
    """Sum of per-token counts.

    >>> _add(({"d": 1}, {}), ({"d": 2, "1": 1}, {"h": 4}))
    ({'d': 3, '1': 1}, {'h': 4})
    """
    out: Terms = ({}, {})
    for t in terms:
        for total, part in zip(out, t):
            for k, n in part.items():
                total[k] = total.get(k, 0) + n
    return out


def _bytes(t: Terms, model: ModelConfig, tokens: int, rank: int = 0) -> int:
    """Bytes of per-token counts over `tokens` tokens ("r" a vector of the LoRA `rank`)."""
    size = {"d": model.dim, "h": model.hidden, "V": model.vocab_size, "1": 1, "n_head": model.n_head,
            "r": rank}
    return tokens * sum(n * size[k] * b for part, b in zip(t, (4, 2)) for k, n in part.items())


def _per_token(t: Terms) -> str:
    """The formula of per-token counts, zeros left out.

    >>> _per_token(({"d": 4, "1": 2, "n_head": 1}, {"d": 4, "h": 4})), _per_token(({"d": 1, "V": 1}, {}))
    ('B*S*((4d+2+n_head) x 4 B + (4d+4h) x 2 B)', 'B*S*(d+V) x 4 B')
    """
    sizes = []
    for part, b in zip(t, (4, 2)):
        xs = [str(n) if k == "1" else k if n == 1 else f"{n}{k}" for k in _SYMBOLS if (n := part.get(k, 0))]
        if xs:
            sizes.append(f"({'+'.join(xs)}) x {b} B" if len(xs) > 1 else f"{xs[0]} x {b} B")
    return f"B*S*({' + '.join(sizes)})" if len(sizes) > 1 else f"B*S*{sizes[0]}"


def _attention_terms(model: ModelConfig, mem: MemoryConfig) -> Terms:
    """Per token, what one layer saves outside its feed-forward: its two norms, the q/k/v input (fp32 and
    mixed: the norm's output; under autocast a 16-bit copy per projection), q, k, v and the attention output,
    n_head log-sum-exp values and (fp32, mixed) the feed-forward's input. A post-norm block saves the same:
    its input stands in for the first norm's output, and its second norm's output is the next block's input.

    >>> _attention_terms(ModelConfig(), MemoryConfig()), _attention_terms(ModelConfig(norm="layernorm"),
    ...                                                                   MemoryConfig(precision="mixed"))
    (({'d': 10, '1': 2, 'n_head': 1}, {}), ({'n_head': 1}, {'d': 8, '1': 4}))
    """
    norm = _NORM_SAVES[(model.norm, mem.precision)]
    rest = {"fp32": ({"d": 6, "n_head": 1}, {}), "mixed": ({"n_head": 1}, {"d": 6}),
            "amp": ({"n_head": 1}, {"d": 7})}[mem.precision]  # amp: the feed-forward's copies go with it
    return _add(norm, norm, rest)


def _head_terms(model: ModelConfig, mem: MemoryConfig) -> Terms:
    """Per token, what the head saves: the final norm (pre-norm only: post-norm blocks end normalised), the
    output projection's input (16-bit unless fp32) and the fp32 log-softmax."""
    head = ({"d": 1, "V": 1}, {}) if mem.precision == "fp32" else ({"V": 1}, {"d": 1})
    return _add(head, _NORM_SAVES[(model.norm, mem.precision)]) if model.norm_position == "pre" else head


def _attention_part(model: ModelConfig, mem: MemoryConfig) -> int:
    """Bytes one layer saves outside its feed-forward (see `_attention_terms`), with autocast's copies of the
    attention weights."""
    part = _bytes(_attention_terms(model, mem), model, mem.batch_size * mem.seq_len)
    if mem.precision == "amp":
        d, kv = model.dim, model.n_kv_head * model.head_dim
        part += 2 * (2 * d * d + 2 * d * kv)
    return part


def alibi_bias_bytes(model: ModelConfig, mem: MemoryConfig) -> int:
    """Bytes of ALiBi's (1, n_head, S, S) bias (`llmlab.models.decoder.position_inputs`), which every layer's
    SDPA saves: made once per forward, 16-bit unless fp32, and shared by the batch and the layers.

    >>> from llmlab.train.memory.config import PRECISIONS
    >>> cfg = ModelConfig(n_head=4, position="alibi")
    >>> [alibi_bias_bytes(cfg, MemoryConfig(seq_len=32, precision=p)) for p in PRECISIONS]  # 4 x 32 x 32 x 4
    [16384, 8192, 8192]
    """
    if model.position != "alibi":
        return 0
    return model.n_head * mem.seq_len**2 * (4 if mem.precision == "fp32" else 2)


def _ffn_counts(model: ModelConfig) -> tuple[int, int]:
    """(up projections reading the input, hidden-size tensors saved) of the dense feed-forward."""
    if model.ffn_kind in ("swiglu", "geglu", "geglu_exact"):
        return 2, 4
    return 1, 1 if model.ffn_kind == "relu" else 2


def _dense_ffn_terms(model: ModelConfig, mem: MemoryConfig) -> Terms:
    """Per token, what a dense feed-forward saves: hidden-size tensors (its input is counted with the attention
    part; under autocast a 16-bit copy of it per up projection). A gated kind (SwiGLU, GeGLU) keeps 4 of h
    (gate, up, act(gate), product), ReLU 1 (its output, which is also the down projection's input), the other
    activations 2 (their input and output)."""
    n_in, n_h = _ffn_counts(model)
    return {"fp32": ({"h": n_h}, {}), "mixed": ({}, {"h": n_h}), "amp": ({}, {"d": n_in, "h": n_h})}[mem.precision]


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


def index_bytes(model: ModelConfig, mem: MemoryConfig) -> int:
    """Bytes of the int64 token ids and targets, the loss's scalar weight and (learned positions) the position
    ids, which index a parameter table (the sinusoidal table is a buffer, RoPE's tables are views).

    >>> index_bytes(ModelConfig(), MemoryConfig(batch_size=2, seq_len=32))  # 64 x (8 + 8) + 4
    1028
    """
    tokens, S = mem.batch_size * mem.seq_len, mem.seq_len
    return tokens * 2 * 8 + 4 + (S * 8 if model.position == "learned" else 0)


# LoRA (``llmlab.adapt.lora``, rank r on q_proj and v_proj, every other weight frozen) saves less: a frozen
# Linear keeps no copy of its input (only a weight's gradient needs it), a norm's weight takes no gradient, so
# its normalised value is not kept either, and the first layer's input comes from a frozen embedding, so its
# first norm saves nothing. What a later layer keeps, per token: the norms' inputs and statistics, the q/v
# adapters' input (the first norm's output) and their rank-r products A x, q, k, v, the attention output and
# log-sum-exp, and the feed-forward's hidden tensors but the down projection's input (the product of a gated
# kind; the output of GELU or SiLU, whose backward needs their input); ReLU keeps its output. The head keeps the
# final norm's saves and the fp32 log-softmax, and of the indices only the targets (the ids and position ids
# index frozen tables).
_LORA_NORM_SAVES: dict[tuple[str, str], Terms] = {
    ("rmsnorm", "fp32"): ({"d": 1, "1": 1}, {}), ("rmsnorm", "mixed"): ({"d": 1, "1": 1}, {}),
    ("layernorm", "fp32"): ({"d": 1, "1": 2}, {}), ("layernorm", "mixed"): ({}, {"d": 1, "1": 2}),
}


def _check_lora(model: ModelConfig, mem: MemoryConfig) -> None:
    """The LoRA counts are measured for dense pre-norm models in fp32 and mixed precision: anything else is
    refused rather than estimated by a formula nobody checked."""
    if model.n_experts or model.norm_position != "pre" or mem.precision == "amp":
        raise InputError("LoRA's activation counts are measured only for dense pre-norm models in fp32 or mixed "
                         "precision (not for mixtures of experts, post-norm blocks or amp): no exact estimate here")


def _lora_layer_terms(model: ModelConfig, mem: MemoryConfig) -> tuple[Terms, Terms]:
    """Per token, what the first layer and each later layer save under LoRA (see `_LORA_NORM_SAVES`)."""
    norm = _LORA_NORM_SAVES[(model.norm, mem.precision)]
    n_h = 1 if model.ffn_kind == "relu" else _ffn_counts(model)[1] - 1  # the down projection's input is not kept
    rest = ({"d": 5, "n_head": 1, "r": 2, "h": n_h}, {}) if mem.precision == "fp32" else \
        ({"n_head": 1}, {"d": 5, "r": 2, "h": n_h})
    return _add(norm, rest), _add(norm, norm, rest)


def _lora_activation_bytes(model: ModelConfig, mem: MemoryConfig) -> dict[str, int]:
    """`activation_bytes` under LoRA: the first layer saves less than the others (its input needs no gradient)."""
    _check_lora(model, mem)
    T, r = mem.batch_size * mem.seq_len, mem.lora_rank
    first, later = (_bytes(t, model, T, r) for t in _lora_layer_terms(model, mem))
    head = _bytes(_add(({"V": 1}, {}), _LORA_NORM_SAVES[(model.norm, mem.precision)]), model, T) + T * 8 + 4
    block_input = T * model.dim * (2 if mem.precision == "mixed" else 4)
    if mem.grad_checkpoint:
        kept = model.n_layer * block_input + later
    else:
        kept = first + (model.n_layer - 1) * later
    bias = alibi_bias_bytes(model, mem)
    return {"per_layer": later, "per_dense_layer": later, "per_moe_layer": 0, "first_layer": first,
            "block_input": block_input, "layers": kept, "head": head, "alibi_bias": bias,
            "total": kept + head + bias}


def activation_bytes(model: ModelConfig, mem: MemoryConfig) -> dict[str, int]:
    """Bytes saved for backward: per dense and per MoE layer (0 where the model has none), per layer (the
    largest), a checkpointed layer's (its input, in the residual stream's dtype), all layers, the head,
    ALiBi's bias and the total.

    >>> from llmlab.train.memory.config import PRECISIONS
    >>> cfg = ModelConfig(vocab_size=100, dim=64, n_layer=2, n_head=4, n_kv_head=2, ffn_hidden=128)
    >>> [activation_bytes(cfg, MemoryConfig(batch_size=2, seq_len=32, precision=p))["per_layer"]
    ...  for p in PRECISIONS]  # mixed: 64 tokens x ((2 x 64 + 6) x 4 + (8 x 64 + 4 x 128) x 2)
    [296448, 280064, 165376]
    """
    if mem.lora_rank:
        return _lora_activation_bytes(model, mem)
    B, S, d, h = mem.batch_size, mem.seq_len, model.dim, model.hidden
    attn = _attention_part(model, mem)
    n_moe = sum(model.is_moe_layer(i) for i in range(model.n_layer))
    ffn = _bytes(_dense_ffn_terms(model, mem), model, B * S)
    if mem.precision == "amp":  # autocast's 16-bit copies of the up and down projections' weights
        ffn += 2 * (_ffn_counts(model)[0] + 1) * d * h
    dense = attn + ffn if n_moe < model.n_layer else 0
    moe = attn + _moe_ffn(model, mem) if n_moe else 0
    head = _bytes(_head_terms(model, mem), model, B * S) + index_bytes(model, mem)
    if mem.precision == "amp":  # autocast's 16-bit copy of the head's weight
        head += 2 * model.vocab_size * d
    largest = max(dense, moe)
    block_input = B * S * d * (2 if mem.precision == "mixed" else 4)  # the residual stream is 16-bit under mixed
    if mem.grad_checkpoint:
        kept = model.n_layer * block_input + largest  # block inputs + one block rebuilt in backward
    else:
        kept = (model.n_layer - n_moe) * dense + n_moe * moe
    bias = alibi_bias_bytes(model, mem)
    return {"per_layer": largest, "per_dense_layer": dense, "per_moe_layer": moe, "block_input": block_input,
            "layers": kept, "head": head, "alibi_bias": bias, "total": kept + head + bias}


def _layer_rows(model: ModelConfig, mem: MemoryConfig, act: dict[str, int]) -> list[tuple[str, int, str]]:
    """The per-layer activation rows: one for a dense model, per dense and per MoE layer otherwise."""
    amp = mem.precision == "amp"
    attn = _attention_terms(model, mem)
    dense = _per_token(_add(attn, _dense_ffn_terms(model, mem))) + (" + 16-bit weight copies" if amp else "")
    if not model.n_experts:
        return [("activations (per layer)", act["per_layer"], dense)]
    n_in, n_h = _ffn_counts(model)
    E, k = model.n_experts, model.moe_top_k
    A = moe_assignments(model, mem.batch_size * mem.seq_len)
    router = f"router B*S*((3E+{'k+2' if model.moe_router == 'softmax-topk' else '1'}) x 4 B + 8k B) + 4E B"
    if mem.precision == "fp32":
        moe = f"{_per_token(attn)} + {router} + A x ((3d+{n_h}h+1) x 4 B + 16 B)"
    elif amp:  # the router's 16-bit input copy with the attention part
        moe = (f"{_per_token(_add(attn, ({}, {'d': 1})))} + {router} + A x (({n_in + 1}d+{n_h}h+1) x 2 B + "
               "4d B + 16 B) + 16-bit weight copies (router, all E experts)")
    else:
        moe = f"{_per_token(attn)} + {router} + A x ((3d+{n_h}h+1) x 2 B + 16 B)"
    bound = "no dropping" if model.moe_capacity_factor == 0 else "an upper bound: capacity can drop some"
    moe += f"; E={E}, k={k}, A = min(B*S*k, E*capacity) = {A:,} ({bound})"
    rows = [("activations (per MoE layer)", act["per_moe_layer"], moe)]
    if act["per_dense_layer"]:
        rows.insert(0, ("activations (per dense layer)", act["per_dense_layer"], dense))
    return rows


def _head_formula(model: ModelConfig, mem: MemoryConfig) -> str:
    copy = " + 16-bit head weight copy" if mem.precision == "amp" else ""
    positions = " and position ids" if model.position == "learned" else ""
    return f"{_per_token(_head_terms(model, mem))} + indices{positions}{copy}"


def _all_layers_formula(model: ModelConfig, mem: MemoryConfig) -> str:
    if mem.grad_checkpoint:
        return f"L x B*S*d x {2 if mem.precision == 'mixed' else 4} B + the largest layer, rebuilt"
    n_moe = sum(model.is_moe_layer(i) for i in range(model.n_layer))
    if not n_moe:
        return f"{model.n_layer} layers x per layer"
    return f"{model.n_layer - n_moe} dense + {n_moe} MoE layers" if n_moe < model.n_layer else f"{n_moe} MoE layers"


def _bias_rows(model: ModelConfig, mem: MemoryConfig, act: dict[str, int]) -> list[tuple[str, int, str]]:
    if model.position != "alibi":
        return []
    size = 4 if mem.precision == "fp32" else 2
    return [("activations (ALiBi bias)", act["alibi_bias"], f"n_head*S*S x {size} B: one bias all layers share")]


def _lora_rows(model: ModelConfig, mem: MemoryConfig, act: dict[str, int]) -> list[tuple[str, int, str]]:
    """The per-layer, all-layers and head rows under LoRA (see `_LORA_NORM_SAVES`)."""
    first, later = _lora_layer_terms(model, mem)
    if mem.grad_checkpoint:
        layers = f"L x B*S*d x {2 if mem.precision == 'mixed' else 4} B + the largest layer, rebuilt"
    else:
        layers = f"first layer {_per_token(first)} (its input needs no gradient) + {model.n_layer - 1} x per layer"
    head = _per_token(_add(({"V": 1}, {}), _LORA_NORM_SAVES[(model.norm, mem.precision)]))
    return [
        ("activations (per layer)", act["per_layer"], f"{_per_token(later)}; LoRA r={mem.lora_rank}: frozen "
                                                      "Linears keep no input"),
        ("activations (all layers)", act["layers"], layers),
        ("activations (head)", act["head"], f"{head} + targets (frozen head: no input kept)"),
    ]


def activation_rows(model: ModelConfig, mem: MemoryConfig) -> list[tuple[str, int, str]]:
    """The activation rows of the estimate, as (part, bytes per device, formula): per layer (per dense and per
    MoE layer for a mixture of experts), all layers, the head and (ALiBi) the shared bias."""
    act = activation_bytes(model, mem)
    if mem.lora_rank:
        return [*_lora_rows(model, mem, act), *_bias_rows(model, mem, act)]
    return [
        *_layer_rows(model, mem, act),
        ("activations (all layers)", act["layers"], _all_layers_formula(model, mem)),
        ("activations (head)", act["head"], _head_formula(model, mem)),
        *_bias_rows(model, mem, act),
    ]
