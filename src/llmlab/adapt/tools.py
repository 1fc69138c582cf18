"""Teaching a chat model to call the calculator (topic 7, LLM agents), and measuring what it gains.

Data (`llmlab sft --data arithmetic-tools`): the built-in arithmetic problems, each reply a call in
Toolformer's syntax and then the answer: user ``23+45=``, assistant ``[calc(23+45)→68]68``. The result
in the call is the calculator's own output, so the text trained on is the text the agent loop
(`llmlab.generate.agent.run_agent`) produces when the model writes the call.

Vocabulary: the call's characters the base tokenizer lacks (an arithmetic-and-Chinese base has none of
``[calc()→]``) become ordinary tokens after the chat tokens (`add_tool_characters`), their embedding
rows the mean of the old ones as the chat tokens' are. Ordinary, not special: the model writes the call
as text and the loop encodes the result and ``]`` as text, so they must encode from text
(`llmlab.tokenizers.specials.with_characters`).

Loss: the result span ``68]`` is masked (`llmlab.generate.agent.transcript_pieces`) unless
``learn_tool_results`` is set. Toolformer trained on its augmented text as is, results included; here the
loop writes the result and the model never generates it, so the masked loss is that of exactly the tokens
the model writes under the loop (the call, the copied answer, ``<|end|>``); it still reads the result, as
context. Learning the result teaches the model to write a tool's output itself: on the README's base model
(1,500 steps) that kept its own sums (exact match 0.08 without the loop, 0 when masked) but made the tool's
answers plausible fakes when the loop is absent, and its own sum overrode the result it read once in 200
(0.995 with the loop against 1.0 masked). A silently faked tool output is the worse failure, so masking
is the default.

Measurement (`answer_stats`): greedy answers to test problems, read after the last answered call
(`final_answer`), with the loop answering the calls and without it (the model then writes a result of
its own and copies that); with it, how often a call was made and how often its argument was the
question's expression.
"""

from __future__ import annotations

from collections.abc import Sequence

from llmlab.adapt.chat import grow_vocab
from llmlab.core.errors import InputError
from llmlab.core.progress import progress
from llmlab.generate.agent import Step, calculator, call_text, calls_in, final_answer, run_agent
from llmlab.tokenizers.base import Tokenizer

TOOL = "calc"
SYNTAX = call_text(TOOL, "", "")  # "[calc()→]": the characters a call needs beyond its argument and result


def check_can_call(tok: Tokenizer) -> None:
    """Refuse --tools for a model whose tokenizer cannot write a call: the loop would never see one, and the
    flag would change nothing."""
    if tok.count_unknown(SYNTAX):
        lacks = "".join(c for c in dict.fromkeys(SYNTAX) if tok.count_unknown(c))
        raise InputError(f"--tools: the model's tokenizer cannot write a calculator call {SYNTAX} ("
                         + (f"no token for {lacks!r}" if lacks else "part of it encodes to <unk>")
                         + "): fine-tune it with llmlab sft --data arithmetic-tools")


def expression(question: str) -> str:
    """The calculator argument of an arithmetic question: ``"23+45="`` -> ``"23+45"``."""
    return question.removesuffix("=")


def tool_reply(question: str, answer: str) -> str:
    """The reply that calls the calculator and then gives the answer.

    >>> tool_reply("23+45=", "68")
    '[calc(23+45)→68]68'
    """
    result = calculator(expression(question))
    assert result == answer, (question, result, answer)  # the answer the model copies is the tool's result
    return call_text(TOOL, expression(question), result) + answer


def arithmetic_tool_conversations(problems) -> list[list[dict]]:
    """User turns the questions, assistant turns their `tool_reply`."""
    return [[{"role": "user", "content": p.question},
             {"role": "assistant", "content": tool_reply(p.question, p.answer)}] for p in problems]


def add_tool_characters(model, tok: Tokenizer) -> Tokenizer:
    """The tokenizer with the call syntax's characters it lacks as ordinary tokens at new ids after the old
    ones, and `model` (if given) grown in place to embed them (`grow_vocab`: old ids and logits unchanged)."""
    from llmlab.tokenizers.specials import with_characters

    new = with_characters(tok, SYNTAX)
    if model is not None:
        grow_vocab(model, tok.vocab_size, new.vocab_size)
    return new


def call_tokens(tok: Tokenizer, problems) -> int:
    """Tokens of the longest whole call in the replies to `problems`: what an answer with a call may write
    beyond one without (measurement budgets add it to the answer's tokens)."""
    return max((len(tok.encode(tool_reply(p.question, p.answer))) - len(tok.encode(p.answer)) for p in problems),
               default=0)


def answer_stats(step: Step, tok: Tokenizer, problems, prompts: Sequence[list[int]], max_new_tokens: int,
                 desc: str, tools: bool = False) -> dict:
    """Answers to `prompts` (one per problem) from `step`, read by `final_answer`; with `tools` the agent
    loop answers the calls. Returns exact-match accuracy, the share of answers that call a tool
    (``call_rate``), the share whose first call is the calculator on the question's expression
    (``argument_rate``), and (question, gold, text) for the first few."""
    texts = []
    for ids in progress(prompts, desc=desc, unit="problem"):
        if tools:
            texts.append(run_agent(step, tok.encode, tok.decode, ids, max_new_tokens=max_new_tokens).text)
        else:
            texts.append(tok.decode(list(step(list(ids), max_new_tokens, len(ids)))))
    return text_stats(problems, texts)


def text_stats(problems, texts: Sequence[str]) -> dict:
    """`answer_stats` of the answers `texts` (one per problem)."""
    from llmlab.evaluate.tasks import exact_match

    right = called = asked = 0
    shown: list[tuple[str, str, str]] = []
    for p, text in zip(problems, texts, strict=True):
        calls = calls_in(text)
        right += exact_match(final_answer(text), p.answer)
        called += bool(calls)
        asked += bool(calls) and calls[0] == (TOOL, expression(p.question))
        if len(shown) < 5:
            shown.append((p.question, p.answer, text))
    n = max(len(problems), 1)
    return {"accuracy": right / n, "call_rate": called / n, "argument_rate": asked / n, "samples": shown}
