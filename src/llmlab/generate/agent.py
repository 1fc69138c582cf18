"""A tool-using generation loop (topic 7: an agent perceives, decides, acts through tools, and goes on).

The model writes a call in the text, in Toolformer's shape (Schick et al., 2023): ``[calc(12*34)→``.
When the arrow comes, the loop stops the model, runs the tool on the argument, writes the result and
the closing bracket into the text, ``[calc(12*34)→408]``, and lets the model go on from there, so it
reads the result as if it had written it. Generation ends at the end-of-sequence token, after
`max_new_tokens` tokens of the model's own, or at a call beyond `max_calls`.

The loop does not care what produces the tokens: `run_agent` takes a ``step(ids, n, start)`` function
that yields up to n new token ids after `ids`, whose output starts at `start` (`agent_step` makes one
from a model), so its logic is tested against a scripted "model". After a call the model goes on as one
decode would: its penalties count the output from its true start, and a sampled one draws on from the
same generator, not from a new seed.

The text is the model's pieces, decoded, and each result and ``]`` as the tool wrote them: the model
reads the result encoded, which a tokenizer without letters cannot do for ``error: ...`` or ``1.5``
(they read as ``<unk>``), but the text shows what the tool said.

>>> calculator("12*34"), calculator("(1+2)/4"), calculator("2**3**2"), calculator("1/0")
('408', '0.75', '512', 'error: division by zero')
"""

from __future__ import annotations

import ast
import math
import operator
import re
import unicodedata
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace

from llmlab.core.errors import InputError

OPEN, ARROW, CLOSE = "[", "→", "]"
_ASKED = re.compile(r"\[(\w+)\(([^\[\]]*)\)→")  # a call as far as its arrow, anywhere
_CALL = re.compile(_ASKED.pattern + r"\Z")  # a call whose arrow has just been written
_OPEN = re.compile(r"\[\w*(?:\([^\[\]→]*)?\Z")  # the start of a call, not yet at its arrow, at the end
_ANSWERED = re.compile(r"(\[\w+\([^\[\]]*\)→)([^\[\]]*\])")  # a whole call: what the model wrote, what the loop did

_BINARY = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg}
MAX_DIGITS = 100  # a calculator result (or operand) longer than this is refused, not computed
MAX_ARGUMENT = 200  # characters of a calculator argument


def _eval(node: ast.AST) -> int | float:
    if isinstance(node, ast.Constant) and type(node.value) in (int, float):
        value = node.value  # checked as a result is: a 150-digit number or 1e999 (inf) is refused too
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
        a, b = _eval(node.left), _eval(node.right)
        # |a ** b| has about b * log10|a| digits, refused before computing when too many (9**9**9 would take
        # minutes); where that count is negative the result is below 1 (2**-400, 0.5**400), never too large
        if isinstance(node.op, ast.Pow) and a != 0 and b * math.log10(abs(a)) > MAX_DIGITS + 1:
            raise OverflowError("result too large")
        value = _BINARY[type(node.op)](a, b)
    elif isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
        value = _UNARY[type(node.op)](_eval(node.operand))
    else:
        raise ValueError(f"unsupported expression {ast.dump(node)[:40]}")
    if isinstance(value, complex):
        raise ValueError("complex result")
    if isinstance(value, int) and len(str(abs(value))) > MAX_DIGITS:
        raise OverflowError("result too large")
    if isinstance(value, float) and not math.isfinite(value):  # a float past 1.8e308 is inf (and inf - inf nan)
        raise OverflowError("result too large")
    return value


def calculator(expression: str) -> str:
    """The value of an arithmetic expression (numbers, + - * / // % **, parentheses; ``×`` and ``÷``
    and full-width digits too), or ``"error: ..."``. Nothing but arithmetic is evaluated: names,
    calls and attributes are refused, and results over `MAX_DIGITS` digits are not computed."""
    text = unicodedata.normalize("NFKC", expression).replace("×", "*").replace("÷", "/").strip()
    if len(text) > MAX_ARGUMENT:
        return f"error: expression longer than {MAX_ARGUMENT} characters"
    try:
        value = _eval(ast.parse(text, mode="eval").body)
    except ZeroDivisionError:
        return "error: division by zero"
    except OverflowError:
        return "error: result too large"
    except (SyntaxError, ValueError, TypeError, RecursionError):
        return "error: not an arithmetic expression"
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e16:
        value = int(value)
    return str(value)


TOOLS: dict[str, Callable[[str], str]] = {"calc": calculator}


@dataclass(frozen=True)
class ToolCall:
    name: str
    argument: str
    result: str
    position: int  # where the call starts in the output text (negative: in the prompt, which ended inside it)


@dataclass(frozen=True)
class AgentResult:
    text: str  # everything after the prompt: the model's tokens decoded, each call's result and "]" written in as is
    calls: tuple[ToolCall, ...]
    stopped: str  # "eos", "max_new_tokens" or "max_calls"
    generated: int  # tokens the model produced (results written by the loop not counted)


def parse_call(text: str) -> tuple[str, str, int] | None:
    """(tool name, argument, start) when `text` ends with a call's arrow, else None.

    >>> parse_call("12*34=[calc(12*34)→"), parse_call("[calc(1)→2]")
    (('calc', '12*34', 6), None)
    """
    m = _CALL.search(text)
    return (m.group(1), m.group(2), m.start()) if m else None


def call_text(name: str, argument: str, result: str) -> str:
    """A call as it stands in a finished text.

    >>> call_text("calc", "23+45", calculator("23+45")) + "68"
    '[calc(23+45)→68]68'
    """
    return f"{OPEN}{name}({argument}){ARROW}{result}{CLOSE}"


def calls_in(text: str) -> list[tuple[str, str]]:
    """(tool name, argument) of every call written in `text`, answered or not.

    >>> calls_in("[calc(1+2)→3]3 [calc(4*5)→")
    [('calc', '1+2'), ('calc', '4*5')]
    """
    return [(m.group(1), m.group(2)) for m in _ASKED.finditer(text)]


def final_answer(text: str) -> str:
    """What follows the last answered call in `text` (all of it when there is none): the answer a model
    gives after using its tools, not a number inside a call.

    >>> final_answer("[calc(23+45)→68]68"), final_answer("[calc(23+45)→68]"), final_answer("68")
    ('68', '', '68')
    """
    ends = [m.end() for m in _ANSWERED.finditer(text)]
    return text[ends[-1]:] if ends else text


def transcript_pieces(text: str) -> list[tuple[str, bool]]:
    """`text` cut where the loop took over: (piece, written by the model). Each call's result and closing
    bracket are the loop's; what comes before the arrow and after the bracket is the model's. Encoding the
    pieces one by one gives the tokens the loop sees (it encodes each result on its own), and fine-tuning
    learns the model's pieces only (`llmlab.adapt.tools`).

    >>> transcript_pieces("[calc(23+45)→68]68")
    [('[calc(23+45)→', True), ('68]', False), ('68', True)]
    """
    out, at = [], 0
    for m in _ANSWERED.finditer(text):
        out += [(text[at:m.end(1)], True), (m.group(2), False)]
        at = m.end()
    out.append((text[at:], True))
    return [(piece, mine) for piece, mine in out if piece]


Step = Callable[[list[int], int, int], Iterator[int]]  # (context ids, at most n, output start) -> the next ids


def open_call(text: str) -> str:
    """The end of `text` when it is a call begun and not yet at its arrow, else "": a prompt that ends
    inside a call leaves the model to finish it, and the loop answers it as if the model had begun it.

    >>> open_call("12*34=[calc(12"), open_call("[calc(1)→2]"), open_call("12*34=")
    ('[calc(12', '', '')
    """
    m = _OPEN.search(text)
    return m.group() if m else ""


def run_agent(step: Step, encode: Callable[[str], list[int]], decode: Callable[[list[int]], str],
              prompt: Sequence[int], tools: Mapping[str, Callable[[str], str]] | None = None,
              max_new_tokens: int = 64, max_calls: int = 4) -> AgentResult:
    """Generate after `prompt` with `step`, running each call the model writes (see the module doc).

    A call to a tool not in `tools` gets ``error: unknown tool NAME`` as its result; a call past
    `max_calls` ends the answer there, unanswered. A call the prompt begins and the model finishes is
    answered too (`open_call`); a whole call in the prompt is history.
    """
    tools = TOOLS if tools is None else tools
    if max_new_tokens < 1 or max_calls < 0:
        raise InputError(f"max_new_tokens must be >= 1 and max_calls >= 0, got {max_new_tokens} and {max_calls}")
    head = open_call(decode(list(prompt)))
    out: list[int] = []  # after the prompt, as the model reads it: its own tokens and the encoded results
    written = ""  # the text before the model's latest piece: its earlier pieces and the results as written
    piece: list[int] = []  # the model's tokens since the last call
    calls: list[ToolCall] = []
    generated = 0
    while True:
        called = False
        for tok in step(list(prompt) + out, max_new_tokens - generated, len(prompt)):
            out.append(tok)
            piece.append(tok)
            generated += 1
            call = parse_call(head + written + decode(piece))
            if call is None:
                continue
            if len(calls) == max_calls:
                return AgentResult(written + decode(piece), tuple(calls), "max_calls", generated)
            name, argument, start = call
            tool = tools.get(name)
            result = tool(argument) if tool is not None else f"error: unknown tool {name}"
            calls.append(ToolCall(name, argument, result, start - len(head)))
            written, piece = written + decode(piece) + result + CLOSE, []
            out += encode(result + CLOSE)
            called = True
            break
        if not called:
            stopped = "max_new_tokens" if generated >= max_new_tokens else "eos"
            return AgentResult(written + decode(piece), tuple(calls), stopped, generated)
        if generated >= max_new_tokens:
            return AgentResult(written, tuple(calls), "max_new_tokens", generated)


def agent_step(model, cfg, eos_id: int | None) -> Step:
    """A `run_agent` step that samples from `model` with generation config `cfg` (greedy, top-k, ...).

    An answer (a call with no output yet) starts a generator seeded with ``cfg.seed``, as `generate` does;
    the calls that go on after a tool's result draw on from it."""
    import torch

    from llmlab.generate.autoregressive import stream

    g: torch.Generator | None = None

    def step(ids: list[int], n: int, start: int) -> Iterator[int]:
        nonlocal g
        if g is None or len(ids) == start:
            g = torch.Generator(device=next(model.parameters()).device).manual_seed(cfg.seed)
        return stream(model, ids, replace(cfg, max_new_tokens=n), eos_id, n_prompt=start, generator=g)

    return step
