import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig, count_parameters, load_model, parameter_breakdown, save_model
from llmlab.models.card import ModelCard
from llmlab.tokenizers import CharTokenizer

CONFIGS = [
    ModelConfig(vocab_size=50, dim=32, n_layer=2, n_head=4, n_kv_head=4, max_seq_len=32),
    ModelConfig(vocab_size=50, dim=32, n_layer=3, n_head=4, n_kv_head=2, max_seq_len=32, tie_embeddings=False),
    ModelConfig(vocab_size=37, dim=48, n_layer=1, n_head=6, n_kv_head=1, ffn_hidden=40, max_seq_len=16),
    # dynamic NTK within its trained length (16 of 32) is plain RoPE, with or without a cache
    ModelConfig(vocab_size=50, dim=32, n_layer=2, n_head=4, n_kv_head=4, max_seq_len=32, rope_scaling="dynamic",
                rope_factor=2.0, rope_original_max_seq_len=16),
]


@pytest.mark.parametrize("cfg", CONFIGS)
def test_parameter_counter_equals_sum_of_parameter_sizes(cfg):
    model = CausalLM(cfg)
    assert count_parameters(cfg) == sum(p.numel() for p in model.parameters())
    emb = cfg.vocab_size * cfg.dim * (1 if cfg.tie_embeddings else 2)
    assert count_parameters(cfg, non_embedding=True) == count_parameters(cfg) - emb
    assert sum(parameter_breakdown(cfg).values()) == count_parameters(cfg)


def test_llama_7b_config_counts_6_74_billion():
    llama7b = ModelConfig(vocab_size=32000, dim=4096, n_layer=32, n_head=32, n_kv_head=32, ffn_hidden=11008,
                          max_seq_len=2048, tie_embeddings=False)
    assert count_parameters(llama7b) == 6_738_415_616  # the published LLaMA-7B figure


@pytest.mark.parametrize("cfg", CONFIGS)
def test_model_is_causal(cfg):
    torch.manual_seed(0)
    model = CausalLM(cfg).eval()
    x = torch.randint(0, cfg.vocab_size, (2, 12))
    y = x.clone()
    y[:, 7:] = torch.randint(0, cfg.vocab_size, (2, 5))
    with torch.no_grad():
        assert torch.allclose(model(x)[:, :7], model(y)[:, :7], atol=1e-6)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_kv_cache_logits_equal_full_forward(cfg):
    torch.manual_seed(1)
    model = CausalLM(cfg).eval()
    x = torch.randint(0, cfg.vocab_size, (2, 14))  # within every config's trained length
    with torch.no_grad():
        full = model(x)
        cache = model.new_cache(batch=2)
        pieces = [model(x[:, :5], cache)] + [model(x[:, i:i + 1], cache) for i in range(5, 11)]
        pieces.append(model(x[:, 11:], cache))
    assert torch.allclose(torch.cat(pieces, dim=1), full, atol=1e-5)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_logits_to_keep_returns_the_last_positions_logits(cfg):
    torch.manual_seed(2)
    model = CausalLM(cfg).eval()
    x = torch.randint(0, cfg.vocab_size, (2, 9))
    with torch.no_grad():
        full = model(x)
        for k in (1, 4, 9, 20):  # past T: every position, as a slice would give
            assert torch.allclose(model(x, logits_to_keep=k), full[:, -k:], atol=1e-5)  # other matmul blocking
        assert torch.equal(model(x, logits_to_keep=0), full)
        assert model(x, logits_to_keep=4).shape == (2, 4, cfg.vocab_size)
        cache = model.new_cache(batch=2)
        model(x[:, :5], cache, logits_to_keep=1)
        assert torch.allclose(model(x[:, 5:], cache, logits_to_keep=2), full[:, -2:], atol=1e-5)
    with pytest.raises(InputError, match="logits_to_keep"):
        model(x, logits_to_keep=-1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_alibi_training_takes_the_fused_attention_path(dtype):
    """ALiBi's bias reaches SDPA as a 4-D mask, which the fused CPU kernel takes. A 3-D (nh, T, S) bias sent
    every layer to the unfused math path, which saves the (B, nh, T, S) attention weights in fp32 for
    backward: memory quadratic in the length (30% more saved bytes, 1.5x the step time at T = 512)."""
    cfg = ModelConfig(**{**CONFIGS[1].__dict__, "position": "alibi"})
    model = CausalLM(cfg).to(dtype).train()
    x = torch.randint(0, cfg.vocab_size, (2, 12))
    saved = []
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t) or t, lambda t: t):
        model(x).float().sum().backward()
    assert not [t for t in saved if t.shape == (2, cfg.n_head, 12, 12)]  # no per-batch weights
    assert all(p.grad is not None for p in model.parameters())


def test_alibi_bias_is_cast_once_under_autocast():
    """Under autocast SDPA casts an fp32 bias to 16 bits in every layer and saves each copy, n_head*T*T x 2 B a
    layer (3 GiB for 24 layers of 16 heads at 2048 tokens, over half their activations): it is cast once."""
    cfg = ModelConfig(**{**CONFIGS[1].__dict__, "position": "alibi"})
    model = CausalLM(cfg).train()
    x = torch.randint(0, cfg.vocab_size, (2, 12))
    biases = {}

    def pack(t):
        if t.shape == (1, cfg.n_head, 12, 12):
            biases[t.untyped_storage().data_ptr()] = t.dtype
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), torch.autocast("cpu", dtype=torch.bfloat16):
        model(x)
    assert list(biases.values()) == [torch.bfloat16]  # one bias for all 3 layers


def test_position_beyond_context_is_a_clear_error():
    cfg = CONFIGS[2]
    with pytest.raises(ValueError, match="beyond the context length"):
        CausalLM(cfg)(torch.zeros(1, cfg.max_seq_len + 1, dtype=torch.long))


def test_config_validation_names_the_rule():
    with pytest.raises(InputError, match="divisible by n_kv_head"):
        ModelConfig(n_head=4, n_kv_head=3)
    with pytest.raises(InputError, match="must be even for RoPE"):
        ModelConfig(dim=12, n_head=4)


def test_save_load_round_trip_and_strict_loading(tmp_path):
    torch.manual_seed(2)
    cfg = CONFIGS[1]
    model = CausalLM(cfg).eval()
    tok = CharTokenizer.train(["abcdefg"])
    save_model(model, tmp_path / "m", tok, ModelCard(name="t", parameters=count_parameters(cfg)))
    assert {p.name for p in (tmp_path / "m").iterdir()} == {"config.json", "model.safetensors", "tokenizer.json",
                                                            "README.md"}
    loaded, tok2 = load_model(tmp_path / "m")
    x = torch.randint(0, cfg.vocab_size, (1, 9))
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert tok2.encode("gab") == tok.encode("gab")
    # weights that do not fit the config are refused, not half-loaded
    save_model(CausalLM(CONFIGS[0]), tmp_path / "other")
    (tmp_path / "m" / "model.safetensors").write_bytes((tmp_path / "other" / "model.safetensors").read_bytes())
    with pytest.raises(InputError, match="do not match the config"):
        load_model(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(InputError, match="cannot read"):
        load_model(tmp_path / "m")
    config = tmp_path / "m" / "config.json"
    config.write_text(config.read_text().replace('"causal-decoder"', '"encoder"'))
    with pytest.raises(InputError, match="holds a 'encoder' model"):
        load_model(tmp_path / "m")
    with pytest.raises(InputError, match=r"config\.json' is a file, expected a folder"):  # not "does not exist"
        load_model(config)


def test_config_without_a_shape_field_is_refused_and_older_configs_still_load(tmp_path):
    import json

    torch.manual_seed(2)
    cfg = CONFIGS[2]  # every shape field off its default
    model = CausalLM(cfg).eval()
    save_model(model, tmp_path / "m")
    path = tmp_path / "m" / "config.json"
    doc = json.loads(path.read_text())
    # fields added after the first format: an older config.json lacks them and must load unchanged
    later = ("ffn_kind", "position", "rope_scaling", "rope_factor", "rope_original_max_seq_len", "norm",
             "norm_position", "n_experts", "moe_top_k", "moe_router", "moe_capacity_factor", "moe_every",
             "moe_aux_loss_coef", "moe_z_loss_coef")
    old = {**doc, "config": {k: v for k, v in doc["config"].items() if k not in later}}
    path.write_text(json.dumps(old))
    x = torch.randint(0, cfg.vocab_size, (1, 9))
    with torch.no_grad():
        assert torch.equal(load_model(tmp_path / "m")[0](x), model(x))
    # a shape field missing would silently take its default: refused, naming the fields and the file
    path.write_text(json.dumps({**doc, "config": {k: v for k, v in doc["config"].items()
                                                  if k not in ("dim", "ffn_hidden")}}))
    with pytest.raises(InputError, match=r"config\.json'.*lacks \['dim', 'ffn_hidden'\]"):
        load_model(tmp_path / "m")


@pytest.mark.parametrize("cfg", CONFIGS)
def test_export_matches_hf_transformers_llama(cfg, tmp_path):
    transformers = pytest.importorskip("transformers")
    from llmlab.models.hf import export_hf

    torch.manual_seed(3)
    model = CausalLM(cfg).eval()
    export_hf(model, tmp_path)
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    x = torch.randint(0, cfg.vocab_size, (2, 11))
    with torch.no_grad():
        ours, theirs = model(x), hf(x).logits
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("tie", [True, False])
def test_import_from_a_transformers_llama_directory(tmp_path, tie):
    transformers = pytest.importorskip("transformers")
    from llmlab.models.hf import import_hf

    torch.manual_seed(4)
    hf_cfg = transformers.LlamaConfig(vocab_size=40, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=32,
                                      tie_word_embeddings=tie)
    hf = transformers.LlamaForCausalLM(hf_cfg).eval()
    hf.save_pretrained(tmp_path)
    ours = import_hf(tmp_path)
    assert ours.config.tie_embeddings == tie and ours.config.n_kv_head == 2
    x = torch.randint(0, 40, (2, 9))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), hf(x).logits, atol=1e-5, rtol=1e-4)
    if tie:
        return
    # a config missing a size, and missing or damaged weights: one-line errors naming the file
    import json

    config = json.loads((tmp_path / "config.json").read_text())
    (tmp_path / "config.json").write_text(json.dumps({k: v for k, v in config.items() if k != "rms_norm_eps"}))
    with pytest.raises(InputError, match=r"lacks numbers for \['rms_norm_eps'\]"):
        import_hf(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(config))
    (tmp_path / "model.safetensors").write_bytes(b"truncated")
    with pytest.raises(InputError, match="cannot read"):
        import_hf(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    with pytest.raises(InputError, match="has no model.safetensors"):
        import_hf(tmp_path)


@pytest.mark.parametrize("kind", ["swiglu", "relu", "geglu"])
def test_export_refuses_a_mixture_of_experts_before_writing(tmp_path, kind):
    """LLaMA has no experts, and the MoE layouts (Mixtral, Qwen-MoE) hold only SwiGLU ones: any MoE model,
    of any expert kind, is a clear error and leaves no folder behind."""
    from llmlab.models.hf import export_hf

    model = CausalLM(ModelConfig(**{**CONFIGS[0].__dict__, "n_experts": 2, "ffn_kind": kind}))
    with pytest.raises(InputError, match=f"mixture-of-experts.*{kind}"):
        export_hf(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()


def test_flops_per_token_is_six_n_plus_attention():
    from llmlab.models.params import flops_per_token

    cfg = ModelConfig(vocab_size=32000, dim=4096, n_layer=32, n_head=32, n_kv_head=32, ffn_hidden=11008,
                      max_seq_len=2048, tie_embeddings=False)
    d, h = 4096, 11008
    n = 32 * (4 * d * d + 3 * d * h) + 32000 * d  # matmul weights by hand: q,k,v,o; gate,up,down; the head
    assert flops_per_token(cfg, 2048) == 6 * n + 6 * 2 * cfg.n_layer * 2048 * cfg.dim
    assert flops_per_token(cfg, 2048, training=False) * 3 == flops_per_token(cfg, 2048)


def test_model_folders_are_written_whole_and_never_over_other_files(tmp_path):
    from llmlab.models.hf import export_hf

    torch.manual_seed(3)
    model = CausalLM(CONFIGS[0]).eval()
    save_model(model, tmp_path / "m")
    save_model(CausalLM(CONFIGS[1]), tmp_path / "m")  # an earlier save is replaced as a whole
    assert load_model(tmp_path / "m")[0].config == CONFIGS[1]
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="not its own"):
        save_model(model, tmp_path / "mine")
    assert [p.name for p in (tmp_path / "mine").iterdir()] == ["notes.txt"]
    # a model HF cannot express is refused before anything is written, and an earlier export stays whole
    export_hf(model, tmp_path / "hf")
    before = {p.name: p.read_bytes() for p in (tmp_path / "hf").iterdir()}
    alibi = CausalLM(ModelConfig(**{**CONFIGS[0].__dict__, "position": "alibi"}))
    for target in ("hf", "fresh"):
        with pytest.raises(InputError):
            export_hf(alibi, tmp_path / target)
    assert {p.name: p.read_bytes() for p in (tmp_path / "hf").iterdir()} == before
    assert not (tmp_path / "fresh").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "m", "mine"]  # no temporary folders left
