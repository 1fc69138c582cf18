"""llmlab sft: supervised fine-tuning of a saved model on conversations (resumes if the run exists);
llmlab chat: answer user lines from stdin with a fine-tuned model (with --tools, its calculator calls too)."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, add_run_flags, dataclass_overrides, refuse_unapplied


def register(sub) -> None:
    from llmlab.adapt.sft_config import SFT_TRAIN, ForgettingConfig, SFTConfig
    from llmlab.generate.config import GenerationConfig
    from llmlab.train.config import PRETRAIN_ONLY, TrainConfig

    p = add_command(sub, "sft", "fine-tune a saved model on conversations with a chat template (resumes if the run "
                    "exists); prints task accuracy and general perplexity before and after", run)
    p.add_argument("--model", required=True, help="base model directory (llmlab pretrain writes runs/NAME/model)")
    p.add_argument("--data", default="arithmetic",
                   help="'arithmetic' (built-in problems: question as the user turn, answer as the reply), "
                        "'arithmetic-tools' (the reply calls the calculator, then answers: [calc(23+45)→68]68; the "
                        "result 68] is the loop's and not learned unless --learn-tool-results) or a .jsonl file of "
                        "{\"messages\": [{\"role\", \"content\"}, ...]} or {\"prompt\", \"response\"} records")
    add_run_flags(p, "sft")
    add_dataclass_flags(p.add_argument_group("fine-tuning"), SFTConfig, skip=("name", "model", "data"))
    p.add_argument("--lora-targets", nargs="+", default=None, metavar="NAME",
                   help="with --lora-r: the Linear layers LoRA adapts (default: q_proj v_proj)")
    p.add_argument("--deep", dest="prompt_deep", action="store_true", default=None,
                   help="with --prompt-tuning: as --prompt-deep (P-tuning v2's prefixes in every layer)")
    add_dataclass_flags(p.add_argument_group("against forgetting (on general_corpus's train split)"), ForgettingConfig)
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig, skip=PRETRAIN_ONLY, shown=SFT_TRAIN)

    c = add_command(sub, "chat", "chat with a fine-tuned model: each stdin line is a user turn, its reply is printed",
                    chat)
    c.add_argument("--model", required=True, help="model directory written by llmlab sft (runs/NAME/model)")
    c.add_argument("--soft-prompt", default=None, metavar="DIR",
                   help="the soft prompt of a --prompt-tuning run (runs/NAME/prompt), put before every conversation")
    c.add_argument("--system", default=None, help="a system message opening the conversation")
    c.add_argument("--forget", action="store_true", help="answer each line on its own, without the earlier turns")
    c.add_argument("--device", default="cpu", help="cpu or cuda")
    c.add_argument("--tools", action="store_true",
                   help="answer tool calls: when the reply writes [calc(EXPR)→ the calculator's result and ']' are "
                        "written in and the model goes on (a model from llmlab sft --data arithmetic-tools)")
    c.add_argument("--max-calls", type=int, help="with --tools: stop a reply at a call beyond this many (default: 4)")
    add_dataclass_flags(c, GenerationConfig)


def _config(args: argparse.Namespace):
    import dataclasses

    from llmlab.adapt.sft_config import ForgettingConfig, SFTConfig
    from llmlab.train.config import TrainConfig

    base = SFTConfig()
    own = {k: v for k, v in dataclass_overrides(args, SFTConfig).items() if k not in ("name", "model", "data")}
    forgetting, train = dataclass_overrides(args, ForgettingConfig), dataclass_overrides(args, TrainConfig)
    cfg = dataclasses.replace(base, name=args.name, model=args.model, data=args.data, **own,
                              train=dataclasses.replace(base.train, **train), forgetting=ForgettingConfig(**forgetting))
    refuse_unapplied(cfg, [*own, *(f"forgetting.{k}" for k in forgetting)])
    refuse_unapplied(cfg.train, train)
    return cfg


def run(args: argparse.Namespace) -> int:
    from llmlab.pipeline.report import steps_done
    from llmlab.pipeline.sft import run_sft, train_loss_text

    cfg = _config(args)
    f = run_sft(cfg, args.out, fresh=args.fresh)
    b, a = f["before"], f["after"]
    for label, key in (("chat accuracy", "chat_accuracy"), ("chat accuracy with tools", "tool_accuracy"),
                       ("answers calling calc", "tool_call_rate"), ("completion accuracy", "completion_accuracy"),
                       (f"{cfg.general_corpus} dev perplexity", "general_ppl")):
        if key in b:
            print(f"{label:28s} before {b[key]:.4g}  after {a[key]:.4g}")
    print(f"train loss {train_loss_text(f)} ({steps_done(f['steps'], cfg.train.steps)}, {f['train_seconds']:.0f} s)"
          f"  report: {args.out}/{cfg.name}/report.md")
    return 0


def chat(args: argparse.Namespace) -> int:
    from llmlab.adapt.chat import load_chat_template
    from llmlab.adapt.tools import check_can_call
    from llmlab.cli.common import load_any_model
    from llmlab.core.errors import InputError
    from llmlab.core.io import line_batches
    from llmlab.generate import GenerationConfig, generate
    from llmlab.generate.agent import agent_step, run_agent

    if args.max_calls is not None and not args.tools:  # no default in the parser, so a given one is seen
        raise InputError("--max-calls bounds the calculator calls of --tools: give --tools or leave it out")
    model, tok = load_any_model(args.model, device=args.device, soft_prompt=args.soft_prompt)  # quantized too
    if tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json")
    template = load_chat_template(args.model)
    overrides = dataclass_overrides(args, GenerationConfig)
    cfg = GenerationConfig(**{"temperature": 0.0, **overrides})  # greedy unless --temperature is given
    refuse_unapplied(cfg, overrides)  # --seed or --top-k at temperature 0 would change nothing
    end = template.ids(tok)[template.end]
    if args.tools and cfg.num_beams > 1:
        raise InputError("--tools answers calls as tokens are sampled one by one: not with --num-beams")
    if args.tools:
        check_can_call(tok)
    step = agent_step(model, cfg, end)
    history = [{"role": "system", "content": args.system}] if args.system is not None else []
    for line in (x for batch in line_batches(None, size=1) for x in batch):
        turns = (history if not args.forget else history[:1 if args.system is not None else 0])
        turns = turns + [{"role": "user", "content": line}]
        prompt = template.prompt_ids(tok, turns)
        if args.tools:  # the reply as the loop left it, calls and results in, as fine-tuning showed it
            reply = run_agent(step, tok.encode, tok.decode, prompt, max_new_tokens=cfg.max_new_tokens,
                              max_calls=4 if args.max_calls is None else args.max_calls).text
        else:
            reply = tok.decode(generate(model, prompt, cfg, eos_id=end))
        print(reply, flush=True)
        history = turns + [{"role": "assistant", "content": reply}]
    return 0
