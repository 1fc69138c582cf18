"""`compare_decoding` and `llmlab generate --compare`: each strategy's row is what `generate` gives with
its settings, measured with the evaluate package's repetition and diversity metrics."""

import pytest

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.evaluate.diversity import distinct_n, rep_n
from llmlab.generate import GenerationConfig, generate
from llmlab.generate.compare import STRATEGIES, compare_decoding
from llmlab.models import ModelConfig, save_model
from llmlab.models.scoring import text_start, token_logprobs
from llmlab.tokenizers import CharTokenizer

from ..helpers import wide_lm

TEXT = ["中国经济发展很快", "北京新年人民生活", "今天天气很好我们去公园"]


@pytest.fixture(scope="module")
def model_and_tok():
    tok = CharTokenizer.train(TEXT)
    # wider than the default init: outputs that vary, loop, and end on EOS
    model = wide_lm(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=32),
                    seed=0)
    return model, tok


def test_each_row_is_generate_with_its_settings_measured(model_and_tok):
    model, tok = model_and_tok
    prompts = ["中国", "天气", "北"]
    rows = compare_decoding(model, tok, prompts, max_new_tokens=12, seed=3)
    assert [r.strategy for r in rows] == list(STRATEGIES)
    for row, settings in zip(rows, STRATEGIES.values()):
        cfg = GenerationConfig(max_new_tokens=12, seed=3, **settings)
        news = [generate(model, text_start(tok) + tok.encode(p), cfg, eos_id=tok.eos_id) for p in prompts]
        assert row.outputs == [tok.decode(n) for n in news], row.strategy
        assert row.rep == pytest.approx(sum(rep_n(o) for o in row.outputs) / 3)
        assert row.distinct2 == pytest.approx(distinct_n(row.outputs, 2))
        assert row.tokens == pytest.approx(sum(map(len, news)) / 3)
        lps = [lp for p, n in zip(prompts, news) if n
               for lp in token_logprobs(model, text_start(tok) + tok.encode(p) + n)[-len(n):]]
        assert row.nll == pytest.approx(-sum(lps) / len(lps), rel=1e-5)
        if settings.get("no_repeat_ngram_size") == 3:  # no 3-gram of prompt and output twice
            for p, n in zip(prompts, news):
                seq = text_start(tok) + tok.encode(p) + n
                assert len(set(zip(seq, seq[1:], seq[2:]))) == len(seq) - 2, (row.strategy, p)
    assert max(r.rep for r in rows) > 0 and len({r.tokens for r in rows}) > 1  # outputs that loop, or end early


def test_no_prompts_is_a_clear_error(model_and_tok):
    with pytest.raises(InputError, match="no prompts"):
        compare_decoding(*model_and_tok, [])


def test_generate_compare_prints_a_row_per_strategy(model_and_tok, tmp_path, capsys):
    model, tok = model_and_tok
    d = save_model(model, tmp_path / "model", tok)
    assert main(["generate", "--model", str(d), "--compare", "--prompt", "中国", "--max-new-tokens", "6"]) == 0
    out = capsys.readouterr().out
    table = [line for line in out.splitlines() if line.startswith("| ") and "strategy" not in line]
    assert [line.split(" | ")[0][2:] for line in table] == list(STRATEGIES)
    assert "first prompt: 中国" in out


@pytest.mark.parametrize("flags,named", [
    (["--repetition-penalty", "1.3"], "--repetition-penalty applies"), (["--num-beams", "4"], "--num-beams applies"),
    (["--no-use-cache"], "--no-use-cache applies"), (["--top-k", "5", "--temperature", "1"], "--temperature, --top-k"),
    (["--temperature", "0.8"], "--temperature applies")])
def test_generate_compare_refuses_decoding_flags_its_strategies_would_ignore(model_and_tok, tmp_path, capsys, flags,
                                                                           named):
    model, tok = model_and_tok
    d = save_model(model, tmp_path / "model", tok)
    assert main(["generate", "--model", str(d), "--compare", "--prompt", "中国", "--max-new-tokens", "2",
                 "--seed", "1", *flags]) == 2
    err = capsys.readouterr().err
    assert err.startswith("llmlab: error: ") and named in err and "--compare" in err and err.count("\n") == 1
    assert main(["generate", "--model", str(d), "--compare", "--prompt", "中国", "--max-new-tokens", "2", "--seed", "1",
                 "--no-unk"]) == 0  # the length, the seed and the bans apply
