"""`export_hf` writes only weights its LLaMA name table maps: a model carrying anything else (a LoRA
adapter, quantized layers, a soft prompt) is refused before a file is written, instead of exporting a
folder transformers would load with random weights in their place."""

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models.config import ModelConfig
from llmlab.models.decoder import CausalLM
from llmlab.models.hf import export_hf

CFG = ModelConfig(vocab_size=50, dim=32, n_layer=2, n_head=4, max_seq_len=64)


def lora_model() -> CausalLM:
    """A model with LoRA on q and v, its updates non-zero (so a dropped adapter would change the logits)."""
    from llmlab.adapt.lora import apply_lora

    torch.manual_seed(0)
    model = CausalLM(CFG).eval()
    apply_lora(model)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora" in name:
                p.add_(torch.randn_like(p) * 0.5)
    return model


def quantized_model() -> CausalLM:
    from llmlab.adapt.quantize import QuantConfig, quantize_model

    model = CausalLM(CFG).eval()
    quantize_model(model, QuantConfig())
    return model


def prompted_model() -> CausalLM:
    from llmlab.adapt.prompt_tuning import apply_prompt_tuning

    model = CausalLM(CFG).eval()
    apply_prompt_tuning(model, n_virtual=4, init="random")
    return model


@pytest.mark.parametrize("build, key, advice", [
    (lora_model, r"layers\.0\.self_attn\.q_proj\.base\.weight", "merge_lora"),
    (quantized_model, r"layers\.0\.self_attn\.q_proj\.qweight", "float model"),
    (prompted_model, r"soft_prompt\.embeddings", "remove_prompt"),
])
def test_a_model_with_weights_outside_the_llama_layout_is_refused_before_writing(tmp_path, build, key, advice):
    model = build()
    with pytest.raises(InputError, match=f"no place for .*{key}.*{advice}"):
        export_hf(model, tmp_path / "hf")
    assert not (tmp_path / "hf").exists()
    assert list(tmp_path.iterdir()) == []  # no temporary folder left either


def test_a_merged_lora_model_exports_with_its_logits(tmp_path):
    transformers = pytest.importorskip("transformers")
    from llmlab.adapt.lora import merge_lora

    model = lora_model()
    x = torch.randint(0, CFG.vocab_size, (2, 20))
    with torch.no_grad():
        before = model(x)
    merge_lora(model)
    export_hf(model, tmp_path / "hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "hf").eval()
    with torch.no_grad():
        torch.testing.assert_close(hf(x).logits, before, atol=1e-5, rtol=1e-4)
