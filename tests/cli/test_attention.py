"""`llmlab attention`: a heatmap PNG of a saved model's attention weights."""

import torch

from llmlab.cli import main
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.tokenizers import CharTokenizer


def saved_model(tmp_path):
    tok = CharTokenizer.train(["中国经济发展", "北京新年"])
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=16))
    return save_model(model, tmp_path / "model", tok)


def test_writes_a_png_heatmap(tmp_path, capsys):
    d = saved_model(tmp_path)
    out = tmp_path / "attn.png"
    assert main(["attention", "--model", str(d), "--text", "中国经济", "--layer", "1", "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "5 tokens, layer 1, 2 heads" in capsys.readouterr().out


def test_bad_layer_and_long_text_are_named(tmp_path, capsys):
    d = saved_model(tmp_path)
    png = str(tmp_path / "a.png")
    assert main(["attention", "--model", str(d), "--text", "中国", "--layer", "5", "--out", png]) == 2
    assert "--layer" in capsys.readouterr().err
    assert main(["attention", "--model", str(d), "--text", "中" * 40, "--out", png]) == 2
    assert "context" in capsys.readouterr().err
