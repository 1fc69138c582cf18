"""Training-engine bench: tokens/s under each precision, with and without gradient checkpointing and
torch.compile, each beside the fp32 baseline as a ratio; then the memory estimator beside what a
step actually holds.

    .venv/bin/python bench/train.py [--steps 6] [--dim 256] [--layers 4] [--seq 256] [--batch 8]
"""

from __future__ import annotations

import argparse
import time

import torch

from llmlab.models import CausalLM, ModelConfig, count_parameters
from llmlab.train import optim
from llmlab.train.memory import (
    MemoryConfig,
    activation_bytes,
    estimate_memory,
    format_bytes,
    measure_saved_bytes,
    measure_static_bytes,
)
from llmlab.train.objectives import causal_lm_loss
from llmlab.train.precision import DynamicLossScaler


def tokens_per_second(cfg: ModelConfig, batch: int, seq: int, steps: int, precision: str, ckpt: bool,
                      compile_: bool, device: str) -> float:
    torch.manual_seed(0)
    model = CausalLM(cfg).to(device).train()
    model.gradient_checkpointing = ckpt
    fwd = torch.compile(model) if compile_ else model
    opt = optim.AdamW(model.parameters(), lr=1e-3)
    scaler = DynamicLossScaler() if precision == "fp16" else None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)
    x = torch.randint(0, cfg.vocab_size, (batch, seq + 1), device=device)

    def step():
        with torch.autocast(device, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = fwd(x[:, :-1])
        loss = causal_lm_loss(logits, x[:, 1:])
        (scaler.scale_loss(loss) if scaler else loss).backward()
        if scaler:
            scaler.step(opt, list(model.parameters()))
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(2):  # warm-up (and compilation)
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    t = time.perf_counter()
    for _ in range(steps):
        step()
    if device == "cuda":
        torch.cuda.synchronize()
    return steps * batch * seq / (time.perf_counter() - t)


def speed_table(args) -> None:
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = ModelConfig(vocab_size=4096, dim=args.dim, n_layer=args.layers, n_head=args.dim // 64,
                      n_kv_head=args.dim // 64, max_seq_len=args.seq)
    variants = [("fp32", False, False), ("bf16", False, False), ("fp32", True, False), ("bf16", True, False)]
    if device == "cuda":
        variants.append(("fp16", False, False))
    if not args.no_compile:
        variants.append(("fp32", False, True))
    print(f"device {device}, threads {torch.get_num_threads()}; model {args.layers}x{args.dim}, batch {args.batch} x "
          f"{args.seq}, {args.steps} timed steps after 2 warm-up")
    print(f"{'variant':<28}{'tokens/s':>12}{'baseline fp32':>16}{'ratio':>8}")
    base = None
    for precision, ckpt, comp in variants:
        tps = tokens_per_second(cfg, args.batch, args.seq, args.steps, precision, ckpt, comp, device)
        base = base or tps
        name = precision + (" + checkpointing" if ckpt else "") + (" + compile" if comp else "")
        print(f"{name:<28}{tps:>12,.0f}{base:>16,.0f}{tps / base:>8.2f}")


def memory_table() -> None:
    print("\nmemory estimator vs measured (fp32, one step; activations = bytes saved for backward)")
    print(f"{'config':<34}{'part':<18}{'estimate':>12}{'measured':>12}{'ratio':>8}")
    grid = [(ModelConfig(vocab_size=1000, dim=128, n_layer=2, n_head=4, n_kv_head=4, max_seq_len=256), 4, 128),
            (ModelConfig(vocab_size=5000, dim=256, n_layer=4, n_head=4, n_kv_head=2, max_seq_len=256), 8, 256),
            (ModelConfig(vocab_size=2000, dim=192, n_layer=6, n_head=6, n_kv_head=1, max_seq_len=512), 2, 512)]
    for cfg, B, S in grid:
        torch.manual_seed(0)
        model = CausalLM(cfg).train()
        opt = optim.AdamW(model.parameters(), lr=1e-3)
        x = torch.randint(0, cfg.vocab_size, (B, S + 1))
        causal_lm_loss(model(x[:, :-1]), x[:, 1:]).backward()
        opt.step()
        measured = measure_static_bytes(model, opt)
        measured["activations"] = measure_saved_bytes(model, x[:, :-1], x[:, 1:])
        mem = MemoryConfig(batch_size=B, seq_len=S)
        est = {name: b for name, b, _ in estimate_memory(cfg, mem)}
        est["activations"] = activation_bytes(cfg, mem)["total"]
        label = f"L{cfg.n_layer} d{cfg.dim} kv{cfg.n_kv_head} V{cfg.vocab_size} B{B} S{S}"
        for part in ("weights", "gradients", "optimizer states", "activations"):
            print(f"{label:<34}{part:<18}{format_bytes(est[part]):>12}{format_bytes(measured[part]):>12}"
                  f"{est[part] / measured[part]:>8.3f}")
            label = ""


def underflow_table(model_dir: str) -> None:
    """Why loss scaling exists: gradient values of one real step that fp16 flushes to zero."""
    from pathlib import Path

    from llmlab.data import pfr1998_text
    from llmlab.models import load_model
    from llmlab.train.precision import underflow_fraction

    if not (Path(model_dir) / "config.json").exists():
        print(f"\nunderflow: no model at {model_dir} (run `make run` first, or pass --model DIR)")
        return
    model, tok = load_model(model_dir)
    model.train()
    T = model.config.max_seq_len
    ids = torch.tensor(tok.encode("".join(pfr1998_text("dev")))[: 16 * T + 1])
    causal_lm_loss(model(ids[:-1].view(16, T)), ids[1:].view(16, T)).backward()
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    print(f"\nfp16 underflow on one training step of {model_dir} (16 x {T} dev tokens)")
    for scale in (1.0, 2.0**8, 2.0**16):
        print(f"  loss scale {scale:>8g}: {underflow_fraction(grads, scale):.4%} of nonzero gradient values become 0")


def document_examples() -> None:
    """The source document's worked examples (topic 40) beside the full count."""
    print("\nthe source document's examples (fp32, Adam): its 4P + 8P rule beside the full count (+4P gradients)")
    for name, P in (("GPT-2 small", 150e6), ("GPT-3 Large", 1.3e9), ("GPT-3 175B", 175e9)):
        P = int(P)
        print(f"  {name:<12} weights {4 * P / 1e9:8.1f} GB  Adam states {8 * P / 1e9:8.1f} GB  "
              f"rule {12 * P / 1e9:8.1f} GB  full static {16 * P / 1e9:8.1f} GB (ratio {16 / 12:.2f})")
    cfg = ModelConfig(vocab_size=32000, dim=2048, n_layer=24, n_head=16, n_kv_head=16, max_seq_len=1024,
                      tie_embeddings=False)
    mem = MemoryConfig(batch_size=4, seq_len=1024, optimizer="adam")
    rows = {n: b for n, b, _ in estimate_memory(cfg, mem)}
    print(f"  1B-class, 24 layers x 2048, batch 4 x 1024 ({count_parameters(cfg) / 1e9:.2f}B parameters):")
    print("    document: 4 GB weights + 8 GB optimizer + about 4 GB activations = 16 GB")
    print(f"    llmlab:   {rows['weights'] / 1e9:.1f} GB weights + {rows['gradients'] / 1e9:.1f} GB gradients + "
          f"{rows['optimizer states'] / 1e9:.1f} GB optimizer + {rows['activations (all layers)'] / 1e9:.1f} GB "
          f"activations + {rows['activations (head)'] / 1e9 + rows['temporary (logits + grad)'] / 1e9:.1f} GB head/"
          f"logits = {rows['total per device'] / 1e9:.1f} GB (activations validated above against saved tensors)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--no-compile", action="store_true", help="skip the torch.compile row (compiling takes a while)")
    ap.add_argument("--model", default="runs/small/model", help="trained model for the fp16 underflow figure")
    args = ap.parse_args()
    speed_table(args)
    memory_table()
    document_examples()
    underflow_table(args.model)


if __name__ == "__main__":
    main()
