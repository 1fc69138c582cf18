"""Reinforcement-learning run (topics 78, 82, 83): a chat model from `llmlab sft` answers arithmetic
questions, each answer is rewarded 1 when it is exactly right (or, with `reward_model`, by a reward
model's score: RLHF's third stage), and GRPO, DAPO, VAPO or PPO (`llmlab.rl.trainer`) moves the policy
toward the rewarded answers, or online DPO (`llmlab.rl.online_dpo`) trains it on comparisons of each
prompt's best and worst answer. The run directory has the layout
of a fine-tuning run:

    runs/<name>/
      config.json      the RLConfig, with the algorithm's settings filled in
      data.json        SHA-256 of the starting model's files and of the problems (a resume must see the same)
      metrics.jsonl    the "before" record (step 0), one record per step, the "after" record
      checkpoints/     policy (+ critic) and optimizer, atomic; a rerun resumes from the newest
      model/           the trained policy with its chat tokenizer and tokenizer_config.json
      report.md        the settings, exact match on the arithmetic test split before and after, the curves

Running again with the same config resumes (or, if finished, re-measures and re-reports).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from llmlab.adapt.chat import ChatTemplate, load_chat_template
from llmlab.adapt.sft import arithmetic_conversations, check_known
from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_json, atomic_write_text, sha256_file
from llmlab.models import count_parameters, load_model
from llmlab.pipeline.pretrain import log_final_eval, prepare_run_dir
from llmlab.pipeline.report import steps_done, undefined
from llmlab.pipeline.sft import recorded_before, save_chat_model, sft_fingerprint
from llmlab.rl.config import DPO_SETTINGS, RLConfig
from llmlab.rl.rewards import answer_reward
from llmlab.rl.trainer import RLTrainer, Task
from llmlab.train.trainer import read_metrics

log = logging.getLogger(__name__)

CURVE_KEYS = ("reward", "accuracy", "response_length", "entropy", "kl_ref", "kl_penalty", "clip_fraction",
              "kept_groups", "value_loss", "explained_variance", "pair_share", "dpo_loss", "reward_margin",
              "reward_accuracy", "chosen_nll")
REPORTED_PG_SETTINGS = ("clip_low", "clip_high", "kl_coef", "kl_penalty", "aggregation", "dynamic_sampling",
                        "overlong_shaping", "overlong_filter", "lm_coef", "value_pretrain_steps", "lam_critic",
                        "lam_policy", "lam_adaptive")


def chat_model(model_dir: str):
    """(model, tokenizer, template) of a chat model, or InputError telling the user to run llmlab sft."""
    if not model_dir:
        raise InputError("rl, rm train and dpo need a chat model directory (--model DIR, from llmlab sft)")
    model, tok = load_model(model_dir, device="cpu")
    if tok is None:
        raise InputError(f"model directory {model_dir!r} has no tokenizer.json")
    try:
        template = load_chat_template(model_dir)
        template.ids(tok)
    except InputError as e:
        # rm train and dpo read their model here too, so the message names all three
        raise InputError(f"{e}. rl, rm train and dpo start from a chat model: run llmlab sft --model {model_dir} "
                         "first and pass its runs/NAME/model") from None
    return model, tok, template


def arithmetic_task(cfg: RLConfig, tok, template: ChatTemplate) -> tuple[Task, list]:
    """The training task: chat prompts of arithmetic train problems, reward 1 for the exact answer."""
    from llmlab.data.corpora import arithmetic

    problems = arithmetic(cfg.arithmetic_train, "train", max_digits=cfg.arithmetic_max_digits, ops=cfg.arithmetic_ops)
    check_known(tok, arithmetic_conversations(problems))
    prompts = [template.prompt_ids(tok, [{"role": "user", "content": p.question}]) for p in problems]
    score = reward_model_scorer(cfg, tok, template) if cfg.reward_model else None
    return Task(prompts, lambda i, ids: answer_reward(tok.decode(ids), problems[i].answer), score), problems


def reward_model_scorer(cfg: RLConfig, tok, template: ChatTemplate):
    """The reward model's normalised scores (`RewardScorer`), or with several folders their
    `EnsembleScorer`; InputError unless each reads the policy's tokens and chat template (it was trained
    from this model or one with its tokenizer)."""
    from llmlab.rl.reward_model import EnsembleScorer

    scorers = reward_scorers(cfg.reward_models, tok, template, cfg.model, cfg.train.device)
    return scorers[0] if len(scorers) == 1 else EnsembleScorer(scorers, cfg.reward_ensemble, cfg.uwo_lambda)


def reward_scorers(folders: list[str], tok, template: ChatTemplate, policy: str, device: str = "cpu") -> list:
    """A `RewardScorer` of each reward model folder; InputError unless each reads the tokens and chat
    template of the chat model `policy` (`tok`, `template`)."""
    from llmlab.rl.reward_model import RewardScorer, load_reward_model

    scorers = []
    for folder in folders:
        rm, rm_tok, norm = load_reward_model(folder, device)
        if rm_tok.to_hf_json() != tok.to_hf_json() or load_chat_template(folder).to_dict() != template.to_dict():
            raise InputError(f"the reward model {folder!r} reads another tokenizer or chat template than the policy "
                             f"{policy!r}: train it from this chat model (llmlab rm train --model {policy})")
        scorers.append(RewardScorer(rm, rm_tok.pad_id, norm["mean"], norm["std"]))
    return scorers


def measure(model, tok, template: ChatTemplate, cfg: RLConfig) -> dict:
    """Greedy exact match on `eval_problems` distinct arithmetic test questions, in the chat format."""
    from llmlab.adapt.sft import arithmetic_exact_match
    from llmlab.data.corpora import arithmetic_distinct

    if not cfg.eval_problems:
        return {}
    problems = arithmetic_distinct(cfg.eval_problems, max_digits=cfg.arithmetic_max_digits, ops=cfg.arithmetic_ops)
    r = arithmetic_exact_match(model, tok, template, problems, cfg.max_new_tokens)
    return {"test_accuracy": r["accuracy"], "samples": r["samples"], "problems": len(problems), "distinct": True}


def run_rl(cfg: RLConfig, out_root: str | Path = "runs", fresh: bool = False) -> dict:
    """Train (or resume) `cfg.model` by `cfg.algo` on arithmetic; return the figures the report shows."""
    t_start = time.perf_counter()
    model, tok, template = chat_model(cfg.model)
    task, problems = arithmetic_task(cfg, tok, template)
    out = Path(out_root) / cfg.name
    trainer = trainer_class(cfg)(model, cfg, task, template.ids(tok)[template.end], tok.pad_id, out)
    data = sft_fingerprint(cfg.model, [[p.question, p.answer] for p in problems], [])
    digests = [sha256_file(Path(folder) / "model.safetensors") for folder in cfg.reward_models]
    if digests:  # one reward model: its digest, as runs saved before ensembles recorded it
        data["reward_model_sha256"] = digests[0] if len(digests) == 1 else digests
    prepare_run_dir(out, cfg, fresh, data)
    metrics = out / "metrics.jsonl"
    before = recorded_before(metrics)
    if before is None:
        before = {"step": 0, "before": True, **measure(trainer.policy, tok, template, cfg)}
        trainer.metrics.write(before)
    trainer.started = t_start  # the session's clock includes loading the model and the data
    trainer.maybe_resume()
    trainer.fit()
    after = {"step": trainer.iteration, "after": True, "final": True, **measure(trainer.policy, tok, template, cfg)}
    log_final_eval(metrics, after)
    steps = [r for r in read_metrics(metrics) if r.get("phase") == "policy"]
    figures = {"name": cfg.name, "start_model": cfg.model, "algo": cfg.algo, "steps": trainer.step,
               "value_pretrain_steps": trainer.value_step, "train_seconds": trainer.train_seconds,
               "parameters": count_parameters(model.config), "problems": len(problems),
               "before": {k: v for k, v in before.items() if k not in ("step", "before")},
               "after": {k: v for k, v in after.items() if k not in ("step", "after", "final")},
               "curves": curve_figures(steps), "logged_policy_steps": len(steps)}
    save_chat_model(trainer.policy, out / "model", tok, template, cfg.name,
                    f"{cfg.model} trained by {cfg.algo} on {len(problems)} arithmetic problems "
                    f"(reward: {reward_source(cfg)})", figures)
    figures["wall_seconds"] = trainer.total_wall_seconds()  # every session's, as train_seconds is
    atomic_write_text(out / "report.md", rl_report(cfg, figures))
    atomic_write_json(out / "summary.json", figures)
    return figures


def trainer_class(cfg: RLConfig) -> type[RLTrainer]:
    """The loop of `cfg.algo`: online DPO's comparisons and loss, or the policy-gradient one."""
    from llmlab.rl.online_dpo import OnlineDPOTrainer

    return OnlineDPOTrainer if cfg.algo == "online-dpo" else RLTrainer


def reward_source(cfg: RLConfig) -> str:
    if len(cfg.reward_models) > 1:
        names = ", ".join(f"`{m}`" for m in cfg.reward_models)
        how = (f"mean less {cfg.uwo_lambda:g} x the variance" if cfg.reward_ensemble == "uwo" else
               cfg.reward_ensemble)
        return f"the {how} of the normalised scores of the reward models {names} (accuracy still counts exact answers)"
    if cfg.reward_model:
        return (f"the normalised score of the reward model `{cfg.reward_model}` (accuracy still counts exact "
                "answers)")
    return "1 for the exact answer, else 0"


def curve_figures(steps: list[dict], points: int = 6) -> dict:
    """Each curve's mean over the first and last tenth of the policy steps, and at a few steps between
    (each a mean over its tenth), for the report."""
    if not steps:
        return {}
    k = max(1, len(steps) // 10)
    marks = sorted({min(len(steps) - k, round(i * (len(steps) - k) / (points - 1))) for i in range(points)})
    out = {}
    for key in CURVE_KEYS:
        if any(key in r for r in steps):
            out[key] = {steps[m + k - 1]["step"]: _mean([r.get(key) for r in steps[m:m + k]]) for m in marks}
    return out


def logged_steps(f: dict, cfg: RLConfig) -> str:
    """What the curves average over: the policy steps, or with --log-every N > 1 the ones logged (every Nth
    and the last), which a tenth of the run's steps would misdescribe."""
    n = f.get("logged_policy_steps", f["steps"])
    every = cfg.train.log_every
    return "policy steps" if n >= f["steps"] else f"{n} logged policy steps (one in {every}, and the last)"


def _mean(xs) -> float:
    xs = [x for x in xs if isinstance(x, (int, float)) and x == x]
    return sum(xs) / len(xs) if xs else float("nan")


def _fmt(v) -> str:
    """A figure of the report; "-" where it is undefined (null in the run's files, or NaN: a mean of nothing)."""
    return "-" if undefined(v) else f"{v:.3g}" if isinstance(v, float) else str(v)


def rl_report(cfg: RLConfig, f: dict) -> str:
    """The run's report in Markdown: settings, before/after accuracy, the curves, samples."""
    b, a = f["before"], f["after"]
    own = DPO_SETTINGS if cfg.algo == "online-dpo" else REPORTED_PG_SETTINGS
    settings = {k: getattr(cfg, k) for k in own + ("prompts_per_step", "group_size", "temperature", "max_new_tokens",
                                                   "rollout_batch", "ppo_epochs", "minibatches")}
    curves, logged = f["curves"], logged_steps(f, cfg)
    marks = list(next(iter(curves.values()))) if curves else []
    head = "| curve | " + " | ".join(f"step {m}" for m in marks) + " |\n|---|" + "---|" * len(marks) + "\n"
    rows = "".join(f"| {key} | " + " | ".join(_fmt(v[m]) for m in marks) + " |\n" for key, v in curves.items())
    samples = "\n".join(f"| {q} | {g} | {bo!r} | {ao!r} |" for (q, g, bo), (_, _, ao)
                        in zip(b.get("samples", []), a.get("samples", [])))
    return (f"# RL run `{cfg.name}` ({cfg.algo})\n\n"
            f"- Start: `{f['start_model']}` ({f['parameters']:,} parameters)\n"
            f"- Task: {f['problems']} arithmetic train problems ({cfg.arithmetic_ops}, up to "
            f"{cfg.arithmetic_max_digits} digits); reward: {reward_source(cfg)}\n"
            f"- Training: {f['value_pretrain_steps']} value-pretraining steps, "
            f"{steps_done(f['steps'], cfg.train.steps, 'policy steps')}, lr "
            f"{cfg.train.lr}, {f['train_seconds']:.1f} s\n"
            f"- Settings: `{json.dumps(settings)}`\n\n"
            "## Before and after\n\n| measure | before | after |\n|---|---|---|\n"
            f"| exact match, arithmetic test (greedy) | {_fmt(b.get('test_accuracy', '-'))} | "
            f"{_fmt(a.get('test_accuracy', '-'))} |\n\n"
            f"Greedy chat answers to {a.get('problems', 0)} distinct test questions, exact match.\n\n"
            f"## Curves\n\nMeans over a tenth of the {logged}, ending at the step shown. Reward (with any "
            "overlong penalty), accuracy (the share of sampled completions that are right), length and truncation "
            "describe each step's first batch of prompts, all of it; kept_groups counts the groups trained on "
            "(dynamic sampling keeps only groups whose rewards differ). Online DPO: pair_share is the share of "
            "prompts whose answers' rewards differ (each gives one comparison, best against worst), and the "
            "implicit rewards (margin, accuracy), loss and chosen answers' NLL are its comparisons' before the "
            "step.\n\n"
            + head + rows + "\n## Samples\n\n| question | gold | before | after |\n|---|---|---|---|\n"
            + samples + "\n")
