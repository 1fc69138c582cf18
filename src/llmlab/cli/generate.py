"""llmlab generate: sample text from a saved model directory."""

from __future__ import annotations

import argparse
import logging

from llmlab.cli.common import add_command, add_dataclass_flags, dataclass_overrides, refuse_unapplied

log = logging.getLogger(__name__)


def register(sub) -> None:
    from llmlab.generate.config import GenerationConfig

    p = add_command(sub, "generate", "continue a prompt with a saved model", run)
    p.add_argument("--model", required=True, help="model directory (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--prompt", default=None, help="prompt text; without it, one prompt per stdin line")
    p.add_argument("--soft-prompt", default=None, metavar="DIR",
                   help="a trained soft prompt put before every prompt (llmlab sft --prompt-tuning writes "
                        "runs/NAME/prompt; a PEFT prompt or prefix tuning adapter of the exported model also loads)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--compare", action="store_true",
                   help="run every prompt through a grid of decoding strategies (greedy, beam, penalties, "
                        "sampling) and print their repetition, diversity and likelihood as a table; of the "
                        "flags below only --max-new-tokens, --seed and the bans (--suppress, --no-unk, "
                        "--bad-words) apply")
    p.add_argument("--suppress", nargs="+", action="extend", metavar="TOKEN", default=None,
                   help="never generate these tokens, spelled as in the tokenizer's vocabulary (e.g. '<|eos|>', "
                        "or 'Ġthe' in a byte-level BPE one); a string that is no token is an error")
    p.add_argument("--no-unk", action="store_true",
                   help="never generate the unknown token <unk> (as --suppress '<unk>'); with a tokenizer that has "
                        "none (a foreign file such as GPT-2's; every llmlab one has it) <unk> cannot come: no-op")
    p.add_argument("--bad-words", nargs="+", action="extend", metavar="TEXT", default=None,
                   help="never generate these texts: each is encoded as a prompt is, and its last token is banned "
                        "right after the others (with BPE, ' word' mid-sentence is other tokens than 'word')")
    p.add_argument("--tools", action="store_true",
                   help="answer tool calls: when the model writes [calc(EXPR)→ the calculator's result and ']' are "
                        "written in and the model goes on (topic 7; not with beam search or --compare)")
    p.add_argument("--max-calls", type=int, help="with --tools: stop at a call beyond this many (default: 4)")
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="decode stdin's prompts N at a time, grouped by length in left-padded batches (greedy: "
                        "each gets the tokens it gets alone); prompts are read up to 2000 lines at a time and "
                        "answered in their order once those are done. 1 (default): each line is answered "
                        "before the next is read. Not with --tools, --compare, --num-beams or --no-use-cache")
    add_dataclass_flags(p, GenerationConfig)


def run(args: argparse.Namespace) -> int:
    from llmlab.adapt.tools import check_can_call
    from llmlab.cli.common import load_any_model
    from llmlab.core.errors import InputError
    from llmlab.core.io import line_batches
    from llmlab.generate import GenerationConfig, generate
    from llmlab.models.scoring import text_start

    given = dataclass_overrides(args, GenerationConfig)
    if args.compare:
        refuse_with_compare(given)
    refuse_unapplied(GenerationConfig(**given), given)  # before the model loads: --seed at temperature 0, ...
    if args.max_calls is not None and not args.tools:
        raise InputError("--max-calls bounds the calculator calls of --tools: give --tools or leave it out")
    model, tok = load_any_model(args.model, device=args.device, soft_prompt=args.soft_prompt)
    if tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json")
    cfg = GenerationConfig(**given, **bans(args, tok))
    if args.tools and (args.compare or cfg.num_beams > 1):
        raise InputError("--tools answers calls as tokens are sampled one by one: not with --compare or --num-beams")
    check_batch_size(args, cfg)
    if args.tools:
        check_can_call(tok)
    # stdin: one prompt per line as every llmlab command reads lines (`line_batches`), each answered
    # before the next is read; with --batch-size, as many lines as it reads at once, to group them by length
    size = 1 if args.batch_size == 1 else 2000
    batches = [[args.prompt]] if args.prompt is not None else line_batches(None, size=size)
    if args.compare:
        return _compare(model, tok, [p for batch in batches for p in batch], cfg)
    if args.tools:
        return _with_tools(model, tok, (p for batch in batches for p in batch), cfg,
                           4 if args.max_calls is None else args.max_calls)  # 0 = no call answered
    if args.batch_size > 1:
        return _batched(model, tok, batches, cfg, args.batch_size)
    for prompt in (p for batch in batches for p in batch):
        ids = generate(model, text_start(tok) + tok.encode(prompt), cfg, eos_id=tok.eos_id)
        print(prompt + tok.decode(ids), flush=True)
    return 0


COMPARE_TAKES = ("max_new_tokens", "seed")  # --compare's decoding flags (and the bans): its strategies set the rest


def refuse_with_compare(given: dict) -> None:
    """Refuse a decoding flag that --compare would ignore: each of its strategies sets its own settings
    (`llmlab.generate.compare.STRATEGIES`), and only the length, the seed and the bans reach them."""
    from llmlab.core.errors import InputError

    other = [("--" if not isinstance(v, bool) or v else "--no-") + k.replace("_", "-")
             for k, v in given.items() if k not in COMPARE_TAKES]
    if other:
        many = len(other) > 1
        raise InputError(f"{', '.join(other)} appl{'y' if many else 'ies'} to one way of decoding, and --compare runs "
                         "its own grid of strategies, taking only --max-new-tokens, --seed and the bans: leave "
                         f"{'them' if many else 'it'} out")


def check_batch_size(args: argparse.Namespace, cfg) -> None:
    """Refuse --batch-size where batches cannot honour the other flags."""
    from llmlab.core.errors import InputError

    if args.batch_size < 1:
        raise InputError(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.batch_size == 1:
        return
    clash = [flag for flag, on in (("--tools", args.tools), ("--compare", args.compare),
                                   ("--num-beams", cfg.num_beams > 1), ("--no-use-cache", not cfg.use_cache)) if on]
    if clash:
        raise InputError(f"--batch-size {args.batch_size} decodes prompts together with the KV cache, one token per "
                         f"step: not with {', '.join(clash)} (leave --batch-size at 1)")
    if args.prompt is not None:
        raise InputError("--batch-size decodes the prompts read from stdin together; --prompt is one prompt")


def _batched(model, tok, batches, cfg, batch_size: int) -> int:
    """Each batch of lines (up to 2000) decoded by `generate_batch`, printed in input order as the
    one-by-one path prints them."""
    from llmlab.generate import generate_batch
    from llmlab.models.scoring import text_start

    for lines in batches:
        prompts = [text_start(tok) + tok.encode(line) for line in lines]
        for line, ids in zip(lines, generate_batch(model, prompts, cfg, tok.eos_id, batch_size)):
            print(line + tok.decode(ids), flush=True)
    return 0


def _with_tools(model, tok, prompts, cfg, max_calls: int) -> int:
    from llmlab.generate.agent import agent_step, run_agent
    from llmlab.models.scoring import text_start

    step = agent_step(model, cfg, tok.eos_id)
    for prompt in prompts:
        result = run_agent(step, tok.encode, tok.decode, text_start(tok) + tok.encode(prompt),
                           max_new_tokens=cfg.max_new_tokens, max_calls=max_calls)
        print(prompt + result.text, flush=True)
        for call in result.calls:
            log.info("tool call %s(%s) -> %s", call.name, call.argument, call.result)
    return 0


def bans(args: argparse.Namespace, tok) -> dict:
    """--suppress, --no-unk and --bad-words as `GenerationConfig`'s ``suppress_tokens`` and ``bad_words_ids``.

    A bad word with characters the tokenizer does not know is refused: it would encode to ``<unk>``, and
    banning that is --no-unk's job, not what the user asked for.
    """
    from llmlab.core.errors import InputError
    from llmlab.tokenizers.base import UNK

    unk = tok.token_to_id(UNK)
    suppress = []
    for token in args.suppress or []:
        if tok.token_to_id(token) is None:
            raise InputError(f"--suppress: {token!r} is not a token of the model's tokenizer (to ban a text, "
                             "use --bad-words)")
        suppress.append(tok.token_to_id(token))
    if args.no_unk and unk is None:
        log.info("--no-unk: the tokenizer has no %s token, so it never writes one; nothing to suppress", UNK)
    elif args.no_unk:
        suppress.append(unk)
    bad = []
    for text in args.bad_words or []:
        ids = tok.encode(text)
        if not ids:
            raise InputError(f"--bad-words: {text!r} encodes to no tokens")
        if unk is not None and unk in ids:
            raise InputError(f"--bad-words: {text!r} holds characters the tokenizer does not know (they encode to "
                             f"{UNK}), so the model cannot write it; --no-unk bans {UNK}")
        bad.append(tuple(ids))
    return dict(suppress_tokens=tuple(suppress), bad_words_ids=tuple(bad))


def _compare(model, tok, prompts: list[str], cfg) -> int:
    from llmlab.generate.compare import compare_decoding, format_table

    rows = compare_decoding(model, tok, prompts, cfg.max_new_tokens, seed=cfg.seed,
                            suppress_tokens=cfg.suppress_tokens, bad_words_ids=cfg.bad_words_ids)
    print(f"{len(prompts)} prompt(s), at most {cfg.max_new_tokens} new tokens each\n")
    print(format_table(rows))
    print(f"\nfirst prompt: {prompts[0]}")
    for r in rows:
        print(f"- {r.strategy}: {r.outputs[0]}")
    return 0
