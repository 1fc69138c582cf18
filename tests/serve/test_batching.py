"""Continuous batching in the server: concurrent requests (mixed prompt lengths, greedy and seeded sampling)
each get the text they get alone from the serial server (max_batch=1), also when they join a batch mid-decode;
rows leave the batch as soon as they end (max_tokens, stop string, a client gone); max_batch=1 is `generate`'s
computation token for token. The model's forward is wrapped to see each step's batch and to hold a step
while the test arranges what happens next (never a timing)."""

import http.client
import json
import socket
import struct
import threading
import time

import pytest

from llmlab.generate import GenerationConfig, generate
from llmlab.models.scoring import text_start

TIMEOUT = 30  # seconds any wait below may take before the test fails (never reached when it passes)


@pytest.fixture
def engine(char_dir, engine_of):
    return engine_of(char_dir)  # its own model per test: the tests wrap its forward


class Gate:
    """Wraps the model's forward: `shapes` records each call's (B, T); call number `hold_at` (counting from 1)
    sets `reached` and waits for `go`; with `until`, every later call waits until it holds (or TIMEOUT)."""

    def __init__(self, model, hold_at: int = 0):
        self.shapes, self.hold_at = [], hold_at
        self.reached, self.go = threading.Event(), threading.Event()
        self.until = None
        forward = model.forward

        def gated(idx, *args, **kw):
            self.shapes.append(tuple(idx.shape))
            if len(self.shapes) == self.hold_at:
                self.reached.set()
                assert self.go.wait(TIMEOUT)
            elif self.until is not None and len(self.shapes) > self.hold_at:
                wait_for(self.until)
            return forward(idx, *args, **kw)

        model.forward = gated

    def steps(self) -> list[int]:
        """The batch size of each decode step (one new token per row)."""
        return [B for B, T in self.shapes if T == 1]


def wait_for(condition) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, "the server never got there"
        time.sleep(0.005)


def post(port: int, doc: dict) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.request("POST", "/v1/completions", json.dumps(doc, ensure_ascii=False).encode())
    return json.loads(conn.getresponse().read())


def health(port: int) -> dict:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=TIMEOUT)
    conn.request("GET", "/health")
    return json.loads(conn.getresponse().read())


def in_threads(port: int, docs: list[dict]) -> tuple[list[threading.Thread], list]:
    """Post each of `docs` from its own thread; the answers land in the list, in order, once joined."""
    out = [None] * len(docs)

    def one(i):
        out[i] = post(port, docs[i])

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(docs))]
    for t in threads:
        t.start()
    return threads, out


def joined(threads, out) -> list:
    for t in threads:
        t.join(TIMEOUT)
    assert all(o is not None for o in out)
    return out


def answer(doc: dict) -> tuple:
    return doc["choices"][0]["text"], doc["choices"][0]["finish_reason"], doc["usage"]["completion_tokens"]


REQUESTS = [  # mixed prompt lengths (2 to 31 tokens), greedy and seeded sampling with their own settings
    {"prompt": "中", "max_tokens": 20, "temperature": 0},
    {"prompt": "hello world, how are you? 12+30", "max_tokens": 12, "temperature": 0.9, "seed": 3, "top_k": 8},
    {"prompt": "北京新年好", "max_tokens": 25, "temperature": 1.2, "seed": 11, "top_p": 0.8, "presence_penalty": 1.5},
    {"prompt": "中国经济发展很快。北京", "max_tokens": 16, "temperature": 0, "frequency_penalty": 1.0},
    {"prompt": "12+30=", "max_tokens": 30, "temperature": 0.7, "seed": 5, "stop": ["好"]},
    {"prompt": "how", "max_tokens": 8, "temperature": 0, "stop": ["o", "e"]},
]


@pytest.fixture
def alone(engine, running):
    """Each of REQUESTS as the serial server (max_batch=1) answers it, one after another."""
    with running(engine, max_batch=1) as c:
        return [answer(post(c.port, doc)) for doc in REQUESTS]


def test_concurrent_requests_get_what_each_gets_alone(engine, running, alone):
    gate = Gate(engine.model)
    with running(engine, max_batch=4) as c:
        with engine.lock:  # no step until all six wait: four start together, two join as places free up
            threads, out = in_threads(c.port, REQUESTS)
            wait_for(lambda: health(c.port)["queued"] == len(REQUESTS))
        assert [answer(o) for o in joined(threads, out)] == alone
        assert health(c.port) == {"status": "ok", "model": "tiny", "busy": False, "running": 0, "queued": 0,
                                  "max_batch": 4}
    steps = gate.steps()
    assert steps[0] == 4 and max(steps) == 4 and min(steps) == 1  # batched, never past max_batch, and shrinking
    # every decode step feeds one token of each running row: rows leave at their last token, none lingers
    written = [n + (reason == "stop" and not doc.get("stop")) for doc, (_, reason, n) in zip(REQUESTS, alone)]
    assert sum(steps) == sum(n - 1 for n in written)


def test_a_request_joins_mid_decode(engine, running, alone):
    gate = Gate(engine.model, hold_at=6)  # the first request's prefill, then its fifth step
    with running(engine, max_batch=4) as c:
        threads, out = in_threads(c.port, REQUESTS[:1])
        assert gate.reached.wait(TIMEOUT)
        # a longer prompt than the row decoding (31 tokens against its 6: the batch is re-padded), a shorter one
        later, later_out = in_threads(c.port, [REQUESTS[1], REQUESTS[5]])
        wait_for(lambda: health(c.port)["queued"] == 2)
        gate.go.set()
        answers = [answer(o) for o in joined(threads, out) + joined(later, later_out)]
    assert answers == [alone[0], alone[1], alone[5]]
    assert gate.steps()[:6] == [1, 1, 1, 1, 1, 3]  # they joined the step after the one held


def test_chunked_prefill_serves_what_each_gets_alone(engine, running, alone):
    gate = Gate(engine.model)
    with running(engine, max_batch=4, prefill_chunk=4) as c:
        with engine.lock:  # all six wait: four are prefilled 4 tokens a step, two join as places free up
            threads, out = in_threads(c.port, REQUESTS)
            wait_for(lambda: health(c.port)["queued"] == len(REQUESTS))
        assert [answer(o) for o in joined(threads, out)] == alone
    assert max(T for _, T in gate.shapes) == 4 and max(B for B, _ in gate.shapes) == 4


def test_a_long_prompt_is_prefilled_a_chunk_per_step_while_a_request_decodes(engine, running, alone):
    gate = Gate(engine.model, hold_at=6)  # the first request's prefill (2 tokens), then its fifth step
    with running(engine, max_batch=4, prefill_chunk=4) as c:
        threads, out = in_threads(c.port, REQUESTS[:1])
        assert gate.reached.wait(TIMEOUT)
        long, long_out = in_threads(c.port, [REQUESTS[1]])  # 32 tokens with the text start
        wait_for(lambda: health(c.port)["queued"] == 1)
        short, short_out = in_threads(c.port, [REQUESTS[5]])  # 4, in line behind it
        wait_for(lambda: health(c.port)["queued"] == 2)
        gate.go.set()
        answers = [answer(o) for o in joined(threads, out) + joined(long, long_out) + joined(short, short_out)]
    assert answers == [alone[0], alone[1], alone[5]]
    # each step: the running request's token, then 4 of the long prompt's; unchunked, one (1, 32) forward
    assert gate.shapes[:6] == [(1, 2)] + [(1, 1)] * 5
    assert gate.shapes[6:22] == [(1, 1), (1, 4)] * 8
    assert gate.shapes[22:25] == [(2, 1), (1, 4), (3, 1)]  # it joins; the short one's prompt, then all three


def test_max_batch_1_is_generate_token_for_token(engine, running):
    """The serial server: each request decoded alone by `stream`, so a sampled one is `generate`'s exactly."""
    docs = [{**doc, "max_tokens": 10} for doc in REQUESTS[:3]]
    tok = engine.tok
    want = []
    for doc in docs:
        cfg = GenerationConfig(max_new_tokens=10, temperature=doc["temperature"], seed=doc.get("seed", 0),
                               top_k=doc.get("top_k", 0), top_p=doc.get("top_p", 1.0),
                               presence_penalty=doc.get("presence_penalty", 0.0))
        want.append(tok.decode(generate(engine.model, text_start(tok) + tok.encode(doc["prompt"]), cfg, tok.eos_id)))
    gate = Gate(engine.model)
    with running(engine, max_batch=1) as c:
        with engine.lock:
            threads, out = in_threads(c.port, docs)
            wait_for(lambda: health(c.port)["queued"] == 3)
        assert [o["choices"][0]["text"] for o in joined(threads, out)] == want
    assert {B for B, _ in gate.shapes} == {1}


def test_a_client_gone_mid_stream_frees_its_row(engine, running):
    req = {"prompt": "中国", "max_tokens": 60, "temperature": 0}  # greedy: sampling could end it before the hold
    with running(engine, max_batch=1) as c:
        assert answer(post(c.port, req))[2] >= 20  # alone, it runs well past the steps allowed below
    gate = Gate(engine.model, hold_at=4)  # the prefill, then its third step
    with running(engine, max_batch=2) as c:
        body = json.dumps({**req, "stream": True}).encode()
        s = socket.create_connection(("127.0.0.1", c.port), timeout=TIMEOUT)
        s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        assert s.recv(100).startswith(b"HTTP/1.1 200")
        assert gate.reached.wait(TIMEOUT)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        s.close()
        # the next step waits until the handler, writing the held step's piece, found the client gone
        gate.until = lambda: all(done.cancelled for done in list(c.server.scheduler.active))
        gate.go.set()
        wait_for(lambda: health(c.port)["running"] == 0)
        assert len(gate.steps()) < 10  # not the 20 or more it takes alone
        gate.until = None
        assert c.post("/v1/completions", {"prompt": "x", "max_tokens": 1})[0] == 200

