"""Tiny models saved as llmlab writes them (a char model, its chat variant, a byte-level BPE model that
learned one Chinese sentence), a running server per test, and an HTTP client reading OpenAI's shapes."""

import contextlib
import http.client
import json
import threading

import pytest
import torch

from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.cli.common import load_any_model
from llmlab.core.threads import torch_threads
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.pipeline.sft import tokenizer_config
from llmlab.serve import Engine, ServeConfig, chat_template_of, make_server
from llmlab.tokenizers import CharTokenizer, train_tokenizer

from ..helpers import wide_lm

TEXTS = ["中国经济发展很快。", "hello world, how are you? 12+30=42", "北京新年好！"]
SENTENCE = "北京的冬天很冷，上海的夏天很热。"  # what the BPE model learns to write


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    """Tiny matrices: extra threads only contend (and the machine is shared). Session-wide, so the
    model fixtures train on one thread too."""
    with torch_threads(1):
        yield


def tiny(vocab_size: int, seed: int = 0, ctx: int = 64) -> CausalLM:
    """Weights drawn wider than the default init, whose near-uniform outputs repeat one token: these
    write varied text, so stop strings have something to find."""
    return wide_lm(ModelConfig(vocab_size=vocab_size, dim=32, n_layer=2, n_head=2, n_kv_head=2, max_seq_len=ctx), seed)


@pytest.fixture(scope="session")
def char_dir(tmp_path_factory):
    tok = CharTokenizer.train(TEXTS)
    return save_model(tiny(tok.vocab_size), tmp_path_factory.mktemp("char") / "model", tok)


@pytest.fixture(scope="session")
def chat_dir(tmp_path_factory):
    base = CharTokenizer.train(TEXTS)
    model = tiny(base.vocab_size, seed=1)
    tok = add_chat_tokens(model, base, ChatTemplate())
    return save_model(model, tmp_path_factory.mktemp("chat") / "model", tok,
                      tokenizer_config=tokenizer_config(tok, ChatTemplate()))


@pytest.fixture(scope="session")
def bpe_dir(tmp_path_factory):
    """(directory, SENTENCE): a byte-level BPE model with few merges (most Chinese characters take 2-3
    tokens), trained to write SENTENCE then EOS after the text start."""
    from llmlab.train.objectives import causal_lm_loss

    tok = train_tokenizer("bpe", [SENTENCE, "中国经济发展很快。"] * 2, 256 + 4 + 12)
    ids = torch.tensor([[tok.eos_id, *tok.encode(SENTENCE), tok.eos_id]])
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=tok.vocab_size, dim=32, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=64))
    opt = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(60):
        loss = causal_lm_loss(model(ids[:, :-1]), ids[:, 1:])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return save_model(model.eval(), tmp_path_factory.mktemp("bpe") / "model", tok), SENTENCE


def _engine_of(model_dir, name="tiny") -> Engine:
    model, tok = load_any_model(str(model_dir))
    return Engine(model, tok, name, chat_template_of(model_dir))


@contextlib.contextmanager
def _running(engine: Engine, **limits):
    server = make_server(engine, ServeConfig(port=0, **limits))
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    client = Client(server.server_address[1])
    client.server = server  # for tests that look inside (the scheduler's completions)
    try:
        yield client
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class Client:
    """http.client on one keep-alive connection (so tests also see that a refused request leaves it usable)."""

    def __init__(self, port: int):
        self.port = port
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def request(self, method: str, path: str, doc=None, body: bytes | None = None, headers=None):
        """(status, parsed JSON or the event list of a stream, response headers)."""
        if doc is not None:
            body = json.dumps(doc, ensure_ascii=False).encode()
        self.conn.request(method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})})
        r = self.conn.getresponse()
        data = r.read().decode("utf-8")
        if r.getheader("Connection") == "close":
            self.conn.close()
        if method == "HEAD":
            return r.status, data, r
        if r.getheader("Content-Type", "").startswith("text/event-stream"):
            return r.status, events(data), r
        return r.status, json.loads(data), r

    def post(self, path: str, doc, **kw):
        return self.request("POST", path, doc, **kw)


def events(data: str) -> list:
    """The payloads of a server-sent event stream: parsed JSON, or the string '[DONE]'."""
    out = []
    for block in data.split("\n\n"):
        if block:
            assert block.startswith("data: "), block
            payload = block[len("data: "):]
            out.append(payload if payload == "[DONE]" else json.loads(payload))
    return out


def _streamed_text(evs: list, chat: bool = False) -> str:
    assert evs[-1] == "[DONE]"
    key = (lambda c: c["delta"].get("content", "")) if chat else (lambda c: c["text"])
    return "".join(key(c) for e in evs[:-1] for c in e["choices"])


# helpers as fixtures: tests import nothing from conftest (pytest runs with --import-mode=importlib)
@pytest.fixture(scope="session")
def engine_of():
    """engine_of(model_dir, name="tiny") -> Engine, loaded as `llmlab serve` loads it."""
    return _engine_of


@pytest.fixture(scope="session")
def running():
    """running(engine, **limits): a context manager serving `engine` on a free port; yields a Client."""
    return _running


@pytest.fixture(scope="session")
def streamed_text():
    """streamed_text(events, chat=False) -> the text a stream's chunks add up to (it must end in [DONE])."""
    return _streamed_text
