"""Completions over HTTP against `llmlab.generate` in process: the same greedy text and token counts,
streamed chunks that add up to the whole answer, seeded sampling, stop strings (also across streamed
chunks), chat completions against the template + generate, a quantized model, and whole UTF-8
characters from a byte-level BPE model."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmlab.adapt.chat import ChatTemplate
from llmlab.generate import GenerationConfig, generate
from llmlab.models.scoring import text_start

PROMPT = "中国"


@pytest.fixture(scope="module")
def char(char_dir, engine_of, running):
    engine = engine_of(char_dir)
    with running(engine) as client:
        yield engine, client


def greedy(engine, ids, n, eos):
    return generate(engine.model, ids, GenerationConfig(max_new_tokens=n, temperature=0.0), eos_id=eos)


def test_greedy_completion_is_generate_s_text_and_counts(char):
    engine, client = char
    ids = text_start(engine.tok) + engine.tok.encode(PROMPT)
    want = greedy(engine, ids, 20, engine.tok.eos_id)
    status, doc, _ = client.post("/v1/completions", {"model": "tiny", "prompt": PROMPT, "max_tokens": 20,
                                                     "temperature": 0})
    assert status == 200, doc
    assert doc["object"] == "text_completion" and doc["model"] == "tiny" and doc["id"].startswith("cmpl-")
    (choice,) = doc["choices"]
    assert choice["index"] == 0 and choice["text"] == engine.tok.decode(want)
    assert choice["finish_reason"] == ("length" if len(want) == 20 else "stop")
    assert doc["usage"] == {"prompt_tokens": len(ids), "completion_tokens": len(want),
                            "total_tokens": len(ids) + len(want)}


def test_stream_adds_up_to_the_whole_answer(char, streamed_text):
    _, client = char
    req = {"prompt": PROMPT, "max_tokens": 24, "temperature": 0.9, "seed": 7}
    _, whole, _ = client.post("/v1/completions", req)
    status, evs, r = client.post("/v1/completions", {**req, "stream": True, "stream_options": {"include_usage": True}})
    assert status == 200 and r.getheader("Transfer-Encoding") == "chunked"
    assert streamed_text(evs) == whole["choices"][0]["text"]
    assert len(evs) > 3  # token by token, not one lump
    assert all(e["object"] == "text_completion" and e["id"] == evs[0]["id"] for e in evs[:-1])
    assert [e["choices"][0]["finish_reason"] for e in evs[:-2]][-1] == whole["choices"][0]["finish_reason"]
    assert evs[-2]["choices"] == [] and evs[-2]["usage"] == whole["usage"]


def test_only_a_stream_with_usage_has_usage_null_on_every_chunk_but_the_last(char, chat_dir, engine_of, running):
    """OpenAI's shape: with include_usage every chunk carries "usage", null until the last; without, none does."""
    _, client = char
    req = {"prompt": PROMPT, "max_tokens": 6, "temperature": 0, "stream": True}
    _, plain, _ = client.post("/v1/completions", req)
    _, counted, _ = client.post("/v1/completions", {**req, "stream_options": {"include_usage": True}})
    assert all("usage" not in e for e in plain[:-1])
    assert all(e["usage"] is None for e in counted[:-2]) and counted[-2]["usage"]["completion_tokens"] >= 1
    with running(engine_of(chat_dir, "chat")) as chat:  # the chat stream's role chunk too
        _, evs, _ = chat.post("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 6,
                                                       "stream": True, "stream_options": {"include_usage": True}})
    assert "role" in evs[0]["choices"][0]["delta"] and all(e["usage"] is None for e in evs[:-2])
    assert evs[-2]["choices"] == [] and evs[-2]["usage"]["prompt_tokens"] > 0


def test_an_empty_stop_list_is_no_stop_strings(char, greedy_text):
    """OpenAI's API takes "stop": [] for none; read by the parser and answered as without it."""
    from llmlab.serve import ServeConfig
    from llmlab.serve.requests import parse_request

    engine, client = char
    req = parse_request(b'{"prompt": "x", "max_tokens": 3, "stop": []}', False, engine, ServeConfig())
    assert req.stop == ()
    status, doc, _ = client.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 40, "temperature": 0,
                                                     "stop": []})
    assert status == 200, doc
    assert doc["choices"] == greedy_text["choices"] and doc["usage"] == greedy_text["usage"]


def test_seeded_sampling_repeats_and_seeds_differ(char):
    _, client = char
    texts = [client.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 16, "seed": s, "top_k": 20,
                                             "top_p": 0.95})[1]["choices"][0]["text"] for s in (1, 1, 2)]
    assert texts[0] == texts[1] != texts[2]


def test_token_id_prompt_is_read_as_given(char):
    engine, client = char
    ids = engine.tok.encode("hello")
    want = engine.tok.decode(greedy(engine, ids, 8, engine.tok.eos_id))
    _, doc, _ = client.post("/v1/completions", {"prompt": [ids], "max_tokens": 8, "temperature": 0})
    assert doc["choices"][0]["text"] == want and doc["usage"]["prompt_tokens"] == len(ids)


def first_stop_cut(text: str, stops: list[str]) -> int | None:
    """Reference: read the text a character at a time; cut before the stop string completed first."""
    for end in range(1, len(text) + 1):
        done = [s for s in stops if text[:end].endswith(s)]
        if done:
            return end - max(map(len, done))
    return None


@pytest.fixture(scope="module")
def greedy_text(char):
    return char[1].post("/v1/completions", {"prompt": PROMPT, "max_tokens": 40, "temperature": 0})[1]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_stop_strings_cut_alike_streamed_or_not(char, greedy_text, streamed_text, data):
    _, client = char
    text = greedy_text["choices"][0]["text"]
    spans = st.tuples(st.integers(0, len(text) - 1), st.integers(1, 4))
    stops = list(dict.fromkeys(text[i:i + n] for i, n in data.draw(st.lists(spans, min_size=1, max_size=3))))
    stops += data.draw(st.lists(st.sampled_from(["zz", "不在", "\n"]), max_size=1))
    req = {"prompt": PROMPT, "max_tokens": 40, "temperature": 0, "stop": stops}
    _, doc, _ = client.post("/v1/completions", req)
    _, evs, _ = client.post("/v1/completions", {**req, "stream": True})
    cut = first_stop_cut(text, stops)
    assert cut is not None  # every drawn stop string is in the text
    assert doc["choices"][0]["text"] == streamed_text(evs) == text[:cut]
    assert doc["choices"][0]["finish_reason"] == evs[-2]["choices"][0]["finish_reason"] == "stop"
    assert doc["usage"]["completion_tokens"] <= greedy_text["usage"]["completion_tokens"]


def test_chat_completion_is_the_template_and_generate_until_end(chat_dir, engine_of, running, streamed_text):
    engine = engine_of(chat_dir, "chat")
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "12+30="}]
    t = ChatTemplate()
    ids = t.prompt_ids(engine.tok, messages)
    want = greedy(engine, ids, 12, t.ids(engine.tok)[t.end])
    with running(engine) as client:
        status, doc, _ = client.post("/v1/chat/completions", {"model": "chat", "messages": messages,
                                                              "max_tokens": 12, "temperature": 0})
        _, evs, _ = client.post("/v1/chat/completions", {"messages": messages, "max_completion_tokens": 12,
                                                         "temperature": 0, "stream": True})
        parts = [{**messages[1], "content": [{"type": "text", "text": "12+"}, {"type": "text", "text": "30="}]}]
        _, by_parts, _ = client.post("/v1/chat/completions", {"messages": messages[:1] + parts, "max_tokens": 12,
                                                              "temperature": 0})
    assert status == 200, doc
    assert doc["object"] == "chat.completion" and doc["id"].startswith("chatcmpl-")
    assert doc["choices"][0]["message"] == {"role": "assistant", "content": engine.tok.decode(want)}
    assert doc["choices"][0]["finish_reason"] == ("length" if len(want) == 12 else "stop")
    assert doc["usage"]["prompt_tokens"] == len(ids) and doc["usage"]["completion_tokens"] == len(want)
    assert evs[0]["object"] == "chat.completion.chunk" and evs[0]["choices"][0]["delta"]["role"] == "assistant"
    assert streamed_text(evs, chat=True) == doc["choices"][0]["message"]["content"]
    assert by_parts["choices"] == doc["choices"]


def test_a_chat_model_ends_its_reply_at_the_end_token(chat_dir, engine_of, running):
    """The end token's output row made a copy of a token the reply writes, scaled up: where that token
    would win, the end token wins instead, and the reply stops there."""
    import torch

    engine = engine_of(chat_dir, "chat")
    t = ChatTemplate()
    end = t.ids(engine.tok)[t.end]
    messages = [{"role": "user", "content": "hi"}]
    ids = t.prompt_ids(engine.tok, messages)
    before = greedy(engine, ids, 30, end)
    with torch.no_grad():
        engine.model.lm_head.weight[end] = 1.5 * engine.model.lm_head.weight[before[3]]
    want = greedy(engine, ids, 30, end)
    assert len(want) < 30  # the reply ended
    with running(engine) as client:
        _, doc, _ = client.post("/v1/chat/completions", {"messages": messages, "max_tokens": 30, "temperature": 0})
    assert doc["choices"][0]["message"]["content"] == engine.tok.decode(want)
    assert doc["choices"][0]["finish_reason"] == "stop" and doc["usage"]["completion_tokens"] == len(want)


def test_a_quantized_model_serves_what_it_generates(char_dir, tmp_path, engine_of, running):
    from llmlab.adapt.quantize import QuantConfig, quantize_model, save_quantized
    from llmlab.cli.common import load_any_model

    model, tok = load_any_model(str(char_dir))
    quantize_model(model, QuantConfig())
    save_quantized(model, tmp_path / "q", tok)
    engine = engine_of(tmp_path / "q")
    ids = text_start(engine.tok) + engine.tok.encode(PROMPT)
    with running(engine) as client:
        _, doc, _ = client.post("/v1/completions", {"prompt": PROMPT, "max_tokens": 10, "temperature": 0})
    assert doc["choices"][0]["text"] == engine.tok.decode(greedy(engine, ids, 10, engine.tok.eos_id))


def test_byte_level_bpe_streams_whole_characters(bpe_dir, engine_of, running, streamed_text):
    model_dir, sentence = bpe_dir
    engine = engine_of(model_dir)
    tok = engine.tok
    ids = greedy(engine, text_start(tok), 40, tok.eos_id)
    assert tok.decode(ids) == sentence  # the model learned its sentence...
    assert any("\ufffd" in tok.decode([i]) for i in ids)  # ...in tokens that cut characters
    with running(engine) as client:
        _, evs, _ = client.post("/v1/completions", {"prompt": "", "max_tokens": 40, "temperature": 0, "stream": True})
        assert streamed_text(evs) == sentence
        assert all("\ufffd" not in e["choices"][0]["text"] for e in evs[:-1])
        assert evs[-2]["choices"][0]["finish_reason"] == "stop"  # it wrote EOS
        for seed in range(4):  # sampled bytes may stay broken: then the whole text shows U+FFFD just as often
            req = {"prompt": "北京", "max_tokens": 30, "temperature": 1.5, "seed": seed}
            _, whole, _ = client.post("/v1/completions", req)
            _, evs, _ = client.post("/v1/completions", {**req, "stream": True})
            pieces = [e["choices"][0]["text"] for e in evs[:-1]]
            assert "".join(pieces) == whole["choices"][0]["text"]
