"""Named model configs for sizing (`llmlab memory`, `llmlab params`): published LLaMA shapes.

Counts (tied embeddings off, as published): llama-7b 6,738,415,616; llama-13b 13,015,864,320;
llama2-70b 68,976,648,192. gpt3-175b (Brown et al. 2020: 4d GELU FFN, learned positions, LayerNorm, tied
head; biases left out) 174,593,642,496.
"""

from __future__ import annotations

from llmlab.core.errors import InputError
from llmlab.models.config import ModelConfig

MODEL_PRESETS: dict[str, ModelConfig] = {
    "llama-7b": ModelConfig(vocab_size=32000, dim=4096, n_layer=32, n_head=32, n_kv_head=32, ffn_hidden=11008,
                            max_seq_len=2048, tie_embeddings=False),
    "llama-13b": ModelConfig(vocab_size=32000, dim=5120, n_layer=40, n_head=40, n_kv_head=40, ffn_hidden=13824,
                             max_seq_len=2048, tie_embeddings=False),
    "llama2-70b": ModelConfig(vocab_size=32000, dim=8192, n_layer=80, n_head=64, n_kv_head=8, ffn_hidden=28672,
                              max_seq_len=4096, tie_embeddings=False),
    "gpt3-175b": ModelConfig(vocab_size=50257, dim=12288, n_layer=96, n_head=96, n_kv_head=96, ffn_hidden=4 * 12288,
                             ffn_kind="gelu", position="learned", norm="layernorm", max_seq_len=2048),
    "speedrun-small": ModelConfig(vocab_size=4700, dim=256, n_layer=4, n_head=4, n_kv_head=4, max_seq_len=256),
}


def model_preset(name: str) -> ModelConfig:
    if name not in MODEL_PRESETS:
        raise InputError(f"unknown model preset {name!r}; choose one of {sorted(MODEL_PRESETS)}")
    return MODEL_PRESETS[name]
