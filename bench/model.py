"""llmlab's causal decoder against transformers' LlamaForCausalLM of the same config, on this machine:
training tokens/s, prefill (a prompt of --seq - 1 tokens to its first new token, batch 1) and cached
generation tokens/s (batch 1; greedy, and beam search), side by side with ratios.

    .venv/bin/python bench/model.py [--dim 256] [--layers 4] [--seq 256] [--batch 8] [--new-tokens 200] [--beams 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from llmlab.generate import GenerationConfig, generate
from llmlab.models import CausalLM, ModelConfig
from llmlab.models.hf import export_hf
from llmlab.train.objectives import causal_lm_loss


def train_tps(model, x, steps: int, hf: bool) -> float:
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    model.train()

    def step():
        logits = model(x[:, :-1]).logits if hf else model(x[:, :-1])
        causal_lm_loss(logits, x[:, 1:]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    step()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * x.shape[0] * (x.shape[1] - 1) / (time.perf_counter() - t)


@torch.no_grad()
def generate_tps(model, prompt: list[int], n: int, hf: bool, beams: int = 1) -> float:
    """New tokens/s of the best output: greedy, or the best of a beam search (no EOS: all n steps run)."""
    model.eval()
    if hf:
        ids = torch.tensor([prompt])
        run = lambda: model.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False, use_cache=True,  # noqa: E731
                                     num_beams=beams, eos_token_id=None, pad_token_id=0)
    else:
        cfg = GenerationConfig(max_new_tokens=n, temperature=0.0, num_beams=beams)
        run = lambda: generate(model, prompt, cfg)  # noqa: E731
    run()
    t = time.perf_counter()
    run()
    return n / (time.perf_counter() - t)


@torch.no_grad()
def prefill_tps(model, prompt: list[int], hf: bool) -> float:
    """Prompt tokens/s of a prompt's prefill and its first new token (greedy)."""
    return len(prompt) * generate_tps(model, prompt, 1, hf)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--new-tokens", type=int, default=200)
    ap.add_argument("--rounds", type=int, default=3, help="alternating training rounds; the best of each is reported")
    ap.add_argument("--gen-rounds", type=int, default=10,
                    help="alternating generation rounds (short, and noisier on a shared machine); best of each")
    ap.add_argument("--beams", type=int, default=4, help="beams of the beam-search row (1: no such row)")
    ap.add_argument("--only", choices=("all", "train", "prefill", "generate"), default="all",
                    help="which measures to run")
    args = ap.parse_args()
    import transformers

    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=4096, dim=args.dim, n_layer=args.layers, n_head=args.dim // 64,
                      n_kv_head=args.dim // 64, max_seq_len=max(args.seq, args.new_tokens + 16))
    ours = CausalLM(cfg)
    with tempfile.TemporaryDirectory() as d:
        export_hf(ours, d)
        theirs = transformers.AutoModelForCausalLM.from_pretrained(d, attn_implementation="sdpa")
    x = torch.randint(0, cfg.vocab_size, (args.batch, args.seq + 1))
    prompt = x[0, :16].tolist()
    print(f"torch {torch.__version__}, transformers {transformers.__version__}, {torch.get_num_threads()} threads; "
          f"model {args.layers}x{args.dim}, vocab {cfg.vocab_size}")
    print(f"best of {args.rounds} (training) and {args.gen_rounds} (generation) alternating rounds")
    print(f"{'measure':<40}{'llmlab':>12}{'transformers':>14}{'ratio':>8}")
    # alternate the two over a few rounds and keep each one's best: machines are noisy
    if args.only in ("all", "train"):
        a = b = 0.0
        for _ in range(args.rounds):
            a, b = max(a, train_tps(ours, x, args.steps, False)), max(b, train_tps(theirs, x, args.steps, True))
        print(f"{f'training tokens/s (batch {args.batch} x {args.seq})':<40}{a:>12,.0f}{b:>14,.0f}{a / b:>8.2f}")
    if args.only in ("all", "prefill"):
        long_prompt = x[0, :args.seq - 1].tolist()
        a = b = 0.0
        for _ in range(args.gen_rounds):
            a, b = max(a, prefill_tps(ours, long_prompt, False)), max(b, prefill_tps(theirs, long_prompt, True))
        print(f"{f'prefill tokens/s (prompt {len(long_prompt)})':<40}{a:>12,.0f}{b:>14,.0f}{a / b:>8.2f}")
    if args.only not in ("all", "generate"):
        return
    for beams in sorted({1, args.beams}):
        a = b = 0.0
        for _ in range(args.gen_rounds):
            a = max(a, generate_tps(ours, prompt, args.new_tokens, False, beams))
            b = max(b, generate_tps(theirs, prompt, args.new_tokens, True, beams))
        what = "greedy generation" if beams == 1 else f"beam search ({beams} beams)"
        print(f"{f'cached {what} tokens/s':<40}{a:>12,.1f}{b:>14,.1f}{a / b:>8.2f}")


if __name__ == "__main__":
    main()
