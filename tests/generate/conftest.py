"""The decoder the transformers comparisons share, and its export as a LLaMA checkpoint."""

import pytest

from llmlab.models import ModelConfig

from ..helpers import wide_lm

CFG = ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=24)


@pytest.fixture(scope="module")
def model():
    """Weights drawn wider than the default init, whose near-uniform outputs repeat one token forever:
    these give distributions that vary from step to step, so beams part ways and EOS comes early."""
    return wide_lm(CFG, seed=0)


@pytest.fixture(scope="module")
def hf_model(model, tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    from llmlab.models.hf import export_hf

    path = tmp_path_factory.mktemp("hf")
    export_hf(model, path)
    return transformers.AutoModelForCausalLM.from_pretrained(path).eval()
