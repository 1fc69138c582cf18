"""Experiment (topics 28, 52): the same small language model trained with each optimizer.

Every run starts from the same initial weights and sees the same batches (both follow from the
seed); only the update rule and its learning rate differ. The plot puts the loss curves side by side
with each optimizer's state memory in the legend, which is the trade-off the optimizers make:
SGD keeps nothing, momentum one copy of the weights, Adam two.

    out/
      experiment.json                  the settings; marks the folder as this experiment's, so a rerun may use it
      sgd/ momentum/ ... adamw/        each optimizer's run directory, as pretraining keeps them
      results.json, optimizers.png, report.md
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

import torch

from llmlab.core.io import atomic_write_json, atomic_write_text
from llmlab.data import lm_splits
from llmlab.models import CausalLM
from llmlab.pipeline.pretrain import RunConfig, check_run_dir, data_fingerprint, prepare_run_dir, prepare_streams
from llmlab.pipeline.report import check_experiment_folder, figure_text, mark_experiment_folder, plot_curves, steps_done
from llmlab.train import Trainer, evaluate_loss
from llmlab.train.optim import state_bytes
from llmlab.train.trainer import read_metrics

log = logging.getLogger(__name__)

# Peak learning rates that work for each rule on the tiny preset (adaptive methods want small
# rates; plain SGD needs a large one because nothing rescales its steps).
DEFAULT_LR = {"sgd": 0.5, "momentum": 0.1, "nesterov": 0.1, "adagrad": 0.05, "rmsprop": 2e-3, "adam": 3e-3,
              "adamw": 3e-3}
ENTRIES = (*DEFAULT_LR, "results.json", "optimizers.png", "report.md")  # besides experiment.json


def compare_optimizers(base: RunConfig, out_dir: str | Path, optimizers: tuple[str, ...] = tuple(DEFAULT_LR),
                       steps: int | None = None, fresh: bool = False) -> list[dict]:
    """Train `base` once per optimizer under `out_dir`; write results.json, optimizers.png and report.md.

    `out_dir` must be new, empty or an earlier output of this experiment (`check_experiment_folder`). Each
    optimizer's run is a run directory `out_dir/<optimizer>` as pretraining keeps them: a rerun resumes it,
    and one holding a run of another config is refused before anything trains, unless `fresh`, which
    starts those runs over.
    """
    out = check_experiment_folder(out_dir, "optimizers", ENTRIES)
    train_lines, dev_lines = lm_splits(base.corpus)
    tok, train_ids, dev_ids = prepare_streams(base, train_lines, dev_lines)
    eval_ids = dev_ids[: base.final_eval_tokens] if base.final_eval_tokens else dev_ids
    model_cfg = dataclasses.replace(base.model, vocab_size=tok.vocab_size)
    data = data_fingerprint(train_lines, dev_lines)
    n_steps = steps or base.train.steps
    runs = {name: base.replace(name=name, train=dataclasses.replace(
        base.train, optimizer=name, lr=DEFAULT_LR[name], min_lr=DEFAULT_LR[name] / 10, steps=n_steps,
        log_every=curve_interval(base.train.log_every, n_steps), eval_every=0, checkpoint_every=0,
        keep_checkpoints=1, device="cpu"))
        for name in optimizers}
    for name, run in runs.items():  # every folder is checked before the first run trains
        check_run_dir(out / name, run, fresh, data, elsewhere="--out")
    mark_experiment_folder(out, "optimizers", ENTRIES, {"run": base.to_dict(), "optimizers": list(optimizers),
                                                        "steps": steps})
    results = []
    for name, run in runs.items():
        tcfg, run_dir = run.train, out / name
        prepare_run_dir(run_dir, run, fresh, data)
        torch.manual_seed(tcfg.seed)
        model = CausalLM(model_cfg)
        trainer = Trainer(model, tcfg, train_ids, None, run_dir)
        trainer.maybe_resume()
        trainer.fit()
        val_loss, _ = evaluate_loss(model, eval_ids, tcfg.seq_len, tcfg.batch_size)
        curve = read_metrics(run_dir / "metrics.jsonl")  # none when the time limit came before the first log
        results.append({"optimizer": name, "lr": tcfg.lr, "val_loss": val_loss, "steps": trainer.step,
                        "state_bytes": state_bytes(trainer.optimizer),
                        "curve": [(r["step"], r["loss"]) for r in curve if "loss" in r]})
        log.info("%s: val loss %.4f, state %d bytes", name, val_loss, results[-1]["state_bytes"])
    atomic_write_json(out / "results.json", results)
    plot_curves([(f"{r['optimizer']} (lr {r['lr']:g}; state {r['state_bytes'] / 2**20:.2f} MiB)", r["curve"])
                 for r in results], out / "optimizers.png", ylabel="train loss (nats/token)",
                title="Same model, same data, one optimizer per curve")
    atomic_write_text(out / "report.md", _report(results, model_cfg, n_steps))
    return results


def curve_interval(log_every: int, steps: int, points: int = 10) -> int:
    """The preset's logging interval, shortened so a run of `steps` records at least `points` losses (every
    step when it has fewer): the preset's 10 over a 10-step run gave each curve one point, an empty line.

    >>> curve_interval(10, 400), curve_interval(10, 50), curve_interval(10, 10), curve_interval(10, 1)
    (10, 5, 1, 1)
    """
    return max(1, min(log_every, steps // points))


def _report(results: list[dict], model_cfg, steps: int) -> str:
    """The table, with each run's steps: a run the time limit stopped short resumes when run again."""
    rows = "\n".join(f"| {r['optimizer']} | {r['lr']:g} | {steps_done(r['steps'], steps)} | "
                     f"{figure_text(r['curve'][-1][1] if r['curve'] else None, '.4f')} | {r['val_loss']:.4f} | "
                     f"{r['state_bytes']:,} |" for r in results)
    return ("# Optimizers compared\n\n"
            f"Model: {model_cfg.n_layer} layers x {model_cfg.dim}, vocab {model_cfg.vocab_size}; same seed, same "
            f"batches for every optimizer, {steps} steps planned.\n\n"
            "| optimizer | peak lr | steps | final train loss | val loss | state bytes |\n|---|---|---|---|---|---|\n"
            f"{rows}\n\n![loss curves](optimizers.png)\n")
