"""DPO run (`llmlab.rl.dpo`): a chat model from `llmlab sft` learns from comparisons directly, with
itself, frozen, as the reference. The run directory has the layout of a fine-tuning run:

    runs/<name>/
      config.json      the DPOConfig
      data.json        SHA-256 of the starting model's files and of the comparisons (a resume must see the same)
      pairs.jsonl      the comparisons, each with its split (train or dev)
      metrics.jsonl    the "before" record (step 0), training and validation records, the "after" record
      checkpoints/     weights and optimizer, atomic; a rerun resumes from the newest
      model/           the trained policy with its chat tokenizer and tokenizer_config.json (llmlab chat)
      report.md        held-out comparisons and greedy exact match on the arithmetic test split, before and after

The comparisons are those `llmlab rm train` makes from the same settings (`llmlab.pipeline.reward.comparisons`).
"""

from __future__ import annotations

import time
from pathlib import Path

from llmlab.core.io import atomic_write_json, atomic_write_text, read_jsonl
from llmlab.models import count_parameters
from llmlab.pipeline.pretrain import log_final_eval
from llmlab.pipeline.reward import start_comparison_run
from llmlab.pipeline.rl import measure
from llmlab.pipeline.sft import recorded, save_chat_model
from llmlab.rl.dpo import DPOTrainer, reference_table
from llmlab.rl.dpo_config import DPOConfig

HELD_OUT = ("val_loss", "val_accuracy", "val_margin", "val_policy_prefers_chosen", "test_accuracy")


def run_dpo(cfg: DPOConfig, out_root: str | Path = "runs", fresh: bool = False) -> dict:
    """Train (or resume) `cfg.model` by DPO on its comparisons; return the figures the report shows."""
    t_start = time.perf_counter()
    policy, tok, template, (train, dev), (train_ids, dev_ids), out = start_comparison_run(cfg, out_root, fresh)
    # the reference is the starting model: its log-probabilities, once, before any step (or resume) moves it;
    # the dev pairs in the batches validation reads them in, so that before training every reward is exactly 0
    average, bs = cfg.loss == "ipo", cfg.train.batch_size
    ref, dev_ref = (reference_table(policy, x, tok.pad_id, average, bs) for x in (train_ids, dev_ids))
    trainer = DPOTrainer(policy, cfg.train, train_ids, dev_ids, ref, dev_ref, out, tok.pad_id, cfg.beta, cfg.loss,
                         cfg.label_smoothing, cfg.nll_coef)
    metrics = out / "metrics.jsonl"
    before = recorded(metrics, "before")
    if before is None:
        before = {"step": 0, "before": True, **trainer.evaluate(None), **measure(policy, tok, template, cfg)}
        trainer.metrics.write(before)
    trainer.maybe_resume()
    trainer.fit()
    after = {**trainer.evaluate(None), **measure(trainer.model, tok, template, cfg), "after": True, "final": True}
    log_final_eval(metrics, after)
    figures = {"name": cfg.name, "start_model": cfg.model, "steps": trainer.step,
               "train_seconds": trainer.train_seconds, "parameters": count_parameters(policy.config),
               "train_pairs": len(train), "dev_pairs": len(dev),
               "before": {k: before[k] for k in HELD_OUT + ("samples", "problems") if k in before},
               "after": {k: after[k] for k in HELD_OUT + ("samples", "problems") if k in after}}
    source = cfg.pairs or f"{len(train)} comparisons of its own sampled arithmetic answers with the right ones"
    save_chat_model(trainer.model, out / "model", tok, template, cfg.name,
                    f"{cfg.model} trained by DPO ({cfg.loss}, beta {cfg.beta}) on {source}", figures)
    figures["wall_seconds"] = time.perf_counter() - t_start
    atomic_write_text(out / "report.md", dpo_report(cfg, figures, read_jsonl(metrics, "metrics")))
    atomic_write_json(out / "summary.json", figures)
    return figures


def _fmt(v) -> str:
    return f"{v:.4f}" if isinstance(v, float) else "-"


def dpo_report(cfg: DPOConfig, f: dict, records: list[dict]) -> str:
    """The run's report in Markdown: data, settings, held-out comparisons and exact match before and after."""
    b, a = f["before"], f["after"]
    rows = [("exact match, arithmetic test (greedy)", "test_accuracy"),
            ("policy gives the chosen reply the higher log-probability", "val_policy_prefers_chosen"),
            ("implicit-reward accuracy (0 at the start: every reward is 0)", "val_accuracy"),
            ("implicit-reward margin", "val_margin"), (f"{cfg.loss} loss", "val_loss")]
    table = "".join(f"| {label} | {_fmt(b.get(k))} | {_fmt(a.get(k))} |\n" for label, k in rows)
    curve = "".join(f"| {r['step']} | {r['val_loss']:.4f} | {r['val_accuracy']:.4f} | "
                    f"{r['val_policy_prefers_chosen']:.4f} |\n" for r in records if "val_policy_prefers_chosen" in r)
    samples = "\n".join(f"| {q} | {g} | {bo!r} | {ao!r} |" for (q, g, bo), (_, _, ao)
                        in zip(b.get("samples", []), a.get("samples", [])))
    return (f"# DPO run `{cfg.name}`\n\n"
            f"- Start and reference: `{f['start_model']}` ({f['parameters']:,} parameters)\n"
            f"- Comparisons: {f['train_pairs']} for training, {f['dev_pairs']} held out "
            f"({cfg.pairs or 'sampled answers to arithmetic problems, each wrong one against the right answer'}"
            + (f"; and {cfg.near_misses} near misses of each training problem's answer" if cfg.near_misses else "")
            + ")\n"
            f"- Loss: {cfg.loss}, beta {cfg.beta}, label smoothing {cfg.label_smoothing}, NLL weight {cfg.nll_coef}\n"
            f"- Training: {f['steps']} steps of {cfg.train.batch_size} comparisons, lr {cfg.train.lr}, "
            f"{f['train_seconds']:.1f} s\n\n"
            f"## Before and after\n\nHeld-out comparisons, and greedy chat answers to {a.get('problems', 0)} "
            "test problems.\n\n| measure | before | after |\n|---|---|---|\n" + table
            + "\n## Validation\n\n| step | loss | implicit-reward accuracy | policy prefers chosen |\n"
            "|---|---|---|---|\n" + curve
            + "\n## Samples\n\n| question | gold | before | after |\n|---|---|---|---|\n" + samples + "\n")
