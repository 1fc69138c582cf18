"""One model in memory, and the completions it writes: token ids from the scheduler's running batch
(`llmlab.serve.scheduler`), turned into text by `IncrementalDecoder` and cut at stop strings by `StopFilter`.

A `Completion` is one request's side of the exchange between two threads. The scheduler thread, which
alone runs the model, feeds it each token its row writes (`push`) and tells it when the row ended
(`end`, `fail`); the completion turns tokens into text there, so a stop string ends the row at the very
token that completes it. The request's handler thread iterates it for the pieces, through a queue, as
they come; closing the iteration early (a client gone mid-stream) cancels it, and the scheduler drops its
row at its next step. The engine's `lock` guards the model: the scheduler holds it for each step, so
whoever holds it pauses decoding.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

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
        self.lock = threading.Lock()  # the model's: held by the scheduler for each step

    def complete(self, req: Request) -> Completion:
        """The completion of `req`, to submit to a `Scheduler`, then iterate."""
        return Completion(self, req)


class Completion:
    """Iterate for the text, piece by piece; after that, `finish_reason` ("stop": a stop string or the end
    token; "length": max_tokens reached) and `completion_tokens` (tokens sampled, the end token not counted)
    are set. An error of its decoding (an InputError, or the scheduler's ApiError) is raised by the
    iteration. The scheduler calls `push`, `end` and `fail`; `admitted` is set once it has a row."""

    def __init__(self, engine: Engine, req: Request):
        self.req = req
        self.eos = engine.chat_end if req.chat else engine.eos_id
        self.decoder, self.stops = IncrementalDecoder(engine.tok.decode), StopFilter(req.stop)
        self.finish_reason: str | None = None
        self.completion_tokens = 0  # as the iteration has seen them
        self.written = 0  # as the scheduler has written them
        self.out: queue.SimpleQueue = queue.SimpleQueue()  # (piece, tokens so far), then None or an exception
        self.admitted = threading.Event()
        self.refusal: Exception | None = None  # why the scheduler let it go unadmitted (it shut down)
        self.cancelled = False  # the reader went away: the scheduler drops the row
        self.over = False  # the scheduler is done with it

    @property
    def prompt_tokens(self) -> int:
        return len(self.req.prompt_ids)

    # --- the scheduler's side ---------------------------------------------------------------------
    def push(self, token: int) -> bool:
        """Take the row's next token; True once a stop string completes (the row should leave)."""
        self.written += 1
        piece = self.stops.push(self.decoder.push(token))
        if piece:
            self.out.put((piece, self.written))
        if self.stops.stopped:
            self._finish("stop")
        return self.stops.stopped

    def end(self) -> None:
        """The row ended: it wrote the end token or max_tokens; send what the filters held back."""
        tail = self.stops.push(self.decoder.flush())
        tail += self.stops.flush()
        if tail:
            self.out.put((tail, self.written))
        ended = self.stops.stopped or self.written < self.req.gen.max_new_tokens
        self._finish("stop" if ended else "length")

    def fail(self, error: Exception) -> None:
        self.over = True
        self.out.put(error)

    def _finish(self, reason: str) -> None:
        self.finish_reason, self.over = reason, True
        self.out.put(None)

    # --- the reader's side ------------------------------------------------------------------------
    def __iter__(self) -> Iterator[str]:
        if not self.admitted.is_set():
            raise RuntimeError("submit the completion to a Scheduler before reading it")
        try:
            while (item := self.out.get()) is not None:
                if isinstance(item, Exception):
                    raise item
                piece, self.completion_tokens = item
                yield piece
            self.completion_tokens = self.written
        finally:  # closed early (a client gone mid-stream): the scheduler frees the row at its next step
            self.cancelled = True


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
