"""llmlab generate: sample text from a saved model directory."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, dataclass_overrides


def register(sub) -> None:
    from llmlab.generate.config import GenerationConfig

    p = add_command(sub, "generate", "continue a prompt with a saved model", run)
    p.add_argument("--model", required=True, help="model directory (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--prompt", default=None, help="prompt text; without it, one prompt per stdin line")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--compare", action="store_true",
                   help="run every prompt through a grid of decoding strategies (greedy, beam, penalties, "
                        "sampling) and print their repetition, diversity and likelihood as a table; of the "
                        "flags below only --max-new-tokens and --seed apply")
    add_dataclass_flags(p, GenerationConfig)


def run(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.core.io import line_batches
    from llmlab.generate import GenerationConfig, generate
    from llmlab.models import load_model
    from llmlab.models.scoring import text_start

    model, tok = load_model(args.model, device=args.device)
    if tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json")
    cfg = GenerationConfig(**dataclass_overrides(args, GenerationConfig))
    # stdin: one prompt per line as every llmlab command reads lines (`line_batches`), each answered
    # before the next is read
    batches = [[args.prompt]] if args.prompt is not None else line_batches(None, size=1)
    if args.compare:
        return _compare(model, tok, [p for batch in batches for p in batch], cfg)
    for prompt in (p for batch in batches for p in batch):
        ids = generate(model, text_start(tok) + tok.encode(prompt), cfg, eos_id=tok.eos_id)
        print(prompt + tok.decode(ids), flush=True)
    return 0


def _compare(model, tok, prompts: list[str], cfg) -> int:
    from llmlab.generate.compare import compare_decoding, format_table

    rows = compare_decoding(model, tok, prompts, cfg.max_new_tokens, seed=cfg.seed)
    print(f"{len(prompts)} prompt(s), at most {cfg.max_new_tokens} new tokens each\n")
    print(format_table(rows))
    print(f"\nfirst prompt: {prompts[0]}")
    for r in rows:
        print(f"- {r.strategy}: {r.outputs[0]}")
    return 0
