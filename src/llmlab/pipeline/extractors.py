"""Experiment (topic 73): RNN, CNN and Transformer language models on the same data and budget.

Each model gets the same tokenizer, batches (same seed), step count and optimizer; widths are chosen
so the three have similar parameter counts. The table reports validation loss, training tokens/s and
parameters; the plot shows the three loss curves.
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import torch

from llmlab.core.io import atomic_write_json, atomic_write_text, check_output
from llmlab.data import lm_splits
from llmlab.models import CausalLM
from llmlab.models.baselines import CNNConfig, ConvLM, RecurrentLM, RNNConfig
from llmlab.pipeline.pretrain import RunConfig, prepare_streams
from llmlab.pipeline.report import plot_curves
from llmlab.train import Trainer, evaluate_loss


def build_extractors(base: RunConfig, vocab_size: int) -> dict[str, torch.nn.Module]:
    m = dataclasses.replace(base.model, vocab_size=vocab_size)
    T = m.max_seq_len
    return {
        "transformer": CausalLM(m),
        "lstm": RecurrentLM(RNNConfig(vocab_size=vocab_size, dim=m.dim, n_layer=max(1, m.n_layer // 2),
                                      cell="lstm", max_seq_len=T)),
        "cnn": ConvLM(CNNConfig(vocab_size=vocab_size, dim=m.dim, n_layer=m.n_layer + 2, kernel_size=3,
                                max_seq_len=T)),
    }


def compare_extractors(base: RunConfig, out_dir: str | Path, steps: int | None = None) -> list[dict]:
    out = check_output(out_dir, "output folder", folder=True)
    out.mkdir(parents=True, exist_ok=True)
    train_lines, dev_lines = lm_splits(base.corpus)
    tok, train_ids, dev_ids = prepare_streams(base, train_lines, dev_lines)
    eval_ids = dev_ids[: base.final_eval_tokens] if base.final_eval_tokens else dev_ids
    tcfg = dataclasses.replace(base.train, steps=steps or base.train.steps, eval_every=0, checkpoint_every=0,
                               keep_checkpoints=1, device="cpu")
    results = []
    torch.manual_seed(tcfg.seed)
    for name, model in build_extractors(base, tok.vocab_size).items():
        run_dir = out / name
        if (run_dir / "metrics.jsonl").exists():
            (run_dir / "metrics.jsonl").unlink()
        trainer = Trainer(model, tcfg, train_ids, None, run_dir)
        t0 = time.perf_counter()
        trainer.fit()
        seconds = time.perf_counter() - t0
        val_loss, _ = evaluate_loss(model, eval_ids, tcfg.seq_len, tcfg.batch_size)
        curve = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text(encoding="utf-8").splitlines()]
        results.append({
            "model": name, "parameters": sum(p.numel() for p in model.parameters()), "val_loss": val_loss,
            "tokens_per_s": tcfg.steps * tcfg.batch_size * tcfg.seq_len / seconds,
            "curve": [(r["step"], r["loss"]) for r in curve if "loss" in r],
        })
    atomic_write_json(out / "results.json", results)
    plot_curves([(f"{r['model']} ({r['parameters'] / 1e6:.2f}M, {r['tokens_per_s']:,.0f} tok/s)", r["curve"])
                 for r in results], out / "extractors.png", ylabel="train loss (nats/token)")
    rows = "\n".join(f"| {r['model']} | {r['parameters']:,} | {r['val_loss']:.4f} | {r['tokens_per_s']:,.0f} |"
                     for r in results)
    atomic_write_text(out / "report.md", "# RNN vs CNN vs Transformer\n\nSame data, tokenizer, batches and "
                      f"{tcfg.steps} steps.\n\n| model | parameters | val loss | train tokens/s |\n|---|---|---|---|\n"
                      f"{rows}\n\n![loss curves](extractors.png)\n")
    return results
