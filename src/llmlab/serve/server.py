"""The HTTP server: OpenAI's routes over the standard library's `ThreadingHTTPServer`.

    POST /v1/completions        {"prompt", "max_tokens", "temperature", "top_p", "top_k", "seed", "stop", "stream"}
    POST /v1/chat/completions   {"messages", ...} for a model with a chat template (llmlab sft)
    GET  /v1/models             the one model served (and /v1/models/NAME, it alone)
    GET  /health                {"status": "ok", "busy", "running", "queued", "max_batch"}, answered at any time

Each connection has its own thread; its completion goes to the server's `Scheduler`, whose thread decodes
up to ``max_batch`` of them together (continuous batching), and the handler writes its pieces as they
come. Answers are
JSON, or with ``"stream": true`` server-sent events (``data: {...}``, one per piece of text, then
``data: [DONE]``) over chunked transfer encoding. A refused request gets OpenAI's error object with
status 400 (a field breaks a rule; the message names it and the limit), 404 (unknown route or model),
405 (wrong method), 411/413 (no length / body over ``max_body_bytes``, refused before it is read) or
503 (no place in the batch within ``max_wait_seconds``), never a traceback. Every request is logged: method, path,
status, prompt and completion tokens, seconds.
"""

from __future__ import annotations

import contextlib
import logging
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote

from llmlab.core.errors import InputError
from llmlab.core.io import json_text
from llmlab.serve.config import ServeConfig
from llmlab.serve.engine import Engine
from llmlab.serve.protocol import ApiError, chunk_body, completion_body, error_body, models_body, new_id, usage_chunk
from llmlab.serve.requests import parse_request
from llmlab.serve.scheduler import Scheduler

log = logging.getLogger(__name__)

# path -> (method, handler method name)
ROUTES = {"/v1/completions": ("POST", "completions"), "/v1/chat/completions": ("POST", "chat_completions"),
          "/v1/models": ("GET", "models"), "/health": ("GET", "health")}


class Server(ThreadingHTTPServer):
    """Serves `engine` under `cfg`; `url` is where (with the port the OS chose when ``cfg.port`` is 0)."""

    daemon_threads = True  # a connection left open never blocks shutdown

    def __init__(self, engine: Engine, cfg: ServeConfig):
        self.engine, self.cfg = engine, cfg
        self.scheduler = Scheduler(engine, cfg.max_batch, cfg.prefill_chunk)
        super().__init__((cfg.host, cfg.port), Handler)

    def server_close(self) -> None:
        """Close the socket and stop the scheduler (requests still waiting or decoding get 503)."""
        super().server_close()
        self.scheduler.close()

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host}:{port}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, and chunked streams
    server_version = "llmlab"
    server: Server

    def setup(self):
        self.timeout = self.server.cfg.read_timeout  # a silent client is dropped, not waited on forever
        super().setup()

    # --- routing -------------------------------------------------------------------------------
    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_HEAD(self):  # a GET's status and headers, without its body
        self.route("HEAD")

    def do_PUT(self):
        self.route("PUT")

    def do_DELETE(self):
        self.route("DELETE")

    def do_PATCH(self):
        self.route("PATCH")

    def begin(self) -> None:
        """Per-request state (a connection's handler serves its requests one after another)."""
        self.t0, self.status, self.tokens = time.perf_counter(), 0, (0, 0)
        self.streaming = self.body_read = self.head = False

    def route(self, method: str) -> None:
        self.begin()
        self.head = method == "HEAD"
        path = self.path.split("?", 1)[0]
        try:
            if path.startswith("/v1/models/") and method in ("GET", "HEAD"):
                return self.model(path[len("/v1/models/"):])
            if path not in ROUTES:
                raise ApiError(404, f"no route {method} {path}; routes: {', '.join(sorted(ROUTES))}",
                               code="not_found")
            allowed, name = ROUTES[path]
            if method != allowed and not (self.head and allowed == "GET"):
                raise ApiError(405, f"{path} takes {allowed}, not {method}", code="method_not_allowed")
            getattr(self, name)()
        except ApiError as e:
            self.refuse(e)
        except InputError as e:  # a rule below the checks of `requests` (generation's own)
            self.refuse(ApiError(400, str(e)))
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
            log.info("%s %s: the client went away", method, path)
        except Exception:  # a bug: logged with its traceback here, one line to the client
            log.exception("%s %s failed", method, path)
            self.refuse(ApiError(500, "internal server error (see the server's log)"))
        finally:
            log.info("%s %s %d prompt_tokens=%d completion_tokens=%d %.3f s", self.command, path, self.status,
                     *self.tokens, time.perf_counter() - self.t0)

    def refuse(self, e: ApiError) -> None:
        if self.streaming:  # headers are out: the error goes as the stream's last event
            try:
                self.event(error_body(e))
                self.end_stream()
            except OSError:  # the client is gone too
                self.close_connection = True
        else:  # a body left unread would be taken for the next request: close the connection
            unread = not self.body_read and (e.status == 411 or self.headers.get("Transfer-Encoding")
                                             or self.headers.get("Content-Length", "0").strip() != "0")
            self.send_json(e.status, error_body(e), close=bool(unread),
                           allow=ROUTES.get(self.path.split("?", 1)[0], ("",))[0] if e.status == 405 else None)

    # --- routes --------------------------------------------------------------------------------
    def health(self) -> None:
        counts = self.server.scheduler.counts()
        self.send_json(200, {"status": "ok", "model": self.server.engine.name, "busy": any(counts.values()),
                             **counts, "max_batch": self.server.cfg.max_batch})

    def models(self) -> None:
        e = self.server.engine
        self.send_json(200, models_body(e.name, e.created, e.context))

    def model(self, name: str) -> None:
        e = self.server.engine
        if unquote(name) != e.name:
            raise ApiError(404, f"model {unquote(name)!r} is not served here; this server serves {e.name!r}", "model",
                           "model_not_found")
        self.send_json(200, models_body(e.name, e.created, e.context)["data"][0])

    def completions(self) -> None:
        self.complete(chat=False)

    def chat_completions(self) -> None:
        self.complete(chat=True)

    def complete(self, chat: bool) -> None:
        engine, cfg = self.server.engine, self.server.cfg
        req = parse_request(self.body(), chat, engine, cfg)
        if req.dropped:
            log.info("prompt cut by %d tokens (%s truncation) to %d", req.dropped, cfg.truncation, len(req.prompt_ids))
        completion = engine.complete(req)
        self.server.scheduler.submit(completion, cfg.max_wait_seconds)  # 503 if no place frees up in time
        rid, created = new_id(chat), int(time.time())
        if req.stream:
            self.stream(completion, rid, created)
        else:
            text = "".join(completion)
            self.tokens = (completion.prompt_tokens, completion.completion_tokens)
            self.send_json(200, completion_body(rid, engine.name, chat, text, completion.finish_reason,
                                                *self.tokens, created))

    def stream(self, completion, rid: str, created: int) -> None:
        name, chat, usage = self.server.engine.name, completion.req.chat, completion.req.include_usage
        self.start_stream()
        if chat:
            self.event(chunk_body(rid, name, chat, created, role=True, include_usage=usage))
        with contextlib.closing(iter(completion)) as pieces:  # a failed write cancels the row
            for piece in pieces:
                self.tokens = (completion.prompt_tokens, completion.completion_tokens)
                self.event(chunk_body(rid, name, chat, created, text=piece, include_usage=usage))
        self.tokens = (completion.prompt_tokens, completion.completion_tokens)
        self.event(chunk_body(rid, name, chat, created, finish_reason=completion.finish_reason, include_usage=usage))
        if usage:
            self.event(usage_chunk(rid, name, chat, created, *self.tokens))
        self.end_stream()

    # --- reading and writing -------------------------------------------------------------------
    def body(self) -> bytes:
        """The request body, refused (411, 413) unless its Content-Length is given and within the limit."""
        n = self.content_length()
        try:
            data = self.rfile.read(n) if n else b""
        except TimeoutError:
            raise ApiError(408, f"the request body did not arrive within {self.timeout:g} s (read_timeout)") from None
        if len(data) < n:
            raise ApiError(400, f"the request body ended after {len(data)} of its {n} bytes (Content-Length)")
        self.body_read = True
        return data

    def content_length(self) -> int:
        limit = self.server.cfg.max_body_bytes
        if self.headers.get("Transfer-Encoding"):
            raise ApiError(411, "chunked request bodies are not taken: send the body with a Content-Length")
        given = {v.strip() for v in self.headers.get_all("Content-Length", [])}
        if len(given) > 1:  # RFC 9112 6.3: taking one of them would run the rest of the body as another request
            raise ApiError(400, f"the request has conflicting Content-Length headers: {', '.join(sorted(given))}")
        text = self.headers.get("Content-Length")
        if text is None:
            raise ApiError(411, "the request has no Content-Length header")
        if not text.strip().isdigit():
            raise ApiError(400, f"Content-Length must be a number of bytes, got {text!r}")
        if int(text) > limit:
            raise ApiError(413, f"the request body is {int(text)} bytes; this server takes at most {limit} "
                           "(max_body_bytes)", code="request_too_large")
        return int(text)

    def handle_expect_100(self) -> bool:
        """Refuse an oversized body before the client sends it (curl asks first for bodies over 1 KiB)."""
        try:
            if self.command == "POST":
                self.content_length()
        except ApiError as e:
            self.begin()
            self.refuse(e)
            log.info("%s %s %d (refused before the body was sent)", self.command, self.path, e.status)
            return False
        return super().handle_expect_100()

    def send_json(self, status: int, doc: dict, close: bool = False, allow: str | None = None) -> None:
        data = json_text(doc, ensure_ascii=False).encode("utf-8")
        self.status = status
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if allow:
            self.send_header("Allow", allow)
        if close:  # the unread body would be taken for the next request
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if not self.head:
            self.wfile.write(data)

    def start_stream(self) -> None:
        self.status, self.streaming = 200, True
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def event(self, doc: dict | str) -> None:
        text = doc if isinstance(doc, str) else json_text(doc, ensure_ascii=False)
        self.chunk(f"data: {text}\n\n".encode())

    def chunk(self, data: bytes) -> None:
        self.wfile.write(b"%X\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def end_stream(self) -> None:
        self.event("[DONE]")
        self.wfile.write(b"0\r\n\r\n")
        self.streaming = False

    # --- the base class's own errors and log lines -------------------------------------------------
    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Errors the base class finds (a malformed request line, an unknown method) as OpenAI's JSON."""
        self.begin()
        phrase = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "error"
        self.send_json(code, error_body(ApiError(code, message or phrase)), close=True)
        # a malformed request line is refused before the base class sets the method and path
        log.info("%s %s %d %s", getattr(self, "command", None) or "-", getattr(self, "path", "-"), code,
                 message or phrase)

    def log_message(self, format: str, *args) -> None:  # the base class writes to stderr; we log our own line
        log.debug(format, *args)


def make_server(engine: Engine, cfg: ServeConfig | None = None) -> Server:
    """A bound server (not yet serving): call ``serve_forever()``, and ``shutdown()`` from another thread."""
    return Server(engine, cfg or ServeConfig())
