"""`llmlab chat` as a user runs it: each stdin line answered, and a flag that would do nothing refused."""

import io

import pytest

from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.cli import main
from llmlab.models import ModelConfig, save_model
from llmlab.pipeline.sft import tokenizer_config
from llmlab.tokenizers import CharTokenizer

from ..helpers import wide_lm


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    base = CharTokenizer.train(["中国经济发展很快。", "12+30=42"])
    model = wide_lm(ModelConfig(vocab_size=base.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=48))
    tok = add_chat_tokens(model, base, ChatTemplate())
    return save_model(model, tmp_path_factory.mktemp("chat") / "model", tok,
                      tokenizer_config=tokenizer_config(tok, ChatTemplate()))


def chat(chat_dir, monkeypatch, *flags) -> int:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("中国\n".encode())))
    return main(["chat", "--model", str(chat_dir), "--max-new-tokens", "3", *flags])


def test_max_calls_without_tools_is_refused_in_one_line(chat_dir, monkeypatch, capsys):
    """--max-calls bounds --tools' calculator calls: without --tools it would do nothing, even at its default."""
    for n in ("7", "4"):
        assert chat(chat_dir, monkeypatch, "--max-calls", n) == 2
        assert capsys.readouterr().err == ("llmlab: error: --max-calls bounds the calculator calls of --tools: "
                                           "give --tools or leave it out\n")


def test_max_calls_reaches_the_agent_loop_and_defaults_to_4(chat_dir, monkeypatch, capsys):
    import llmlab.generate.agent as agent

    seen = []
    real = agent.run_agent

    def recording(*a, max_calls, **kw):
        seen.append(max_calls)
        return real(*a, max_calls=max_calls, **kw)

    monkeypatch.setattr(agent, "run_agent", recording)
    assert chat(chat_dir, monkeypatch, "--tools", "--max-calls", "0") == 0
    assert chat(chat_dir, monkeypatch, "--tools") == 0
    assert chat(chat_dir, monkeypatch) == 0  # no --tools: no loop
    assert seen == [0, 4]
    assert len(capsys.readouterr().out.splitlines()) == 3  # a reply per run
