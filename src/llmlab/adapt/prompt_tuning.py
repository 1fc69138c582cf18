"""Soft prompts (topic 31): tune a few virtual tokens in front of every sequence, the model frozen.

Prompt tuning (Lester et al. 2021) learns `n_virtual` input vectors (n, d): the model reads them as it
reads token embeddings, at positions 0..n-1, and the real tokens follow at n, n+1, ... Deep prompts
(prefix tuning, Li & Liang 2021; P-tuning v2, Liu et al. 2022) learn instead a key and a value prefix in
every layer's attention, which every real token attends to; optionally through prefix tuning's MLP
(`projection`), which P-tuning v2 found unnecessary.

Both are one mechanism here: the virtual tokens are a KV cache's first n positions (`CausalLM.new_cache`
fills them; `CausalLM.forward` makes such a cache when given none). A soft prompt's keys and values are
what the frozen model computes for its vectors; a deep prompt's are the parameters themselves, used as
cached keys are (already rotated, never rotated again). This is what PEFT does on transformers' LLaMA:
prompt tuning concatenates the vectors before the token embeddings (positions 0..n+T-1, all-ones mask),
and prefix tuning passes the prefixes as past_key_values, so the tokens' position ids start at n (LLaMA
counts the cache's length) and the mask is all ones over the prefix. The same vectors or prefixes give
PEFT's logits (tests/adapt/test_prompt_tuning.py), and a prompt saves in PEFT's adapter layout too.

>>> from llmlab.models import CausalLM, ModelConfig
>>> model = CausalLM(ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=2))
>>> prompt = apply_prompt_tuning(model, PromptConfig(n_virtual=5, init="random"))
>>> prompt.n_virtual, model(torch.tensor([[1, 2, 3]])).shape  # logits of the real tokens only
(5, torch.Size([1, 3, 40]))
>>> trainable_parameters(model)[0]  # 5 x 32
160
>>> _ = remove_prompt(model); _ = apply_prompt_tuning(model, n_virtual=5, deep=True, init="random")
>>> trainable_parameters(model)[0]  # 5 x 2 layers x (key + value) x 2 kv heads x 8
320
"""

from __future__ import annotations

import dataclasses
import math
import os
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from llmlab.adapt.lora import trainable_parameters
from llmlab.adapt.prompt_config import PromptConfig
from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.io import (
    atomic_folder,
    atomic_write_bytes,
    atomic_write_json,
    check_readable,
    existing_folder,
    read_json,
)
from llmlab.core.modes import eval_mode
from llmlab.models.decoder import position_inputs
from llmlab.nn import KVCache

__all__ = ["PromptConfig", "SoftPrompt", "DeepPrompt", "apply_prompt_tuning", "attach_prompt", "remove_prompt",
           "save_prompt", "load_prompt", "trainable_parameters"]

FORMAT_VERSION = 1
PROMPT_FILES = ("prompt_config.json", "prompt.safetensors", "adapter_config.json", "adapter_model.safetensors")
PEFT_INIT = {"random": "RANDOM", "vocab": "SAMPLE_VOCAB", "text": "RANDOM"}  # PEFT's TEXT needs a HF tokenizer name


class SoftPrompt(nn.Module):
    """Prompt tuning: `embeddings` (n, d) are read by the frozen model before the tokens."""

    def __init__(self, embeddings: torch.Tensor):
        super().__init__()
        self.embeddings = nn.Parameter(embeddings.detach().clone().float())  # (n, d)

    @property
    def n_virtual(self) -> int:
        return self.embeddings.shape[0]

    def key_values(self, model) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each layer's keys and values (1, nkv, n, hs) of the virtual tokens at positions 0..n-1."""
        cfg, n, w = model.config, self.n_virtual, model.embed_tokens.weight
        x = self.embeddings[None].to(w.dtype)  # (1, n, d)
        if cfg.position in ("learned", "sinusoidal"):
            x = x + model.embed_positions(torch.arange(n, device=x.device))  # (1, n, d)
        cos, sin, mask = position_inputs(model, x, 0, None)
        cache = KVCache(cfg.n_layer, 1, model.layers[0].self_attn.n_kv_head, n, cfg.head_dim, w.device, w.dtype)
        for i, block in enumerate(model.layers):
            x = block(x, cos, sin, cache, i, mask)  # (1, n, d); its keys and values go to the cache
        return list(zip(cache.k, cache.v))

    def peft_embeddings(self) -> torch.Tensor:
        """PEFT's `prompt_embeddings` (n, d): the vectors themselves."""
        return self.embeddings.detach()


class DeepPrompt(nn.Module):
    """P-tuning v2 / prefix tuning: keys and values of n virtual tokens in each of `n_layer` layers, held
    as PEFT holds them: one row (n_layer x (key, value) x nkv x hs) per virtual token, or that row computed
    by prefix tuning's MLP (embedding (n, nkv hs) -> Linear -> tanh -> Linear) when `projection` > 0."""

    def __init__(self, n_virtual: int, n_layer: int, n_kv_head: int, head_dim: int, projection: int = 0,
                 seed: int = 0):
        super().__init__()
        self.shape = (n_layer, n_kv_head, head_dim)
        kv = n_kv_head * head_dim
        if projection:
            self.embedding = nn.Parameter(torch.zeros(n_virtual, kv))  # (n, nkv hs)
            with torch.random.fork_rng(devices=[]):  # nn.Linear's own init, from `seed`; the global generator stays
                torch.manual_seed(seed)
                self.transform = nn.Sequential(nn.Linear(kv, projection), nn.Tanh(),
                                               nn.Linear(projection, 2 * n_layer * kv))
        else:
            self.prefix = nn.Parameter(torch.zeros(n_virtual, 2 * n_layer * kv))  # (n, 2 L nkv hs)

    @property
    def n_virtual(self) -> int:
        return (self.embedding if hasattr(self, "transform") else self.prefix).shape[0]

    def flat(self) -> torch.Tensor:
        """(n, 2 L nkv hs): per virtual token, layer 0's key, layer 0's value, layer 1's key, ..."""
        return self.transform(self.embedding) if hasattr(self, "transform") else self.prefix

    def key_values(self, model=None) -> list[tuple[torch.Tensor, torch.Tensor]]:
        L, nkv, hs = self.shape
        kv = self.flat().view(self.n_virtual, 2 * L, nkv, hs).permute(1, 2, 0, 3)  # (2L, nkv, n, hs)
        return [(kv[2 * i][None], kv[2 * i + 1][None]) for i in range(L)]  # (1, nkv, n, hs) each

    def peft_embeddings(self) -> torch.Tensor:
        """PEFT's `prompt_embeddings` for PREFIX_TUNING (n, 2 L nkv hs): the prefixes, projected if need be."""
        with torch.no_grad():
            return self.flat().detach()


# --- building and attaching -------------------------------------------------------------------------

def _init_ids(model, config: PromptConfig, tok) -> torch.Tensor:
    """The token ids whose embeddings start the prompt: drawn from the vocabulary, or init_text's tokens
    repeated or cut to n_virtual (PEFT's TEXT rule: "ab" for 5 -> a b a b a)."""
    n = config.n_virtual
    if config.init == "vocab":
        g = torch.Generator().manual_seed(config.seed)
        return torch.randint(0, model.config.vocab_size, (n,), generator=g)
    if tok is None:
        raise InputError("prompt init 'text' needs the model's tokenizer")
    ids = tok.encode(config.init_text)
    if not ids:
        raise InputError(f"the prompt's init_text {config.init_text!r} encodes to no tokens")
    return torch.tensor((ids * math.ceil(n / len(ids)))[:n])


@torch.no_grad()
def build_prompt(model, config: PromptConfig, tok=None) -> SoftPrompt | DeepPrompt:
    """A new prompt for `model` (not attached), initialised as `config` says."""
    cfg, w = model.config, model.embed_tokens.weight
    if config.n_virtual >= cfg.max_seq_len:
        raise InputError(f"{config.n_virtual} virtual tokens leave no room for a token in the model's context "
                         f"of {cfg.max_seq_len}")
    g = torch.Generator().manual_seed(config.seed)
    std = config.init_std or (1.0 if config.deep else float(w.float().std()))
    if config.init == "random":
        vectors = torch.randn(config.n_virtual, cfg.dim, generator=g) * std  # (n, d)
    else:
        vectors = w[_init_ids(model, config, tok).to(w.device)].float().cpu()  # (n, d)
    soft = SoftPrompt(vectors).to(w.device)
    if not config.deep:
        return soft
    deep = DeepPrompt(config.n_virtual, cfg.n_layer, model.layers[0].self_attn.n_kv_head, cfg.head_dim,
                      config.projection, config.seed).to(w.device)
    if config.projection:  # the MLP keeps nn.Linear's init; the embedding starts as PEFT's nn.Embedding
        deep.embedding.copy_(torch.randn(deep.embedding.shape, generator=g) * std)
    elif config.init == "random":
        deep.prefix.copy_(torch.randn(deep.prefix.shape, generator=g) * std)
    else:  # what the frozen model itself caches for those tokens (Li & Liang start from real words' activations)
        with eval_mode(model):
            kv = torch.stack([t[0] for pair in soft.key_values(model) for t in pair])  # (2L, nkv, n, hs)
        deep.prefix.copy_(kv.permute(2, 0, 1, 3).reshape(config.n_virtual, -1))  # (n, 2L nkv hs)
    return deep


def _check_fits(model, prompt: nn.Module, where: str) -> None:
    cfg = model.config
    if isinstance(prompt, SoftPrompt):
        have, need = prompt.embeddings.shape[1], cfg.dim
        what = "width"
    else:
        have, need = prompt.shape, (cfg.n_layer, model.layers[0].self_attn.n_kv_head, cfg.head_dim)
        what = "(layers, kv heads, head size)"
    if have != need:
        raise InputError(f"{where} has {what} {have}, but this model's is {need}: it was made for another model")
    if prompt.n_virtual >= cfg.max_seq_len:
        raise InputError(f"{where} has {prompt.n_virtual} virtual tokens, which fill the model's context of "
                         f"{cfg.max_seq_len}")


def attach_prompt(model, prompt: SoftPrompt | DeepPrompt, where: str = "the prompt") -> SoftPrompt | DeepPrompt:
    """Put `prompt` before every sequence of `model` and freeze everything else (the prompt trains)."""
    if not hasattr(model, "soft_prompt"):
        raise InputError(f"soft prompts apply to a causal decoder (CausalLM), not a {type(model).__name__}")
    if model.soft_prompt is not None:
        raise InputError("this model already has a soft prompt: remove_prompt first")
    _check_fits(model, prompt, where)
    model.prompt_trainable = tuple(n for n, p in model.named_parameters() if p.requires_grad)  # for remove_prompt
    model.requires_grad_(False)
    model.soft_prompt = prompt.to(model.embed_tokens.weight.device).requires_grad_(True)
    return prompt


def apply_prompt_tuning(model, config: PromptConfig | None = None, tok=None, **fields) -> SoftPrompt | DeepPrompt:
    """Build a prompt as `config` says (`fields` change its settings), attach it, return it. Text init
    needs the tokenizer `tok`."""
    config = config or PromptConfig()
    if fields:
        known = [f.name for f in dataclasses.fields(PromptConfig)]
        if set(fields) - set(known):
            raise InputError(f"unknown prompt setting(s) {sorted(set(fields) - set(known))}; known: {known}")
        config = dataclasses.replace(config, **fields)
    if getattr(model, "soft_prompt", None) is not None:
        raise InputError("this model already has a soft prompt: remove_prompt first")
    prompt = build_prompt(model, config, tok)
    prompt.config = config
    return attach_prompt(model, prompt)


def remove_prompt(model) -> SoftPrompt | DeepPrompt:
    """Detach the model's prompt and return it; the parameters that trained before it was attached train again."""
    prompt = getattr(model, "soft_prompt", None)
    if prompt is None:
        raise InputError("this model has no soft prompt")
    model.soft_prompt = None
    trainable = set(getattr(model, "prompt_trainable", ()))
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    return prompt


# --- files ------------------------------------------------------------------------------------------

def peft_config(prompt: SoftPrompt | DeepPrompt, model_config) -> dict:
    """adapter_config.json in PEFT's terms (inference mode: the saved embeddings are used as they are)."""
    cfg = getattr(prompt, "config", PromptConfig(n_virtual=prompt.n_virtual, init="random"))
    doc = {"task_type": "CAUSAL_LM", "num_virtual_tokens": prompt.n_virtual, "num_transformer_submodules": 1,
           "num_layers": model_config.n_layer, "inference_mode": True}
    if isinstance(prompt, SoftPrompt):
        return {"peft_type": "PROMPT_TUNING", **doc, "token_dim": model_config.dim,
                "num_attention_heads": model_config.n_head, "prompt_tuning_init": PEFT_INIT[cfg.init]}
    L, nkv, hs = prompt.shape
    return {"peft_type": "PREFIX_TUNING", **doc, "token_dim": nkv * hs, "num_attention_heads": nkv,
            "encoder_hidden_size": nkv * hs, "prefix_projection": False}  # PEFT loads projected prefixes unprojected


def save_prompt(model, directory: str | os.PathLike) -> Path:
    """Write the model's prompt as one folder: ``prompt_config.json`` + ``prompt.safetensors`` (every
    parameter, for `load_prompt` and further training), and PEFT's ``adapter_config.json`` +
    ``adapter_model.safetensors`` (``prompt_embeddings``), which ``PeftModel.from_pretrained`` loads on
    the model `export_hf` wrote."""
    prompt = getattr(model, "soft_prompt", None)
    if prompt is None:
        raise InputError("this model has no soft prompt to save")
    cfg = getattr(prompt, "config", None) or PromptConfig(n_virtual=prompt.n_virtual, init="random",
                                                         deep=isinstance(prompt, DeepPrompt))
    state = {k: v.detach().contiguous().cpu() for k, v in prompt.state_dict().items()}
    peft_state = {"prompt_embeddings": prompt.peft_embeddings().float().contiguous().cpu()}
    mc = model.config
    doc = {"llmlab_prompt_format": FORMAT_VERSION, "config": config_to_dict(cfg),
           "model": {"dim": mc.dim, "n_layer": mc.n_layer, "n_kv_head": model.layers[0].self_attn.n_kv_head,
                     "head_dim": mc.head_dim}}
    with atomic_folder(directory, PROMPT_FILES, "prompt folder") as d:
        atomic_write_bytes(d / "prompt.safetensors", save(state, metadata={"format": "pt"}))
        atomic_write_json(d / "prompt_config.json", doc)
        atomic_write_bytes(d / "adapter_model.safetensors", save(peft_state, metadata={"format": "pt"}))
        atomic_write_json(d / "adapter_config.json", peft_config(prompt, mc))
    return Path(directory)


def _tensors(path: Path, what: str) -> dict[str, torch.Tensor]:
    check_readable(path, what)
    try:
        state = load_file(path)
    except (SafetensorError, OSError) as e:
        raise InputError(f"cannot read {str(path)!r}: {e}") from None
    bad = sorted(k for k, t in state.items() if t.is_floating_point() and not torch.isfinite(t).all())
    if bad:  # else generation blames the model: "its weights have diverged"
        raise InputError(f"{what} {str(path)!r} are damaged: {bad} hold NaN or infinite values")
    return state


def _read_ours(d: Path) -> SoftPrompt | DeepPrompt:
    doc = read_json(d / "prompt_config.json", "prompt config")
    if not isinstance(doc, dict) or doc.get("llmlab_prompt_format") != FORMAT_VERSION or "model" not in doc:
        raise InputError(f"{str(d / 'prompt_config.json')!r} is not an llmlab prompt config "
                         f"(format {FORMAT_VERSION})")
    cfg = config_from_dict(PromptConfig, doc.get("config", {}), what=str(d / "prompt_config.json"))
    m, sizes = doc["model"], ("n_layer", "n_kv_head", "head_dim") if cfg.deep else ("dim",)
    if not isinstance(m, dict) or not all(type(m.get(k)) is int and m[k] >= 1 for k in sizes):
        raise InputError(f"{str(d / 'prompt_config.json')!r}: 'model' must give the model's {', '.join(sizes)} as "
                         f"whole numbers >= 1, got {m!r}")
    prompt = (DeepPrompt(cfg.n_virtual, m["n_layer"], m["n_kv_head"], m["head_dim"], cfg.projection) if cfg.deep
              else SoftPrompt(torch.zeros(cfg.n_virtual, m["dim"])))
    state = _tensors(d / "prompt.safetensors", "prompt weights")
    expected = {k: tuple(v.shape) for k, v in prompt.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in state.items()}
    if found != expected:
        raise InputError(f"{str(d / 'prompt.safetensors')!r} holds {found}, but its config says {expected}")
    prompt.load_state_dict(state)
    prompt.config = cfg
    return prompt


def _read_peft(d: Path, model) -> SoftPrompt | DeepPrompt:
    doc = read_json(d / "adapter_config.json", "adapter config")
    kind = doc.get("peft_type") if isinstance(doc, dict) else None
    if kind not in ("PROMPT_TUNING", "PREFIX_TUNING") or doc.get("num_transformer_submodules", 1) != 1:
        raise InputError(f"{str(d)!r} is neither an llmlab prompt nor a PEFT PROMPT_TUNING / PREFIX_TUNING adapter "
                         f"of a causal model (peft_type {kind!r})")
    emb = _tensors(d / "adapter_model.safetensors", "adapter weights").get("prompt_embeddings")
    if emb is None or emb.dim() != 2:
        raise InputError(f"{str(d)!r}: adapter_model.safetensors has no 2-D prompt_embeddings")
    if kind == "PROMPT_TUNING":
        return SoftPrompt(emb)
    n_layer = doc.get("num_layers") or model.config.n_layer
    nkv = doc.get("num_attention_heads") or model.layers[0].self_attn.n_kv_head
    if emb.shape[1] % (2 * n_layer * nkv):
        raise InputError(f"{str(d)!r}: prompt_embeddings of width {emb.shape[1]} do not split into "
                         f"{n_layer} layers x 2 x {nkv} heads")
    prompt = DeepPrompt(emb.shape[0], n_layer, nkv, emb.shape[1] // (2 * n_layer * nkv))
    with torch.no_grad():
        prompt.prefix.copy_(emb)
    return prompt


def load_prompt(model, directory: str | os.PathLike) -> SoftPrompt | DeepPrompt:
    """Attach the prompt saved in `directory` (by `save_prompt`, or a PEFT prompt or prefix tuning adapter
    of the exported model) to `model`; a prompt made for another model is an InputError, model untouched."""
    d = existing_folder(directory, "prompt folder")
    prompt = _read_ours(d) if (d / "prompt_config.json").exists() else _read_peft(d, model)
    return attach_prompt(model, prompt, f"prompt {str(d)!r}")
