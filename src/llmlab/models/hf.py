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

from llmlab.core.io import atomic_write_bytes, atomic_write_json
from llmlab.models.decoder import CausalLM
from llmlab.models.io import model_state
from llmlab.tokenizers import Tokenizer


def hf_config(model: CausalLM, tokenizer: Tokenizer | None = None) -> dict:
    c = model.config
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
        "max_position_embeddings": c.max_seq_len,
        "rms_norm_eps": c.norm_eps,
        "rope_theta": c.rope_base,  # transformers < 5
        "rope_parameters": {"rope_type": "default", "rope_theta": c.rope_base},  # transformers >= 5
        "tie_word_embeddings": c.tie_embeddings,
        "attention_bias": False,
        "mlp_bias": False,
        "initializer_range": c.init_std,
        "torch_dtype": "float32",
        **ids,
    }


def export_hf(model: CausalLM, directory: str | os.PathLike, tokenizer: Tokenizer | None = None) -> Path:
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    state = {(k if k.startswith("lm_head") else f"model.{k}"): v for k, v in model_state(model).items()}
    atomic_write_bytes(d / "model.safetensors", save(state, metadata={"format": "pt"}))
    atomic_write_json(d / "config.json", hf_config(model, tokenizer))
    if tokenizer is not None:
        tokenizer.save(d / "tokenizer.json")
    return d
