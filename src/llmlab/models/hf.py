"""Export a causal model to the Hugging Face transformers LLaMA layout.

Our module names already follow `LlamaForCausalLM` (minus its ``model.`` prefix), and RoPE uses the
same half-split channel pairing, so export is a renaming plus a ``config.json`` in LLaMA's terms.
The directory loads with ``AutoModelForCausalLM.from_pretrained`` and gives the same logits; the
tokenizer goes beside it as ``tokenizer.json``. transformers itself is not needed to export.
"""

from __future__ import annotations

import os
from pathlib import Path

from safetensors.torch import save

from llmlab.core.io import atomic_folder, atomic_write_bytes, atomic_write_json
from llmlab.models.decoder import CausalLM
from llmlab.models.io import model_state
from llmlab.nn.rope_scaling import hf_rope_config
from llmlab.tokenizers import Tokenizer


def hf_config(model: CausalLM, tokenizer: Tokenizer | None = None) -> dict:
    c = model.config
    needed = {"position": "rope", "ffn_kind": "swiglu", "norm": "rmsnorm", "norm_position": "pre"}
    for name, value in needed.items():
        if getattr(c, name) != value:
            from llmlab.core.errors import InputError

            raise InputError(f"the LLaMA layout needs {name}={value!r}, got {getattr(c, name)!r}")
    ids = {}
    if tokenizer is not None:
        ids = {"bos_token_id": tokenizer.bos_id, "eos_token_id": tokenizer.eos_id, "pad_token_id": tokenizer.pad_id}
    return {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "vocab_size": c.vocab_size,
        "hidden_size": c.dim,
        "intermediate_size": c.hidden,
        "num_hidden_layers": c.n_layer,
        "num_attention_heads": c.n_head,
        "num_key_value_heads": c.n_kv_head,
        "head_dim": c.head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_base,  # transformers < 5
        **hf_rope_config(c.rope_base, c.rope, c.max_seq_len),  # rope_parameters (transformers >= 5), max positions
        "tie_word_embeddings": c.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": c.init_std,
        "torch_dtype": "float32",
        **ids,
    }


# a decoder layer's weights; their names are LLaMA's under ``model.layers.{i}.``
LAYER_WEIGHTS = ("input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
                 "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj")


def hf_names(n_layer: int) -> dict[str, str]:
    """The exporter's name table: each state key of a plain LLaMA-layout model of `n_layer` layers and the
    name LlamaForCausalLM gives it. Export writes these keys and no other: a weight outside the table (a
    LoRA adapter's, a quantized layer's codes, a soft prompt) would be dropped by transformers, which would
    random-initialise what it misses with only a warning.

    >>> names = hf_names(1)
    >>> names["layers.0.mlp.up_proj.weight"], names["lm_head.weight"]
    ('model.layers.0.mlp.up_proj.weight', 'lm_head.weight')
    """
    ours = ["embed_tokens.weight", "norm.weight"] + [f"layers.{i}.{w}.weight" for i in range(n_layer)
                                                     for w in LAYER_WEIGHTS]
    return {**{k: f"model.{k}" for k in ours}, "lm_head.weight": "lm_head.weight"}


def export_hf(model: CausalLM, directory: str | os.PathLike, tokenizer: Tokenizer | None = None) -> Path:
    """Write `model` as a transformers LLaMA folder (`hf_config`, the weights renamed by `hf_names`).

    Refused before anything is written: a model the LLaMA layout cannot express (its config, experts) and
    one carrying weights outside the name table, whose export would load as a different model."""
    from llmlab.core.errors import InputError

    if model.config.n_experts:
        # LLaMA has no experts, and HF's MoE layouts (Mixtral, Qwen-MoE) take SwiGLU ones only
        raise InputError(f"a mixture-of-experts model ({model.config.n_experts} {model.config.ffn_kind} experts "
                         "per MoE layer) has no LLaMA layout to export to")
    config = hf_config(model, tokenizer)  # first: a model HF cannot express writes nothing
    state, names = model_state(model), hf_names(model.config.n_layer)
    unmapped = [k for k in state if k not in names]
    if unmapped:
        raise InputError(f"the LLaMA layout has no place for {len(unmapped)} of this model's weights "
                         f"({', '.join(unmapped[:4])}{', ...' if len(unmapped) > 4 else ''}): merge LoRA adapters "
                         "into the weights first (llmlab.adapt.lora.merge_lora); a quantized model cannot be "
                         "exported, export the float model it came from; take a soft prompt off "
                         "(llmlab.adapt.prompt_tuning.remove_prompt, save_prompt keeps it)")
    state = {names[k]: v for k, v in state.items()}
    with atomic_folder(directory, ("config.json", "model.safetensors", "tokenizer.json"), "export folder") as d:
        atomic_write_bytes(d / "model.safetensors", save(state, metadata={"format": "pt"}))
        atomic_write_json(d / "config.json", config)
        if tokenizer is not None:
            tokenizer.save(d / "tokenizer.json")
    return Path(directory)


def import_hf(directory: str | os.PathLike) -> CausalLM:
    """Load a Hugging Face LLaMA-layout directory (config.json + model.safetensors) as a CausalLM.

    Supports what our decoder expresses: no biases, SiLU-gated MLP, default RoPE; anything else is a
    clear error rather than a silently different model.
    """
    from llmlab.core.errors import InputError
    from llmlab.core.io import read_json
    from llmlab.models.config import ModelConfig
    from llmlab.models.io import load_state, read_weights

    d = Path(directory)
    c = read_json(d / "config.json", "HF config")
    if c.get("model_type") != "llama":
        raise InputError(f"{str(d)!r}: model_type {c.get('model_type')!r} is not 'llama'")
    rope = c.get("rope_parameters") or {}
    if c.get("rope_scaling") or rope.get("rope_type", "default") != "default":
        raise InputError(f"{str(d)!r}: RoPE scaling is not supported by this importer yet")
    if c.get("attention_bias") or c.get("mlp_bias") or c.get("hidden_act", "silu") != "silu":
        raise InputError(f"{str(d)!r}: biases or a non-SiLU MLP are not supported")
    needed = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
              "max_position_embeddings", "rms_norm_eps")
    missing = [k for k in needed if not isinstance(c.get(k), (int, float)) or isinstance(c.get(k), bool)]
    if missing:
        raise InputError(f"{str(d / 'config.json')!r} lacks numbers for {missing}")
    cfg = ModelConfig(
        vocab_size=c["vocab_size"], dim=c["hidden_size"], n_layer=c["num_hidden_layers"],
        n_head=c["num_attention_heads"], n_kv_head=c.get("num_key_value_heads") or c["num_attention_heads"],
        ffn_hidden=c["intermediate_size"], max_seq_len=c["max_position_embeddings"],
        rope_base=float(rope.get("rope_theta", c.get("rope_theta", 10000.0))), norm_eps=c["rms_norm_eps"],
        tie_embeddings=bool(c.get("tie_word_embeddings", False)),
    )
    if c.get("head_dim") not in (None, cfg.head_dim):
        raise InputError(f"{str(d)!r}: head_dim {c['head_dim']} differs from hidden_size / heads")
    weights = read_weights(d / "model.safetensors")
    state = {k.removeprefix("model."): v.float() for k, v in weights.items()}
    if cfg.tie_embeddings:
        state.pop("lm_head.weight", None)
    model = CausalLM(cfg)
    load_state(model, state, str(d / "model.safetensors"))
    return model.eval()
