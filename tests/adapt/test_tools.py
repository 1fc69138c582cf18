"""Fine-tuning a chat model to call the calculator (llmlab.adapt.tools): the replies against the agent loop's
own transcripts, the loss mask on the tool's results, the added characters against the old model and HF
tokenizers, the measurement against scripted models, and `llmlab sft --data arithmetic-tools` end to end."""

import io
import json

import pytest
import torch

from llmlab.adapt.batching import pad_batch
from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.adapt.sft import check_known, encode_examples
from llmlab.adapt.tools import (
    SYNTAX,
    add_tool_characters,
    answer_stats,
    arithmetic_tool_conversations,
    call_tokens,
    tool_reply,
)
from llmlab.cli import main
from llmlab.core.errors import InputError
from llmlab.data.corpora import arithmetic
from llmlab.generate.agent import run_agent, transcript_pieces
from llmlab.models import CausalLM, ModelConfig, load_model, save_model
from llmlab.tokenizers import CharTokenizer, load_tokenizer, train_tokenizer

from ..helpers import wide_lm

T = ChatTemplate()
PROBLEMS = arithmetic(30, "train", max_digits=3, ops="+-*")


@pytest.fixture(scope="module")
def base_tok():
    return CharTokenizer.train([p.text for p in arithmetic(200, max_digits=2, ops="+")])


@pytest.fixture(scope="module")
def tool_tok(base_tok):
    return add_tool_characters(None, add_chat_tokens(None, base_tok))


def tiny_model(tok, seed=0, tied=True):
    torch.manual_seed(seed)
    return CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=32,
                                tie_embeddings=tied))


# --- the data ------------------------------------------------------------------------------------

def replay(reply: str):
    """A scripted "model" that writes the model's pieces of `reply` and waits for the loop at each call."""
    mine = [piece for piece, by_model in transcript_pieces(reply) if by_model]

    def step(ids, n, start):
        done = "".join(map(chr, ids)).count("]")  # results the loop has written so far
        yield from [ord(c) for c in mine[done]][:n] if done < len(mine) else []

    return step


@pytest.mark.parametrize("p", PROBLEMS[:12], ids=lambda p: p.text)
def test_a_reply_is_the_call_and_the_answer_exactly_as_the_agent_loop_writes_them(p):
    reply = tool_reply(p.question, p.answer)
    assert reply == f"[calc({p.question[:-1]})→{p.answer}]{p.answer}"
    # the loop, given the model's pieces, writes the same text: the trained text is what inference sees
    r = run_agent(replay(reply), lambda s: [ord(c) for c in s], lambda ids: "".join(map(chr, ids)), [ord("=")])
    assert r.text == reply and [c.result for c in r.calls] == [p.answer]
    convs = arithmetic_tool_conversations([p])
    assert convs == [[{"role": "user", "content": p.question}, {"role": "assistant", "content": reply}]]


def test_sft_loads_tool_conversations_for_arithmetic_tools_only():
    from llmlab.adapt.sft import SFTConfig, load_conversations

    kw = dict(arithmetic_train=5, arithmetic_max_digits=2, arithmetic_ops="+")
    train, dev = load_conversations(SFTConfig(data="arithmetic-tools", **kw))
    plain, _ = load_conversations(SFTConfig(data="arithmetic", **kw))
    assert [c[0] for c in train] == [c[0] for c in plain] and len(dev) == 200
    assert [c[1]["content"] for c in train] == [tool_reply(c[0]["content"], a[1]["content"]) for c, a in
                                                zip(train, plain)]
    with pytest.raises(InputError, match="'arithmetic', 'arithmetic-tools' or a .jsonl file, got 'arithmetic-tool'"):
        load_conversations(SFTConfig(data="arithmetic-tool"))


# --- the loss mask -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["char", "bpe"])
def test_the_loss_mask_learns_the_model_pieces_and_not_the_tools_results(kind):
    texts = [p.text for p in PROBLEMS] + [tool_reply(p.question, p.answer) for p in PROBLEMS]
    base = CharTokenizer.train(texts) if kind == "char" else train_tokenizer("bpe", texts, 300)
    tok = add_chat_tokens(None, base)
    for conv in arithmetic_tool_conversations(PROBLEMS):
        q, reply = conv[0]["content"], conv[1]["content"]
        p = next(p for p in PROBLEMS if p.question == q)
        ids, mask = T.render(tok, conv, transcript_pieces)
        call, result = f"[calc({q[:-1]})→", f"{p.answer}]"
        # by hand: each piece encoded on its own, as the loop encodes a result; the result and ']' unlearned
        pieces = [([tok.token_to_id(T.user)], 0), (tok.encode(q), 0), ([tok.token_to_id(T.end)], 0),
                  ([tok.token_to_id(T.assistant)], 0), (tok.encode(call), 1), (tok.encode(result), 0),
                  (tok.encode(p.answer), 1), ([tok.token_to_id(T.end)], 1)]
        assert ids == [i for piece, _ in pieces for i in piece]
        assert mask == [m for piece, m in pieces for _ in piece]
        assert tok.decode(ids) == T.text(conv) and reply == call + result + p.answer
    # training's targets and weights: the result is a target only as the prompt is (not at all by default)
    ex, _ = encode_examples(T, tok, arithmetic_tool_conversations(PROBLEMS[:1]), 64, transcript_pieces)
    (ids, mask), = ex
    for plw in (0.0, 0.5):
        _, y, w = pad_batch(ex, tok.pad_id, plw)
        assert w[0].tolist() == [1.0 if m else plw for m in mask[1:]]
        assert y[0].tolist() == [i if m or plw else -100 for i, m in zip(ids[1:], mask[1:])]


# --- the vocabulary ------------------------------------------------------------------------------

@pytest.mark.parametrize("tied", [True, False])
def test_tool_characters_are_ordinary_tokens_after_the_chat_tokens_and_leave_the_old_model_unchanged(base_tok, tied):
    model = tiny_model(base_tok, tied=tied).eval()
    x = torch.tensor([base_tok.encode("12+30=42")])
    before = model(x)
    chat = add_chat_tokens(model, base_tok)
    tok = add_tool_characters(model, chat)
    n, V = chat.vocab_size, tok.vocab_size
    missing = [c for c in dict.fromkeys(SYNTAX) if base_tok.token_to_id(c) is None]
    assert [tok.token_to_id(c) for c in missing] == list(range(n, V)) and model.config.vocab_size == V
    assert all(tok.token_to_id(t) == chat.token_to_id(t) for t in T.tokens)  # the chat ids do not move
    text = "".join(p.text for p in arithmetic(50, max_digits=2, ops="+"))
    assert tok.encode(text) == base_tok.encode(text)  # nor does any old id
    assert tok.decode(tok.encode(tool_reply("12+30=", "42"))) == "[calc(12+30)→42]42"
    assert tok.count_unknown(tool_reply("12+30=", "42")) == 0 < base_tok.count_unknown(tool_reply("12+30=", "42"))
    after = model(x)  # (1, T, V)
    torch.testing.assert_close(after[..., :base_tok.vocab_size], before, rtol=0, atol=0)
    emb = model.embed_tokens.weight
    torch.testing.assert_close(emb[n:], emb[:n].mean(0).expand(V - n, -1))
    assert add_tool_characters(model, tok) is tok and model.config.vocab_size == V  # nothing left to add


def test_saved_tool_tokenizer_has_the_same_ids_in_hf_tokenizers(tool_tok, tmp_path):
    from tokenizers import Tokenizer

    tool_tok.save(tmp_path / "tokenizer.json")
    again, ref = load_tokenizer(tmp_path / "tokenizer.json"), Tokenizer.from_file(str(tmp_path / "tokenizer.json"))
    for text in ["[calc(12+30)→42]42", "12+30=", "[(→)]", "xyz[", "中]"]:  # the call, old characters, an unknown one
        assert again.encode(text) == tool_tok.encode(text) == ref.encode(text).ids
    assert again.token_to_id(T.end) == tool_tok.token_to_id(T.end)


def test_a_tokenizer_that_cannot_take_characters_is_refused_and_one_that_has_them_is_kept():
    texts = [p.text for p in PROBLEMS]
    with pytest.raises(InputError, match=r"cannot write '\[cal\(\)→\]'.*WordPieceTokenizer cannot take new"):
        add_tool_characters(None, add_chat_tokens(None, train_tokenizer("wordpiece", texts, 200)))
    bpe = add_chat_tokens(None, train_tokenizer("bpe", texts, 300))  # byte-level: writes every character
    assert add_tool_characters(None, bpe) is bpe
    no_digits = CharTokenizer.train(["一加二等于三"])  # a base that cannot write the arithmetic itself
    tok = add_tool_characters(None, add_chat_tokens(None, no_digits))
    with pytest.raises(InputError, match="cannot write"):
        check_known(tok, arithmetic_tool_conversations(PROBLEMS))


# --- the measurement -----------------------------------------------------------------------------

def scripted(tok, problems, write):
    """A "model" answering each problem's chat prompt: write(question, its answer so far) is the text it
    writes next, "" to stop; it goes on until then, or until the loop takes over at a call's arrow."""
    by_prompt = {tuple(T.prompt_ids(tok, [{"role": "user", "content": p.question}])): p.question for p in problems}

    def step(ids, n, start):
        cut = next(k for k in by_prompt if tuple(ids[:len(k)]) == k)
        so_far = tok.decode(ids[len(cut):])
        while n > 0 and (piece := write(by_prompt[cut], so_far)):
            yield from tok.encode(piece)[:n]
            n, so_far = n - len(tok.encode(piece)), so_far + piece

    return step


def calls_and_copies(q, so_far):  # the behaviour fine-tuning teaches: call on the question, copy the result
    if not so_far:
        return f"[calc({q[:-1]})→"
    return so_far[so_far.index("→") + 1:-1] if so_far.endswith("]") else ""


def guesses_result(q, so_far):  # without the loop it writes a result itself (a wrong one) and copies it
    return f"[calc({q[:-1]})→" if not so_far else ("1]1" if so_far.endswith("→") else "")


SCRIPTS = {  # name: (write, with tools: accuracy, call rate, argument rate; without: accuracy)
    "calls and copies": (calls_and_copies, (1, 1, 1), 0),
    "stops after the call": (lambda q, s: "" if s else f"[calc({q[:-1]})→", (0, 1, 1), 0),
    "swaps the operands": (lambda q, s: calls_and_copies("+".join(reversed(q[:-1].split("+"))) + "=", s),
                           (1, 1, 0), 0),
    "answers directly": (lambda q, s: str(eval(q[:-1])) if not s else "", (1, 0, 0), 1),
    "writes the answer inside the call": (lambda q, s: f"[calc({eval(q[:-1])})→" if not s else "", (0, 1, 0), 0),
}


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_answers_are_read_after_the_call_with_and_without_the_loop(tool_tok, name):
    problems = [p for p in arithmetic(10, "test", max_digits=2, ops="+")]
    write, (acc, calls, args), plain = SCRIPTS[name]
    step = scripted(tool_tok, problems, write)
    prompts = [T.prompt_ids(tool_tok, [{"role": "user", "content": p.question}]) for p in problems]
    budget = 4 + call_tokens(tool_tok, problems)
    r = answer_stats(step, tool_tok, problems, prompts, budget, "with", tools=True)
    assert (r["accuracy"], r["call_rate"], r["argument_rate"]) == (acc, calls, args)
    assert r["samples"][0][:2] == (problems[0].question, problems[0].answer) and len(r["samples"]) == 5
    r = answer_stats(step, tool_tok, problems, prompts, budget, "without", tools=False)
    assert r["accuracy"] == plain
    got = answer_stats(scripted(tool_tok, problems, guesses_result), tool_tok, problems, prompts, budget, "guess")
    assert got["accuracy"] == 0 and got["samples"][0][2] == f"[calc({problems[0].question[:-1]})→1]1"


def test_a_model_that_can_write_calls_is_given_the_calls_tokens_with_or_without_the_loop(base_tok, tool_tok,
                                                                                          monkeypatch):
    """Cut inside its call, a tool model's answer would read as wrong (llmlab eval arithmetic scored
    0 for a model that answers 17 of 200 right when given the room)."""
    from llmlab.adapt import sft

    seen = []
    monkeypatch.setattr(sft, "greedy_answers",
                        lambda model, tok, problems, prompts, stop, budget, desc, tools=False: seen.append(
                            (budget, tools)) or {})
    problems = arithmetic(10, "test", max_digits=2, ops="+")
    for tok, tools in ((tool_tok, False), (tool_tok, True), (add_chat_tokens(None, base_tok), False)):
        sft.arithmetic_exact_match(None, tok, T, problems, 8, tools)
    longest = call_tokens(tool_tok, problems)
    assert longest > 10 and seen == [(8 + longest, False), (8 + longest, True), (8, False)]


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_answers_in_batches_are_the_one_by_one_answers(tool_tok, seed):
    from llmlab.adapt.sft import greedy_answers
    from llmlab.generate import GenerationConfig
    from llmlab.generate.agent import agent_step

    # larger weights than at init, so that greedy answers differ between prompts
    model = wide_lm(ModelConfig(vocab_size=tool_tok.vocab_size, dim=32, n_layer=2, n_head=4, max_seq_len=64), seed,
                    std=0.5)
    problems = arithmetic(40, "test", max_digits=3, ops="+-*")  # prompts of several lengths
    prompts = [T.prompt_ids(tool_tok, [{"role": "user", "content": p.question}]) for p in problems]
    end = T.ids(tool_tok)[T.end]
    one_by_one = answer_stats(agent_step(model, GenerationConfig(max_new_tokens=6, temperature=0.0), end),
                              tool_tok, problems, prompts, 6, "one by one")
    batched = greedy_answers(model, tool_tok, problems, prompts, end, 6, "batched")
    assert batched == one_by_one and len({t for _, _, t in batched["samples"]}) > 2


# --- the command ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def base_dir(base_tok, tmp_path_factory):
    d = tmp_path_factory.mktemp("base") / "model"
    save_model(tiny_model(base_tok), d, base_tok)
    return d


def sft(base_dir, tmp_path, *flags, name="tools"):
    return main(["sft", "--model", str(base_dir), "--name", name, "--out", str(tmp_path / "runs"), "--device", "cpu",
                 "--data", "arithmetic-tools", "--arithmetic-max-digits", "2", "--arithmetic-ops", "+",
                 "--arithmetic-train", "300", "--general-tokens", "0", "--seq-len", "31", "--batch-size", "8",
                 "--eval-every", "0", *flags])


def test_sft_arithmetic_tools_runs_reports_and_chats_with_tools(base_dir, tmp_path, capsys, monkeypatch):
    assert sft(base_dir, tmp_path, "--steps", "20", "--lr", "3e-3", "--log-every", "1", "--eval-problems", "4") == 0
    out = capsys.readouterr().out
    assert "chat accuracy with tools" in out and "answers calling calc" in out
    run = tmp_path / "runs" / "tools"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["data"] == "arithmetic-tools" and summary["last_train_loss"] < summary["first_train_loss"]
    for when in ("before", "after"):
        figures = summary[when]
        assert {"chat_accuracy", "tool_accuracy", "tool_call_rate", "tool_argument_rate"} <= set(figures)
        assert len(figures["tool_samples"]) == 4 and all(0 <= figures[k] <= 1 for k in ("tool_call_rate",))
    # the run's own mask: its dev loss counts the call, the answer and <|end|>, never a result
    dev = arithmetic(200, "dev", max_digits=2, ops="+")
    assert summary["after"]["val_tokens"] == sum(len(f"[calc({p.question[:-1]})→{p.answer}") + 1 for p in dev)
    report = (run / "report.md").read_text()
    assert "| chat exact match with tools (agent loop) |" in report and "## Chat samples with tools" in report
    assert "each call's result and ']' weighted as the prompt is" in report
    model, tok = load_model(run / "model")
    assert tok.count_unknown(SYNTAX) == 0 and model.config.vocab_size == tok.vocab_size
    assert "llmlab chat --tools" in (run / "model" / "README.md").read_text()
    question, _, measured = summary["after"]["tool_samples"][0]
    budget = 12 + call_tokens(tok, arithmetic(4, "test", max_digits=2, ops="+"))  # the run's (answer_tokens 12)
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(f"{question}\n".encode())))
    assert main(["chat", "--model", str(run / "model"), "--tools", "--max-new-tokens", str(budget)]) == 0
    assert capsys.readouterr().out.splitlines()[-1] == measured  # the loop the run measured with
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(b"80+47=\n")))
    assert main(["chat", "--model", str(run / "model"), "--tools", "--num-beams", "2"]) == 2
    assert "--tools" in capsys.readouterr().err


def test_learn_tool_results_trains_on_the_results_too_and_only_with_arithmetic_tools(base_dir, tmp_path, capsys):
    quick = ["--steps", "1", "--eval-problems", "0", "--learn-tool-results"]
    assert sft(base_dir, tmp_path, *quick) == 0
    summary = json.loads((tmp_path / "runs" / "tools" / "summary.json").read_text())
    dev = arithmetic(200, "dev", max_digits=2, ops="+")  # the whole reply and <|end|>, results included
    assert summary["after"]["val_tokens"] == sum(len(tool_reply(p.question, p.answer)) + 1 for p in dev)
    assert "learned as the rest of the reply is" in (tmp_path / "runs" / "tools" / "report.md").read_text()
    assert sft(base_dir, tmp_path, *quick, "--data", "arithmetic", name="plain") == 2
    assert "learn_tool_results is about the calculator calls of data 'arithmetic-tools'" in capsys.readouterr().err
    assert not (tmp_path / "runs" / "plain").exists()


def test_sft_arithmetic_tools_refuses_a_base_that_cannot_take_the_calls_characters(tmp_path, capsys):
    texts = [p.text for p in arithmetic(200, max_digits=2, ops="+")]
    tok = train_tokenizer("wordpiece", texts, 60)
    d = save_model(tiny_model(tok), tmp_path / "wp", tok)
    assert sft(d, tmp_path, "--steps", "1", "--eval-problems", "1") == 2
    assert "WordPieceTokenizer cannot take new characters" in capsys.readouterr().err
    assert sft(d, tmp_path, "--steps", "1", "--eval-problems", "1", "--data", "arithmetic-tool", name="x") == 2
    assert "'arithmetic-tools'" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())  # refused before writing
