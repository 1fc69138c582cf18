"""Serving a model over HTTP with OpenAI's API (topic 14: input limits; topics 62-63: prompts fitted to
the context with room for the output): ``llmlab serve --model DIR``.

- `config`: `ServeConfig`, where to listen and the limits;
- `requests`: a JSON body checked field by field into a `Request`; `limits`: max_tokens and the prompt's budget;
- `engine`: the model and its lock, and `Completion`, the text of one request as its tokens come;
- `scheduler`: continuous batching, one thread decoding up to ``max_batch`` requests together;
- `textstream`: token ids to text pieces (whole UTF-8 characters only) and stop strings;
- `protocol`: OpenAI's JSON shapes; `server`: the routes over `http.server`.

From Python::

    from llmlab.serve import Engine, ServeConfig, make_server
    server = make_server(Engine(model, tok, "mine"), ServeConfig(port=0))
    print(server.url); server.serve_forever()

Names are imported on first use (PEP 562), so `ServeConfig` (which the CLI builds flags from) loads without torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "ApiError": "llmlab.serve.protocol",
    "Completion": "llmlab.serve.engine",
    "Engine": "llmlab.serve.engine",
    "IncrementalDecoder": "llmlab.serve.textstream",
    "Request": "llmlab.serve.requests",
    "Scheduler": "llmlab.serve.scheduler",
    "Server": "llmlab.serve.server",
    "ServeConfig": "llmlab.serve.config",
    "StopFilter": "llmlab.serve.textstream",
    "chat_template_of": "llmlab.serve.engine",
    "make_server": "llmlab.serve.server",
    "parse_request": "llmlab.serve.requests",
})
