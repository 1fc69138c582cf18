"""One model in memory, and the completions it writes: token ids from `llmlab.generate.stream`, turned
into text by `IncrementalDecoder` and cut at stop strings by `StopFilter`.

Generation is serialised: a `threading.Lock` lets one request use the model at a time (a decoder with
a KV cache is stateful while it decodes, and one CPU model gains little from interleaving); others
wait for it up to ``max_wait_seconds``, then get 503. Requests that do not use the model (``/health``,
``/v1/models``, refused requests) never take the lock, so the server answers them while it generates.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from llmlab.serve.protocol import ApiError
from llmlab.serve.requests import Request
from llmlab.serve.textstream import IncrementalDecoder, StopFilter
from llmlab.tokenizers.base import EOS

log = logging.getLogger(__name__)


class Engine:
    """`model` and its tokenizer `tok` under the id `name`; `template` (a `ChatTemplate`) enables chat."""

    def __init__(self, model, tok, name: str, template=None):
        self.model, self.tok, self.name, self.template = model, tok, name, template
        self.context = model.config.max_seq_len
        self.vocab_size = min(tok.vocab_size, model.config.vocab_size)
        # ids the model has rows for but the tokenizer cannot decode (a padded vocabulary) are never written
        self.unwritable = tuple(range(tok.vocab_size, model.config.vocab_size))
        self.chat_end = template.ids(tok)[template.end] if template is not None else None
        self.eos_id = tok.token_to_id(EOS)  # None for a foreign tokenizer without one: then only max_tokens ends
        self.text_start = [self.eos_id] if self.eos_id is not None else []  # as models.scoring.text_start
        self.created = int(time.time())
        self.lock = threading.Lock()

    @contextlib.contextmanager
    def hold(self, wait_seconds: float) -> Iterator[None]:
        """The model to oneself for the time of a completion; ApiError 503 after `wait_seconds` in line."""
        if not self.lock.acquire(timeout=wait_seconds):
            raise ApiError(503, f"the model is busy: waited {wait_seconds:g} s for the requests before this one "
                           "(max_wait_seconds); try again", code="server_busy")
        try:
            yield
        finally:
            self.lock.release()

    def complete(self, req: Request) -> Completion:
        return Completion(self, req)


class Completion:
    """Iterate for the text, piece by piece; after that, `finish_reason` ("stop": a stop string or the end
    token; "length": max_tokens reached) and `completion_tokens` (tokens sampled, the end token not counted)
    are set. Iterate while holding the engine (`Engine.hold`)."""

    def __init__(self, engine: Engine, req: Request):
        self.engine, self.req = engine, req
        self.finish_reason: str | None = None
        self.completion_tokens = 0

    @property
    def prompt_tokens(self) -> int:
        return len(self.req.prompt_ids)

    def __iter__(self) -> Iterator[str]:
        from llmlab.generate import stream

        e, req = self.engine, self.req
        decoder, stops = IncrementalDecoder(e.tok.decode), StopFilter(req.stop)
        eos = e.chat_end if req.chat else e.eos_id
        # closing: a client gone mid-stream ends the decode at once (and restores the model's mode)
        with contextlib.closing(stream(e.model, list(req.prompt_ids), req.gen, eos_id=eos)) as tokens:
            for token in tokens:
                self.completion_tokens += 1
                piece = stops.push(decoder.push(token))
                if piece:
                    yield piece
                if stops.stopped:
                    self.finish_reason = "stop"
                    return
        tail = stops.push(decoder.flush())
        tail += stops.flush()
        if tail:
            yield tail
        ended = stops.stopped or self.completion_tokens < req.gen.max_new_tokens
        self.finish_reason = "stop" if ended else "length"


def chat_template_of(model_dir):
    """The `ChatTemplate` of a model directory `llmlab sft` wrote (its tokenizer_config.json), else None
    (a tokenizer_config.json from elsewhere, without llmlab's template, is logged and passed over)."""
    from llmlab.adapt.chat import load_chat_template
    from llmlab.core.errors import InputError

    if not (Path(model_dir) / "tokenizer_config.json").is_file():
        return None
    try:
        return load_chat_template(model_dir)
    except InputError as e:
        log.warning("no chat completions: %s", e)
        return None
