"""llmlab serve: answer OpenAI-style completion requests over HTTP with a saved model directory."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, dataclass_overrides, refuse_unapplied


def register(sub) -> None:
    from llmlab.serve.config import ServeConfig

    p = add_command(sub, "serve", "serve a model over HTTP with OpenAI's API (/v1/completions, /v1/chat/completions "
                    "for a chat model, /v1/models, /health); up to --max-batch completions decoded together; Ctrl-C "
                    "stops", run)
    p.add_argument("--model", required=True, help="model directory, float or quantized (a chat model from llmlab sft "
                   "also answers /v1/chat/completions)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    add_dataclass_flags(p, ServeConfig)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from llmlab.cli.common import load_any_model
    from llmlab.core.errors import InputError
    from llmlab.serve import Engine, ServeConfig, chat_template_of, make_server

    given = dataclass_overrides(args, ServeConfig)
    cfg = ServeConfig(**given)
    refuse_unapplied(cfg, given)  # --prefill-chunk 0 with --max-batch 1 too, which the config cannot tell apart
    model, tok = load_any_model(args.model, device=args.device)
    if tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json")
    template = chat_template_of(args.model)
    engine = Engine(model, tok, cfg.model_name or Path(args.model).resolve().name, template)
    try:
        server = make_server(engine, cfg)
    except OSError as e:
        raise InputError(f"cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}") from None
    routes = "/v1/completions" + (", /v1/chat/completions" if template is not None else "")
    print(f"serving {engine.name!r} ({routes}) at {server.url}/v1  (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopped", flush=True)
    finally:
        server.server_close()
    return 0
