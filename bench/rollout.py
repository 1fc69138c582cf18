"""RL rollouts batched across prompts (topic 78): the time of one step's rollouts with ``rollout_batch``
1 (each prompt's group decoded alone, as runs before batching drew) against larger batches, with ratios,
and the time of a whole GRPO step (rollouts, log-probabilities, update) at each setting.

The prompts are a step's worth of the chat model's arithmetic training prompts, as `llmlab rl` draws
them: --prompts-per-step prompts, each answered --group-size times in at most --max-new-tokens tokens,
sampled at temperature 1. The model is --model DIR (from `llmlab sft`), or without it a random one of the
README's chat2 shape (whose answers seldom end before --max-new-tokens). "Same rows" is the greedy
check: at temperature 0 the batched rollouts' rows (tokens, mask, truncated) against rollout_batch 1's.
Each figure is the median of --reps runs, the settings taken in turn so a change of load falls on all
alike. The step figures are the median over --steps GRPO steps of a fresh
trainer per setting (each from the same model and seed).

    .venv/bin/python bench/rollout.py [--model runs/chat2/model] [--prompts-per-step 16] [--group-size 8]
        [--max-new-tokens 8] [--batches 1 4 16] [--reps 3] [--steps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import tempfile
import time

import torch

from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
from llmlab.models import CausalLM, ModelConfig
from llmlab.pipeline.rl import arithmetic_task, chat_model
from llmlab.rl.config import RL_TRAIN, RLConfig
from llmlab.rl.rollout import rollout
from llmlab.rl.trainer import RLTrainer


def random_chat_model():
    """(model, tokenizer, template): a random decoder of chat2's shape over a character vocabulary of
    arithmetic with the chat tokens."""
    from llmlab.data.corpora import arithmetic
    from llmlab.tokenizers import CharTokenizer

    tok = add_chat_tokens(None, CharTokenizer.train([p.text for p in arithmetic(500, max_digits=2, ops="+")]))
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=64, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=64)
    return CausalLM(cfg).eval(), tok, ChatTemplate()


def same_rows(a, b) -> int:
    """Rows of two rollouts alike in tokens, mask and truncation."""
    return sum(torch.equal(a.tokens[i], b.tokens[i]) and torch.equal(a.mask[i], b.mask[i])
               and bool(a.truncated[i]) == bool(b.truncated[i]) for i in range(len(a)))


def step_seconds(model, cfg: RLConfig, task, end: int, pad: int, steps: int) -> float:
    """Median seconds of a policy step over `steps` GRPO steps of a fresh trainer."""
    with tempfile.TemporaryDirectory() as d:
        tr = RLTrainer(model, cfg, task, end, pad, d)
        times = []
        for _ in range(steps):
            t = time.perf_counter()
            tr.policy_step()
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="", help="a chat model directory (llmlab sft; default: a random one)")
    ap.add_argument("--prompts-per-step", type=int, default=16)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=8)
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16], help="rollout_batch settings (1 first)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--steps", type=int, default=5, help="GRPO steps timed per setting (0: skip)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok, template = chat_model(args.model) if args.model else random_chat_model()
    cfg = RLConfig(model=args.model, prompts_per_step=args.prompts_per_step, group_size=args.group_size,
                   max_new_tokens=args.max_new_tokens, train=dataclasses.replace(RL_TRAIN, checkpoint_every=0))
    task, _ = arithmetic_task(cfg, tok, template)
    end = template.ids(tok)[template.end]
    idx = torch.randperm(len(task.prompts), generator=torch.Generator().manual_seed(0))[:args.prompts_per_step]
    prompts = [task.prompts[i] for i in idx.tolist()]

    def run(batch: int, temperature: float, seed: int):
        g = torch.Generator().manual_seed(seed)
        return rollout(model, prompts, idx.tolist(), args.group_size, args.max_new_tokens, temperature, end,
                       tok.pad_id, g, batch)

    greedy = {b: run(b, 0.0, 0) for b in args.batches}  # also the warm-up
    seconds: dict[int, list[float]] = {b: [] for b in args.batches}
    for rep in range(args.reps):
        for b in args.batches:
            t = time.perf_counter()
            run(b, cfg.temperature, rep)
            seconds[b].append(time.perf_counter() - t)
    steps = {b: step_seconds(model, dataclasses.replace(cfg, rollout_batch=b), task, end, tok.pad_id, args.steps)
             for b in args.batches} if args.steps else {}
    lengths = sorted({len(p) for p in prompts})
    print(f"model: {args.model or 'random'}, {sum(p.numel() for p in model.parameters()):,} parameters, torch threads "
          f"{torch.get_num_threads()}; {args.prompts_per_step} prompts of {lengths[0]}-{lengths[-1]} tokens x "
          f"{args.group_size} completions of at most {args.max_new_tokens} tokens, temperature {cfg.temperature}; "
          f"median of {args.reps} rollouts{f' and of {args.steps} GRPO steps' if args.steps else ''}")
    base = statistics.median(seconds[args.batches[0]])
    base_step = steps.get(args.batches[0])
    print(f"{'rollout_batch':>13s} {'rollout ms':>10s} {'ratio':>6s} {'step ms':>8s} {'ratio':>6s}  same greedy rows")
    for b in args.batches:
        s = statistics.median(seconds[b])
        step = f"{steps[b] * 1e3:8.1f} {base_step / steps[b]:6.2f}" if steps else f"{'-':>8s} {'-':>6s}"
        print(f"{b:13d} {s * 1e3:10.1f} {base / s:6.2f} {step}  {same_rows(greedy[b], greedy[args.batches[0]])}/"
              f"{len(greedy[b])}")


if __name__ == "__main__":
    main()
