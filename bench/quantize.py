"""Quantization bench: weight bytes, dev perplexity and forward time of a small llmlab model in fp32, int8
per channel, int8 W8A8 and int4 groups of 128, each beside fp32 as a ratio; then llmlab's two int8 paths
beside torch.ao's dynamic int8 quantization (`quantize_dynamic` on the same nn.Linear layers: int8
weights *and* int8 activations, fbgemm/x86 int8 kernels) on perplexity and time, with its default qconfig
(one scale per weight tensor) and per channel (`per_channel_dynamic_qconfig`, llmlab's weight grid).

The model is trained here (char tokenizer, --steps AdamW steps on pfr1998 train) unless --model DIR
names a saved one. llmlab's weight-only QuantLinear dequantizes its weight each forward and runs a float
matmul (correct first), so its time ratio is the price of that. W8A8 (activations="int8") quantizes each
token's activations symmetric at run time and multiplies int8 codes into int32 exactly (torch._int_mm,
oneDNN, on a CPU with VNNI; float32 matmuls of 1,024 columns at a time on one without, where _int_mm
runs plain loops; see llmlab.adapt.quantize.int8_matmul): torch.ao's scheme, except that torch.ao scales
a whole activation tensor at once (asymmetric, 0..127 with reduce_range) and fuses quantizing and
rescaling into its kernel.

    .venv/bin/python bench/quantize.py [--steps 300] [--dim 128] [--layers 4] [--eval-tokens 20000]
"""

from __future__ import annotations

import argparse
import copy
import math
import time
import warnings

import torch

from llmlab.adapt.quantize import QuantConfig, quantize_model, target_names, weight_bytes
from llmlab.data.corpora import pfr1998_text
from llmlab.models import CausalLM, ModelConfig, load_model
from llmlab.pipeline.pretrain import encode_stream
from llmlab.tokenizers.char import CharTokenizer
from llmlab.train.objectives import causal_lm_loss
from llmlab.train.trainer import evaluate_loss


def train_model(args) -> tuple[CausalLM, CharTokenizer]:
    lines = [t for t in pfr1998_text("train") if t]
    tok = CharTokenizer.train(lines, max_vocab=args.vocab)
    # ffn_hidden a multiple of 128 so groups of 128 divide every layer's input size
    cfg = ModelConfig(vocab_size=tok.vocab_size, dim=args.dim, n_layer=args.layers, n_head=4, n_kv_head=4,
                      ffn_hidden=3 * args.dim, max_seq_len=args.seq)
    ids = encode_stream(tok, lines[:20000])
    torch.manual_seed(0)
    model = CausalLM(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=0.0)
    g = torch.Generator().manual_seed(0)
    t = time.perf_counter()
    for _ in range(args.steps):
        starts = torch.randint(0, ids.numel() - args.seq - 1, (args.batch,), generator=g)
        batch = torch.stack([ids[s:s + args.seq + 1] for s in starts])  # (B, T+1)
        loss = causal_lm_loss(model(batch[:, :-1]), batch[:, 1:])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    print(f"trained {args.steps} steps ({time.perf_counter() - t:.0f} s), last train loss {loss.item():.3f}")
    return model.eval(), tok


def forward_seconds_per_token(model, x: torch.Tensor, reps: int) -> float:
    with torch.no_grad():
        model(x)  # warm-up
        t = time.perf_counter()
        for _ in range(reps):
            model(x)
    return (time.perf_counter() - t) / (reps * x.numel())


def measure(name, model, dev, x, args) -> dict:
    loss, n = evaluate_loss(model, dev, model.config.max_seq_len, batch_size=8)
    return {"name": name, "ppl": math.exp(loss), "tokens": n, "sec": forward_seconds_per_token(model, x, args.reps)}


def torch_dynamic(model: CausalLM, names: list[str], per_channel: bool = False):
    from torch.ao.quantization import default_dynamic_qconfig, per_channel_dynamic_qconfig, quantize_dynamic

    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    with warnings.catch_warnings():  # torch.ao quantization is deprecated in favour of torchao
        warnings.simplefilter("ignore")
        return quantize_dynamic(copy.deepcopy(model), {n: qconfig for n in names}, dtype=torch.qint8)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=None, help="a saved llmlab model directory instead of training one")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--vocab", type=int, default=3000, help="char tokenizer size (most frequent characters)")
    ap.add_argument("--eval-tokens", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=20, help="timed forwards of a (8, seq) batch")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier figures on a shared machine)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, quantized engine "
          f"{torch.backends.quantized.engine}")
    model, tok = load_model(args.model) if args.model else train_model(args)
    dev = encode_stream(tok, [t for t in pfr1998_text("dev") if t])[: args.eval_tokens + 1]
    x = dev[: 8 * model.config.max_seq_len].view(8, -1)  # (8, T)
    names = target_names(model, QuantConfig().targets)
    variants = [("fp32", model)]
    configs = (("int8 per channel", QuantConfig()), ("int8 W8A8", QuantConfig(activations="int8")),
               ("int4 groups of 128", QuantConfig(bits=4, group_size=128)))
    for label, cfg in configs:
        q = copy.deepcopy(model)
        report = quantize_model(q, cfg)
        worst = max(e.rel_fro for e in report.layers)
        print(f"{label}: {len(report.layers)} layers, mean / worst weight error (rel. Frobenius) "
              f"{sum(e.rel_fro for e in report.layers) / len(report.layers):.3%} / {worst:.3%}")
        variants.append((label, q))
    rows = [measure(label, m, dev, x, args) | {"bytes": weight_bytes(m)} for label, m in variants]
    base = rows[0]
    print(f"\nmodel {model.config.n_layer}x{model.config.dim}, {len(names)} projections quantized; dev perplexity on "
          f"{base['tokens']} tokens; forward time per token on an (8, {x.shape[1]}) batch")
    print(f"{'variant':<22}{'weight bytes':>14}{'ratio':>8}{'dev ppl':>10}{'ratio':>8}{'us/token':>10}{'ratio':>8}")
    for r in rows:
        print(f"{r['name']:<22}{r['bytes']:>14,}{r['bytes'] / base['bytes']:>8.3f}{r['ppl']:>10.3f}"
              f"{r['ppl'] / base['ppl']:>8.4f}{r['sec'] * 1e6:>10.2f}{r['sec'] / base['sec']:>8.2f}")
    peers = [measure("torch.ao dynamic int8", torch_dynamic(model, names), dev, x, args),
             measure("torch.ao per channel", torch_dynamic(model, names, per_channel=True), dev, x, args)]
    weight_only, w8a8 = rows[1], rows[2]
    print(f"\nint8 on the same {len(names)} Linear layers: llmlab weight-only (float matmul) and W8A8 (int8 "
          "activations, exact int32 product) vs torch.ao quantize_dynamic (int8 weights and activations)")
    print(f"{'':<22}{'dev ppl':>10}{'vs fp32':>9}{'us/token':>10}{'vs fp32':>9}")
    for r in (weight_only, w8a8, *peers):
        print(f"{r['name']:<22}{r['ppl']:>10.3f}{r['ppl'] / base['ppl']:>9.4f}{r['sec'] * 1e6:>10.2f}"
              f"{r['sec'] / base['sec']:>9.2f}")
    for r in (weight_only, w8a8):
        for peer in peers:
            print(f"llmlab {r['name']} / {peer['name']}: perplexity {r['ppl'] / peer['ppl']:.4f}, "
                  f"forward time {r['sec'] / peer['sec']:.2f}")


if __name__ == "__main__":
    main()
