"""`llmlab quantize`'s flags: each action refuses the other's, and the scoring flags need --eval-corpus,
so no flag is taken and ignored; their defaults still apply where they do something."""

import pytest

from llmlab.cli import main
from llmlab.cli.common import load_any_model
from llmlab.models import ModelConfig, save_model
from llmlab.tokenizers import CharTokenizer

from ..helpers import wide_lm

TEXT = "中国经济发展很快。北京新年人民生活。"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    tok = CharTokenizer.train([TEXT])
    model = wide_lm(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=32))
    return save_model(model, tmp_path_factory.mktemp("m") / "model", tok)


@pytest.mark.parametrize("flags,words", [
    (["--split", "test"], "--split applies with --eval-corpus"),
    (["--eval-tokens", "10"], "--eval-tokens applies with --eval-corpus"),
    (["--eval-tokens", "4000"], "--eval-tokens applies with --eval-corpus"),  # given at its default: still nothing
    (["--fmt", "e5m2"], "--fmt applies to fp8-table"),
    (["--all"], "--all applies to fp8-table"),
])
def test_quantizing_refuses_flags_it_would_ignore(model_dir, tmp_path, capsys, flags, words):
    assert main(["quantize", "--model", str(model_dir), "-o", str(tmp_path / "q"), *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"llmlab: error: {words}") and err.endswith(": leave it out\n"), err
    assert not (tmp_path / "q").exists()  # refused before anything was written


@pytest.mark.parametrize("flags,flag", [
    (["--bits", "4", "--model", "M", "--eval-corpus", "pfr1998"], "--model"), (["--bits", "8"], "--bits"),
    (["-o", "q"], "-o"), (["--asymmetric"], "--asymmetric"), (["--activations", "float"], "--activations"),
    (["--group-size", "0"], "--group-size"), (["--targets", "lm_head"], "--targets"), (["--split", "dev"], "--split"),
    (["--eval-tokens", "9"], "--eval-tokens")])
def test_fp8_table_refuses_the_quantizing_flags(capsys, flags, flag):
    assert main(["quantize", "fp8-table", *flags]) == 2
    captured = capsys.readouterr()
    assert captured.err == f"llmlab: error: {flag} applies to quantizing a model, not to fp8-table (which prints a " \
                           "format): leave it out\n" and captured.out == ""


def test_the_defaults_apply_where_the_flags_do_something(model_dir, tmp_path, capsys):
    assert main(["quantize", "fp8-table"]) == 0
    assert capsys.readouterr().out.split()[:2] == ["format", "e4m3"]
    text = tmp_path / "long.txt"
    text.write_text((TEXT + "\n") * 250, encoding="utf-8")  # 5,000 characters: more than the default 4,000
    assert main(["quantize", "--model", str(model_dir), "-o", str(tmp_path / "q"), "--eval-corpus", str(text)]) == 0
    assert "perplexity on 4000 tokens" in capsys.readouterr().out
    model, _ = load_any_model(str(tmp_path / "q"))
    layer = model.layers[0].self_attn.q_proj
    assert layer.bits == 8 and layer.group_size is None and layer.activations == "float"
