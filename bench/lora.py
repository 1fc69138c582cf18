"""LoRA training step: llmlab's `apply_lora` beside PEFT's `get_peft_model` on the same model exported to
Hugging Face LLaMA (`export_hf`, loaded with transformers), and full fine-tuning of each for contrast.

One step is forward, cross-entropy, backward and a `torch.optim.AdamW` step over the trainable
parameters (the same optimizer for all, so only the model and adapter code differ). Reported per
setup: trainable parameters, the optimizer's state bytes after a step (AdamW: two fp32 moments per
trainable number, plus a step counter each), and the fastest of `--steps` steps after two warm-up
steps (the four setups take turns step by step, so a busy spell of a shared machine does not fall on
one alone), with the peer's time over llmlab's as a ratio (> 1: llmlab faster). One run.

    .venv/bin/python bench/lora.py [--dim 256] [--layers 4] [--seq 256] [--batch 8] [--rank 8] [--steps 5]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch
import torch.nn.functional as F


class Trainer:
    """One model and its AdamW over the trainable parameters; `step()` times one training step."""

    def __init__(self, model, batch: int, seq: int, vocab: int, device: str):
        self.model, self.device = model, device
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4)
        g = torch.Generator(device).manual_seed(0)
        self.x = torch.randint(0, vocab, (batch, seq + 1), device=device, generator=g)  # (B, T + 1)
        self.times: list[float] = []

    def step(self) -> None:
        t = time.perf_counter()
        out = self.model(self.x[:, :-1])
        logits = getattr(out, "logits", out)  # (B, T, V)
        F.cross_entropy(logits.flatten(0, 1), self.x[:, 1:].flatten()).backward()
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        if self.device == "cuda":
            torch.cuda.synchronize()
        self.times.append(time.perf_counter() - t)

    def state_bytes(self) -> int:
        """What AdamW holds: two moments per trainable number and a step counter per tensor."""
        return sum(v.numel() * v.element_size() for s in self.opt.state.values() for v in s.values()
                   if torch.is_tensor(v))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--rank", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()

    import peft
    import transformers

    from llmlab.adapt.lora import LoRAConfig, apply_lora
    from llmlab.models import CausalLM, ModelConfig
    from llmlab.models.hf import export_hf

    cfg = ModelConfig(dim=args.dim, n_layer=args.layers, n_head=max(1, args.dim // 64),
                      n_kv_head=max(1, args.dim // 64), max_seq_len=args.seq)
    lora = LoRAConfig(r=args.rank, alpha=2 * args.rank)
    peft_cfg = peft.LoraConfig(r=lora.r, lora_alpha=lora.alpha, target_modules=list(lora.targets), lora_dropout=0.0)

    def ours(adapter: bool):
        torch.manual_seed(0)
        model = CausalLM(cfg)
        if adapter:
            apply_lora(model, lora)
        return model.to(args.device).train()

    def theirs(adapter: bool):
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as d:
            export_hf(CausalLM(cfg), d)
            model = transformers.AutoModelForCausalLM.from_pretrained(d)
        if adapter:
            model = peft.get_peft_model(model, peft_cfg)
        return model.to(args.device).train()

    print(f"dim {cfg.dim}, {cfg.n_layer} layers, {cfg.n_head} heads, vocab {cfg.vocab_size}; batch {args.batch} x "
          f"seq {args.seq}; LoRA r={lora.r} alpha={lora.alpha} on {', '.join(lora.targets)}; torch.optim.AdamW; "
          f"{args.device}, {torch.get_num_threads()} threads; fastest of {args.steps} steps after 2 warm-up")
    trainers = {}
    for mode, adapter in (("LoRA", True), ("full fine-tuning", False)):
        for system, build in (("transformers" + (" + PEFT" if adapter else ""), theirs), ("llmlab", ours)):
            trainers[system, mode] = Trainer(build(adapter), args.batch, args.seq, cfg.vocab_size, args.device)
    for _ in range(2):  # warm-up
        for t in trainers.values():
            t.step()
    for t in trainers.values():
        t.times.clear()
    for _ in range(args.steps):  # round-robin, so a busy spell of the machine falls on every setup alike
        for t in trainers.values():
            t.step()
    print(f"\n{'setup':36s} {'trainable':>11s} {'of total':>9s} {'optimizer state':>16s} {'ms/step':>9s} "
          f"{'vs peer':>8s}")
    for (system, mode), t in trainers.items():
        best = min(t.times)
        peer = min(next(v for (s, m), v in trainers.items() if m == mode).times)
        total = sum(p.numel() for p in t.model.parameters())
        trainable = sum(p.numel() for p in t.params)
        print(f"{system + ', ' + mode:36s} {trainable:11,d} {trainable / total:9.2%} {t.state_bytes() / 2**20:12.2f} "
              f"MiB {best * 1e3:9.1f} {peer / best:7.2f}x")


if __name__ == "__main__":
    main()
