"""LoRA on the output head of an untied model (``--lora-targets ... lm_head``): the new chat tokens' rows
of the head's frozen base weight train beside the adapters, in the Python API and through `llmlab sft`."""

import copy
import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.adapt.lora import apply_lora, load_adapter, lora_modules, token_weights, train_token_rows
from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic
from llmlab.models import CausalLM, ModelConfig, load_model, save_model
from llmlab.pipeline.sft import _trainable
from llmlab.tokenizers import CharTokenizer


@pytest.fixture(scope="module")
def base_tok():
    return CharTokenizer.train([p.text for p in arithmetic(200, max_digits=2, ops="+")])


def untied(tok, seed=0):
    torch.manual_seed(seed)
    return CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=32,
                                tie_embeddings=False))


def test_the_new_rows_of_a_lora_wrapped_head_train_and_are_counted(base_tok):
    model = untied(base_tok)
    tok = add_chat_tokens(model, base_tok, ChatTemplate())
    new = list(range(base_tok.vocab_size, tok.vocab_size))
    apply_lora(model, r=2, targets=("q_proj", "lm_head"))
    train_token_rows(model, new)
    embed, head = token_weights(model)
    assert head is model.lm_head.base.weight and head.requires_grad and embed.requires_grad
    model(torch.tensor([[1, 2, new[0], 3]])).square().mean().backward()
    for w in (embed, head):
        assert w.grad[: base_tok.vocab_size].abs().sum() == 0 and w.grad[new].abs().sum() > 0
    adapters = sum(p.numel() for m in lora_modules(model).values() for p in (m.lora_A.weight, m.lora_B.weight))
    assert _trainable(model, len(new)) == adapters + 2 * len(new) * model.config.dim  # untied: rows of both


def test_llmlab_sft_with_lora_on_an_untied_head(base_tok, tmp_path):
    base_dir = save_model(untied(base_tok), tmp_path / "base", base_tok)
    assert main(["sft", "--model", str(base_dir), "--name", "head", "--out", str(tmp_path / "runs"), "--device", "cpu",
                 "--arithmetic-max-digits", "2", "--arithmetic-ops", "+", "--arithmetic-train", "200",
                 "--general-tokens", "0", "--seq-len", "24", "--batch-size", "8", "--steps", "2",
                 "--eval-every", "0", "--eval-problems", "0", "--lora-r", "2",
                 "--lora-targets", "q_proj", "lm_head"]) == 0
    run = tmp_path / "runs" / "head"
    base, _ = load_model(base_dir)
    tuned, tok = load_model(run / "model")  # merged: plain layers
    n_new, d = tok.vocab_size - base_tok.vocab_size, base.config.dim
    q = base.layers[0].self_attn.q_proj
    lora = 2 * (q.in_features + q.out_features) + 2 * (d + tok.vocab_size)
    assert json.loads((run / "summary.json").read_text())["trainable_parameters"] == lora + 2 * n_new * d
    assert not torch.equal(tuned.lm_head.weight[: base_tok.vocab_size], base.lm_head.weight)  # the merged update


# --- a PEFT adapter on lm_head, saved with PEFT's defaults (which also save the head's base weight) -----------


def logits(model, x):
    with torch.no_grad():
        out = model(x)
    return getattr(out, "logits", out)


@pytest.fixture
def peft_head(tmp_path):
    """An untied llmlab base, and a PEFT adapter on q_proj and lm_head of its export, saved with PEFT's
    defaults: the file holds lm_head.base_layer.weight beside the adapters."""
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    from llmlab.models.hf import export_hf

    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, max_seq_len=32, tie_embeddings=False)
    base = CausalLM(cfg).eval()
    export_hf(base, tmp_path / "hf")
    hf = lambda: transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()  # noqa: E731
    theirs = peft.get_peft_model(hf(), peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "lm_head"]))
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for name, p in theirs.named_parameters():
            if ".lora_" in name:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    with pytest.warns(UserWarning, match="save_embedding_layers"):
        theirs.save_pretrained(tmp_path / "peft")
    return base, hf, tmp_path / "peft"


def rewrite(adapter, change):
    """Rewrite the adapter's tensors (PEFT's names) with `change(tensors)`."""
    path = adapter / "adapter_model.safetensors"
    tensors = load_file(path)
    change(tensors)
    save_file(tensors, path)


def test_a_peft_adapter_with_the_heads_base_weight_loads_as_in_peft(peft_head):
    import peft

    base, hf, adapter = peft_head
    key = "base_model.model.lm_head.base_layer.weight"
    assert key in load_file(adapter / "adapter_model.safetensors")  # PEFT's default saves it
    x = torch.randint(0, 40, (2, 9))
    model = copy.deepcopy(base)
    assert load_adapter(model, adapter) == ["layers.0.self_attn.q_proj", "layers.1.self_attn.q_proj", "lm_head"]
    assert torch.equal(model.lm_head.base.weight, base.lm_head.weight)  # the same base: unchanged
    theirs = peft.PeftModel.from_pretrained(hf(), adapter).eval()
    torch.testing.assert_close(logits(model, x), logits(theirs, x), atol=1e-5, rtol=1e-4)
    # a base weight that differs from this model's is loaded into the wrapped head's base, as PEFT loads it
    rewrite(adapter, lambda t: t[key].add_(0.5))
    model = copy.deepcopy(base)
    load_adapter(model, adapter)
    assert not torch.equal(model.lm_head.base.weight, base.lm_head.weight)
    theirs = peft.PeftModel.from_pretrained(hf(), adapter).eval()
    torch.testing.assert_close(logits(model, x), logits(theirs, x), atol=1e-5, rtol=1e-4)


def test_what_a_peft_adapter_holds_beyond_its_targets_is_refused_by_name(peft_head):
    base, _, adapter = peft_head
    rewrite(adapter, lambda t: t.update({"base_model.model.model.embed_tokens.weight": torch.zeros(40, 32)}))
    with pytest.raises(InputError) as e:
        load_adapter(base, adapter)
    msg = str(e.value)
    assert "it has ['embed_tokens.weight'] (1 in all), which are neither adapters nor base weights" in msg
    assert "lacks" not in msg and "another base" not in msg
    assert getattr(base, "lora_config", None) is None  # untouched
    rewrite(adapter, lambda t: (t.pop("base_model.model.model.embed_tokens.weight"),
                                t.update({"base_model.model.lm_head.base_layer.weight": torch.zeros(41, 32)})))
    with pytest.raises(InputError, match=r"lm_head.base.weight has shape \(41, 32\) but this model needs \(40, 32\) "
                                         r"\(the adapter was made for another base model\)"):
        load_adapter(base, adapter)
    assert getattr(base, "lora_config", None) is None
