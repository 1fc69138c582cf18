"""LoRA against PEFT on the exported LLaMA model (logits, merged weights, parameter counts, adapter files
both ways), and its invariants: B = 0 starts at the base model, only adapters train, merge/unmerge and
merge_lora keep the function, generation is the same merged or not, adapters round-trip and refuse a
base they do not fit."""

import copy

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from llmlab.adapt.lora import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    load_adapter,
    lora_state_dict,
    merge_lora,
    save_adapter,
    trainable_parameters,
)
from llmlab.core.errors import InputError
from llmlab.core.threads import torch_threads
from llmlab.generate import GenerationConfig, generate
from llmlab.models import CausalLM, ModelConfig, count_parameters
from llmlab.nn import Attention

from ..helpers import widen

CFG = ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)
ALL = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def base_model(seed: int = 0, **kw) -> CausalLM:
    torch.manual_seed(seed)
    return CausalLM(ModelConfig(**{**CFG.__dict__, **kw})).eval()


def randomize_adapters(model: nn.Module, seed: int = 1, std: float = 0.3) -> None:
    """Non-zero A and B, so the update shows in the logits (B starts at zero)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * std)


def logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        out = model(x)
    return getattr(out, "logits", out)


@pytest.fixture
def hf_base(tmp_path):
    """A base llmlab model and the same model exported and loaded with transformers."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("peft")
    from llmlab.models.hf import export_hf

    model = base_model()
    export_hf(model, tmp_path / "hf")
    return model, transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()


def peft_config(cfg: LoRAConfig):
    import peft

    return peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, target_modules=list(cfg.targets), lora_dropout=0.0,
                           use_rslora=cfg.rslora, init_lora_weights=True if cfg.init == "kaiming" else "gaussian")


PEFT_CASES = [LoRAConfig(r=4, alpha=8), LoRAConfig(r=3, alpha=5, targets=ALL, init="gaussian"),
              LoRAConfig(r=4, alpha=8, targets=ALL, rslora=True)]


@pytest.mark.parametrize("cfg", PEFT_CASES, ids=["default-targets", "all-seven", "rslora"])
def test_saved_adapter_loads_in_peft_with_the_same_logits_merged_or_not(cfg, hf_base, tmp_path):
    import peft

    model, hf = hf_base
    apply_lora(model, cfg)
    randomize_adapters(model)
    save_adapter(model, tmp_path / "adapter")
    theirs = peft.PeftModel.from_pretrained(hf, tmp_path / "adapter").eval()
    x = torch.randint(0, CFG.vocab_size, (2, 11))
    ours = logits(model, x)
    assert not torch.allclose(ours, logits(base_model(), x), atol=1e-3)  # the update shows
    torch.testing.assert_close(ours, logits(theirs, x), atol=1e-5, rtol=1e-4)
    merged_theirs = theirs.merge_and_unload()
    merge_lora(model)
    torch.testing.assert_close(logits(model, x), logits(merged_theirs, x), atol=1e-5, rtol=1e-4)
    for name, w in merged_theirs.state_dict().items():  # the merged weights themselves
        ours_w = model.state_dict()[name.removeprefix("model.")]
        torch.testing.assert_close(ours_w, w, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("cfg", PEFT_CASES[:2], ids=["default-targets", "all-seven"])
def test_get_peft_model_same_trainable_count_and_forward(cfg, hf_base):
    import peft

    model, hf = hf_base
    theirs = peft.get_peft_model(hf, peft_config(cfg)).eval()
    apply_lora(model, cfg)
    assert trainable_parameters(model) == theirs.get_nb_trainable_parameters()
    randomize_adapters(model)
    params = dict(theirs.named_parameters())
    with torch.no_grad():  # copy ours in: PEFT names them ...q_proj.lora_A.default.weight under base_model.model.model
        for name, p in lora_state_dict(model).items():
            params["base_model.model.model." + name.replace(".weight", ".default.weight")].copy_(p)
    x = torch.randint(0, CFG.vocab_size, (3, 9))
    torch.testing.assert_close(logits(model, x), logits(theirs, x), atol=1e-5, rtol=1e-4)


def test_adapter_peft_trained_and_saved_loads_in_llmlab(hf_base, tmp_path):
    import peft

    model, hf = hf_base
    cfg = LoRAConfig(r=2, alpha=6, targets=("k_proj", "o_proj", "down_proj"))
    theirs = peft.get_peft_model(hf, peft_config(cfg)).eval()
    randomize_adapters(theirs, seed=5)
    theirs.save_pretrained(tmp_path / "peft")
    modules = ("self_attn.k_proj", "self_attn.o_proj", "mlp.down_proj")
    assert load_adapter(model, tmp_path / "peft") == [f"layers.{i}.{m}" for i in range(2) for m in modules]
    assert set(model.lora_config.targets) == set(cfg.targets) and model.lora_config.r == 2
    x = torch.randint(0, CFG.vocab_size, (2, 7))
    torch.testing.assert_close(logits(model, x), logits(theirs, x), atol=1e-5, rtol=1e-4)


def test_trainable_count_matches_the_memory_estimator():
    from llmlab.train.memory import lora_parameters

    for r in (1, 8):
        model = base_model(n_kv_head=1)
        apply_lora(model, LoRAConfig(r=r))
        assert trainable_parameters(model) == (lora_parameters(model.config, r),
                                               count_parameters(model.config) + lora_parameters(model.config, r))


@pytest.mark.parametrize("init", ["kaiming", "gaussian"])
def test_at_init_the_output_is_the_base_models_exactly(init):
    model = base_model()
    x = torch.randint(0, CFG.vocab_size, (2, 12))
    before = logits(model, x)
    apply_lora(model, LoRAConfig(r=4, targets=ALL, init=init))
    assert torch.equal(logits(model, x), before)
    layer = LoRALinear(nn.Linear(256, 128), r=4, scaling=1.0, init=init)
    A = layer.lora_A.weight
    assert not layer.lora_B.weight.any()
    if init == "kaiming":  # nn.Linear's own init: uniform within 1 / sqrt(fan_in)
        assert A.abs().max() <= 1 / 256 ** 0.5 and A.std() > 0.5 / 256 ** 0.5 / 3 ** 0.5
    else:  # N(0, 1/r)
        assert abs(A.std().item() - 1 / 4) < 0.03


@pytest.mark.parametrize("train_bias", ["none", "all"])
def test_only_adapters_and_asked_for_biases_train_and_base_weights_stay(train_bias):
    model = base_model(norm="layernorm").train()  # LayerNorm has biases
    names = apply_lora(model, LoRAConfig(r=4, train_bias=train_bias, dropout=0.1))
    assert names == [f"layers.{i}.self_attn.{p}" for i in range(2) for p in ("q_proj", "v_proj")]
    frozen = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2, weight_decay=0.1)
    x = torch.randint(0, CFG.vocab_size, (4, 16))
    for _ in range(3):
        F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
        opt.step()
        opt.zero_grad()  # grads of the last step are checked below through requires_grad
    F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten()).backward()
    for name, p in model.named_parameters():
        trains = ".lora_" in name or (train_bias == "all" and name.endswith(".bias"))
        assert p.requires_grad == trains and (p.grad is not None) == trains, name
    assert all(torch.equal(p, frozen[n]) for n, p in model.named_parameters() if n in frozen)
    assert set(lora_state_dict(model)) == {n for n, p in model.named_parameters() if p.requires_grad}


def test_merge_then_unmerge_restores_weights_and_merged_forward_equals_unmerged():
    torch.manual_seed(0)
    layer = LoRALinear(nn.Linear(16, 24), r=4, scaling=2.0)
    randomize_adapters(layer)
    w0, x = layer.base.weight.detach().clone(), torch.randn(3, 5, 16)
    y = layer(x)  # (3, 5, 24)
    layer.merge()
    layer.merge()  # a merged layer stays merged once: the update is not added twice
    torch.testing.assert_close(layer.base.weight, w0 + layer.lora_B.weight @ layer.lora_A.weight * 2.0)
    torch.testing.assert_close(layer(x), y, atol=1e-5, rtol=1e-5)
    layer.unmerge()
    torch.testing.assert_close(layer.base.weight, w0, atol=1e-6, rtol=0)
    torch.testing.assert_close(layer(x), y, atol=1e-6, rtol=0)


def test_merge_lora_leaves_plain_linears_that_fuse_and_save(tmp_path):
    from llmlab.models import load_model, save_model

    model = base_model()
    apply_lora(model, LoRAConfig(r=4, targets=ALL))
    randomize_adapters(model, std=0.2)
    x = torch.randint(0, CFG.vocab_size, (2, 10))
    before = logits(model, x)
    assert len(merge_lora(model)) == 2 * len(ALL)
    assert not any(isinstance(m, LoRALinear) for m in model.modules()) and model.lora_config is None
    assert all(p.requires_grad for p in model.parameters())  # an ordinary model again
    torch.testing.assert_close(logits(model, x), before, atol=1e-5, rtol=1e-5)
    with model.fused_inference():
        assert all(m.qkv_weight is not None for m in model.modules() if isinstance(m, Attention))
        torch.testing.assert_close(logits(model, x), before, atol=1e-5, rtol=1e-5)
    save_model(model, tmp_path / "m")
    loaded, _ = load_model(tmp_path / "m")
    assert torch.equal(logits(loaded, x), logits(model, x))


def test_lora_training_memorises_a_tiny_set():
    # a frozen head of the default init (std 0.02) caps every logit below 1, and no adapter could fit
    # anything: a base with larger weights stands in for a pretrained one
    model = base_model(init_std=0.3).train()
    apply_lora(model, LoRAConfig(r=8, alpha=16))  # q_proj and v_proj only
    x = torch.randint(0, CFG.vocab_size, (4, 17), generator=torch.Generator().manual_seed(3))
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    losses = []
    with torch_threads(1):  # matrices this small spend more time syncing threads than multiplying
        for _ in range(200):
            loss = F.cross_entropy(model(x[:, :-1]).flatten(0, 1), x[:, 1:].flatten())
            loss.backward()
            opt.step()
            opt.zero_grad()
            losses.append(loss.item())
    assert losses[-1] < 0.1 * losses[0]


@pytest.mark.parametrize("targets", [("q_proj", "v_proj"), ALL])
def test_generation_gives_the_same_tokens_unmerged_and_merged(targets):
    model = widen(base_model())  # wider weights than the init: the greedy path then varies from token to token
    apply_lora(model, LoRAConfig(r=4, targets=targets))
    randomize_adapters(model, std=0.5)
    merged = copy.deepcopy(model)
    merge_lora(merged)
    cfg = GenerationConfig(max_new_tokens=20, temperature=0.0)
    tokens = generate(model, [1, 2, 3], cfg)
    assert tokens == generate(merged, [1, 2, 3], cfg) and len(set(tokens)) > 2
    assert tokens != generate(base_model(), [1, 2, 3], cfg)


def test_bf16_autocast_and_a_bf16_model():
    model = base_model()
    apply_lora(model, LoRAConfig(r=4, targets=ALL))
    randomize_adapters(model, std=0.2)
    x = torch.randint(0, CFG.vocab_size, (2, 8))
    ref = logits(model, x)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x)
    out.float().sum().backward()
    torch.testing.assert_close(out.float(), ref, atol=0.1, rtol=0.05)
    adapters = [p for n, p in model.named_parameters() if ".lora_" in n]
    assert all(p.grad is not None and p.grad.dtype == torch.float32 for p in adapters)
    half = base_model().to(torch.bfloat16)
    apply_lora(half, LoRAConfig(r=4))
    layer = half.layers[0].self_attn.q_proj
    assert layer.lora_A.weight.dtype == torch.bfloat16
    assert half(x).dtype == torch.bfloat16


def test_adapter_round_trip_gives_the_same_logits(tmp_path):
    model = base_model()
    cfg = LoRAConfig(r=4, alpha=12, targets=("q_proj", "up_proj"), rslora=True)
    apply_lora(model, cfg)
    randomize_adapters(model)
    save_adapter(model, tmp_path / "a")
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["adapter_config.json", "adapter_model.safetensors"]
    x = torch.randint(0, CFG.vocab_size, (2, 9))
    fresh = base_model()
    load_adapter(fresh, tmp_path / "a")
    assert fresh.lora_config == cfg
    assert torch.equal(logits(fresh, x), logits(model, x))
    other = base_model()  # into the same LoRA already applied
    apply_lora(other, cfg)
    load_adapter(other, tmp_path / "a")
    assert torch.equal(logits(other, x), logits(model, x))
    save_adapter(model, tmp_path / "a")  # an earlier adapter is replaced as a whole


def test_load_refuses_a_base_it_does_not_fit_and_leaves_the_model_alone(tmp_path):
    model = base_model()
    apply_lora(model, LoRAConfig(r=4))
    save_adapter(model, tmp_path / "a")
    cases = [(base_model(dim=48), r"q_proj.lora_A.weight has shape \(4, 32\) but this model needs \(4, 48\)"),
             (base_model(n_layer=3), r"lacks \['layers.2"),
             (base_model(n_layer=1), r"has \['layers.1")]
    for other, match in cases:
        with pytest.raises(InputError, match=match):
            load_adapter(other, tmp_path / "a")
        assert getattr(other, "lora_config", None) is None
        assert not any(isinstance(m, LoRALinear) for m in other.modules())
    applied = base_model()
    apply_lora(applied, LoRAConfig(r=8))
    with pytest.raises(InputError, match="r: model 8, adapter 4"):
        load_adapter(applied, tmp_path / "a")
    (tmp_path / "c").mkdir()
    (tmp_path / "a" / "adapter_model.safetensors").rename(tmp_path / "c" / "adapter_model.safetensors")
    config = (tmp_path / "a" / "adapter_config.json").read_text()
    (tmp_path / "c" / "adapter_config.json").write_text(config.replace('"fan_in_fan_out": false', '"use_dora": true'))
    with pytest.raises(InputError, match="use_dora=True is not supported"):
        load_adapter(base_model(), tmp_path / "c")
    (tmp_path / "c" / "adapter_model.safetensors").rename(tmp_path / "a" / "adapter_model.safetensors")
    with pytest.raises(InputError, match="is not a LoRA adapter config"):
        (tmp_path / "b").mkdir()
        (tmp_path / "b" / "adapter_config.json").write_text('{"peft_type": "IA3"}')
        load_adapter(base_model(), tmp_path / "b")
    (tmp_path / "a" / "adapter_model.safetensors").write_bytes(b"truncated")
    with pytest.raises(InputError, match="cannot read"):
        load_adapter(base_model(), tmp_path / "a")


def test_save_writes_all_or_nothing(tmp_path, monkeypatch):
    import llmlab.adapt.lora as lora

    model = base_model()
    apply_lora(model, LoRAConfig(r=2))
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="not its own"):
        save_adapter(model, tmp_path / "busy")

    def fail(*a, **k):
        raise OSError("disk full")

    monkeypatch.setattr(lora, "atomic_write_json", fail)
    with pytest.raises(OSError):
        save_adapter(model, tmp_path / "new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy"]  # no folder, no temporary left behind


@pytest.mark.parametrize("kw, match", [
    ({"r": 0}, "rank r must be an integer >= 1"), ({"r": 2.5}, "rank r"), ({"alpha": 0}, "alpha must be"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\)"), ({"targets": "q_proj"}, "got the string 'q_proj'"),
    ({"targets": ()}, "distinct module names"),
    ({"targets": 3}, "tuple of module names"), ({"targets": ("q_proj", "q_proj")}, "distinct"),
    ({"targets": ("self_attn.q_proj",)}, "without dots"), ({"train_bias": "lora_only"}, "train_bias must be"),
    ({"init": "pissa"}, "init must be one of"),
])
def test_config_errors(kw, match):
    with pytest.raises(InputError, match=match):
        LoRAConfig(**kw)


def test_usage_errors_name_the_problem(tmp_path):
    assert LoRAConfig(r=4, alpha=8).scaling == 2.0 and LoRAConfig(r=4, alpha=8, rslora=True).scaling == 4.0
    model = base_model()
    with pytest.raises(InputError, match=r"\['qkv'\] match no nn.Linear .* \['down_proj', 'gate_proj', 'k_proj'"):
        apply_lora(model, LoRAConfig(targets=("q_proj", "qkv")))
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    with pytest.raises(InputError, match="tied embeddings"):
        apply_lora(model, LoRAConfig(targets=("lm_head",)))
    with pytest.raises(InputError, match="no LoRA applied"):
        merge_lora(model)
    with pytest.raises(InputError, match="no LoRA applied"):
        save_adapter(model, tmp_path / "a")
    apply_lora(model)
    with pytest.raises(InputError, match="already applied"):
        apply_lora(model)
    with pytest.raises(InputError, match=r"unknown LoRA setting\(s\) \['rank'\]"):
        apply_lora(base_model(), rank=4)
    assert apply_lora(base_model(), targets=("o_proj",), r=2) == [f"layers.{i}.self_attn.o_proj" for i in (0, 1)]
    untied = base_model(tie_embeddings=False)
    assert apply_lora(untied, LoRAConfig(targets=("lm_head",))) == ["lm_head"]
