"""DPO run (`llmlab.rl.dpo`): a chat model from `llmlab sft` learns from comparisons directly, with
itself, frozen, as the reference. The run directory has the layout of a fine-tuning run:

    runs/<name>/
      config.json      the DPOConfig
      data.json        SHA-256 of the starting model's files and of the comparisons (a resume must see the same)
      pairs.jsonl      the comparisons (for KTO from an unpaired file, the examples), each with its split
      metrics.jsonl    the "before" record (step 0), training and validation records, the "after" record
      checkpoints/     weights and optimizer, atomic; a rerun resumes from the newest
      model/           the trained policy with its chat tokenizer and tokenizer_config.json (llmlab chat)
      report.md        held-out comparisons and greedy exact match on the arithmetic test split, before and after

The comparisons are those `llmlab rm train` makes from the same settings (`llmlab.pipeline.reward.comparisons`).
With ``loss="kto"`` (`llmlab.rl.kto`) each comparison is unpaired into a desirable and an undesirable
example, or a file of unpaired examples is read; the run is otherwise the same.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_json, atomic_write_text
from llmlab.models import count_parameters
from llmlab.pipeline.pretrain import log_final_eval
from llmlab.pipeline.report import figure_text, steps_done
from llmlab.pipeline.reward import comparisons, start_comparison_run
from llmlab.pipeline.rl import measure
from llmlab.pipeline.sft import recorded_before, save_chat_model
from llmlab.rl.dpo import DPOTrainer, reference_table
from llmlab.rl.dpo_config import AVERAGED, REFERENCE_FREE, DPOConfig
from llmlab.rl.kto import KTOData, KTOTrainer, reference_logps, unpaired_ids
from llmlab.rl.unpaired import is_unpaired_file, read_split_examples
from llmlab.train.trainer import read_metrics

METHOD = {"kto": "KTO", "simpo": "SimPO", "orpo": "ORPO"}  # the losses that are methods of their own
HELD_OUT = ("val_loss", "val_accuracy", "val_margin", "val_policy_prefers_chosen", "val_kl", "test_accuracy")


def preference_records(cfg: DPOConfig, policy, tok, template) -> tuple[list, list]:
    """The run's train and dev records: comparisons (`comparisons`), or for KTO an unpaired file's examples."""
    if cfg.pairs and is_unpaired_file(cfg.pairs):
        if cfg.loss != "kto":
            raise InputError(f"{cfg.pairs} holds unpaired examples (prompt, completion, label), which only --loss kto "
                             f"trains on; the {cfg.loss!r} loss needs comparisons (prompt, chosen, rejected)")
        return read_split_examples(cfg.pairs)
    return comparisons(cfg, policy, tok, template)


def kto_trainer(cfg: DPOConfig, policy, pad_id: int, records: tuple[list, list], ids: tuple[list, list],
                out: Path) -> KTOTrainer:
    """The KTO trainer of a run: each split's examples in fixed batches with their mismatched completions
    (train and dev from different seeds), and the reference's table of both, before any step moves it."""
    data = []
    for split, (rec, x) in enumerate(zip(records, ids)):
        examples, labels, pairs = unpaired_ids(rec, x)
        data.append(KTOData.of(examples, labels, cfg.train.batch_size, cfg.train.seed * 1_000_003 + 5 + split, pairs))
    ref, dev_ref = (reference_logps(policy, d, pad_id) for d in data)
    return KTOTrainer(policy, cfg.train, *data, ref, dev_ref, out, pad_id, cfg.beta, cfg.nll_coef,
                      cfg.desirable_weight, cfg.undesirable_weight)


def run_dpo(cfg: DPOConfig, out_root: str | Path = "runs", fresh: bool = False) -> dict:
    """Train (or resume) `cfg.model` by DPO on its comparisons; return the figures the report shows."""
    t_start = time.perf_counter()
    policy, tok, template, (train, dev), (train_ids, dev_ids), out = start_comparison_run(
        cfg, out_root, fresh, preference_records)
    if cfg.loss == "kto":
        trainer = kto_trainer(cfg, policy, tok.pad_id, (train, dev), (train_ids, dev_ids), out)
    else:
        # the reference is the starting model: its log-probabilities, once, before any step (or resume) moves
        # it; the dev pairs in the batches validation reads them in, so that before training every reward is 0
        average, bs = cfg.loss in AVERAGED, cfg.train.batch_size
        if cfg.loss in REFERENCE_FREE:  # rewards are then beta x the policy's own log-probabilities
            ref, dev_ref = torch.zeros(len(train_ids), 2), torch.zeros(len(dev_ids), 2)
        else:
            ref, dev_ref = (reference_table(policy, x, tok.pad_id, average, bs) for x in (train_ids, dev_ids))
        trainer = DPOTrainer(policy, cfg.train, train_ids, dev_ids, ref, dev_ref, out, tok.pad_id, cfg.beta,
                             cfg.loss, cfg.label_smoothing, cfg.nll_coef, cfg.simpo_gamma)
    metrics = out / "metrics.jsonl"
    before = recorded_before(metrics)
    if before is None:
        before = {"step": 0, "before": True, **trainer.evaluate(None), **measure(policy, tok, template, cfg)}
        trainer.metrics.write(before)
    trainer.started = t_start  # the session's clock includes loading the model and the data
    trainer.maybe_resume()
    trainer.fit()
    after = {**trainer.evaluate(None), **measure(trainer.model, tok, template, cfg), "after": True, "final": True}
    log_final_eval(metrics, after)
    figures = {"name": cfg.name, "start_model": cfg.model, "steps": trainer.step,
               "train_seconds": trainer.train_seconds, "parameters": count_parameters(policy.config),
               "train_pairs": len(train), "dev_pairs": len(dev), "train_examples": len(trainer.pairs),
               "dev_examples": len(trainer.dev),
               "before": {k: before[k] for k in HELD_OUT + ("samples", "problems") if k in before},
               "after": {k: after[k] for k in HELD_OUT + ("samples", "problems") if k in after}}
    source = cfg.pairs or f"{len(train)} comparisons of its own sampled arithmetic answers with the right ones"
    save_chat_model(trainer.model, out / "model", tok, template, cfg.name,
                    f"{cfg.model} trained by {METHOD.get(cfg.loss, f'DPO ({cfg.loss})')}, beta {cfg.beta}, "
                    f"on {source}", figures)
    figures["wall_seconds"] = trainer.total_wall_seconds()  # every session's, as train_seconds is
    atomic_write_text(out / "report.md", dpo_report(cfg, figures, read_metrics(metrics)))
    atomic_write_json(out / "summary.json", figures)
    return figures


def _fmt(v) -> str:
    return figure_text(v, ".4f") if isinstance(v, float) else "-"  # "-" too where undefined (null, NaN)


def dpo_report(cfg: DPOConfig, f: dict, records: list[dict]) -> str:
    """The run's report in Markdown: data, settings, held-out comparisons and exact match before and after."""
    b, a, kto = f["before"], f["after"], cfg.loss == "kto"
    rows = [("exact match, arithmetic test (greedy)", "test_accuracy"),
            ("policy gives the chosen reply the higher log-probability", "val_policy_prefers_chosen"),
            ("implicit-reward accuracy" + (" (beta x the policy's mean token log-probability)"
                                           if cfg.loss in REFERENCE_FREE else " (0 at the start: every reward is 0)"),
             "val_accuracy"),
            ("implicit-reward margin" + (" (desirable - undesirable)" if kto else ""), "val_margin"),
            (f"{cfg.loss} loss", "val_loss")] + ([("KL estimate z (mismatched completions)", "val_kl")] if kto else [])
    table = "".join(f"| {label} | {_fmt(b.get(k))} | {_fmt(a.get(k))} |\n" for label, k in rows)
    cols = ("val_loss", "val_kl", "val_margin") if kto else ("val_loss", "val_accuracy", "val_policy_prefers_chosen")
    curve = "".join(f"| {r['step']} | " + " | ".join(_fmt(r.get(k)) for k in cols) + " |\n"
                    for r in records if cols[2] in r)
    samples = "\n".join(f"| {q} | {g} | {bo!r} | {ao!r} |" for (q, g, bo), (_, _, ao)
                        in zip(b.get("samples", []), a.get("samples", [])))
    unit = "examples" if kto else "comparisons"
    data = (f"- Comparisons: {f['train_pairs']} for training, {f['dev_pairs']} held out "
            f"({cfg.pairs or 'sampled answers to arithmetic problems, each wrong one against the right answer'}"
            + (f"; and {cfg.near_misses} near misses of each training problem's answer" if cfg.near_misses else "")
            + ")\n")
    if kto:
        data += (f"- KTO examples: {f['train_examples']} for training, {f['dev_examples']} held out (a comparison "
                 "gives a desirable and an undesirable one)\n")
    loss = (f"- Loss: kto, beta {cfg.beta}, desirable weight {cfg.desirable_weight}, undesirable weight "
            f"{cfg.undesirable_weight}, NLL weight {cfg.nll_coef}\n" if kto else
            f"- Loss: {cfg.loss}, beta {cfg.beta}, label smoothing {cfg.label_smoothing}, NLL weight "
            f"{1.0 if cfg.loss == 'orpo' else cfg.nll_coef}"
            + (f", gamma {cfg.simpo_gamma}" if cfg.loss == "simpo" else "")
            + (", no reference" if cfg.loss in REFERENCE_FREE else "") + "\n")
    header = "| step | loss | KL estimate | reward margin |" if kto else \
        "| step | loss | implicit-reward accuracy | policy prefers chosen |"
    return (f"# {METHOD.get(cfg.loss, 'DPO')} run `{cfg.name}`\n\n"
            f"- Start and reference: `{f['start_model']}` ({f['parameters']:,} parameters)\n" + data + loss
            + f"- Training: {steps_done(f['steps'], cfg.train.steps)} of {cfg.train.batch_size} {unit}, "
            f"lr {cfg.train.lr}, {f['train_seconds']:.1f} s\n\n"
            f"## Before and after\n\nHeld-out {unit}, and greedy chat answers to {a.get('problems', 0)} "
            "distinct test questions.\n\n| measure | before | after |\n|---|---|---|\n" + table
            + "\n## Validation\n\n" + header + "\n|---|---|---|---|\n" + curve
            + "\n## Samples\n\n| question | gold | before | after |\n|---|---|---|---|\n" + samples + "\n")
