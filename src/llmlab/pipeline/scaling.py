"""Experiment (topic 4): "emergent" abilities across model sizes, and what the metric has to do with it.

Decoders of growing size train on the same arithmetic problems (the built-in ``arithmetic`` corpus)
with the same batches and steps. Each is scored on held-out test problems three ways: exact match
of its greedy answer (every digit right, the all-or-nothing metric benchmarks use), per-token
accuracy of the answer under teacher forcing (each digit judged on its own), and the answer's
negative log-likelihood per token. An ability looks sudden under exact match when the per-token
measures improve steadily: an answer of n digits is right only when all n are, roughly p**n for a
per-digit accuracy p (Schaeffer et al., 2023, "Are emergent abilities of large language models a
mirage?"). The plot puts both on one axis of parameter counts.

Measured (`llmlab --threads 1 scaling --steps 1500`: tiny preset, 2-3 digit additions, 200 distinct
test questions; one run): with 100,000 training problems (the default) exact match by size was 0,
0.005, 0, 0.025, 0.015 and per-token accuracy 0.18, 0.48, 0.33, 0.44, 0.44 (figures measured at an
earlier version, on 2 threads, were 0.14 and 0.58 for the fourth size; the same command at that
version now gives 0.025 and 0.44 there). At this budget the sizes are not trained to their capacity and
neither curve is monotone: the experiment shows how to read the two metrics, not a finished scaling law.

    out/
      experiment.json           the settings; marks the folder as this experiment's
      d{dim}-l{layers}/         each model's run (metrics.jsonl, checkpoints/), replaced whole by a rerun
      results.json, scaling.png, report.md
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import torch

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_folder, atomic_write_json, atomic_write_text, check_folder
from llmlab.core.modes import eval_mode
from llmlab.data.corpora import arithmetic, arithmetic_distinct
from llmlab.generate import GenerationConfig, generate
from llmlab.models import CausalLM
from llmlab.models.scoring import text_start
from llmlab.pipeline.pretrain import RunConfig, prepare_streams
from llmlab.pipeline.report import (
    check_experiment_folder,
    finish_axes,
    mark_experiment_folder,
    new_figure,
    runs_steps_text,
    save_png,
)
from llmlab.train import Trainer

RUN_FILES = ("metrics.jsonl", "checkpoints")
SIZES = ((16, 1), (32, 1), (64, 2), (96, 2), (128, 3))  # (dim, layers): ~10k to ~600k parameters


def size_name(dim: int, layers: int) -> str:
    return f"d{dim}-l{layers}"


@torch.no_grad()
def score_problems(model, tok, problems) -> dict:
    """Exact match of the greedy answer, teacher-forced per-token accuracy and NLL of the answer
    (with the end-of-sequence token after it), over `problems` (question "a+b=", answer "c"). Each
    question starts from `text_start` (EOS), as every line of the training stream did."""
    exact, right, nll, tokens = 0, 0, 0.0, 0
    per_problem = []
    with eval_mode(model):
        for p in problems:
            prompt = text_start(tok) + tok.encode(p.question)
            answer = tok.encode(p.answer) + [tok.eos_id]
            ids = torch.tensor([prompt + answer])
            logits = model(ids)[0, len(prompt) - 1 : -1].float()  # (len(answer), V): predicts each answer token
            target = torch.tensor(answer)
            hits = int((logits.argmax(-1) == target).sum())
            right += hits
            nll += float(torch.nn.functional.cross_entropy(logits, target, reduction="sum"))
            tokens += len(answer)
            got = generate(model, prompt, GenerationConfig(max_new_tokens=len(answer) + 2, temperature=0.0),
                           eos_id=tok.eos_id)
            ok = got == answer[:-1]
            exact += ok
            per_problem.append((ok, hits / len(answer)))
    n = len(problems)
    return {"exact_match": exact / n, "token_accuracy": right / tokens, "answer_nll": nll / tokens,
            "per_problem": per_problem}


def run_scaling(base: RunConfig, out_dir: str | Path, sizes: Sequence[tuple[int, int]] = SIZES,
                steps: int | None = None, n_eval: int = 200, ops: str = "+", max_digits: int = 3,
                n_train: int = 100_000) -> list[dict]:
    """Train a decoder of each (dim, layers) size on `n_train` arithmetic problems (2 to `max_digits`
    digits, operators `ops`) under `out_dir`, and score it on `n_eval` test problems of the same kind."""
    if not sizes or any(d < 4 or n < 1 for d, n in sizes) or n_eval < 1 or n_train < 1:
        raise InputError(f"sizes must be (dim >= 4, layers >= 1) pairs and n_eval, n_train >= 1, got {list(sizes)}, "
                         f"{n_eval} and {n_train}")
    if len(set(sizes)) < len(sizes):  # the same model trained twice into one folder
        raise InputError(f"sizes must differ, got {', '.join(size_name(d, n) for d, n in sizes)}")
    heads = [_heads(d, base.model.n_head) for d, _ in sizes]
    names = [size_name(d, n) for d, n in sizes]
    entries = (*names, "results.json", "scaling.png", "report.md")
    out = check_experiment_folder(out_dir, "scaling", entries)
    for name in names:
        check_folder(out / name, RUN_FILES, "run folder")
    kind = dict(seed=base.train.seed, max_digits=max_digits, ops=ops)
    train_lines = [p.text for p in arithmetic(n_train, "train", **kind)]
    problems = arithmetic_distinct(n_eval, "test", **kind)
    tok, train_ids, _ = prepare_streams(dataclasses.replace(base, vocab_size=0, tokenizer="char"), train_lines,
                                        [p.text for p in problems])
    tcfg = dataclasses.replace(base.train, steps=steps or base.train.steps, eval_every=0, checkpoint_every=0,
                               keep_checkpoints=1, device="cpu")
    # every size's config is built, and so checked, before the first one trains
    cfgs = [dataclasses.replace(base.model, vocab_size=tok.vocab_size, dim=dim, n_layer=layers, n_head=nh,
                                n_kv_head=nh) for (dim, layers), nh in zip(sizes, heads)]
    longest = max(len(text_start(tok) + tok.encode(p.question) + tok.encode(p.answer)) + 1 for p in problems)
    if longest > base.model.max_seq_len:  # scoring reads a whole problem, its end token included, in one pass
        raise InputError(f"the longest test problem is {longest} tokens with its start and end tokens, beyond the "
                         f"models' context of {base.model.max_seq_len}: lower --max-digits")
    mark_experiment_folder(out, "scaling", entries, {"run": base.to_dict(), "sizes": [list(s) for s in sizes],
                                                     "steps": tcfg.steps, "n_eval": n_eval, "n_train": n_train,
                                                     "ops": ops, "max_digits": max_digits})
    results = []
    for cfg, name in zip(cfgs, names):
        torch.manual_seed(tcfg.seed)
        model = CausalLM(cfg)
        with atomic_folder(out / name, RUN_FILES, "run folder") as run_dir:
            trainer = Trainer(model, tcfg, train_ids, None, run_dir)
            trainer.fit()
        scores = score_problems(model, tok, problems)
        results.append({"model": name, "parameters": sum(p.numel() for p in model.parameters()),
                        "steps": trainer.step, **{k: v for k, v in scores.items() if k != "per_problem"}})
    atomic_write_json(out / "results.json", results)
    _plot(results, out / "scaling.png")
    atomic_write_text(out / "report.md", _report(results, tcfg.steps, len(problems),
                                                 f"{ops!r}, 2-{max_digits} digits"))
    return results


def _heads(dim: int, n_head: int) -> int:
    """Heads for a model `dim` wide: as many as the preset's `n_head` or fewer, dividing `dim` into heads at
    least 4 wide and of even size (RoPE rotates pairs; `ModelConfig` refuses an odd head size).

    >>> _heads(16, 4), _heads(20, 4), _heads(18, 4)
    (4, 2, 3)
    """
    fits = [h for h in range(1, n_head + 1) if dim % h == 0 and dim // h >= 4 and dim // h % 2 == 0]
    if not fits:
        raise InputError(f"a model {dim} wide has no even head size of at least 4 (at most {n_head} heads): "
                         "give sizes whose DIM is even and at least 4")
    return max(fits)


def _plot(results: list[dict], png: Path) -> None:
    fig = new_figure(6.5, 4)
    ax = fig.add_subplot()
    x = [r["parameters"] for r in results]
    ax.plot(x, [r["exact_match"] for r in results], "o-", label="exact match (whole answer)")
    ax.plot(x, [r["token_accuracy"] for r in results], "s--", label="per-token accuracy (teacher forced)")
    ax.set_xscale("log")
    ax.set_ylim(-0.02, 1.02)
    finish_axes(ax, "parameters", "accuracy on test problems", "one ability, two metrics")
    save_png(fig, png)


def _report(results: list[dict], steps: int, n_eval: int, kind: str) -> str:
    rows = [f"| {r['model']} | {r['parameters']:,} | {r['exact_match']:.3f} | {r['token_accuracy']:.3f} | "
            f"{r['answer_nll']:.3f} |" for r in results]
    return "\n".join([
        "# Scaling sweep on arithmetic", "",
        f"Problems: {kind}. Each model trained {runs_steps_text(results, steps)} on the same batches; scored on "
        f"{n_eval} test problems.",
        "",
        "| model | parameters | exact match | per-token accuracy | answer NLL (nats/token) |",
        "|---|---|---|---|---|", *rows, "",
        "Exact match credits an answer only when every token is right; the per-token columns judge each",
        "token on its own. Where exact match jumps between two sizes, compare how the per-token columns moved.", "",
        "![scaling](scaling.png)", ""])
