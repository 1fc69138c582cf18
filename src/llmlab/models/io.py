"""Save and load a model directory: config.json, model.safetensors, tokenizer.json, README.md, and for a
chat model tokenizer_config.json (Hugging Face's, holding its ``chat_template``).

Weights are safetensors only, never pickle. The directory is written as a whole (`atomic_folder`):
readers see the old model or the new one, never new weights beside an old config.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.io import (
    atomic_folder,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    existing_folder,
    read_json,
)
from llmlab.models.card import ModelCard
from llmlab.models.config import ModelConfig
from llmlab.models.decoder import CausalLM
from llmlab.tokenizers import Tokenizer, load_tokenizer

FORMAT_VERSION = 1
# ModelConfig fields that set the weights' shapes and that every saved config.json has held (they date
# from the first format): one missing would fall back to its default and fail later as a shape mismatch.
# Shape fields added later (ffn_kind, position, norm, n_experts, moe_every) stay optional: older models
# lack them and their defaults are what those models were built with.
SHAPE_FIELDS = ("vocab_size", "dim", "n_layer", "n_head", "n_kv_head", "ffn_hidden", "max_seq_len", "tie_embeddings")
# what a save may replace
MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "README.md", "tokenizer_config.json")


def model_state(model: CausalLM) -> dict[str, torch.Tensor]:
    """The state dict without a tied head (safetensors refuses shared storage).

    The head is left out only when it shares the embedding's storage: a pipeline's last stage holds an
    untied copy of a tied head, which its checkpoints must keep.
    """
    sd = model.state_dict()
    head = sd.get("lm_head.weight")
    if head is not None and any(k != "lm_head.weight" and v.data_ptr() == head.data_ptr() for k, v in sd.items()):
        sd.pop("lm_head.weight")
    return {k: v.detach().contiguous().cpu() for k, v in sd.items()}


def save_model(model: CausalLM, directory: str | os.PathLike, tokenizer: Tokenizer | None = None,
               card: ModelCard | None = None, *, extra: dict | None = None,
               tokenizer_config: dict | None = None) -> Path:
    """Write the model folder as a whole; an existing one may hold only what a model save writes.

    `extra` adds entries to config.json (e.g. "quantization", written by `llmlab.adapt.quantize`);
    `tokenizer_config` is written as ``tokenizer_config.json`` (a chat model's template, special tokens)."""
    if getattr(model, "soft_prompt", None) is not None:  # its tensors would make the folder unloadable
        raise InputError("this model carries a soft prompt: save it with llmlab.adapt.prompt_tuning.save_prompt and "
                         "take it off with remove_prompt before saving the model")
    doc = {"llmlab_format": FORMAT_VERSION, "family": "causal-decoder", "config": config_to_dict(model.config)}
    if extra and set(extra) & set(doc):
        raise ValueError(f"extra config.json entries may not replace {sorted(set(extra) & set(doc))}")
    with atomic_folder(directory, MODEL_FILES, "model folder") as d:
        atomic_write_bytes(d / "model.safetensors", save(model_state(model), metadata={"format": "pt"}))
        atomic_write_json(d / "config.json", {**doc, **(extra or {})})
        if tokenizer is not None:
            tokenizer.save(d / "tokenizer.json")
        if card is not None:
            atomic_write_text(d / "README.md", card.to_markdown())
        if tokenizer_config is not None:
            atomic_write_json(d / "tokenizer_config.json", tokenizer_config)
    return Path(directory)


def read_weights(path: Path, device: torch.device | str = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file (any dtype, bf16 included), or InputError naming it."""
    if not path.is_file():
        raise InputError(f"model directory {str(path.parent)!r} has no {path.name}")
    try:
        return load_file(path, device=str(device))
    except (SafetensorError, OSError) as e:
        raise InputError(f"cannot read {str(path)!r}: {e}") from None


def read_model_doc(directory: str | os.PathLike) -> tuple[ModelConfig, dict]:
    """The model config and the whole config.json (its other entries, e.g. "quantization", included)."""
    path = Path(directory) / "config.json"
    doc = read_json(path, "model config")
    if not isinstance(doc, dict) or doc.get("llmlab_format") != FORMAT_VERSION or "config" not in doc:
        raise InputError(f"{str(path)!r} is not an llmlab model config (format {FORMAT_VERSION})")
    if doc.get("family", "causal-decoder") != "causal-decoder":
        raise InputError(f"{str(path)!r} holds a {doc['family']!r} model; this loader reads causal decoders")
    missing = [f for f in SHAPE_FIELDS if f not in doc["config"]] if isinstance(doc["config"], dict) else []
    if missing:  # (a config that is no object at all is config_from_dict's to refuse)
        raise InputError(f"{str(path)!r}: model config lacks {missing}, which set the weights' shapes "
                         "(a default would not match the saved weights)")
    return config_from_dict(ModelConfig, doc["config"], what=str(path)), doc


def load_config_file(directory: str | os.PathLike) -> ModelConfig:
    return read_model_doc(directory)[0]


def is_quantized(directory: str | os.PathLike) -> bool:
    """Whether a model directory's config.json records a quantization (see `llmlab.adapt.quantize`)."""
    return "quantization" in read_model_doc(directory)[1]


def resolve_device(name: str | torch.device) -> torch.device:
    """The torch device a name asks for ("auto": CUDA when there is one), or InputError when the name
    is not a device or this machine has no such device.

    >>> resolve_device("cpu"), resolve_device("auto").type in ("cpu", "cuda")
    (device(type='cpu'), True)
    """
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except (RuntimeError, TypeError):
        raise InputError(f"{name!r} is not a device (cpu, cuda, cuda:N or auto)") from None
    if device.type == "cuda" and not (torch.cuda.is_available() and (device.index or 0) < torch.cuda.device_count()):
        raise InputError(f"device {str(name)!r} asked for, but this machine has no such CUDA device")
    return device


def load_model(directory: str | os.PathLike, device: str | torch.device = "cpu") -> tuple[CausalLM, Tokenizer | None]:
    """Model (in eval mode) and its tokenizer (None if the directory has none); InputError when the
    tokenizer has ids the model has no embedding for."""
    device = resolve_device(device)
    d = existing_folder(directory, "model directory")
    cfg, doc = read_model_doc(d)
    if "quantization" in doc:
        raise InputError(f"model directory {str(d)!r} holds a quantized model: load it with "
                         "llmlab.adapt.quantize.load_quantized (the llmlab commands do)")
    if "reward_model" in doc:
        raise InputError(f"model directory {str(d)!r} holds a reward model (one score, not next-token logits): load "
                         "it with llmlab.rl.reward_model.load_reward_model (llmlab rm score and llmlab rl "
                         "--reward-model read it)")
    weights = d / "model.safetensors"
    state = read_weights(weights, device)
    model = CausalLM(cfg).to(device)
    load_state(model, state, str(weights))
    model.eval()
    return model, load_model_tokenizer(d, cfg)


def load_model_tokenizer(d: Path, cfg: ModelConfig) -> Tokenizer | None:
    """A model directory's tokenizer (None without tokenizer.json); InputError when the tokenizer has ids
    the model has no embedding for."""
    tok_path = d / "tokenizer.json"
    tok = load_tokenizer(tok_path) if tok_path.exists() else None
    if tok is not None and tok.vocab_size > cfg.vocab_size:
        raise InputError(f"{str(tok_path)!r} has {tok.vocab_size} tokens but the model in {str(d)!r} embeds "
                         f"{cfg.vocab_size}: the tokenizer belongs to another model")
    return tok


def load_state(model: CausalLM, state: dict[str, torch.Tensor], what: str) -> None:
    """Load weights strictly: every expected tensor present with the right shape, nothing extra, and
    integer tensors (quantized codes) in their own dtype: a float file's bf16 may load into fp32, but
    codes silently cast from another dtype would be other numbers."""
    expected = model_state(model)
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    if missing or extra:
        raise InputError(f"{what}: weights do not match the config (missing {missing[:3]}, unexpected {extra[:3]})")
    for k, v in state.items():
        if v.shape != expected[k].shape:
            raise InputError(f"{what}: {k} has shape {tuple(v.shape)}, config expects {tuple(expected[k].shape)}")
        floats = v.is_floating_point() and expected[k].is_floating_point()
        if not floats and v.dtype != expected[k].dtype:
            raise InputError(f"{what}: {k} is {v.dtype}, expected {expected[k].dtype}")
    model.load_state_dict(state, strict=False)
