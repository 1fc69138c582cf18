"""Experiment (topic 80): length extrapolation of position schemes.

One small causal model per position scheme (learned, sinusoidal, RoPE, ALiBi) is trained at a short
context (128 tokens), then scored on the dev split with windows of 128, 256, 512 and 1024 tokens. The
RoPE model is also scored with each RoPE scaling applied at evaluation time only (no retraining): linear
position interpolation (PI), NTK-aware, dynamic NTK and YaRN, each stretched from the trained length to
the evaluation length (`llmlab.nn.rope_scaling.extrapolation_scaling`), so at the trained length every
scaling is the identity and equals plain RoPE.

Learned absolute positions have no vector for positions past the trained table; their longer lengths
are reported as n/a (None in JSON) rather than invented.

Every length scores the same dev tokens (the first `eval_tokens`) cut into consecutive windows of that
length, each token once (`llmlab.train.evaluate_loss`); a longer window gives later tokens more context,
so a scheme that extrapolates well gets *lower* perplexity at longer lengths.

    out/
      experiment.json       the settings; marks the folder as this experiment's, so a rerun may replace it
      <position>/           each scheme's run (metrics.jsonl, checkpoints/), replaced whole by a rerun
      <position>/model/     each trained model (config.json, model.safetensors, tokenizer.json)
      results.json          one record per variant: {"variant", "ppl": {length: ppl or None}}
      extrapolation.md      the table
      extrapolation.png     perplexity against evaluation length
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_folder, atomic_write_json, atomic_write_text, check_folder
from llmlab.data import lm_splits
from llmlab.models import CausalLM, ModelConfig, save_model
from llmlab.nn.rope_scaling import extrapolation_scaling
from llmlab.pipeline.pretrain import RunConfig, prepare_streams
from llmlab.pipeline.report import (
    check_experiment_folder,
    finish_axes,
    mark_experiment_folder,
    new_figure,
    save_png,
)
from llmlab.train import TrainConfig, Trainer, evaluate_loss
from llmlab.train.trainer import perplexity

POSITIONS = ("learned", "sinusoidal", "rope", "alibi")
ROPE_SCALINGS = ("linear", "ntk", "dynamic", "yarn")
SCALING_NAMES = {"linear": "rope+pi", "ntk": "rope+ntk", "dynamic": "rope+dynamic-ntk", "yarn": "rope+yarn"}
ENTRIES = (*POSITIONS, "results.json", "extrapolation.md", "extrapolation.png")  # besides experiment.json
RUN_FILES = ("metrics.jsonl", "checkpoints", "model")  # what each scheme's run folder holds


def default_run() -> RunConfig:
    """A small char-level decoder trained at context 128 on pfr1998: a few minutes on a laptop CPU."""
    return RunConfig(
        name="extrapolation", corpus="pfr1998", tokenizer="char", vocab_size=1500,
        model=ModelConfig(dim=64, n_layer=2, n_head=4, n_kv_head=4, max_seq_len=128),
        train=TrainConfig(steps=300, batch_size=16, seq_len=128, lr=3e-3, min_lr=3e-4, warmup_steps=20,
                          eval_every=0, checkpoint_every=0, keep_checkpoints=1, log_every=50),
    )


@dataclass(frozen=True)
class ExtrapolationConfig:
    run: RunConfig = field(default_factory=default_run)  # corpus, tokenizer, model and training (at train length)
    lengths: tuple[int, ...] = (128, 256, 512, 1024)  # evaluation window lengths; the first is usually the trained one
    eval_tokens: int = 16384  # dev tokens scored at every length (0 = the whole dev split)
    positions: tuple[str, ...] = POSITIONS  # position schemes trained, one model each
    rope_scalings: tuple[str, ...] = ROPE_SCALINGS  # eval-time scalings of the RoPE model

    def __post_init__(self):
        trained = self.run.train.seq_len
        if self.run.model.max_seq_len != trained:
            raise InputError(f"model max_seq_len ({self.run.model.max_seq_len}) must equal the training "
                             f"seq_len ({trained}): the trained context is what extrapolation starts from")
        if not self.lengths or min(self.lengths) < trained:
            raise InputError(f"evaluation lengths must be >= the trained length {trained}, got {self.lengths}")
        if self.eval_tokens < 0:
            raise InputError(f"eval_tokens must be >= 0, got {self.eval_tokens}")
        for p in self.positions:
            if p not in POSITIONS:
                raise InputError(f"position must be one of {POSITIONS}, got {p!r}")
        for k in self.rope_scalings:
            if k not in ROPE_SCALINGS:
                raise InputError(f"rope scaling must be one of {ROPE_SCALINGS}, got {k!r}")
        if self.rope_scalings and "rope" not in self.positions:
            raise InputError("rope scalings need the 'rope' position scheme in positions")
        for name in ("lengths", "positions", "rope_scalings"):
            if len(set(getattr(self, name))) != len(getattr(self, name)):
                raise InputError(f"{name} repeats an entry: {getattr(self, name)}")
        if not self.positions:
            raise InputError("positions is empty: name at least one scheme to train")
        # every model and eval-time variant is built here, so a bad size fails before any training
        for p in self.positions:
            dataclasses.replace(self.run.model, position=p)
        for k in self.rope_scalings:
            eval_config(dataclasses.replace(self.run.model, position="rope"), max(self.lengths), k)


def eval_config(trained: ModelConfig, length: int, scaling: str = "none") -> ModelConfig | None:
    """The config to score a model trained with `trained` on windows of `length`; None if impossible.

    >>> c = eval_config(ModelConfig(max_seq_len=128), 512, "yarn")
    >>> c.max_seq_len, c.rope_scaling, c.rope_factor, c.rope_original_max_seq_len
    (512, 'yarn', 4.0, 128)
    >>> eval_config(ModelConfig(position="learned", max_seq_len=128), 256) is None
    True
    """
    L = trained.max_seq_len
    if trained.position == "learned" and length > L:
        return None  # no trained vector for those positions
    s = extrapolation_scaling(scaling, L, length)
    return dataclasses.replace(trained, max_seq_len=length, rope_scaling=s.kind, rope_factor=s.factor,
                               rope_original_max_seq_len=s.original_max_positions if s.kind != "none" else 0)


def perplexity_at(model: CausalLM, tokens: torch.Tensor, length: int, scaling: str = "none") -> float | None:
    """Dev perplexity of `model`'s weights on windows of `length` tokens, under an eval-time RoPE scaling."""
    cfg = eval_config(model.config, length, scaling)
    if cfg is None:
        return None
    device = next(model.parameters()).device
    stretched = CausalLM(cfg).to(device)
    stretched.load_state_dict(model.state_dict())  # position tables are buffers, rebuilt for `length`
    loss, _ = evaluate_loss(stretched, tokens, length, batch_size=1)
    return perplexity(loss)


def train_model(run: RunConfig, position: str, vocab_size: int, train_ids: torch.Tensor, out: Path) -> CausalLM:
    """A model with `position` trained from scratch, its run written into the new folder `out`."""
    mcfg = dataclasses.replace(run.model, position=position, vocab_size=vocab_size)
    torch.manual_seed(run.train.seed)  # same initial weights (where shapes agree) for every scheme
    model = CausalLM(mcfg)
    Trainer(model, run.train, train_ids, None, out).fit()
    return model


def run_extrapolation(cfg: ExtrapolationConfig, out_dir: str | Path) -> list[dict]:
    """Train one model per position scheme, score every variant at every length; write table and plot.

    `out_dir` must be new, empty or an earlier output of this experiment (`check_experiment_folder`), each
    scheme's folder holding only its run: checked before anything trains. Every scheme trains from scratch
    into a new folder that replaces its earlier run whole (`atomic_folder`).
    """
    out = check_experiment_folder(out_dir, "extrapolation", ENTRIES)
    for position in cfg.positions:
        check_folder(out / position, RUN_FILES, "run folder")
    run = cfg.run
    train_lines, dev_lines = lm_splits(run.corpus)
    tok, train_ids, dev_ids = prepare_streams(run, train_lines, dev_lines)
    eval_ids = dev_ids[: cfg.eval_tokens] if cfg.eval_tokens else dev_ids
    if eval_ids.numel() < max(cfg.lengths) + 1:
        raise InputError(f"{eval_ids.numel()} dev tokens cannot fill one window of {max(cfg.lengths)}; "
                         "raise eval_tokens or lower the lengths")
    mark_experiment_folder(out, "extrapolation", ENTRIES, {
        "run": run.to_dict(), "lengths": list(cfg.lengths), "eval_tokens": cfg.eval_tokens,
        "positions": list(cfg.positions), "rope_scalings": list(cfg.rope_scalings)})
    results = []
    for position in cfg.positions:
        with atomic_folder(out / position, RUN_FILES, "run folder") as run_dir:
            model = train_model(run, position, tok.vocab_size, train_ids, run_dir)
            save_model(model, run_dir / "model", tok)
        variants = [(position, "none")]
        if position == "rope":
            variants += [(SCALING_NAMES[k], k) for k in cfg.rope_scalings]
        for name, scaling in variants:
            ppl = {L: perplexity_at(model, eval_ids, L, scaling) for L in cfg.lengths}
            results.append({"variant": name, "position": position, "scaling": scaling, "ppl": ppl})
    meta = {"trained_length": run.train.seq_len, "steps": run.train.steps, "eval_tokens": eval_ids.numel(),
            "corpus": run.corpus, "vocab_size": tok.vocab_size}
    atomic_write_json(out / "results.json", {"meta": meta, "results": results})
    atomic_write_text(out / "extrapolation.md", markdown_table(results, cfg.lengths, meta))
    plot_extrapolation(results, cfg.lengths, run.train.seq_len, out / "extrapolation.png")
    return results


def markdown_table(results: list[dict], lengths, meta: dict) -> str:
    """The results as a Markdown table, one row per variant, one column per length; n/a where undefined."""
    head = "| variant | " + " | ".join(f"ppl @ {L}" for L in lengths) + " |"
    rule = "|---|" + "---|" * len(lengths)
    rows = [f"| {r['variant']} | " + " | ".join("n/a" if r["ppl"][L] is None else f"{r['ppl'][L]:.2f}"
                                                 for L in lengths) + " |" for r in results]
    return (f"# Length extrapolation\n\nTrained at {meta['trained_length']} tokens for {meta['steps']} steps on "
            f"`{meta['corpus']}` (char tokenizer, {meta['vocab_size']} tokens); dev perplexity over the same "
            f"{meta['eval_tokens']:,} tokens cut into windows of each length. RoPE scalings are applied at "
            "evaluation only, stretched from the trained length to the window length. Learned positions have "
            "no vectors past the trained length (n/a).\n\n" + "\n".join([head, rule, *rows])
            + "\n\n![perplexity against length](extrapolation.png)\n")


def plot_extrapolation(results: list[dict], lengths, trained: int, png_path: Path) -> None:
    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot()
    for r in results:
        pts = [(L, r["ppl"][L]) for L in lengths if r["ppl"][L] is not None]
        ax.plot(*zip(*pts), "o-" if r["scaling"] == "none" else "s--", label=r["variant"], lw=1.2, ms=4)
    ax.axvline(trained, color="gray", ls=":", lw=1, label=f"trained length ({trained})")
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(lengths), [str(L) for L in lengths])
    finish_axes(ax, "evaluation window (tokens)", "dev perplexity", "Length extrapolation")
    save_png(fig, png_path)


def load_results(out_dir: str | Path) -> dict:
    """results.json with its length keys back as ints."""
    data = json.loads((Path(out_dir) / "results.json").read_text(encoding="utf-8"))
    for r in data["results"]:
        r["ppl"] = {int(k): v for k, v in r["ppl"].items()}
    return data
