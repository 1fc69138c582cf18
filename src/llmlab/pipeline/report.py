"""The run report (Markdown) and the loss-curve plot."""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from pathlib import Path

from llmlab.core.io import atomic_path, atomic_write_json, atomic_write_text, check_folder
from llmlab.models.params import human_count


def steps_done(done: int, planned: int, what: str = "steps") -> str:
    """A report's count of steps: "N steps", or for a run its time limit stopped short "N of M steps (...)",
    so a reader does not take a cut run's figures for a finished one's.

    >>> steps_done(40, 40), steps_done(12, 40, "policy steps")
    ('40 steps', '12 of 40 policy steps (stopped by the time limit; run it again to go on)')
    """
    if done >= planned:
        return f"{done} {what}"
    return f"{done} of {planned} {what} (stopped by the time limit; run it again to go on)"


def runs_steps_text(results: list[dict], planned: int) -> str:
    """The steps the models trained, naming those the time limit stopped short (a rerun trains every model
    from scratch, so it does not go on from where they stopped).

    >>> runs_steps_text([{"model": "a", "steps": 9}, {"model": "b", "steps": 9}], 9)
    '9 steps'
    >>> runs_steps_text([{"model": "a", "steps": 9}, {"model": "b", "steps": 4}], 9)
    '9 steps, but the time limit stopped b at step 4 (a rerun trains every model from scratch)'
    """
    cut = [r for r in results if r["steps"] < planned]
    if not cut:
        return f"{planned} steps"
    stopped = ", ".join(f"{r['model']} at step {r['steps']}" for r in cut)
    return f"{planned} steps, but the time limit stopped {stopped} (a rerun trains every model from scratch)"


# Written into an experiment's output folder before its first training: it marks the folder as that
# experiment's, so a rerun may replace what the earlier run wrote and nothing else.
EXPERIMENT_FILE = "experiment.json"


def check_experiment_folder(out: str | os.PathLike, experiment: str, entries: Iterable[str]) -> Path:
    """`out` as a Path, or InputError unless `experiment` may write its `entries` there: the folder is new,
    empty, or holds an earlier output of the same experiment (its experiment.json names it) and nothing
    else: the `entries` and those the earlier run recorded (a scaling run of other sizes left their
    folders). Experiments call it before any work, so a file of the user's is never replaced.

    >>> import tempfile; d = Path(tempfile.mkdtemp()); _ = (d / "results.json").write_text('{"mine": 1}')
    >>> check_experiment_folder(d, "gradflow", ("results.json", "gradflow.md"))
    Traceback (most recent call last):
    ...
    llmlab.core.errors.InputError: output folder '...' holds files that are not its own (results.json): ...
    >>> mark_experiment_folder(d / "new", "gradflow", ("results.json",), {"depth": 4})
    >>> check_experiment_folder(d / "new", "gradflow", ("results.json",)) == d / "new"
    True
    """
    p = Path(out)
    try:
        doc = json.loads((p / EXPERIMENT_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        doc = None
    ours = isinstance(doc, dict) and doc.get("experiment") == experiment
    return check_folder(p, {EXPERIMENT_FILE, *entries, *_recorded(doc)} if ours else (), "output folder")


def _recorded(doc: dict) -> list[str]:
    """The entries an experiment.json says its runs wrote (none in one written before they were recorded)."""
    entries = doc.get("entries")
    return [e for e in entries if isinstance(e, str) and e] if isinstance(entries, list) else []


def mark_experiment_folder(out: str | os.PathLike, experiment: str, entries: Iterable[str], settings: dict) -> None:
    """Check `out` again (`check_experiment_folder`) and mark it as `experiment`'s, with the `settings` it
    runs with; called once every input has been checked, just before the first training."""
    out = check_experiment_folder(out, experiment, entries)
    try:
        earlier = _recorded(json.loads((out / EXPERIMENT_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError):
        earlier = []
    # the entries of this run and the earlier ones still there: a later run takes them all as its own
    wrote = sorted({*entries, *(e for e in earlier if (out / e).exists())})
    atomic_write_json(out / EXPERIMENT_FILE, {"experiment": experiment, **settings, "entries": wrote})


def undefined(v) -> bool:
    """Whether a figure read from a run's files is undefined: null (what llmlab writes for one), or the
    bare NaN an older version wrote.

    >>> undefined(None), undefined(float("nan")), undefined(0.0), undefined("-")
    (True, True, False, False)
    """
    return v is None or (isinstance(v, float) and v != v)


def figure_text(v, spec: str) -> str:
    """A figure in a report's table, formatted by `spec`; "-" where it is undefined (`undefined`).

    >>> figure_text(0.51234, ".3f"), figure_text(None, ".3f"), figure_text(float("nan"), ".3f")
    ('0.512', '-', '-')
    """
    return "-" if undefined(v) else format(v, spec)


def new_figure(width: float, height: float, dpi: int = 110):
    """A matplotlib Figure on the Agg canvas (no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def finish_axes(ax, xlabel: str, ylabel: str, title: str | None = None, legend_size: int = 8) -> None:
    """Labels, optional title, a light grid and the legend: the look every llmlab plot shares."""
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if title:
        ax.set_title(title)
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:  # a run stopped before its first logged step has no line to name
        ax.legend(fontsize=legend_size)


def save_png(fig, png_path: Path) -> None:
    """Lay the figure out and write it atomically as PNG."""
    fig.tight_layout()
    with atomic_path(png_path) as tmp:
        fig.savefig(tmp, format="png")


def plot_curves(curves: list[tuple[str, list[tuple[float, float]]]], png_path: Path, ylabel: str = "loss (nats/token)",
                title: str | None = None, baseline: tuple[str, float] | None = None) -> None:
    """One line per (label, [(step, value), ...]) with an optional labelled horizontal baseline; written
    atomically as PNG. A label starting with "o " draws markers ("o val loss"), and so does a curve of one
    point (a line through one point draws nothing)."""
    fig = new_figure(7.5, 4.5)
    ax = fig.add_subplot()
    for label, points in curves:
        if points:
            style = "o-" if label.startswith("o ") or len(points) == 1 else "-"
            ax.plot(*zip(*points), style, label=label.removeprefix("o "), lw=1.2, ms=4)
    if baseline is not None:
        ax.axhline(baseline[1], color="gray", ls="--", lw=1, label=baseline[0])
    finish_axes(ax, "step", ylabel, title)
    save_png(fig, png_path)


def data_loss(record: dict) -> float | None:
    """A training record's cross-entropy on the data: its loss, or with distillation its "ce" (the loss
    then adds the KL term, so it is no cross-entropy to set beside the validation loss)."""
    return record.get("ce", record.get("loss"))


def plot_losses(metrics_path: Path, png_path: Path, baseline: float | None = None) -> None:
    """Train and validation loss (data cross-entropy, `data_loss`) of a run against step, with the unigram
    entropy as baseline."""
    records = [json.loads(line) for line in Path(metrics_path).read_text(encoding="utf-8").splitlines() if line]
    nan = float("nan")  # an undefined loss (null) is a gap in the line
    train = [(r["step"], nan if data_loss(r) is None else data_loss(r)) for r in records if "loss" in r]
    val = [(r["step"], nan if r["val_loss"] is None else r["val_loss"]) for r in records if "val_loss" in r]
    plot_curves([("train loss", train), ("o val loss", val)], png_path,
                baseline=None if baseline is None else (f"unigram entropy ({baseline:.2f})", baseline))


def write_report(path: Path, cfg, f: dict) -> None:
    m, t = cfg.model, cfg.train
    samples = "\n".join(f"- **{p}** → {s}" for p, s in f["samples"])
    stopped = " (stopped early: time limit or interrupt)" if f["stopped_early"] else ""
    moe = (f" ({'in dense layers; ' if m.moe_every > 1 else 'as '}{m.n_experts} experts of that kind and width in "
           f"every {m.moe_every} layer(s), top-{m.moe_top_k}, {m.moe_router} router)" if m.n_experts else "")
    scaling = f" ({m.rope_scaling} scaling x{m.rope_factor:g})" if m.rope_scaling != "none" else ""
    distil = (f"\n- Distilled from the teacher `{f['teacher']}`: loss (1 - {t.kd_alpha:g}) x data cross-entropy + "
              f"{t.kd_alpha:g} x {t.kd_temperature:g}^2 x KL(teacher || student) at temperature {t.kd_temperature:g}; "
              "the train loss below and in the plot is the cross-entropy term alone, as the val loss is."
              if f.get("teacher") else "")
    text = f"""# llmlab run `{f['name']}`

## What was trained
A causal decoder: {m.n_layer} layers, width {m.dim}, {m.n_head} heads ({m.n_kv_head} key/value heads),
{m.ffn_kind} feed-forward of width {m.hidden}{moe}, {m.position} positions{scaling}, {m.norm_position}-{m.norm},
{'tied' if m.tie_embeddings else 'untied'} output head.
**{f['parameters']:,} parameters** ({human_count(f['parameters'])}; {f['non_embedding_parameters']:,} without the
embedding), context {m.max_seq_len} tokens.

## On what
- Corpus: `{f['corpus']}`: {f['train_lines']:,} train lines ({f['train_tokens']:,} tokens),
  {f['dev_lines']:,} dev lines ({f['dev_tokens']:,} tokens).
- Tokenizer: `{cfg.tokenizer}`, {f['vocab_size']:,} tokens; {f['dev_unknown_chars']:,} dev characters fall outside it.

## For how long
- {f['steps']} steps{stopped} of {t.batch_size * t.grad_accum} x {t.seq_len} tokens: {f['tokens_seen']:,} tokens
  ({f['tokens_seen'] / max(f['train_tokens'], 1):.2f} epochs).
- {t.optimizer} (lr {t.lr:g} → {t.min_lr:g}, warmup {t.warmup_steps}, {t.schedule} schedule;
  betas {t.beta1}, {t.beta2}; weight decay {t.weight_decay}; clip {t.grad_clip}), seed {t.seed},
  device {f['device']}, {f.get('layout', 'single process')}.{distil}
- Training time {f['train_seconds']:.1f} s ({f['tokens_seen'] / max(f['train_seconds'], 1e-9):,.0f} tokens/s);
  whole run {f['wall_seconds']:.1f} s.

## How well
| measure | value |
|---|---|
| final train loss (nats/token) | {f['final_train_loss']:.4f} |
| val loss (nats/token) | {f['val_loss']:.4f} |
| **val perplexity** | **{f['val_ppl']:.2f}** |
| val bits per character | {f['val_bits_per_char']:.3f} |
| unigram entropy of the data (nats/token) | {f['unigram_entropy']:.4f} |
| dev tokens scored | {f['val_tokens_scored']:,} |

![loss curve](loss.png)

## Samples
Temperature 0.8, top-k 50, up to {cfg.sample_tokens} tokens after each prompt:

{samples}

## Files
`model/` (config.json, model.safetensors, tokenizer.json, README.md model card), `metrics.jsonl`,
`checkpoints/`, `config.json`, `loss.png`.
"""
    atomic_write_text(path, text)
