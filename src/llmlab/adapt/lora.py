"""LoRA (Hu et al. 2021; topics 33, 40, 43): fine-tune a frozen model through low-rank updates.

A target `nn.Linear` y = W x keeps W frozen and learns W + (alpha / r) B A instead, with A (r, in) and
B (out, r): r (in + out) trainable numbers per matrix instead of in * out. B starts at zero, so training
starts from the base model exactly. Applied by replacing modules in place (`apply_lora`), never by a
second model class; `merge_lora` folds each update into its weight and gives back plain `nn.Linear`s.

Adapters are saved in PEFT's layout (`adapter_config.json` + `adapter_model.safetensors`, keys named as
on the `export_hf` LLaMA model), so an llmlab adapter loads with ``PeftModel.from_pretrained`` on the
exported model, and a PEFT adapter trained on it loads here.

>>> from llmlab.models import CausalLM, ModelConfig
>>> model = CausalLM(ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4))
>>> apply_lora(model, LoRAConfig(r=4))
['layers.0.self_attn.q_proj', 'layers.0.self_attn.v_proj', 'layers.1.self_attn.q_proj', 'layers.1.self_attn.v_proj']
>>> trainable_parameters(model)  # 4 matrices x r (32 in + 32 out), of 28,064 base + 1,024
(1024, 29088)
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save
from torch import nn

from llmlab.core.errors import InputError
from llmlab.core.io import (
    atomic_folder,
    atomic_write_bytes,
    atomic_write_json,
    check_readable,
    existing_folder,
    read_json,
)

INITS = ("kaiming", "gaussian")
BIASES = ("none", "all")
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")  # PEFT's names
PEFT_PREFIX = "base_model.model."  # PeftModel -> LoraModel -> the LLaMA model's own names


@dataclass(frozen=True)
class LoRAConfig:
    r: int = 8  # rank of the update B A; >= 1
    alpha: float = 16.0  # the update is scaled by alpha / r (alpha / sqrt(r) with rslora); > 0
    rslora: bool = False  # rank-stabilised scaling alpha / sqrt(r) (Kalajdzievski 2023; PEFT's use_rslora)
    dropout: float = 0.0  # dropout on the adapter's input while training, in [0, 1)
    targets: tuple[str, ...] = ("q_proj", "v_proj")  # Linear modules whose name's last part is one of these
    train_bias: str = "none"  # none | all: every bias in the model trains too (PEFT's `bias`)
    init: str = "kaiming"  # kaiming: A kaiming-uniform(a=sqrt 5) (PEFT's default) | gaussian: A ~ N(0, 1/r); B = 0

    def __post_init__(self):
        if isinstance(self.r, bool) or not isinstance(self.r, int) or self.r < 1:
            raise InputError(f"LoRA rank r must be an integer >= 1, got {self.r!r}")
        if isinstance(self.alpha, bool) or not isinstance(self.alpha, (int, float)) or not 0 < self.alpha < math.inf:
            raise InputError(f"LoRA alpha must be a finite number > 0, got {self.alpha!r}")
        if not isinstance(self.dropout, (int, float)) or not 0 <= self.dropout < 1:
            raise InputError(f"LoRA dropout must be in [0, 1), got {self.dropout!r}")
        if isinstance(self.targets, str):  # a lone name would be read letter by letter
            raise InputError(f"LoRA targets must be a tuple of module names, got the string {self.targets!r}")
        if not isinstance(self.targets, (tuple, list)):
            raise InputError(f"LoRA targets must be a tuple of module names, got {self.targets!r}")
        object.__setattr__(self, "targets", tuple(self.targets))
        bad = [t for t in self.targets if not isinstance(t, str) or not t or "." in t]
        if not self.targets or bad or len(set(self.targets)) != len(self.targets):
            raise InputError(f"LoRA targets must be distinct module names without dots (the last part of a "
                             f"module path, e.g. 'q_proj'), got {self.targets!r}")
        if self.train_bias not in BIASES:
            raise InputError(f"LoRA train_bias must be one of {BIASES}, got {self.train_bias!r}")
        if self.init not in INITS:
            raise InputError(f"LoRA init must be one of {INITS}, got {self.init!r}")

    @property
    def scaling(self) -> float:
        """alpha / r, or alpha / sqrt(r) with rslora: LoRAConfig(r=4, alpha=8).scaling == 2.0."""
        return self.alpha / (math.sqrt(self.r) if self.rslora else self.r)


class LoRALinear(nn.Module):
    """base(x) + dropout(x) A^T B^T * scaling, with the wrapped `nn.Linear` frozen as `.base`.

    `merge()` adds B A * scaling into base.weight (inference at the plain layer's cost) and `unmerge()`
    takes it out again; a merged layer is the base alone, so the update is never added twice.

    >>> _ = torch.manual_seed(0); layer = LoRALinear(nn.Linear(4, 3), r=2, scaling=1.0)
    >>> x = torch.randn(5, 4); bool((layer(x) == layer.base(x)).all())  # B = 0 at init
    True
    """

    def __init__(self, base: nn.Linear, r: int, scaling: float, dropout: float = 0.0, init: str = "kaiming"):
        super().__init__()
        w = base.weight
        self.base = base.requires_grad_(False)
        self.lora_A = nn.Linear(base.in_features, r, bias=False, device=w.device, dtype=w.dtype)
        self.lora_B = nn.Linear(r, base.out_features, bias=False, device=w.device, dtype=w.dtype)
        self.dropout = nn.Dropout(dropout) if dropout else nn.Identity()
        self.scaling = scaling
        self.merged = False
        self.reset_lora(init)

    def reset_lora(self, init: str = "kaiming") -> None:
        """PEFT's inits: A as nn.Linear's own (kaiming-uniform, a=sqrt 5) or N(0, 1/r); B zero."""
        if init == "gaussian":
            nn.init.normal_(self.lora_A.weight, std=1 / self.lora_A.out_features)
        else:
            nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def delta_weight(self) -> torch.Tensor:
        """B A * scaling (out, in), computed in fp32 (16-bit CPU matmuls are slow) and cast to the base's dtype."""
        A, B = self.lora_A.weight.float(), self.lora_B.weight.float()  # (r, in), (out, r)
        return (B @ A * self.scaling).to(self.base.weight.dtype)  # (out, in)

    @torch.no_grad()
    def merge(self) -> None:
        if not self.merged:
            self.base.weight += self.delta_weight()
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        if self.merged:
            self.base.weight -= self.delta_weight()
            self.merged = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)  # (..., out)
        if self.merged:
            return y
        return y + (self.lora_B(self.lora_A(self.dropout(x))) * self.scaling).to(y.dtype)  # (..., r) -> (..., out)

    def extra_repr(self) -> str:
        return f"r={self.lora_A.out_features}, scaling={self.scaling:g}, merged={self.merged}"


def find_targets(model: nn.Module, targets: tuple[str, ...]) -> dict[str, nn.Linear]:
    """The Linear layers (the base of those already wrapped) whose name's last part is in `targets`;
    a target that matches none is an InputError naming the Linear names the model has."""
    wrapped = lora_modules(model)
    linears = {name: wrapped[name].base if name in wrapped else m for name, m in model.named_modules()
               if (name in wrapped or isinstance(m, nn.Linear)) and name.rpartition(".")[0] not in wrapped}
    found = {n: m for n, m in linears.items() if n.rsplit(".", 1)[-1] in targets}
    unmatched = [t for t in targets if not any(n.rsplit(".", 1)[-1] == t for n in found)]
    if unmatched:
        names = sorted({n.rsplit(".", 1)[-1] for n in linears})
        raise InputError(f"LoRA target(s) {unmatched} match no nn.Linear in the model; its Linear names are {names}")
    return found


def _check_untied(model: nn.Module, targets: dict[str, nn.Linear]) -> None:
    """A weight shared with another module (a tied head) cannot take a merged update of its own."""
    shared = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        shared.setdefault(id(p), []).append(name)
    for name, m in targets.items():
        if len(shared[id(m.weight)]) > 1:
            raise InputError(f"LoRA target {name!r} shares its weight with {shared[id(m.weight)]} (tied embeddings): "
                             "a merged update would change both; leave it out of the targets")


def apply_lora(model: nn.Module, config: LoRAConfig | None = None, **fields) -> list[str]:
    """Replace the target Linears by `LoRALinear`s in place, freeze every other parameter (biases train
    with ``train_bias="all"``), record the config as ``model.lora_config``; return the replaced names.

    `fields` change the config's: ``apply_lora(model, targets=("q_proj", "v_proj"), r=16)``.
    """
    config = config or LoRAConfig()
    if fields:
        known = [f.name for f in dataclasses.fields(LoRAConfig)]
        unknown = sorted(set(fields) - set(known))
        if unknown:
            raise InputError(f"unknown LoRA setting(s) {unknown}; known: {known}")
        config = dataclasses.replace(config, **fields)
    if getattr(model, "lora_config", None) is not None:
        raise InputError(f"LoRA is already applied to this model ({model.lora_config}): merge_lora first, "
                         "or start again from the base model")
    targets = find_targets(model, config.targets)
    _check_untied(model, targets)
    model.lora_trainable = tuple(n for n, p in model.named_parameters() if p.requires_grad)  # for merge_lora
    model.requires_grad_(False)
    for name, linear in targets.items():
        parent, _, child = name.rpartition(".")
        lora = LoRALinear(linear, config.r, config.scaling, config.dropout, config.init)
        setattr(model.get_submodule(parent), child, lora)
    if config.train_bias == "all":
        for name, p in model.named_parameters():
            if name.rsplit(".", 1)[-1] == "bias":
                p.requires_grad_(True)
    model.lora_config = config
    return list(targets)


def train_token_rows(model: nn.Module, ids: list[int]) -> list[torch.utils.hooks.RemovableHandle]:
    """Let the embedding rows of tokens `ids` (and their rows of an untied output head) train while every
    other row stays as it is: PEFT's ``trainable_token_indices``, for tokens added to a model (chat roles)
    whose rows a LoRA run would otherwise leave at their initial values. The weights are marked
    trainable and a gradient hook zeroes every other row, so train them without weight decay (which
    would shrink the other rows too). Returns the hooks (``.remove()`` them to undo the mask).

    >>> import torch.nn as nn
    >>> m = nn.Module(); m.embed_tokens = nn.Embedding(5, 2); m.lm_head = nn.Linear(2, 5, bias=False)
    >>> _ = m.embed_tokens.weight.requires_grad_(False)
    >>> _ = train_token_rows(m, [3])
    >>> m.embed_tokens(torch.tensor([1, 3])).sum().backward()
    >>> m.embed_tokens.weight.grad[:, 0].tolist()
    [0.0, 0.0, 0.0, 1.0, 0.0]
    """
    weights = {id(w): w for w in token_weights(model)}.values()  # tied: once
    hooks = []
    for w in weights:
        mask = torch.zeros(w.shape[0], 1, dtype=w.dtype, device=w.device)
        mask[list(ids)] = 1
        w.requires_grad_(True)
        hooks.append(w.register_hook(lambda g, m=mask: g * m))
    return hooks


def token_weights(model: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
    """The embedding's weight and the output head's, that of the head's frozen base where LoRA wraps it
    (``--lora-targets lm_head``): a weight (V, dim) with a row per token either way.

    >>> from llmlab.models import CausalLM, ModelConfig
    >>> model = CausalLM(ModelConfig(vocab_size=40, dim=32, n_layer=1, n_head=4, tie_embeddings=False))
    >>> head = token_weights(model)[1]
    >>> _ = apply_lora(model, targets=("lm_head",)); token_weights(model)[1] is head
    True
    """
    head = model.lm_head.base if isinstance(model.lm_head, LoRALinear) else model.lm_head
    return model.embed_tokens.weight, head.weight


def lora_modules(model: nn.Module) -> dict[str, LoRALinear]:
    return {n: m for n, m in model.named_modules() if isinstance(m, LoRALinear)}


def _config_of(model: nn.Module) -> LoRAConfig:
    config = getattr(model, "lora_config", None)
    if config is None or not lora_modules(model):
        raise InputError("this model has no LoRA applied (apply_lora or load_adapter first)")
    return config


def merge_lora(model: nn.Module) -> list[str]:
    """Fold each update into its weight and put the plain `nn.Linear` back: the model is an ordinary one
    again (fused inference, `save_model`), with the parameters that trained before `apply_lora` trainable."""
    _config_of(model)
    modules = lora_modules(model)
    for name, m in modules.items():
        m.merge()
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, m.base)
    trainable = set(getattr(model, "lora_trainable", ()))
    for name, p in model.named_parameters():
        p.requires_grad_(name in trainable)
    model.lora_config = None
    return list(modules)


def lora_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The adapter's tensors by parameter name: every lora_A / lora_B weight, and every bias when
    ``train_bias="all"``; the frozen base weights are left out."""
    config = _config_of(model)
    out = {}
    for name, p in model.named_parameters():
        last = name.rsplit(".", 2)
        if last[-2:-1] in (["lora_A"], ["lora_B"]) or (config.train_bias == "all" and last[-1] == "bias"):
            out[name] = p.detach()
    return out


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameter counts, a tied weight counted once (as PEFT's print_trainable_parameters)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


WRAPPED = ((".base.bias", ".base_layer.bias"), (".base.weight", ".base_layer.weight"))  # a wrapped layer's own


def peft_name(name: str) -> str:
    """An llmlab parameter name as PEFT saves it for the `export_hf` model.

    >>> peft_name("layers.0.self_attn.q_proj.lora_A.weight")
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight'
    >>> peft_name("lm_head.lora_B.weight"), peft_name("layers.1.mlp.up_proj.base.bias")
    ('base_model.model.lm_head.lora_B.weight', 'base_model.model.model.layers.1.mlp.up_proj.base_layer.bias')
    """
    for ours, theirs in WRAPPED:
        if name.endswith(ours):
            name = name.removesuffix(ours) + theirs
    return PEFT_PREFIX + (name if name.startswith("lm_head") else "model." + name)


def llmlab_name(key: str, what: str) -> str:
    """The inverse of `peft_name`; InputError for a key that is not under PEFT's LLaMA prefix.

    >>> llmlab_name("base_model.model.lm_head.base_layer.weight", "adapter")
    'lm_head.base.weight'
    """
    if not key.startswith(PEFT_PREFIX):
        raise InputError(f"{what}: tensor {key!r} is not named as a PEFT adapter of a LLaMA model ({PEFT_PREFIX}...)")
    name = key.removeprefix(PEFT_PREFIX)
    name = name if name.startswith("lm_head") else name.removeprefix("model.")
    for ours, theirs in WRAPPED:
        if name.endswith(theirs):
            name = name.removesuffix(theirs) + ours
    return name


def peft_config(config: LoRAConfig) -> dict:
    """adapter_config.json in PEFT's LoraConfig terms."""
    return {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "r": config.r, "lora_alpha": config.alpha,
        "use_rslora": config.rslora, "lora_dropout": config.dropout, "target_modules": list(config.targets),
        "bias": config.train_bias, "init_lora_weights": True if config.init == "kaiming" else "gaussian",
        "fan_in_fan_out": False, "modules_to_save": None, "inference_mode": True,
    }


def config_from_peft(doc: object, what: str) -> LoRAConfig:
    """A LoRAConfig from adapter_config.json (ours or PEFT's); what it cannot express is an InputError."""
    if not isinstance(doc, dict) or doc.get("peft_type") != "LORA":
        raise InputError(f"{what} is not a LoRA adapter config (peft_type 'LORA')")
    targets = doc.get("target_modules")
    if not isinstance(targets, list):
        raise InputError(f"{what}: target_modules must be a list of module names, got {targets!r}")
    # PEFT settings that change what the adapter computes or holds, each at its plain value here
    unsupported = ("fan_in_fan_out", "modules_to_save", "use_dora", "lora_bias", "rank_pattern", "alpha_pattern",
                   "layers_to_transform", "layer_replication", "target_parameters", "exclude_modules",
                   "trainable_token_indices", "use_qalora", "use_bdlora", "alora_invocation_tokens")
    for key in unsupported:
        if doc.get(key) not in (False, None, {}, []):
            raise InputError(f"{what}: {key}={doc[key]!r} is not supported by llmlab's LoRA")
    return LoRAConfig(r=doc.get("r", 8), alpha=doc.get("lora_alpha", 8), rslora=bool(doc.get("use_rslora", False)),
                      dropout=doc.get("lora_dropout", 0.0), targets=tuple(targets), train_bias=doc.get("bias", "none"),
                      init="gaussian" if doc.get("init_lora_weights") == "gaussian" else "kaiming")


def save_adapter(model: nn.Module, directory: str | os.PathLike) -> Path:
    """Write adapter_config.json and adapter_model.safetensors (PEFT's layout and names) as one folder:
    readers see the old adapter or the new one. ``PeftModel.from_pretrained(hf_model, directory)`` loads
    it on the model `export_hf` wrote."""
    config = _config_of(model)
    state = {peft_name(k): v.contiguous().cpu() for k, v in lora_state_dict(model).items()}
    with atomic_folder(directory, ADAPTER_FILES, "adapter folder") as d:
        atomic_write_bytes(d / "adapter_model.safetensors", save(state, metadata={"format": "pt"}))
        atomic_write_json(d / "adapter_config.json", peft_config(config))
    return Path(directory)


def _expected_shapes(model: nn.Module, config: LoRAConfig) -> dict[str, tuple[int, ...]]:
    """Adapter tensor names and shapes `config` gives this model once applied (the model is not changed)."""
    targets = find_targets(model, config.targets)
    shapes = {}
    for name, m in targets.items():
        shapes[f"{name}.lora_A.weight"] = (config.r, m.in_features)
        shapes[f"{name}.lora_B.weight"] = (m.out_features, config.r)
    if config.train_bias == "all":  # every bias, a wrapped layer's under its `.base`
        wrapped = {id(m): name for name, m in targets.items()}
        for name, m in model.named_modules():
            if isinstance(getattr(m, "bias", None), nn.Parameter):
                key = f"{wrapped[id(m)]}.base.bias" if id(m) in wrapped else f"{name}.bias"
                shapes[key] = tuple(m.bias.shape)
    return shapes


def _base_weight_shapes(model: nn.Module, config: LoRAConfig) -> dict[str, tuple[int, ...]]:
    """The names and shapes of the target layers' own weights (under `.base` once wrapped), which a PEFT
    adapter may carry: PEFT saves an adapted embedding layer's (lm_head's) with its default
    ``save_embedding_layers="auto"``."""
    return {f"{name}.base.weight": tuple(m.weight.shape) for name, m in find_targets(model, config.targets).items()}


def read_adapter(directory: str | os.PathLike) -> tuple[LoRAConfig, dict[str, torch.Tensor]]:
    """The config and tensors (by llmlab parameter name) of an adapter folder, or an InputError naming it."""
    d = existing_folder(directory, "adapter folder")
    config = config_from_peft(read_json(d / "adapter_config.json", "adapter config"), str(d / "adapter_config.json"))
    path = check_readable(d / "adapter_model.safetensors", "adapter weights")
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError) as e:
        raise InputError(f"cannot read {str(path)!r}: {e}") from None
    return config, {llmlab_name(k, str(path)): v for k, v in tensors.items()}


def load_adapter(model: nn.Module, directory: str | os.PathLike) -> list[str]:
    """Apply the adapter saved in `directory` (by `save_adapter`, or PEFT on the exported model) to the
    base `model`, or load its weights into the same LoRA already applied; return the adapted module names.

    Everything is checked before the model is touched: a base of another size or depth, or a model
    carrying another LoRA config, is an InputError naming the tensor or setting, and the model stays as it was.

    A target layer's own weight in the adapter (PEFT saves lm_head's, ``lm_head.base_layer.weight``, when
    lm_head is a target) is loaded into the wrapped layer's frozen base, as ``PeftModel.from_pretrained``
    loads it: the model then computes what PEFT's does. Saved with PEFT's defaults from the same base it is
    that base's weight, and loading changes nothing; `save_adapter` writes the adapters alone.
    """
    config, state = read_adapter(directory)
    where = f"adapter {str(directory)!r}"
    applied = getattr(model, "lora_config", None)
    if applied is not None:
        same = {k: getattr(applied, k) == getattr(config, k) for k in ("r", "alpha", "rslora", "train_bias")}
        same["targets"] = set(applied.targets) == set(config.targets)  # PEFT saves them as a set, in any order
        diff = [f"{k}: model {getattr(applied, k)!r}, adapter {getattr(config, k)!r}"
                for k, ok in same.items() if not ok]
        if diff:
            raise InputError(f"{where} does not fit the LoRA applied to this model ({'; '.join(diff)})")
        if any(m.merged for m in lora_modules(model).values()):
            raise InputError(f"{where}: this model's LoRA is merged into its weights; unmerge before loading")
    try:
        expected, base_weights = _expected_shapes(model, config), _base_weight_shapes(model, config)
    except InputError as e:
        raise InputError(f"{where} was made for another model: {e}") from None
    missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected) - set(base_weights))
    if missing or extra:
        parts = [f"it lacks {missing[:3]} ({len(missing)} in all)"] if missing else []
        if extra:
            parts.append(f"it has {extra[:3]} ({len(extra)} in all), which are neither adapters nor base weights "
                         f"of its targets {list(config.targets)} on this model")
        guess = " (made for another base?)" if missing or any(".lora_" in k for k in extra) else ""
        raise InputError(f"{where} does not fit this model{guess}: {'; '.join(parts)}")
    for name, shape in {**expected, **base_weights}.items():
        if name in state and tuple(state[name].shape) != shape:
            rank = f"rank {config.r}; " if name in expected else ""
            raise InputError(f"{where}: {name} has shape {tuple(state[name].shape)} but this model needs {shape} "
                             f"({rank}the adapter was made for another base model)")
    names = list(lora_modules(model)) if applied is not None else apply_lora(model, config)
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            params[name].copy_(value)
    return names
