"""llmlab rm: train a reward model on comparisons (RLHF's second stage) and score replies with it."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, add_group, add_run_flags, run_config
from llmlab.core.io import json_text

# TrainConfig fields the reward model's loop does not use
UNUSED_TRAIN_FLAGS = ("seq_len", "precision", "compile", "grad_checkpoint")


def register(sub) -> None:
    from llmlab.rl.config import UWO_LAMBDA
    from llmlab.rl.reward_config import RM_TRAIN, RewardConfig
    from llmlab.train.config import PRETRAIN_ONLY, TrainConfig

    g = add_group(sub, "rm", "reward models: train one on comparisons of replies, score replies with it")
    p = add_command(g, "train", "train a reward model from a chat model (llmlab sft) on comparisons: a JSONL file "
                    "of {prompt, chosen, rejected}, or the chat model's own arithmetic answers, each wrong one against "
                    "the right one; prints held-out pair accuracy and best-of-n (resumes if the run exists)", _train)
    p.add_argument("--model", required=True, help="chat model directory (llmlab sft writes runs/NAME/model)")
    add_run_flags(p, "rm")
    add_dataclass_flags(p.add_argument_group("reward model"), RewardConfig, skip=("name", "model"))
    add_dataclass_flags(p.add_argument_group("training"), TrainConfig, skip=UNUSED_TRAIN_FLAGS + PRETRAIN_ONLY,
                        shown=RM_TRAIN)

    p = add_command(g, "score", "score replies with a reward model: JSONL lines {prompt, reply} (or {prompt, chosen, "
                    "rejected}) on stdin or in FILE; writes each line back with its normalised score(s)", _score)
    p.add_argument("--model", required=True, help="reward model directory (llmlab rm train writes runs/NAME/model)")
    p.add_argument("file", nargs="?", help="JSONL input (default: stdin)")

    p = add_command(g, "best-of", "best-of-n on distinct arithmetic test questions: a chat model answers each n "
                    "times and reward models pick one, each alone and as an ensemble, from the same samples; "
                    "prints exact match of one sample, of each pick and of an oracle's", _best_of)
    p.add_argument("--model", required=True, help="chat model directory the reward models were trained from")
    p.add_argument("--reward-model", required=True, metavar="DIR[,DIR...]",
                   help="reward model folder(s) (llmlab rm train), comma-separated")
    # None when not given: beside one reward model, which no ensemble combines, it is refused, not ignored
    p.add_argument("--reward-ensemble", help="how several combine: mean, min, or uwo (default: mean)")
    p.add_argument("--uwo-lambda", type=float, default=None, help="uwo: the members' mean less this x their "
                   f"variance (default: uwo {UWO_LAMBDA})")
    p.add_argument("-n", "--best-of", type=int, default=8, metavar="N", help="answers per question")
    p.add_argument("--problems", type=int, default=200, metavar="N",
                   help="distinct test questions (all of the split's, when it holds fewer)")
    p.add_argument("--max-digits", type=int, default=2, help="operands have 2..this many digits")
    p.add_argument("--ops", default="+", help="operators, a subset of +-*")
    p.add_argument("--max-new-tokens", type=int, default=8, metavar="N", help="most tokens per answer")
    p.add_argument("--seed", type=int, default=1337, help="seeds the samples (rm train's report: its --seed)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of text")


def _train(args: argparse.Namespace) -> int:
    from llmlab.pipeline.reward import run_reward
    from llmlab.rl.reward_config import RM_TRAIN, RewardConfig

    cfg = run_config(args, RewardConfig, RM_TRAIN, name=args.name, model=args.model)
    f = run_reward(cfg, args.out, fresh=args.fresh)
    b, a = f["before"], f["after"]
    print(f"held-out pair accuracy  before {b['val_accuracy']:.4f}  after {a['val_accuracy']:.4f}  "
          f"({f['dev_pairs']} comparisons)")
    bon = f["best_of_n"]
    if bon:
        print(f"best of {bon['n']} on {bon['problems']} distinct test questions: one sample "
              f"{bon['one_sample']:.3f}, reward model's pick {bon['reward_model_pick']:.3f}, "
              f"oracle {bon['oracle_pick']:.3f}")
    print(f"{f['steps']} steps, {f['train_seconds']:.0f} s  report: {args.out}/{cfg.name}/report.md")
    return 0


def _best_of(args: argparse.Namespace) -> int:
    from llmlab.cli.common import arithmetic_questions
    from llmlab.core.errors import InputError
    from llmlab.pipeline.reward import best_of_n_picks
    from llmlab.pipeline.rl import chat_model, reward_scorers
    from llmlab.rl.config import check_reward_models
    from llmlab.rl.reward_model import EnsembleScorer

    if args.best_of < 1:
        raise InputError(f"--best-of must be >= 1, got {args.best_of}")
    ensemble_kind = args.reward_ensemble or "mean"
    lam = check_reward_models(args.reward_model, ensemble_kind, args.uwo_lambda)
    if args.reward_ensemble is not None and "," not in args.reward_model:
        raise InputError("--reward-ensemble combines several --reward-model folders; one needs none")
    problems = arithmetic_questions(args, "test")
    policy, tok, template = chat_model(args.model)
    folders = args.reward_model.split(",")
    members = reward_scorers(folders, tok, template, args.model)
    scorers = dict(zip(folders, members, strict=True))
    ensemble = f"{ensemble_kind} of {len(folders)}" + (f" (lambda {lam:g})" if lam is not None else "")
    if len(members) > 1:
        scorers[ensemble] = EnsembleScorer(members, ensemble_kind, lam)
    r = best_of_n_picks(policy, scorers, tok, template, problems, args.best_of, args.max_new_tokens, args.seed)
    if args.json:
        print(json_text(r))
        return 0
    k = r["problems"]
    print(f"best of {args.best_of} on {k} distinct test questions (exact match, standard error):")
    rows = [("one sample", r["one_sample"]), *r["picks"].items(), ("oracle (any right answer)", r["oracle_pick"])]
    width = max(len(name) for name, _ in rows)
    for name, v in rows:
        print(f"  {name:<{width}}  {v:.3f}  {(v * (1 - v) / k) ** 0.5:.3f}")
    return 0


def _score(args: argparse.Namespace) -> int:
    from llmlab.adapt.chat import load_chat_template
    from llmlab.core.errors import InputError
    from llmlab.core.io import json_record, line_batches
    from llmlab.rl.preferences import Preference
    from llmlab.rl.reward_model import RewardScorer, load_reward_model

    rm, tok, norm = load_reward_model(args.model)
    template = load_chat_template(args.model)
    end = template.ids(tok)[template.end]
    scorer = RewardScorer(rm, tok.pad_id, norm["mean"], norm["std"])
    # one line a batch: each score is printed as its line comes (stdin may be a person typing)
    for i, (line,) in enumerate(line_batches(args.file, "replies file", size=1), 1):
        if not line.strip():
            continue
        r = json_record(line, f"line {i}")
        keys = ("reply",) if isinstance(r, dict) and "reply" in r else ("chosen", "rejected")
        if not isinstance(r, dict) or "prompt" not in r or not all(isinstance(r.get(k), str) for k in keys):
            raise InputError(f"line {i}: expected {{prompt, reply}} or {{prompt, chosen, rejected}} with string "
                             "replies")
        p = Preference.of(r["prompt"], "", "")
        try:
            prompt = template.prompt_ids(tok, p.conversation)
        except InputError as e:
            raise InputError(f"line {i}: {e}") from None
        scores = scorer([prompt] * len(keys), [tok.encode(r[k]) + [end] for k in keys]).tolist()
        r.update({"score": scores[0]} if keys == ("reply",) else
                 {"chosen_score": scores[0], "rejected_score": scores[1]})
        print(json_text(r, ensure_ascii=False), flush=True)
    return 0
