"""Reading a request: the JSON body of ``/v1/completions`` or ``/v1/chat/completions``, checked field
by field, into a `Request` the engine runs (prompt ids, a `GenerationConfig`, stop strings, streaming).

Every rule broken is an `ApiError` (400) naming the field, the value and the rule; a null field means
the field's default, as in OpenAI's API. Fields of OpenAI's API this server does not implement
(``logprobs``, ``echo``, ``best_of``, ``logit_bias``, ``suffix``, tools) are refused unless they hold
the value that turns them off, so a client never silently gets something other than it asked for.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass

from llmlab.core.errors import InputError
from llmlab.generate.config import GenerationConfig
from llmlab.serve.config import ServeConfig
from llmlab.serve.limits import choose_max_tokens, fit_chat_prompt, fit_prompt
from llmlab.serve.protocol import ApiError

COMMON = {"model", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "n", "stream", "stream_options",
          "frequency_penalty", "presence_penalty", "user"}
FIELDS = {False: COMMON | {"prompt"}, True: COMMON | {"messages", "max_completion_tokens"}}
# OpenAI fields not implemented here, accepted only at the values that turn them off
OFF = {"logprobs": (False, 0), "top_logprobs": (0,), "echo": (False,), "best_of": (1,), "suffix": ("",),
       "logit_bias": ({},), "tools": ([],), "functions": ([],), "tool_choice": ("none",)}
MAX_STOPS = 4  # as OpenAI's API
MAX_STOP_CHARS = 256  # per stop string: each token's check costs its length squared


@dataclass(frozen=True)
class Request:
    chat: bool  # a chat completion (answer until the template's end token) or a text completion
    prompt_ids: tuple[int, ...]  # what the model reads, after truncation
    gen: GenerationConfig  # max_new_tokens is the request's max_tokens
    stop: tuple[str, ...] = ()  # cut the text before the first of these to complete
    stream: bool = False  # answer as server-sent events, a piece of text each
    include_usage: bool = False  # streaming: a last event with the token counts
    dropped: int = 0  # prompt tokens cut off by truncation


def parse_request(body: bytes, chat: bool, engine, cfg: ServeConfig) -> Request:
    """The request in `body` for `engine` (its tokenizer, chat template, context and name) under `cfg`'s limits."""
    doc = json_object(body)
    check_fields(doc, chat)
    model = doc.get("model")
    if model is not None and model != engine.name:
        raise ApiError(404, f"model {shown(model)} is not served here; this server serves {engine.name!r}", "model",
                       "model_not_found")
    if integer(doc, "n", 1, default=1) != 1:
        raise ApiError(400, f"n must be 1 (this server writes one choice per request), got {doc['n']}", "n")
    stream = flag(doc, "stream")
    include_usage = stream_usage(doc, stream)
    stop = stop_strings(doc)
    ids, param = (chat_prompt(doc, engine), "messages") if chat else (text_prompt(doc, engine), "prompt")
    mt_param = "max_completion_tokens" if chat and doc.get("max_completion_tokens") is not None else "max_tokens"
    if chat and mt_param == "max_completion_tokens" and doc.get("max_tokens") is not None:
        raise ApiError(400, "give max_tokens or max_completion_tokens, not both", "max_tokens")
    max_tokens = choose_max_tokens(integer(doc, mt_param, 1), len(ids), engine.context, cfg, mt_param)
    kept = (fit_chat_prompt(ids, engine.chat_end, max_tokens, engine.context, cfg, param) if chat
            else fit_prompt(ids, max_tokens, engine.context, cfg, param))
    return Request(chat=chat, prompt_ids=tuple(kept), gen=generation_config(doc, max_tokens, engine), stop=stop,
                   stream=stream, include_usage=include_usage, dropped=len(ids) - len(kept))


def shown(value, width: int = 80) -> str:
    """A value as an error message quotes it: its repr, cut to `width` characters.

    >>> shown("x" * 100, 10)
    "'xxxxxx..."
    """
    text = repr(value)
    return text if len(text) <= width else text[:width - 3] + "..."


def json_object(body: bytes) -> dict:
    def no_constants(name):
        raise ValueError(f"{name} is not a JSON number")

    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=no_constants)
    except UnicodeDecodeError as e:
        raise ApiError(400, f"the request body is not UTF-8 ({e.reason} at byte {e.start})") from None
    except ValueError as e:
        raise ApiError(400, f"the request body is not valid JSON: {e}") from None
    except RecursionError:
        raise ApiError(400, "the request body nests JSON too deeply") from None
    if not isinstance(doc, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(doc).__name__}")
    return doc


def check_fields(doc: dict, chat: bool) -> None:
    for name, value in doc.items():
        if name in FIELDS[chat] or value is None:
            continue
        if name in OFF:
            if any(value == off and type(value) is type(off) for off in OFF[name]):
                continue
            raise ApiError(400, f"{name} is not supported by this server (got {shown(value)})", name)
        other = FIELDS[not chat] - FIELDS[chat]
        hint = f" (it belongs to {'/v1/completions' if chat else '/v1/chat/completions'})" if name in other else ""
        raise ApiError(400, f"unknown field {shown(name)}{hint}; this endpoint takes {sorted(FIELDS[chat])}",
                       name[:80])


def integer(doc: dict, name: str, lo: int, hi: int | None = None, default: int | None = None) -> int | None:
    v = doc.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int):
        raise ApiError(400, f"{name} must be an integer, got {shown(v)}", name)
    if v < lo or (hi is not None and v > hi):
        raise ApiError(400, f"{name} must be {'>= ' + str(lo) if hi is None else f'in [{lo}, {hi}]'}, got {v}", name)
    return v


def number(doc: dict, name: str, lo: float, hi: float, default: float, lo_open: bool = False) -> float:
    v = doc.get(name)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise ApiError(400, f"{name} must be a number, got {shown(v)}", name)
    if not (lo < v if lo_open else lo <= v) or v > hi:
        raise ApiError(400, f"{name} must be in {'(' if lo_open else '['}{lo}, {hi}], got {v}", name)
    return float(v)


def flag(doc: dict, name: str) -> bool:
    v = doc.get(name, False)
    if v is None:
        return False
    if not isinstance(v, bool):
        raise ApiError(400, f"{name} must be true or false, got {shown(v)}", name)
    return v


def stream_usage(doc: dict, stream: bool) -> bool:
    opts = doc.get("stream_options")
    if opts is None:
        return False
    if not stream:
        raise ApiError(400, "stream_options applies only with stream: true", "stream_options")
    if not isinstance(opts, dict) or set(opts) - {"include_usage"}:
        raise ApiError(400, f"stream_options must be {{\"include_usage\": true|false}}, got {shown(opts)}",
                       "stream_options")
    return flag(opts, "include_usage")


def stop_strings(doc: dict) -> tuple[str, ...]:
    v = doc.get("stop")
    if v is None:
        return ()
    stops = [v] if isinstance(v, str) else v
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise ApiError(400, f"stop must be a string or a list of strings, got {shown(v)}", "stop")
    if len(stops) > MAX_STOPS or not all(stops):  # an empty list is no stop strings, as in OpenAI's API
        raise ApiError(400, f"stop must hold at most {MAX_STOPS} non-empty strings, got {shown(v)}", "stop")
    longest = max(map(len, stops), default=0)
    if longest > MAX_STOP_CHARS:
        raise ApiError(400, f"stop strings may be at most {MAX_STOP_CHARS} characters, got one of {longest}", "stop")
    return tuple(stops)


def text_prompt(doc: dict, engine) -> list[int]:
    """A completion's prompt: a string (read after the tokenizer's text start, as `llmlab generate` does) or
    a list of token ids (read as given); a list of one of either is that one."""
    p = doc.get("prompt")
    if p is None:
        raise ApiError(400, "prompt is required (a string or a list of token ids)", "prompt")
    if isinstance(p, list) and len(p) == 1 and isinstance(p[0], (str, list)):
        p = p[0]
    if isinstance(p, str):
        ids = engine.text_start + engine.tok.encode(p)
        if not ids:
            raise ApiError(400, "prompt is empty, and this model's tokenizer has no EOS token to start a text from",
                           "prompt")
        return ids
    if isinstance(p, list) and p and all(isinstance(i, int) and not isinstance(i, bool) for i in p):
        bad = [i for i in p if not 0 <= i < engine.vocab_size]
        if bad:
            raise ApiError(400, f"prompt holds token ids outside the vocabulary [0, {engine.vocab_size}): {bad[:5]}",
                           "prompt")
        return list(p)
    if isinstance(p, list) and len(p) > 1 and all(isinstance(x, (str, list)) for x in p):
        raise ApiError(400, f"prompt holds {len(p)} prompts; this server answers one per request", "prompt")
    raise ApiError(400, f"prompt must be a string or a non-empty list of token ids, got {shown(p)}", "prompt")


def chat_prompt(doc: dict, engine) -> list[int]:
    """A chat completion's messages, rendered with the model's chat template up to the assistant's turn."""
    if engine.template is None:
        raise ApiError(400, f"model {engine.name!r} has no chat template (a tokenizer_config.json with "
                       "llmlab_chat_template, as llmlab sft writes): use /v1/completions", "messages",
                       "no_chat_template")
    messages = doc.get("messages")
    if isinstance(messages, list):  # OpenAI's content parts: [{"type": "text", "text": ...}, ...]
        messages = [{**m, "content": text_parts(m["content"], i)}
                    if isinstance(m, dict) and isinstance(m.get("content"), list) else m
                    for i, m in enumerate(messages)]
    try:
        return engine.template.prompt_ids(engine.tok, messages)
    except InputError as e:
        text = str(e)  # it may quote a message: at most 300 characters of it
        raise ApiError(400, f"messages: {text if len(text) <= 300 else text[:297] + '...'}", "messages") from None


def text_parts(parts: list, i: int) -> str:
    if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in parts):
        raise ApiError(400, f"message {i}: content parts must all be {{\"type\": \"text\", \"text\": ...}} "
                       "(this model reads text only)", "messages")
    return "".join(p["text"] for p in parts)


def generation_config(doc: dict, max_tokens: int, engine) -> GenerationConfig:
    seed = integer(doc, "seed", 0, 2**63 - 1)
    try:
        return GenerationConfig(
            max_new_tokens=max_tokens,
            temperature=number(doc, "temperature", 0, 2, 1.0),
            top_p=number(doc, "top_p", 0, 1, 1.0, lo_open=True),
            top_k=integer(doc, "top_k", 0, default=0),
            seed=random.SystemRandom().randrange(2**63) if seed is None else seed,
            frequency_penalty=number(doc, "frequency_penalty", -2, 2, 0.0),
            presence_penalty=number(doc, "presence_penalty", -2, 2, 0.0),
            suppress_tokens=engine.unwritable,
        )
    except InputError as e:  # a rule of GenerationConfig's the checks above did not cover
        raise ApiError(400, str(e)) from None
