"""SFT batching: padding each batch to its longest conversation, length bucketing (`--bucket`), and packing
(`--packing`: whole conversations in rows of at most seq_len tokens, each attending only to itself), on the
arithmetic chat data with the same model and the same conversations per step.

Each setup is llmlab's `SFTTrainer` itself (draw, pad or pack, forward, weighted loss, backward, AdamW
step), from the same initial weights. Padding and packing draw the very same conversations each step, so
their losses must agree to float noise (printed as the largest difference over the run); bucketing draws
neighbours in length order, so its losses differ. Reported per setup, over the timed steps after 2 warm-up
steps (the three take turns step by step, so a busy spell of a shared machine falls on all alike): the
share of computed positions that are padding, the median step time, conversation tokens (not padding)
trained per second (the median of the steps' rates: robust to a step slowed by other jobs), and that rate
over padding's as a ratio (> 1: faster than padding). One run.

The peer is Hugging Face's padding-free batching: the same model exported to `transformers`' LLaMA, each
step's same conversations laid end to end in one row by `DataCollatorWithFlattening` (positions restart at
each conversation, which LLaMA reads as separate sequences), forward, loss, backward and torch's AdamW.
Its first loss equals llmlab's (same weights, same conversations); after that the optimizers differ, so
only its speed is compared (its rate over llmlab packing's).

    .venv/bin/python bench/sft_packing.py [--dim 128] [--layers 4] [--seq 64] [--batch 16] [--steps 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import tempfile
import time
from statistics import median

import torch


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=64, help="seq_len: conversations are cut to it, rows packed to it")
    ap.add_argument("--batch", type=int, default=16, help="conversations per step (every setup)")
    ap.add_argument("--steps", type=int, default=30, help="timed steps, after 2 warm-up steps")
    ap.add_argument("--digits", type=int, default=5, help="operands of 2..this many digits (lengths vary)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    from llmlab.adapt.chat import ChatTemplate, add_chat_tokens
    from llmlab.adapt.sft import SFT_TRAIN, SFTTrainer, arithmetic_conversations, encode_examples
    from llmlab.data.corpora import arithmetic
    from llmlab.models import CausalLM, ModelConfig
    from llmlab.tokenizers import CharTokenizer

    problems = arithmetic(4000, "train", max_digits=args.digits, ops="+-*")
    base_tok = CharTokenizer.train([p.text for p in problems])
    tok = add_chat_tokens(None, base_tok)
    template = ChatTemplate()
    train, _ = encode_examples(template, tok, arithmetic_conversations(problems), args.seq + 1)
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=args.dim, n_layer=args.layers, n_head=max(2, args.dim // 32),
                      n_kv_head=max(1, args.dim // 64), max_seq_len=args.seq)
    train_cfg = dataclasses.replace(SFT_TRAIN, steps=args.steps + 2, batch_size=args.batch, seq_len=args.seq,
                                    warmup_steps=2, eval_every=0, checkpoint_every=0, log_every=1,
                                    device=args.device)
    setups = {"padding": {}, "bucketing": {"bucket": True}, "packing": {"packing": True}}
    trainers, stats = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, kw in setups.items():
            torch.manual_seed(0)
            model = CausalLM(cfg)
            trainers[name] = SFTTrainer(model, train_cfg, train, train[:8], f"{tmp}/{name}", tok.pad_id, **kw)
            stats[name] = {"times": [], "rates": [], "losses": [], "tokens": 0, "positions": 0}
        peer = hf_peer(trainers["packing"].model, tmp, args.device, train_cfg.lr)
        stats["transformers"] = {"times": [], "rates": [], "losses": [], "tokens": 0, "positions": 0}
        lengths = [len(ids) - 1 for ids, _ in train]
        print(f"dim {cfg.dim}, {cfg.n_layer} layers, {cfg.n_head} heads ({cfg.n_kv_head} kv), vocab {cfg.vocab_size}; "
              f"{len(train)} arithmetic conversations of {min(lengths)}..{max(lengths)} tokens "
              f"(mean {sum(lengths) / len(lengths):.1f}); {args.batch} conversations per step, seq_len {args.seq}; "
              f"{args.device}, {torch.get_num_threads()} threads; {args.steps} timed steps after 2 warm-up")
        for step in range(args.steps + 2):
            for name, t in trainers.items():  # round-robin: a busy spell of the machine falls on every setup
                x = t.batch(0)[0]  # the step's batch (a function of the step): what train_step draws
                start = time.perf_counter()
                record = t.train_step()
                if t.device.type == "cuda":
                    torch.cuda.synchronize()
                elapsed = time.perf_counter() - start
                s = stats[name]
                s["losses"].append(record["loss"])
                if step >= 2:
                    s["times"].append(elapsed)
                    s["rates"].append(int((x != tok.pad_id).sum()) / elapsed)
                    s["tokens"] += int((x != tok.pad_id).sum())
                    s["positions"] += x.numel()
            # the peer, on the conversations packing just trained on (its step is now one ahead)
            t = trainers["packing"]
            t.step -= 1
            picked = t.picked(0)
            t.step += 1
            elapsed, loss, tokens = peer(picked)
            s = stats["transformers"]
            s["losses"].append(loss)
            if step >= 2:
                s["times"].append(elapsed)
                s["rates"].append(tokens / elapsed)
                s["tokens"] += tokens
                s["positions"] += tokens
    base = stats["padding"]
    print(f"\n{'setup':12s} {'rows x T (step 0)':>16s} {'padding':>8s} {'ms/step':>8s} {'tokens/s':>10s} "
          f"{'vs padding':>11s} {'loss after':>11s}")
    for name, s in stats.items():
        shape = f"1 x {s['tokens'] // len(s['times'])}" if name == "transformers" else \
            "{} x {}".format(*trainers[name].batch(0)[0].shape)
        rate = median(s["rates"])
        print(f"{name:12s} {shape:>16s} {1 - s['tokens'] / s['positions']:8.1%} "
              f"{median(s['times']) * 1e3:8.1f} {rate:10.0f} {rate / median(base['rates']):10.2f}x "
              f"{s['losses'][-1]:11.4f}")
    diff = max(abs(a - b) for a, b in zip(stats["packing"]["losses"], base["losses"]))
    print(f"\npacking vs padding, the same conversations each step: largest loss difference over "
          f"{len(base['losses'])} steps {diff:.2e} (float noise)")
    ours, theirs = stats["packing"], stats["transformers"]
    print(f"llmlab packing vs transformers flattened: first-step loss {ours['losses'][0]:.6f} vs "
          f"{theirs['losses'][0]:.6f}; tokens/s {median(ours['rates']):.0f} vs {median(theirs['rates']):.0f} "
          f"= {median(ours['rates']) / median(theirs['rates']):.2f}x")


def hf_peer(model, tmp: str, device: str, lr: float):
    """A step function for `model`'s weights exported to transformers' LLaMA: (conversations) -> (seconds,
    loss, tokens) for DataCollatorWithFlattening's row, forward, loss, backward and an AdamW step."""
    import transformers

    from llmlab.models.hf import export_hf

    export_hf(model, f"{tmp}/hf")
    hf = transformers.AutoModelForCausalLM.from_pretrained(f"{tmp}/hf", attn_implementation="sdpa").to(device)
    hf.train()
    opt = torch.optim.AdamW(hf.parameters(), lr=lr)
    collate = transformers.DataCollatorWithFlattening(return_tensors="pt")

    def step(picked) -> tuple[float, float, int]:
        batch = collate([{"input_ids": ids, "labels": [t if m else -100 for t, m in zip(ids, mask)]}
                         for ids, mask in picked])
        batch = {k: v.to(device) for k, v in batch.items()}
        start = time.perf_counter()
        loss = hf(**batch, use_cache=False).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        return time.perf_counter() - start, float(loss.detach()), sum(len(ids) - 1 for ids, _ in picked)

    return step


if __name__ == "__main__":
    main()
