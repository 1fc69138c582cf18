"""The tool-using generation loop and its calculator (llmlab.generate.agent)."""

import math
import time

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.generate import GenerationConfig, generate
from llmlab.generate.agent import (
    agent_step,
    calculator,
    call_text,
    calls_in,
    final_answer,
    parse_call,
    run_agent,
    transcript_pieces,
)
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.tokenizers import CharTokenizer

# ------------------------------------------------------------------------------------ calculator

numbers = st.one_of(st.integers(0, 10**6), st.floats(0, 1e6, allow_nan=False).map(lambda x: round(x, 3)))
expressions = st.recursive(
    numbers.map(repr),
    lambda inner: st.one_of(
        st.tuples(inner, st.sampled_from(["+", "-", "*", "/", "//", "%"]), inner).map(lambda t: "({}{}{})".format(*t)),
        inner.map(lambda e: f"-{e}"),
        st.tuples(inner, st.integers(0, 3)).map(lambda t: f"({t[0]})**{t[1]}"),
    ),
    max_leaves=8,
)


@settings(max_examples=300, deadline=None)
@given(expressions)
def test_the_calculator_agrees_with_python_on_arithmetic(expr):
    try:
        want = eval(expr)  # the reference: Python's own arithmetic on the same expression
    except ZeroDivisionError:
        assert calculator(expr) == "error: division by zero"
        return
    except OverflowError:
        assert calculator(expr).startswith("error:")
        return
    got = calculator(expr)
    if isinstance(want, complex) or len(str(int(abs(want))) if math.isfinite(want) else "") > 100:
        assert got.startswith("error:")
        return
    if isinstance(want, float) and not math.isfinite(want):
        assert got.startswith("error:") or float(got) == want
        return
    assert float(got) == want or math.isclose(float(got), want, rel_tol=1e-15), (expr, got, want)
    if isinstance(want, int):
        assert got == str(want)  # integers exactly, every digit


@pytest.mark.parametrize("expr", ["__import__('os')", "open('x')", "a+1", "(1).real", "'a'*3", "True+1",
                                  "[1,2]", "lambda: 1", "1 if 1 else 2", "", "1+", "(-8)**0.5"])
def test_the_calculator_evaluates_nothing_but_arithmetic(expr):
    assert calculator(expr).startswith("error:")


def test_huge_results_are_refused_quickly_and_chinese_forms_work():
    start = time.perf_counter()
    for expr in ["9**9**9", "10**99*10**99", "(10**50)**3", "1" + "*9" * 100, "2**" * 80 + "2"]:
        assert calculator(expr).startswith("error:"), expr
    assert time.perf_counter() - start < 5  # refused before computing, not after
    assert calculator("１２×３４") == "408" and calculator("7÷2") == "3.5" and calculator(" 3 - 5 ") == "-2"


def test_negative_exponents_give_small_numbers_and_only_large_results_are_refused():
    for expr in ["2**-400", "10**-200", "0.5**400", "(-2)**-3", "2**-(10**50)", "(10**99)**-3"]:
        assert float(calculator(expr)) == eval(expr), expr  # Python's own value, however small
    for expr in ["0.5**-400", "(1e-300)**-2", "(-0.1)**-103"]:
        assert calculator(expr) == "error: result too large", expr  # a tiny base to a negative power is large
    assert calculator("0**-1") == calculator("0.0**-2") == "error: division by zero"


@pytest.mark.parametrize("expr", ["1e308*10", "1e308*10-1e308*10", "-1e308*10", "1e999"])
def test_a_float_past_its_range_is_refused_not_written_as_inf_or_nan(expr):
    assert not math.isfinite(eval(expr))  # Python's float: inf or nan
    assert calculator(expr) == calculator("2.5**1000") == "error: result too large"  # as a power past it is


def test_an_operand_longer_than_max_digits_is_refused_as_a_result_is():
    from llmlab.generate.agent import MAX_DIGITS

    longest = "9" * MAX_DIGITS
    assert calculator(longest) == longest and calculator(longest + "-1") == str(int(longest) - 1)
    for expr in ["1" * (MAX_DIGITS + 1), "1" * 150, "1" * 150 + "-1", "-" + "2" * (MAX_DIGITS + 1)]:
        assert calculator(expr) == calculator("10**" + str(MAX_DIGITS)) == "error: result too large", expr


# ------------------------------------------------------------------------------------ the loop

encode = lambda s: [ord(c) for c in s]  # noqa: E731  a character is a token
decode = lambda ids: "".join(map(chr, ids))  # noqa: E731


def scripted(first: str, then: str, seen: list[str]):
    """A "model" that writes `first`, and once a result is in its context writes `then` with the
    result after it; it records each context it is given."""

    def step(ids, n, start):
        text = decode(ids)
        seen.append(text)
        plan = then + text[text.rindex("→") + 1 : text.rindex("]")] if text.endswith("]") else first
        yield from encode(plan)[:n]

    return step


def test_a_call_is_answered_and_the_model_goes_on_reading_the_result():
    seen: list[str] = []
    r = run_agent(scripted("[calc(12*34)→这些不该出现", "答", seen), encode, decode, encode("问："))
    assert r.text == "[calc(12*34)→408]答408"  # what came after the arrow was dropped
    assert [(c.name, c.argument, c.result, c.position) for c in r.calls] == [("calc", "12*34", "408", 0)]
    assert (r.stopped, r.generated) == ("eos", len("[calc(12*34)→") + len("答408"))
    assert seen == ["问：", "问：[calc(12*34)→408]"]  # the whole context each time, prompt included


def test_unknown_tools_call_limits_and_token_budget():
    r = run_agent(scripted("[search(北京)→", "", []), encode, decode, [])
    assert r.calls[0].result == "error: unknown tool search" and r.text.startswith("[search(北京)→error")
    r = run_agent(scripted("[calc(1+1)→", "", []), encode, decode, [], max_calls=0)
    assert (r.text, r.calls, r.stopped) == ("[calc(1+1)→", (), "max_calls")
    r = run_agent(scripted("[calc(1+1)→", "=", []), encode, decode, [], max_new_tokens=len("[calc(1+1)→") + 1)
    assert (r.text, r.stopped) == ("[calc(1+1)→2]=", "max_new_tokens")  # the result is not counted
    r = run_agent(scripted("abc→ [x→", "", []), encode, decode, [])
    assert (r.text, r.calls, r.stopped) == ("abc→ [x→", (), "eos")  # arrows outside a call are text
    with pytest.raises(InputError, match="max_new_tokens"):
        run_agent(scripted("", "", []), encode, decode, [], max_new_tokens=0)


def writes(*pieces: str, seen: list | None = None):
    """A "model" that writes `pieces[i]` on the loop's i-th call (nothing after the last), recording each
    context and output start it is given."""
    left = iter(pieces)

    def step(ids, n, start):
        if seen is not None:
            seen.append((decode(ids), start))
        yield from encode(next(left, ""))[:n]

    return step


@pytest.mark.parametrize("argument", ["1+", "3/2", "9**999", "1/0"])
def test_the_text_shows_the_result_a_tokenizer_cannot_encode(argument):
    """A tool model's tokenizer may lack letters and '.': the model reads <unk> there, as encoded, but the
    text the loop returns holds the tool's own words."""
    known = set("[calc()→]0123456789+-*/=")
    unk = 0
    encode_known = lambda s: [ord(c) if c in known else unk for c in s]  # noqa: E731
    decode_known = lambda ids: "".join("<unk>" if i == unk else chr(i) for i in ids)  # noqa: E731
    seen = []
    step = writes(f"[calc({argument})→", "=7", seen=seen)
    r = run_agent(step, encode_known, decode_known, encode_known("1="))
    result = calculator(argument)
    assert r.text == f"[calc({argument})→{result}]=7" and r.calls[0].result == result
    assert set(result) - known  # the case at hand: a result the tokenizer cannot write
    assert seen[1][0] == decode(encode_known(f"1=[calc({argument})→{result}]"))  # what the model read


def test_a_call_the_prompt_begins_is_answered_when_the_model_finishes_it():
    seen = []
    r = run_agent(writes("*34)→", "答", seen=seen), encode, decode, encode("12*34=[calc(12"))
    assert r.text == "*34)→408]答" and seen[1] == ("12*34=[calc(12*34)→408]", len("12*34=[calc(12"))
    assert [(c.name, c.argument, c.result, c.position) for c in r.calls] == [("calc", "12*34", "408",
                                                                               -len("[calc(12"))]
    r = run_agent(writes("4*5)→"), encode, decode, encode("问[calc("))  # the whole call after the prompt's "["
    assert r.text == "4*5)→20]" and r.calls[0].argument == "4*5"
    # a whole call in the prompt is history, answered or not: only the model's own calls are run
    for prompt in ("[calc(1+1)→2]", "[calc(1+1)→", "[calc(1)]", "[x] "):
        r = run_agent(writes("5)→[calc(2*3)→"), encode, decode, encode(prompt), max_calls=1)
        assert [(c.argument, c.position) for c in r.calls] == [("2*3", len("5)→"))], prompt


def test_parse_call_takes_only_a_call_just_finished():
    assert parse_call("x=[calc((1+2)*3)→") == ("calc", "(1+2)*3", 2)
    assert parse_call("[calc(1)→3]") is None and parse_call("[calc 1→") is None and parse_call("[(1)→") is None


@pytest.mark.parametrize("first, then", [("[calc(23+45)→", "68"), ("算[calc(1+2)→", "是3[calc(3*3)→"),
                                         ("", "68"), ("[calc(2-9)→", "")])
def test_transcript_pieces_are_what_the_model_wrote_and_what_the_loop_wrote(first, then):
    """The loop's own transcript, cut by `transcript_pieces`: the model's pieces are exactly the tokens it
    generated, the others exactly what the loop wrote in (each result and its bracket)."""
    r = run_agent(scripted(first, then, []), encode, decode, encode("问"), max_calls=1)
    pieces = transcript_pieces(r.text)
    assert "".join(p for p, _ in pieces) == r.text
    assert sum(len(p) for p, mine in pieces if mine) == r.generated  # a character is a token here
    assert [p for p, mine in pieces if not mine] == [c.result + "]" for c in r.calls]
    assert calls_in(r.text)[:len(r.calls)] == [(c.name, c.argument) for c in r.calls]


def test_the_final_answer_is_what_follows_the_last_answered_call():
    assert final_answer(call_text("calc", "23+45", "68") + "68") == "68"
    assert final_answer("[calc(23+45)→68]") == ""  # the right number, but only inside the call
    assert final_answer("[calc(1+1)→2]2[calc(2*3)→6]6 ") == "6 "
    assert final_answer("[calc(1+1)→2]2[calc(2*3)→") == "2[calc(2*3)→"  # an unanswered call is no answer
    assert final_answer("the answer is 68") == "the answer is 68" and final_answer("") == ""
    assert calls_in("[calc(1)→1]x[sum(2,3)→") == [("calc", "1"), ("sum", "2,3")] and calls_in("[calc 1→") == []


# ------------------------------------------------------------------------------------ with a model

def test_with_a_model_and_no_call_the_loop_generates_what_generate_does(tmp_path, capsys):
    tok = CharTokenizer.train(["12*34=[calc(12*34)→408]408", "问答"])
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=4, n_kv_head=2,
                                 max_seq_len=48)).eval()
    arrow = tok.encode("→")
    cfg = GenerationConfig(max_new_tokens=20, temperature=0.0, suppress_tokens=tuple(arrow))
    prompt = [tok.bos_id] + tok.encode("12*34=")
    r = run_agent(agent_step(model, cfg, tok.eos_id), tok.encode, tok.decode, prompt, max_new_tokens=20)
    ids = generate(model, prompt, cfg, eos_id=tok.eos_id)
    assert r.text == tok.decode(ids) and r.generated == len(ids) and r.calls == ()

    d = save_model(model, tmp_path / "m", tok)
    assert main(["generate", "--model", str(d), "--prompt", "12*34=", "--tools", "--max-new-tokens", "5"]) == 0
    assert capsys.readouterr().out.startswith("12*34=")
    assert main(["generate", "--model", str(d), "--prompt", "1", "--tools", "--num-beams", "2"]) == 2
    assert "--tools" in capsys.readouterr().err


def test_generate_passes_max_calls_0_to_the_loop_and_4_by_default(tmp_path, monkeypatch, capsys):
    """--max-calls 0 (answer no call) is a bound of its own, not the default's 4."""
    import llmlab.generate.agent as agent

    tok = CharTokenizer.train(["12*34=[calc(12*34)→408]408"])
    d = save_model(CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2,
                                        max_seq_len=16)).eval(), tmp_path / "m", tok)
    seen = []

    def recording(*a, max_calls, **kw):
        seen.append(max_calls)
        return run_agent(*a, max_calls=max_calls, **kw)

    monkeypatch.setattr(agent, "run_agent", recording)
    for flags in (["--max-calls", "0"], []):
        assert main(["generate", "--model", str(d), "--prompt", "1", "--tools", "--max-new-tokens", "2", *flags]) == 0
    assert seen == [0, 4]


@pytest.mark.parametrize("settings", [dict(temperature=0.0, presence_penalty=5.0),
                                      dict(temperature=1.0, seed=3),
                                      dict(temperature=1.0, seed=3, frequency_penalty=1.0, top_k=8)])
def test_after_a_call_the_model_goes_on_as_one_decode_would(settings):
    """Penalties count the output written before a call as output, and sampling draws on from the same
    generator: with results that encode to no tokens, the loop's tokens are those of one `generate`."""
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=48)).eval()
    cfg = GenerationConfig(max_new_tokens=16, **settings)
    prompt = [1, 2, 3]
    plain = generate(model, prompt, cfg)
    trigger = plain[2]  # a token the model writes: here it spells a call
    spell = lambda ids: "".join("[calc(1)→" if i == trigger else chr(0x4E00 + i) for i in ids)  # noqa: E731
    r = run_agent(agent_step(model, cfg, None), lambda s: [], spell, prompt, max_new_tokens=16, max_calls=16)
    assert r.text == "".join("[calc(1)→1]" if i == trigger else spell([i]) for i in plain)
    assert len(r.calls) == plain.count(trigger) and r.generated == len(plain)


def test_tools_are_refused_for_a_tokenizer_that_cannot_write_a_call(tmp_path, capsys):
    """--tools would change nothing: the model can never write the call the loop answers."""
    tok = CharTokenizer.train(["12*34=408", "问答"])
    d = save_model(CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=16, n_layer=1, n_head=2, n_kv_head=2,
                                        max_seq_len=16)).eval(), tmp_path / "m", tok)
    assert main(["generate", "--model", str(d), "--prompt", "1", "--tools"]) == 2  # eval and chat: test_chat_cli
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cannot write a calculator call [calc()→]" in err, err
    assert "llmlab sft --data arithmetic-tools" in err and "no token for '[cal()→]'" in err
    assert main(["generate", "--model", str(d), "--prompt", "1", "--max-new-tokens", "2"]) == 0  # without: fine
