"""Continuous (iteration-level) batching of the server's requests, as vLLM and TGI do it, sized for a CPU:
one scheduler thread owns the model and decodes every running request together, one batched forward per
step (`llmlab.generate.continuous.RunningBatch`).

Each iteration of the thread, under the engine's lock:

1. drop the rows whose reader went away (a client gone mid-stream closes its `Completion`);
2. admit waiting requests, first come first served, while fewer than ``max_batch`` run: each one's prompt
   is prefilled alone and its first token sampled, and its row joins the batch at this step; with
   ``prefill_chunk`` N, the prompt is queued instead and prefilled N tokens per step at most (chunked
   prefill), so a long prompt no longer holds up the running requests' next token for its whole prefill;
3. one decode step: one forward for all batched rows (plus one for each row that must decode alone), then
   each row samples with its own settings and generator; then the next chunk of the queued prompts (a
   prompt whose last chunk ran samples its first token, and joins the batch at the next step);
4. hand every token to its `Completion`, which turns it into text; a row that wrote its end token or
   max_tokens, or whose text completed a stop string, leaves at once, freeing its place.

A request that finds every place taken waits in line; one still waiting after ``max_wait_seconds`` is
withdrawn and gets 503. ``max_batch=1`` decodes one request at a time, each by `stream` alone: the
serial server, token for token. The thread starts with the first request, sleeps while there is nothing
to do, and `close` ends it (requests still waiting or running then get 503).
"""

from __future__ import annotations

import logging
import threading
from collections import deque

from llmlab.generate.autoregressive import decoding
from llmlab.generate.continuous import Row, RunningBatch
from llmlab.serve.engine import Completion, Engine
from llmlab.serve.protocol import ApiError

log = logging.getLogger(__name__)


class Scheduler:
    """Decodes the completions submitted to it, up to `max_batch` at a time, on a thread of its own."""

    def __init__(self, engine: Engine, max_batch: int = 8, prefill_chunk: int = 0):
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if prefill_chunk < 0:
            raise ValueError(f"prefill_chunk must be >= 0 (0 = each prompt in one forward), got {prefill_chunk}")
        self.engine, self.max_batch, self.prefill_chunk = engine, max_batch, prefill_chunk
        self.cond = threading.Condition()  # guards the three fields below
        self.waiting: deque[Completion] = deque()
        self.active: dict[Completion, Row | None] = {}  # admitted, by their row (None while it prefills)
        self.closed = False
        self.thread: threading.Thread | None = None

    def submit(self, c: Completion, wait_seconds: float) -> None:
        """Queue `c` and return once it has a place in the batch; ApiError 503 after `wait_seconds` in line."""
        with self.cond:
            if self.closed:
                raise ApiError(503, "the server is shutting down", code="server_shutting_down")
            self.waiting.append(c)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="llmlab-scheduler", daemon=True)
                self.thread.start()
            self.cond.notify()
        if c.admitted.wait(wait_seconds):
            if c.refusal is not None:
                raise c.refusal
            return
        with self.cond:
            if c in self.waiting:  # else it was admitted just now
                self.waiting.remove(c)
                raise ApiError(503, f"the model is busy: waited {wait_seconds:g} s (max_wait_seconds) for a place "
                               f"among the {self.max_batch} requests it decodes at once (max_batch); try again",
                               code="server_busy")

    def counts(self) -> dict[str, int]:
        """How many requests are decoding now, and how many wait for a place."""
        with self.cond:
            return {"running": len(self.active), "queued": len(self.waiting)}

    def close(self, timeout: float = 60.0) -> None:
        """Stop the thread after its current step; requests waiting or running get 503."""
        with self.cond:
            self.closed = True
            thread = self.thread
            self.cond.notify_all()
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                log.warning("the scheduler's step did not end within %g s of the shutdown", timeout)

    # --- the scheduler's thread -------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self.cond:
                while not self.waiting and not self.closed:
                    self.cond.wait()
                if self.closed:
                    break
            with decoding(self.engine.model):  # eval mode and fused matrices while there is work
                batch = RunningBatch(self.engine.model, alone=self.max_batch == 1, prefill_chunk=self.prefill_chunk)
                try:
                    while self._iterate(batch):
                        pass
                finally:
                    batch.clear()
        self._refuse_all()

    def _iterate(self, batch: RunningBatch) -> bool:
        """One iteration (see the module docstring); False once nothing is left to do, or on close."""
        with self.engine.lock:
            with self.cond:
                if self.closed:
                    return False
                for c in [c for c in self.active if c.cancelled]:
                    batch.remove(self.active.pop(c))  # never None here: rows get None only inside an iteration
                new = []
                while self.waiting and len(self.active) < self.max_batch:
                    new.append(self.waiting.popleft())
                    self.active[new[-1]] = None
                    new[-1].admitted.set()
                if not self.active:
                    return False
            try:
                for c in new:
                    self._join(c, batch)
                stepped = {id(r) for r in batch.step()}
            except Exception as e:  # a failed forward fails every row of it: they start afresh in a new batch
                log.exception("a decode step failed")
                self._fail_running(batch, e)
                return True
            for c, row in list(self.active.items()):
                if id(row) in stepped:
                    self._deliver(c, row, batch)
            return True

    def _join(self, c: Completion, batch: RunningBatch) -> None:
        try:
            row = batch.add(list(c.req.prompt_ids), c.req.gen, c.eos)
        except Exception as e:  # the request's own fault (bans past the vocabulary...) or a bug: its alone
            if not isinstance(e, (ValueError, ApiError)):
                log.exception("a prefill failed")
            with self.cond:
                del self.active[c]
            c.fail(e)
            return
        with self.cond:
            self.active[c] = row
        self._deliver(c, row, batch)

    def _deliver(self, c: Completion, row: Row, batch: RunningBatch) -> None:
        """Hand the row's newest token to its completion; take the row out once either is done."""
        if row.error is not None:
            c.fail(row.error)
        elif row.token is not None and c.push(row.token):  # a stop string completed
            batch.remove(row)
        elif row.finished:
            c.end()
        if c.over:
            with self.cond:
                self.active.pop(c, None)

    def _fail_running(self, batch: RunningBatch, error: Exception) -> None:
        batch.clear()
        with self.cond:
            running, self.active = list(self.active), {}
        for c in running:
            c.fail(error)

    def _refuse_all(self) -> None:
        """On close: the waiting get their 503 from `submit`, the running as the error of their iteration."""
        with self.cond:
            waiting, running = list(self.waiting), list(self.active)
            self.waiting.clear()
            self.active.clear()
        for c in waiting:
            c.refusal = ApiError(503, "the server is shutting down", code="server_shutting_down")
            c.admitted.set()
        for c in running:
            c.fail(ApiError(503, "the server shut down during this completion", code="server_shutting_down"))
