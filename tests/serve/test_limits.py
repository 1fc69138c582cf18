"""Refused requests: every broken rule or limit gets OpenAI's error object with the field named and the
limit stated (400), or 404/405/411/413/503, never a traceback; and the server serves the next request.
Prompts over the context are refused or truncated, keeping room for the output."""

import dataclasses
import socket
import threading

import pytest

from llmlab.core.errors import InputError
from llmlab.generate import GenerationConfig, generate
from llmlab.models.scoring import text_start
from llmlab.serve import ServeConfig

CTX = 64  # the test models' context


@pytest.fixture(scope="module")
def char_engine(char_dir, engine_of):
    return engine_of(char_dir)


@pytest.fixture(scope="module")
def client(char_engine, running):
    with running(char_engine, max_prompt_tokens=40, max_tokens_limit=32, max_body_bytes=4096) as c:
        yield c


def error_of(status, doc, want_status, param):
    assert status == want_status, doc
    assert set(doc) == {"error"} and set(doc["error"]) == {"message", "type", "param", "code"}
    assert doc["error"]["param"] == param
    assert "Traceback" not in doc["error"]["message"]
    return doc["error"]["message"]


BAD = [  # (request fields, param, words the message must hold)
    ({"temperature": -1}, "temperature", ["temperature", "[0, 2]", "-1"]),
    ({"temperature": "hot"}, "temperature", ["number", "'hot'"]),
    ({"top_p": 0}, "top_p", ["(0, 1]"]),
    ({"top_k": -3}, "top_k", [">= 0", "-3"]),
    ({"top_k": 2.5}, "top_k", ["integer"]),
    ({"seed": -1}, "seed", ["seed"]),
    ({"seed": True}, "seed", ["integer"]),
    ({"presence_penalty": 3}, "presence_penalty", ["[-2, 2]"]),
    ({"n": 2}, "n", ["n must be 1"]),
    ({"stop": ["a", "b", "c", "d", "e"]}, "stop", ["at most 4 non-empty strings"]),
    ({"stop": ""}, "stop", ["non-empty"]),
    ({"stop": 3}, "stop", ["string or a list"]),
    ({"stop": ["a", "x" * 257]}, "stop", ["at most 256 characters", "257"]),
    ({"stream": "yes"}, "stream", ["true or false"]),
    ({"stream_options": {"include_usage": True}}, "stream_options", ["stream: true"]),
    ({"max_tokens": 0}, "max_tokens", [">= 1"]),
    ({"max_tokens": 33}, "max_tokens", ["33", "at most 32", "max_tokens_limit"]),
    ({"logprobs": 5}, "logprobs", ["not supported"]),
    ({"echo": True}, "echo", ["not supported"]),
    ({"messages": []}, "messages", ["unknown field", "/v1/chat/completions"]),
    ({"frobnicate": 1}, "frobnicate", ["unknown field"]),
    ({"prompt": None}, "prompt", ["prompt is required"]),
    ({"prompt": ["a", "b"]}, "prompt", ["2 prompts", "one per request"]),
    ({"prompt": [1, 99999]}, "prompt", ["outside the vocabulary", "99999"]),
    ({"prompt": {"text": "x"}}, "prompt", ["string or a non-empty list"]),
    ({"prompt": "中" * 41, "max_tokens": 4}, "prompt", ["42 tokens", "at most 40", "max_prompt_tokens"]),
]


@pytest.mark.parametrize("fields,param,words", BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_a_bad_field_is_a_400_naming_it_and_the_next_request_is_served(client, fields, param, words):
    status, doc, _ = client.post("/v1/completions", {"prompt": "中国", "max_tokens": 4, **fields})
    message = error_of(status, doc, 400, param)
    assert all(w in message for w in words), message
    status, doc, _ = client.post("/v1/completions", {"prompt": "中国", "max_tokens": 2})  # same connection
    assert status == 200 and doc["usage"]["completion_tokens"] <= 2


@pytest.mark.parametrize("body,words", [(b"{not json", "not valid JSON"), (b"[1, 2]", "must be a JSON object"),
                                        (b'{"prompt": "a", "temperature": NaN}', "NaN is not a JSON number"),
                                        ("{}".encode("utf-16"), "not UTF-8"), (b"[" * 3000, "nests JSON too deeply")])
def test_a_body_that_is_no_json_object_is_a_400(client, body, words):
    status, doc, _ = client.request("POST", "/v1/completions", body=body)
    assert words in error_of(status, doc, 400, None)


def test_routes_methods_and_models(client):
    status, doc, _ = client.request("GET", "/v1/nothing")
    assert "no route GET /v1/nothing" in error_of(status, doc, 404, None)
    status, doc, r = client.request("GET", "/v1/completions")
    assert "takes POST, not GET" in error_of(status, doc, 405, None) and r.getheader("Allow") == "POST"
    status, doc, r = client.post("/v1/models", {"x": 1})  # a body it never reads: the connection closes
    assert status == 405 and r.getheader("Connection") == "close"
    status, doc, _ = client.request("GET", "/v1/models")
    assert status == 200 and doc["object"] == "list"
    assert doc["data"][0]["id"] == "tiny" and doc["data"][0]["max_model_len"] == CTX
    assert client.request("GET", "/v1/models/tiny")[1] == doc["data"][0]
    status, doc, _ = client.request("GET", "/v1/models/gpt-4")
    assert "serves 'tiny'" in error_of(status, doc, 404, "model")
    status, doc, _ = client.post("/v1/completions", {"model": "gpt-4", "prompt": "x"})
    assert "serves 'tiny'" in error_of(status, doc, 404, "model") and doc["error"]["code"] == "model_not_found"
    status, doc, _ = client.request("GET", "/health?verbose=1")
    assert status == 200 and doc == {"status": "ok", "model": "tiny", "busy": False, "running": 0, "queued": 0,
                                     "max_batch": 8}
    status, body, r = client.request("HEAD", "/health")
    assert status == 200 and body == "" and int(r.getheader("Content-Length")) > 0
    assert client.request("HEAD", "/v1/completions")[0] == 405


def test_chat_on_a_model_without_a_template_is_refused(client):
    status, doc, _ = client.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]})
    assert "no chat template" in error_of(status, doc, 400, "messages")


@pytest.mark.parametrize("messages,words", [
    ([], "non-empty list"), ([{"role": "robot", "content": "x"}], "role 'robot'"),
    ([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}], "must end with a user"),
    ([{"role": "user", "content": [{"type": "image_url"}]}], "text only")])
def test_bad_messages_are_a_400(chat_dir, engine_of, running, messages, words):
    with running(engine_of(chat_dir)) as c:
        status, doc, _ = c.post("/v1/chat/completions", {"messages": messages})
        assert words in error_of(status, doc, 400, "messages")
        assert c.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "x"}], "max_tokens": 2})[0] \
            == 200


def raw(port: int, data: bytes, wait: float = 30.0) -> bytes:
    """Send bytes on a fresh connection; everything the server answers until it closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as s:
        s.sendall(data)
        out = b""
        while chunk := s.recv(65536):
            out += chunk
    return out


def test_an_oversized_body_is_a_413_before_it_is_read(client):
    status, doc, r = client.post("/v1/completions", {"prompt": "中" * 5000})
    assert "max_body_bytes" in error_of(status, doc, 413, None) and "4096" in doc["error"]["message"]
    assert r.getheader("Connection") == "close"
    # with Expect: 100-continue (curl, for bodies over 1 KiB) the body is refused before it is sent
    head = (b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 999999\r\n"
            b"Expect: 100-continue\r\n\r\n")
    reply = raw(client.port, head)
    assert reply.startswith(b"HTTP/1.1 413") and b"100 Continue" not in reply and b"max_body_bytes" in reply
    reply = raw(client.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 411") and b"Content-Length" in reply
    assert client.post("/v1/completions", {"prompt": "中国", "max_tokens": 2})[0] == 200


def test_conflicting_lengths_and_malformed_request_lines_are_a_400_without_a_traceback(client, capsys):
    body = b'{"prompt":"x","max_tokens":1}'
    smuggled = b"GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n"  # what the first length leaves over
    reply = raw(client.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n"
                b"Content-Length: %d\r\n\r\n" % (len(body), len(body + smuggled)) + body + smuggled)
    assert reply.startswith(b"HTTP/1.1 400") and b"conflicting Content-Length" in reply
    assert reply.count(b"HTTP/1.1 ") == 1  # the left-over bytes were not served as a second request
    for line in (b"HELLO\r\n\r\n", b"GET /health HTTP/9.9\r\n\r\n", b"GET /health HTTP/1.1 extra\r\n\r\n"):
        reply = raw(client.port, line)  # a one-word line is HTTP/0.9's: the answer is the body alone
        assert b'"error"' in reply and reply.startswith((b"HTTP/1.0 400", b"HTTP/1.1 505", b'{"error"')), reply
    assert "Traceback" not in capsys.readouterr().err
    assert client.post("/v1/completions", {"prompt": "中国", "max_tokens": 2})[0] == 200


def test_a_silent_client_is_dropped(char_engine, running):
    with running(char_engine, read_timeout=0.3) as c:
        reply = raw(c.port, b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 50\r\n\r\n{\"pro")
        assert reply.startswith(b"HTTP/1.1 408") and b"read_timeout" in reply
        # the next client is not held to 0.3 s: a stall (a GC pause, a loaded machine) between its sends would drop it
        c.server.cfg = dataclasses.replace(c.server.cfg, read_timeout=30)
        assert c.post("/v1/completions", {"prompt": "x", "max_tokens": 1})[0] == 200


@pytest.mark.parametrize("max_batch", [1, 4])
def test_health_answers_while_the_model_is_busy_and_a_waiter_gets_503(char_engine, running, max_batch):
    with running(char_engine, max_wait_seconds=0.2, max_batch=max_batch) as c:
        char_engine.lock.acquire()  # the scheduler's next step waits for it, as behind a long one
        try:
            status, doc, _ = c.post("/v1/completions", {"prompt": "x", "max_tokens": 1})
            message = error_of(status, doc, 503, None)
            assert "busy" in message and "max_wait_seconds" in message and f"{max_batch} requests" in message
            status, doc, _ = c.request("GET", "/health")
            assert status == 200 and (doc["busy"], doc["queued"], doc["max_batch"]) == (False, 0, max_batch)
            status, doc, _ = c.post("/v1/completions", {"prompt": "x", "temperature": 9})  # refused without waiting
            assert status == 400
        finally:
            char_engine.lock.release()
        # the next request may wait for its place as long as it needs: a scheduler thread slow to wake (a loaded
        # machine) must not make it a 503 too
        c.server.cfg = dataclasses.replace(c.server.cfg, max_wait_seconds=30)
        assert c.post("/v1/completions", {"prompt": "x", "max_tokens": 1})[0] == 200


def test_requests_take_the_model_one_at_a_time(char_engine, running):
    with running(char_engine) as c0:
        results = []

        def one(seed):
            import http.client
            import json

            conn = http.client.HTTPConnection("127.0.0.1", c0.port, timeout=30)
            conn.request("POST", "/v1/completions", json.dumps({"prompt": "中国", "max_tokens": 12, "seed": seed}))
            results.append((seed, json.loads(conn.getresponse().read())["choices"][0]["text"]))

        threads = [threading.Thread(target=one, args=(s,)) for s in (1, 2, 3, 1)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
        alone = {s: c0.post("/v1/completions", {"prompt": "中国", "max_tokens": 12, "seed": s})[1]["choices"][0]["text"]
                 for s in (1, 2, 3)}
        assert sorted(results) == sorted((s, alone[s]) for s in (1, 2, 3, 1))


def test_prompt_over_the_context_is_refused_or_cut_keeping_room_for_the_output(char_engine, running):
    tok = char_engine.tok
    prompt = "中国经济发展很快。北京新年好！" * 5  # 75 characters: over the 64-token context alone
    ids = text_start(tok) + tok.encode(prompt)
    with running(char_engine) as c:
        status, doc, _ = c.post("/v1/completions", {"prompt": prompt, "max_tokens": 10})
        message = error_of(status, doc, 400, "prompt")
        assert "76 tokens" in message and "context of 64" in message and "at most 54" in message
        assert doc["error"]["code"] == "context_length_exceeded"
        status, doc, _ = c.post("/v1/completions", {"prompt": "x", "max_tokens": 64})
        assert "at most 63" in error_of(status, doc, 400, "max_tokens")
    for side, kept in (("left", ids[-54:]), ("middle", ids[:27] + ids[-27:])):
        want = generate(char_engine.model, kept, GenerationConfig(max_new_tokens=10, temperature=0), tok.eos_id)
        with running(char_engine, truncation=side) as c:
            status, doc, _ = c.post("/v1/completions", {"prompt": prompt, "max_tokens": 10, "temperature": 0})
        assert status == 200 and doc["usage"]["prompt_tokens"] == 54
        assert doc["choices"][0]["text"] == tok.decode(want)


NEWS = "中国经济发展很快。北京新年好！" * 4  # 60 characters
CHAT = [{"role": "system", "content": "北京新年好"}, {"role": "user", "content": NEWS[:30]},
        {"role": "assistant", "content": "好"}, {"role": "user", "content": NEWS[:20]}]


def chat_prompt_kept(engine, truncation: str, messages: list[dict], max_tokens: int) -> list[int]:
    """The prompt ids a chat request keeps under `truncation` (the char model's context: 64)."""
    import json

    from llmlab.serve.requests import parse_request

    body = json.dumps({"messages": messages, "max_tokens": max_tokens}).encode()
    return list(parse_request(body, True, engine, ServeConfig(truncation=truncation)).prompt_ids)


def test_left_truncation_of_a_chat_cuts_the_oldest_content_never_the_template(chat_dir, engine_of, running):
    engine = engine_of(chat_dir)
    tok, template = engine.tok, engine.template

    def kept(messages, max_tokens):
        return chat_prompt_kept(engine, "left", messages, max_tokens)

    # one message over the budget of 54: its start goes, its role token, end and the assistant header stay
    assert kept([{"role": "user", "content": NEWS}], 10) == \
        template.prompt_ids(tok, [{"role": "user", "content": NEWS[-51:]}])
    # older turns go whole, oldest first; the oldest one kept loses the start of its content only
    assert kept(CHAT, 20) == template.prompt_ids(tok, [{"role": "user", "content": NEWS[14:30]}, *CHAT[2:]])
    assert kept(CHAT, 36) == template.prompt_ids(tok, CHAT[2:])  # no room for one token of that user turn
    # a budget under the newest turn's role, one content token, its end and the header: refused, not cut
    with running(engine, truncation="left") as c:
        status, doc, _ = c.post("/v1/chat/completions", {"messages": CHAT, "max_tokens": 61})
        message = error_of(status, doc, 400, "messages")
        assert "need 4 tokens" in message and "leaves the prompt 3" in message and "never cuts" in message
        assert doc["error"]["code"] == "context_length_exceeded"
        assert c.post("/v1/chat/completions", {"messages": CHAT, "max_tokens": 60})[0] == 200


def test_middle_truncation_of_a_chat_keeps_the_first_turn_and_cuts_the_rest_around_the_template(chat_dir, engine_of):
    engine = engine_of(chat_dir)
    tok, template = engine.tok, engine.template

    def kept(messages, max_tokens):
        return chat_prompt_kept(engine, "middle", messages, max_tokens)

    # the system turn stays whole; the turns after it are cut as left truncation cuts them
    assert kept(CHAT, 20) == template.prompt_ids(tok, [CHAT[0], {"role": "user", "content": NEWS[21:30]}, *CHAT[2:]])
    # the budget of 14 holds the system turn (7) beside 4 characters of the newest turn (3 + the header)
    assert kept(CHAT, 50) == template.prompt_ids(tok, [CHAT[0], {"role": "user", "content": NEWS[16:20]}])
    # a budget of 9 does not hold it beside one character of the newest: cut as left truncation cuts
    assert kept(CHAT, 55) == template.prompt_ids(tok, [{"role": "user", "content": NEWS[14:20]}])
    # a lone message is cut at the start of its content, its role token, end and the header kept
    assert kept([{"role": "user", "content": NEWS}], 10) == \
        template.prompt_ids(tok, [{"role": "user", "content": NEWS[-51:]}])


def test_without_max_tokens_the_default_is_lowered_to_fit(char_engine, running):
    prompt = "中" * 59  # 60 tokens with the text start: room for 4
    with running(char_engine, default_max_tokens=16) as c:
        status, doc, _ = c.post("/v1/completions", {"prompt": prompt, "temperature": 0})
        assert status == 200 and doc["usage"]["prompt_tokens"] == 60 and doc["usage"]["completion_tokens"] <= 4
        status, doc, _ = c.post("/v1/completions", {"prompt": "中", "temperature": 0})
        assert doc["usage"]["completion_tokens"] <= 16


@pytest.mark.parametrize("fields,words", [
    ({"port": 70000}, "port must be in [0, 65535]"), ({"truncation": "right"}, "truncation must be one of"),
    ({"max_body_bytes": 0}, "max_body_bytes must be >= 1"), ({"default_max_tokens": 0}, "default_max_tokens"),
    ({"max_wait_seconds": 0}, "max_wait_seconds"), ({"host": ""}, "host"),
    ({"max_batch": 0}, "max_batch must be >= 1"), ({"prefill_chunk": -1}, "prefill_chunk must be >= 0"),
    ({"max_batch": 1, "prefill_chunk": 4}, "--prefill-chunk applies to batched decoding (--max-batch N > 1)")])
def test_serve_config_is_checked(fields, words):
    with pytest.raises(InputError) as e:
        ServeConfig(**fields)
    assert words in str(e.value)
