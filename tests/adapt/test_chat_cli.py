"""`llmlab chat` as a user runs it: each stdin line answered, and a flag that would do nothing refused."""

import io

import pytest

from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.adapt.tools import add_tool_characters
from llmlab.cli import main
from llmlab.models import ModelConfig, save_model
from llmlab.pipeline.sft import tokenizer_config
from llmlab.tokenizers import CharTokenizer

from ..helpers import wide_lm


def chat_model(tmp_path_factory, tools: bool):
    base = CharTokenizer.train(["中国经济发展很快。", "12+30=42"])
    model = wide_lm(ModelConfig(vocab_size=base.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=48))
    tok = add_chat_tokens(model, base, ChatTemplate())
    if tools:  # as llmlab sft --data arithmetic-tools gives it the call's characters
        tok = add_tool_characters(model, tok)
    return save_model(model, tmp_path_factory.mktemp("chat") / "model", tok,
                      tokenizer_config=tokenizer_config(tok, ChatTemplate()))


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    return chat_model(tmp_path_factory, tools=False)


@pytest.fixture(scope="module")
def tools_dir(tmp_path_factory):
    return chat_model(tmp_path_factory, tools=True)


def chat(chat_dir, monkeypatch, *flags) -> int:
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO("中国\n".encode())))
    return main(["chat", "--model", str(chat_dir), "--max-new-tokens", "3", *flags])


def test_max_calls_without_tools_is_refused_in_one_line(chat_dir, monkeypatch, capsys):
    """--max-calls bounds --tools' calculator calls: without --tools it would do nothing, even at its default."""
    for n in ("7", "4"):
        assert chat(chat_dir, monkeypatch, "--max-calls", n) == 2
        assert capsys.readouterr().err == ("llmlab: error: --max-calls bounds the calculator calls of --tools: "
                                           "give --tools or leave it out\n")


def test_tools_are_refused_for_a_model_that_cannot_write_a_call(chat_dir, tools_dir, monkeypatch, capsys):
    """The chat model's tokenizer has no '[' or '→': it can never write a call, and --tools would do nothing,
    in `llmlab chat` as in `llmlab eval arithmetic`."""
    evaluate = ["eval", "arithmetic", "--problems", "2", "--max-digits", "2", "--max-new-tokens", "2", "--tools"]
    assert chat(chat_dir, monkeypatch, "--tools") == 2
    assert main([*evaluate, "--model", str(chat_dir)]) == 2
    errors = capsys.readouterr().err.splitlines()
    assert len(errors) == 2
    for err in errors:
        assert err.startswith("llmlab: error: --tools: the model's tokenizer cannot write a calculator call")
        assert err.endswith("fine-tune it with llmlab sft --data arithmetic-tools")
    assert main([*evaluate, "--model", str(tools_dir)]) == 0  # a model that can call is measured


def test_max_calls_reaches_the_agent_loop_and_defaults_to_4(tools_dir, monkeypatch, capsys):
    import llmlab.generate.agent as agent

    seen = []
    real = agent.run_agent

    def recording(*a, max_calls, **kw):
        seen.append(max_calls)
        return real(*a, max_calls=max_calls, **kw)

    monkeypatch.setattr(agent, "run_agent", recording)
    assert chat(tools_dir, monkeypatch, "--tools", "--max-calls", "0") == 0
    assert chat(tools_dir, monkeypatch, "--tools") == 0
    assert chat(tools_dir, monkeypatch) == 0  # no --tools: no loop
    assert seen == [0, 4]
    assert len(capsys.readouterr().out.splitlines()) == 3  # a reply per run
