"""Experiment (topic 73): RNN, CNN and Transformer language models on the same data and budget.

Each model gets the same tokenizer, batches (same seed), step count and optimizer; widths are chosen
so the three have similar parameter counts. The table reports validation loss, training tokens/s and
parameters; the plot shows the three loss curves.

    out/
      experiment.json           the settings; marks the folder as this experiment's, so a rerun may replace it
      transformer/ lstm/ cnn/   each model's run (metrics.jsonl, checkpoints/), replaced whole by a rerun
      results.json, extractors.png, report.md
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from llmlab.core.io import atomic_folder, atomic_write_json, atomic_write_text, check_folder
from llmlab.data import lm_splits
from llmlab.models import CausalLM
from llmlab.models.baselines import CNNConfig, ConvLM, RecurrentLM, RNNConfig
from llmlab.pipeline.pretrain import RunConfig, prepare_streams
from llmlab.pipeline.report import check_experiment_folder, mark_experiment_folder, plot_curves, runs_steps_text
from llmlab.train import Trainer, evaluate_loss
from llmlab.train.trainer import read_metrics

MODELS = ("transformer", "lstm", "cnn")
ENTRIES = (*MODELS, "results.json", "extractors.png", "report.md")  # besides experiment.json
RUN_FILES = ("metrics.jsonl", "checkpoints")  # what a Trainer writes into each model's run folder


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
    """Train each of `build_extractors` under `out_dir`; write results.json, extractors.png and report.md.

    `out_dir` must be new, empty or an earlier output of this experiment (`check_experiment_folder`), each
    model's folder holding only its run: checked before anything trains. Every model trains from scratch
    into a new folder that replaces its earlier run whole (`atomic_folder`).
    """
    out = check_experiment_folder(out_dir, "extractors", ENTRIES)
    for name in MODELS:
        check_folder(out / name, RUN_FILES, "run folder")
    train_lines, dev_lines = lm_splits(base.corpus)
    tok, train_ids, dev_ids = prepare_streams(base, train_lines, dev_lines)
    eval_ids = dev_ids[: base.final_eval_tokens] if base.final_eval_tokens else dev_ids
    tcfg = dataclasses.replace(base.train, steps=steps or base.train.steps, eval_every=0, checkpoint_every=0,
                               keep_checkpoints=1, device="cpu")
    mark_experiment_folder(out, "extractors", ENTRIES, {"run": base.to_dict(), "steps": tcfg.steps})
    results = []
    torch.manual_seed(tcfg.seed)
    for name, model in build_extractors(base, tok.vocab_size).items():
        with atomic_folder(out / name, RUN_FILES, "run folder") as run_dir:
            trainer = Trainer(model, tcfg, train_ids, None, run_dir)
            t0 = time.perf_counter()
            trainer.fit()
            seconds = time.perf_counter() - t0
            curve = read_metrics(run_dir / "metrics.jsonl")  # none when the time limit came before the first log
        val_loss, _ = evaluate_loss(model, eval_ids, tcfg.seq_len, tcfg.batch_size)
        results.append({
            "model": name, "parameters": sum(p.numel() for p in model.parameters()), "val_loss": val_loss,
            "steps": trainer.step, "tokens_per_s": trainer.tokens_seen / seconds,  # the steps it trained, not planned
            "curve": [(r["step"], r["loss"]) for r in curve if "loss" in r],
        })
    atomic_write_json(out / "results.json", results)
    plot_curves([(f"{r['model']} ({r['parameters'] / 1e6:.2f}M, {r['tokens_per_s']:,.0f} tok/s)", r["curve"])
                 for r in results], out / "extractors.png", ylabel="train loss (nats/token)")
    rows = "\n".join(f"| {r['model']} | {r['parameters']:,} | {r['val_loss']:.4f} | {r['tokens_per_s']:,.0f} |"
                     for r in results)
    atomic_write_text(out / "report.md", "# RNN vs CNN vs Transformer\n\nSame data, tokenizer, batches and "
                      f"{runs_steps_text(results, tcfg.steps)}.\n\n| model | parameters | val loss | train tokens/s |\n"
                      f"|---|---|---|---|\n{rows}\n\n![loss curves](extractors.png)\n")
    return results
