"""OpenAI's JSON shapes: errors, completions, chat completions, their streamed chunks and the model list.

Pure functions from values to dicts, so the server and the tests build and read the same shapes::

    >>> error_body(ApiError(400, "n must be 1, got 2", "n"))
    {'error': {'message': 'n must be 1, got 2', 'type': 'invalid_request_error', 'param': 'n', 'code': None}}
"""

from __future__ import annotations

import time
import uuid


class ApiError(Exception):
    """A request the server refuses: its HTTP status and OpenAI's error fields (`param` names the field)."""

    def __init__(self, status: int, message: str, param: str | None = None, code: str | None = None,
                 kind: str | None = None):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code
        self.kind = kind or ("invalid_request_error" if status < 500 else "server_error")


def error_body(e: ApiError) -> dict:
    return {"error": {"message": e.message, "type": e.kind, "param": e.param, "code": e.code}}


def new_id(chat: bool) -> str:
    return ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex


def usage(prompt_tokens: int, completion_tokens: int) -> dict:
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens}


def completion_body(rid: str, model: str, chat: bool, text: str, finish_reason: str, prompt_tokens: int,
                    completion_tokens: int, created: int | None = None) -> dict:
    """The whole answer: a ``text_completion`` or a ``chat.completion`` with one choice."""
    choice: dict = {"index": 0}
    if chat:
        choice["message"] = {"role": "assistant", "content": text}
    else:
        choice.update(text=text, logprobs=None)
    choice["finish_reason"] = finish_reason
    return {"id": rid, "object": "chat.completion" if chat else "text_completion",
            "created": created or int(time.time()), "model": model, "choices": [choice],
            "usage": usage(prompt_tokens, completion_tokens)}


def chunk_body(rid: str, model: str, chat: bool, created: int, text: str | None = None,
               finish_reason: str | None = None, role: bool = False, include_usage: bool = False) -> dict:
    """One streamed event: a piece of text, the finish reason (last), or for chat the opening role delta.

    In a stream that ends with a `usage_chunk` (`include_usage`), every other chunk carries ``"usage": null``,
    as OpenAI's do, so a client may read the key from each."""
    if chat:
        delta = {"role": "assistant", "content": ""} if role else ({} if text is None else {"content": text})
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
    else:
        choice = {"index": 0, "text": text or "", "logprobs": None, "finish_reason": finish_reason}
    return {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
            "model": model, "choices": [choice], **({"usage": None} if include_usage else {})}


def usage_chunk(rid: str, model: str, chat: bool, created: int, prompt_tokens: int, completion_tokens: int) -> dict:
    """The extra last event of a stream asked for with ``stream_options: {"include_usage": true}``."""
    return {"id": rid, "object": "chat.completion.chunk" if chat else "text_completion", "created": created,
            "model": model, "choices": [], "usage": usage(prompt_tokens, completion_tokens)}


def models_body(model: str, created: int, context: int) -> dict:
    return {"object": "list", "data": [{"id": model, "object": "model", "created": created, "owned_by": "llmlab",
                                        "max_model_len": context}]}
