"""Batched generation by length (topic 34): tokens/s of `generate_batch` at several batch sizes against
`generate` one prompt at a time, with ratios, and a check that every prompt gets the same tokens.

The prompts are pfr1998 dev sentences cut to mixed lengths (4 to 120 characters, log-uniform); the model
is a random decoder of the given size over a character vocabulary of pfr1998 (or --model DIR). Greedy,
no EOS (every prompt gets all its new tokens), so both sides write the same number of tokens. Each figure
is the median of --reps runs, the runs of all sides taken in turn so a change of load falls on all alike.
"Padding" is the share of prefill slots that were left padding, sorted by length as `generate_batch`
batches and, for comparison, had the prompts been cut into batches in input order.

    .venv/bin/python bench/generate_batch.py [--dim 256] [--layers 4] [--prompts 64] [--new-tokens 32]
        [--batch-sizes 8 16 64] [--reps 3] [--threads 1] [--device cpu] [--model DIR]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time

import torch

from llmlab.generate import GenerationConfig, generate, generate_batch
from llmlab.generate.batch import length_batches
from llmlab.models import CausalLM, ModelConfig
from llmlab.models.scoring import text_start


def load(args):
    if args.model:
        from llmlab.cli.common import load_any_model

        return load_any_model(args.model, device=args.device)
    from llmlab.data.corpora import pfr1998_text
    from llmlab.tokenizers import CharTokenizer

    tok = CharTokenizer.train(pfr1998_text("train"))
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=args.dim, n_layer=args.layers, n_head=4, n_kv_head=4,
                      max_seq_len=256)
    return CausalLM(cfg).to(args.device).eval(), tok


def prompts_of(tok, n: int, seed: int = 0) -> list[list[int]]:
    """`n` dev sentences cut to log-uniform lengths in [4, 120] characters, as token ids after EOS."""
    from llmlab.data.corpora import pfr1998_text

    rng = random.Random(seed)
    lines = [s for s in pfr1998_text("dev") if len(s) >= 120]
    cut = [int(math.exp(rng.uniform(math.log(4), math.log(120)))) for _ in range(n)]
    return [text_start(tok) + tok.encode(rng.choice(lines)[:k]) for k in cut]


def padding_share(lengths: list[int], size: int, by_length: bool = True) -> float:
    """Padding slots / all prefill slots when `lengths` are batched by `length_batches` (or, not
    `by_length`, cut in input order)."""
    n = len(lengths)
    in_order = [list(range(i, min(i + size, n))) for i in range(0, n, size)]
    order = length_batches(lengths, size) if by_length else in_order
    batches = [[lengths[i] for i in b] for b in order]
    slots = sum(max(b) * len(b) for b in batches)
    return 1 - sum(lengths) / slots


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--prompts", type=int, default=64)
    ap.add_argument("--new-tokens", type=int, default=32)
    ap.add_argument("--batch-sizes", type=int, nargs="+", default=[8, 16, 64])
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1, help="torch threads")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--model", default=None, help="a saved model directory instead of a random one")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, tok = load(args)
    prompts = prompts_of(tok, args.prompts)
    cfg = GenerationConfig(max_new_tokens=args.new_tokens, temperature=0.0)
    outputs: dict[str, list[list[int]]] = {}

    def run(name: str, call) -> float:
        t = time.perf_counter()
        outputs[name] = call()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return sum(map(len, outputs[name])) / (time.perf_counter() - t)

    sides = {"one by one (generate)": lambda: [generate(model, p, cfg) for p in prompts]}
    for n in args.batch_sizes:
        sides[f"generate_batch, batch {n}"] = lambda n=n: generate_batch(model, prompts, cfg, batch_size=n)
    for name, call in sides.items():  # warm-up
        run(name, call)
    tps: dict[str, list[float]] = {name: [] for name in sides}
    for _ in range(args.reps):
        for name, call in sides.items():
            tps[name].append(run(name, call))
    lengths = [len(p) for p in prompts]
    print(f"model: {sum(p.numel() for p in model.parameters()):,} parameters (dim {model.config.dim}, "
          f"{model.config.n_layer} layers, vocab {model.config.vocab_size}), device {args.device}, torch threads "
          f"{torch.get_num_threads()}; {len(prompts)} prompts of {min(lengths)}-{max(lengths)} tokens (median "
          f"{statistics.median(lengths):.0f}), {args.new_tokens} new tokens each, greedy; median of {args.reps} runs")
    base = statistics.median(tps["one by one (generate)"])
    reference = outputs["one by one (generate)"]
    print(f"{'side':28s} {'tokens/s':>9s} {'ratio':>6s} {'padding':>8s} {'unsorted':>8s}  same tokens")
    for name, xs in tps.items():
        size = int(name.rsplit(" ", 1)[1]) if name.startswith("generate_batch") else 1
        same = sum(o == r for o, r in zip(outputs[name], reference))
        print(f"{name:28s} {statistics.median(xs):9.1f} {statistics.median(xs) / base:6.2f} "
              f"{padding_share(lengths, size):8.1%} {padding_share(lengths, size, False):8.1%}  {same}/{len(prompts)}")


if __name__ == "__main__":
    main()
