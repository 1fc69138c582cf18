"""Reward model run (topic 78, the step between SFT and PPO): a chat model from `llmlab sft` learns to
score answers from comparisons (`llmlab.rl.reward_model`). The run directory has the layout of a
fine-tuning run:

    runs/<name>/
      config.json      the RewardConfig
      data.json        SHA-256 of the starting model's files and of the comparisons (a resume must see the same)
      pairs.jsonl      the comparisons, each with its split (train or dev)
      metrics.jsonl    the "before" record (step 0), training and validation records, the "after" record
      checkpoints/     weights and optimizer, atomic; a rerun resumes from the newest
      model/           the reward model (`llmlab rl --reward-model`, `llmlab rm score`)
      report.md        pair accuracy on the held-out comparisons before and after, and best-of-n

Best-of-n is the reward model put to use without RL: the chat model answers each arithmetic test
problem n times and the reward model picks one. Its exact match lies between that of one sample (a
reward model no better than chance) and the share of problems with any right answer among the n (a
perfect one).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import torch

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_json, atomic_write_text, write_jsonl
from llmlab.core.progress import progress
from llmlab.models import count_parameters
from llmlab.models.card import ModelCard
from llmlab.pipeline.pretrain import log_final_eval, prepare_run_dir
from llmlab.pipeline.report import figure_text, steps_done
from llmlab.pipeline.rl import chat_model
from llmlab.pipeline.sft import recorded_before, sft_fingerprint, tokenizer_config
from llmlab.rl.dpo_config import DPOConfig
from llmlab.rl.preferences import (
    Preference,
    encode_preferences,
    near_miss_preferences,
    read_split_preferences,
    sampled_preferences,
)
from llmlab.rl.reward_config import RewardConfig
from llmlab.rl.reward_model import RewardScorer, make_reward_model, pair_accuracy, save_reward_model
from llmlab.rl.reward_trainer import RewardTrainer
from llmlab.rl.unpaired import Example, encode_examples
from llmlab.train.trainer import read_metrics

log = logging.getLogger(__name__)


def comparisons(cfg: RewardConfig | DPOConfig, policy, tok, template) -> tuple[list[Preference], list[Preference]]:
    """Train and dev comparisons: a file's lines (`read_split_preferences`: a run's pairs.jsonl keeps its
    split, another file's last 5% are held out), or the chat
    model's sampled arithmetic answers (train problems for training, dev problems held out). A reward
    model run and a DPO run with the same data settings and seed get the same comparisons."""
    if cfg.pairs:
        return read_split_preferences(cfg.pairs)
    problems = {split: _problems(cfg, split) for split in ("train", "dev")}
    out = []
    for split, stream in (("train", 0), ("dev", 1)):
        g = torch.Generator().manual_seed(cfg.train.seed * 1_000_003 + stream)
        out.append(sampled_preferences(policy, tok, template,
                                       progress(problems[split], desc=f"sampling {split} answers"),
                                       cfg.samples, cfg.max_new_tokens, cfg.temperature, g))
    if not out[0] or not out[1]:
        raise InputError("the chat model answered every sampled problem right, so there is nothing to compare: "
                         "raise --samples or --arithmetic-max-digits, or give --pairs")
    slips = near_miss_preferences(problems["train"], cfg.near_misses, cfg.train.seed * 1_000_003 + 3)
    return out[0] + slips, out[1]


def _problems(cfg: RewardConfig, split: str):
    """The built-in pairs' arithmetic problems of a split: arithmetic_train of them, a tenth as many for dev."""
    from llmlab.data.corpora import arithmetic

    n = cfg.arithmetic_train if split == "train" else max(1, cfg.arithmetic_train // 10)
    return arithmetic(n, split, max_digits=cfg.arithmetic_max_digits, ops=cfg.arithmetic_ops)


def near_miss_dev(cfg: RewardConfig) -> list[Preference]:
    """Held-out near misses (built-in pairs only): each dev problem's right answer against 3 one-digit slips,
    a check of the digits a reward model reads that the policy's own mistakes may not cover."""
    return [] if cfg.pairs else near_miss_preferences(_problems(cfg, "dev"), 3, cfg.train.seed * 1_000_003 + 4)


def best_of_n(policy, scorer: RewardScorer, tok, template, cfg: RewardConfig) -> dict:
    """Exact match on test problems of one sample, of the reward model's pick of `best_of` samples, and
    of an oracle's pick (any right answer among them)."""
    from llmlab.data.corpora import arithmetic_distinct

    if not cfg.best_of or not cfg.eval_problems:
        return {}
    problems = arithmetic_distinct(cfg.eval_problems, max_digits=cfg.arithmetic_max_digits, ops=cfg.arithmetic_ops)
    r = best_of_n_picks(policy, {"reward_model": scorer}, tok, template, problems, cfg.best_of, cfg.max_new_tokens,
                        cfg.train.seed)
    return {"n": cfg.best_of, "problems": r["problems"], "one_sample": r["one_sample"],
            "reward_model_pick": r["picks"]["reward_model"], "oracle_pick": r["oracle_pick"]}


def best_of_n_picks(policy, scorers: dict, tok, template, problems, n: int, max_new_tokens: int, seed: int) -> dict:
    """The policy answers each problem `n` times (sampled at temperature 1, seeded by `seed` as
    `llmlab rm train`'s report is) and each scorer picks the answer it scores highest: exact match of the
    first sample, of each scorer's pick ({"picks": {name: share}}) and of an oracle's pick (any right
    answer among the n). Every scorer picks from the same samples, so their picks compare pair by pair."""
    from llmlab.rl.rewards import answer_reward
    from llmlab.rl.rollout import sample_group

    end = template.ids(tok)[template.end]
    g = torch.Generator().manual_seed(seed * 1_000_003 + 2)
    one = oracle = 0.0
    picked = dict.fromkeys(scorers, 0.0)
    for p in progress(problems, desc=f"best of {n}"):
        prompt = template.prompt_ids(tok, [{"role": "user", "content": p.question}])
        ro = sample_group(policy, prompt, n, max_new_tokens, 1.0, end, tok.pad_id, g)
        right = [answer_reward(tok.decode(ro.answer_ids(b, end)), p.answer) for b in range(len(ro))]
        one, oracle = one + right[0], oracle + max(right)
        for name, scorer in scorers.items():  # as llmlab rl scores them
            picked[name] += right[int(scorer([prompt] * len(ro), ro.sampled_ids()).argmax())]
    k = len(problems)
    return {"n": n, "problems": k, "one_sample": one / k, "oracle_pick": oracle / k,
            "picks": {name: v / k for name, v in picked.items()}}


def start_comparison_run(cfg: RewardConfig | DPOConfig, out_root: str | Path, fresh: bool, load=comparisons):
    """What a run on comparisons (a reward model's or DPO's) starts with: the chat model, tokenizer and
    template; its comparisons, as `Preference`s and as ids (train, dev); and the run directory, checked
    or made, with the comparisons written to its pairs.jsonl. `load(cfg, policy, tok, template)` gives the
    records: `comparisons`, or for KTO also an unpaired file's `Example`s, which pairs.jsonl then holds."""
    policy, tok, template = chat_model(cfg.model)
    train, dev = load(cfg, policy, tok, template)
    ctx = policy.config.max_seq_len
    encode = encode_examples if train and isinstance(train[0], Example) else encode_preferences
    train_ids, dev_ids = (encode(tok, template, x, ctx) for x in (train, dev))
    out = Path(out_root) / cfg.name
    data = [p.to_dict() for p in train], [p.to_dict() for p in dev]
    prepare_run_dir(out, cfg, fresh, sft_fingerprint(cfg.model, *data))
    write_jsonl(out / "pairs.jsonl", ({**r, "split": s} for s, rows in zip(("train", "dev"), data) for r in rows))
    return policy, tok, template, (train, dev), (train_ids, dev_ids), out


def run_reward(cfg: RewardConfig, out_root: str | Path = "runs", fresh: bool = False) -> dict:
    """Train (or resume) a reward model from `cfg.model`; return the figures the report shows."""
    t_start = time.perf_counter()
    policy, tok, template, (train, dev), (train_ids, dev_ids), out = start_comparison_run(cfg, out_root, fresh)
    ctx = policy.config.max_seq_len
    rm = make_reward_model(policy)
    trainer = RewardTrainer(rm, cfg.train, train_ids, dev_ids, out, tok.pad_id, cfg.center_coef)
    metrics = out / "metrics.jsonl"
    slips = encode_preferences(tok, template, near_miss_dev(cfg), ctx)

    def slip_accuracy() -> dict:
        return {"near_miss_accuracy": pair_accuracy(*trainer.scores(slips))} if slips else {}

    before = recorded_before(metrics)
    if before is None:
        before = {"step": 0, "before": True, **trainer.evaluate(None), **slip_accuracy()}
        trainer.metrics.write(before)
    trainer.started = t_start  # the session's clock includes loading the model and the data
    trainer.maybe_resume()
    trainer.fit()
    after = {**trainer.evaluate(None), **slip_accuracy(), "after": True, "final": True}
    log_final_eval(metrics, after)
    chosen, rejected = trainer.scores(trainer.pairs)
    raw = torch.cat([chosen, rejected])
    mean, std = float(raw.mean()), float(raw.std()) if len(raw) > 1 else 1.0
    scorer = RewardScorer(rm.eval(), tok.pad_id, mean, std if std > 0 else 1.0)
    figures = {"name": cfg.name, "start_model": cfg.model, "steps": trainer.step,
               "train_seconds": trainer.train_seconds,
               "parameters": count_parameters(policy.config), "train_pairs": len(train), "dev_pairs": len(dev),
               "before": {k: before[k] for k in ("val_loss", "val_accuracy", "near_miss_accuracy") if k in before},
               "after": {k: after[k] for k in ("val_loss", "val_accuracy", "near_miss_accuracy") if k in after},
               "near_miss_pairs": len(slips),
               "train_accuracy": pair_accuracy(chosen, rejected),
               "score_mean": mean, "score_std": scorer.std, "best_of_n": best_of_n(policy, scorer, tok, template, cfg)}
    source = cfg.pairs or f"{len(train)} comparisons of its own sampled arithmetic answers with the right ones"
    card = ModelCard(name=f"llmlab-{cfg.name}", parameters=figures["parameters"],
                     training_data=f"{cfg.model} trained as a reward model on {source}",
                     tokenizer=f"{type(tok).__name__}, {tok.vocab_size} tokens with chat tokens {template.tokens}",
                     intended_use="Scores a chat prompt and reply (ending with <|end|>): higher is preferred. Scores "
                                  f"are normalised to mean 0, std 1 over the training replies (raw mean {mean:.4g}, "
                                  f"std {scorer.std:.4g}, in config.json). Use with llmlab rl --reward-model.",
                     metrics={"dev_pair_accuracy": after["val_accuracy"]})
    save_reward_model(rm, out / "model", tok, tokenizer_config(tok, template), mean, scorer.std, card)
    figures["wall_seconds"] = trainer.total_wall_seconds()  # every session's, as train_seconds is
    atomic_write_text(out / "report.md", reward_report(cfg, figures, read_metrics(metrics)))
    atomic_write_json(out / "summary.json", figures)
    return figures


def _f(v, spec: str = ".4f") -> str:
    return figure_text(v, spec)  # "-" for a figure that is undefined (null in the run's files)


def reward_report(cfg: RewardConfig, f: dict, records: list[dict]) -> str:
    """The run's report in Markdown: data, accuracy before and after, validation curve, best-of-n."""
    b, a = f["before"], f["after"]
    curve = "".join(f"| {r['step']} | {_f(r['val_loss'])} | {_f(r['val_accuracy'])} |\n"
                    for r in records if "val_accuracy" in r)
    bon = f["best_of_n"]
    slips = (f"| pair accuracy on {f['near_miss_pairs']} near misses (right answer vs one digit changed) | "
             f"{_f(b['near_miss_accuracy'])} | {_f(a['near_miss_accuracy'])} |\n"
             if "near_miss_accuracy" in b and "near_miss_accuracy" in a else "")
    best = (f"## Best of {bon['n']}\n\nThe chat model answers each of {bon['problems']} distinct arithmetic test "
            "questions "
            f"{bon['n']} times (temperature 1); exact match of\n\n| pick | exact match |\n|---|---|\n"
            f"| one sample | {_f(bon['one_sample'], '.3f')} |\n| the reward model's highest score | "
            f"{_f(bon['reward_model_pick'], '.3f')} |\n| an oracle (any right answer) | "
            f"{_f(bon['oracle_pick'], '.3f')} |\n"
            if bon else "")
    return (f"# Reward model run `{cfg.name}`\n\n"
            f"- Start: `{f['start_model']}` ({f['parameters']:,} parameters), vocabulary head replaced by one output\n"
            f"- Comparisons: {f['train_pairs']} for training, {f['dev_pairs']} held out "
            f"({cfg.pairs or 'sampled answers to arithmetic problems, each wrong one against the right answer'}"
            + (f"; and {cfg.near_misses} near misses of each training problem's answer" if cfg.near_misses else "")
            + ")\n"
            f"- Training: {steps_done(f['steps'], cfg.train.steps)} of {cfg.train.batch_size} comparisons, "
            f"lr {cfg.train.lr}, {f['train_seconds']:.1f} s\n\n"
            "## Held-out comparisons\n\n| measure | before | after |\n|---|---|---|\n"
            f"| pair accuracy | {_f(b['val_accuracy'])} | {_f(a['val_accuracy'])} |\n"
            f"| Bradley-Terry loss | {_f(b['val_loss'])} | {_f(a['val_loss'])} |\n" + slips + "\n"
            f"Pair accuracy on the training comparisons: {_f(f['train_accuracy'])}. Raw scores of the training "
            f"replies: mean {f['score_mean']:.4g}, std {f['score_std']:.4g} (the saved model's scores are "
            "normalised by them).\n\n## Validation\n\n| step | loss | pair accuracy |\n|---|---|---|\n" + curve
            + "\n" + best)
