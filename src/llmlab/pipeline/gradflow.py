"""Experiment (topic 69): gradient norm per layer at initialisation, for sigmoid / tanh / ReLU / GELU stacks
with and without residual connections and LayerNorm (`llmlab.nn.gradflow`).

    out/
      experiment.json  the settings; marks the folder as this experiment's, so a rerun may replace the files below
      results.json     one record per (activation, residual, norm) with every layer's gradient norm
      gradflow.md      first- and last-layer norms and their ratio (< 1 means vanishing towards the input)
      gradflow.png     per-layer gradient norm against depth, one panel per activation, one line per setting
"""

from __future__ import annotations

from pathlib import Path

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_json, atomic_write_text
from llmlab.nn.gradflow import ACTIVATIONS, gradient_flow_table
from llmlab.pipeline.report import (
    check_experiment_folder,
    finish_axes,
    mark_experiment_folder,
    new_figure,
    save_png,
)

ENTRIES = ("results.json", "gradflow.md", "gradflow.png")  # what the experiment writes besides experiment.json


def setting_name(row: dict) -> str:
    """The legend name of a row's residual / norm setting.

    >>> setting_name({"residual": True, "norm": False}), setting_name({"residual": False, "norm": False})
    ('residual', 'plain')
    """
    parts = [p for p, on in (("residual", row["residual"]), ("norm", row["norm"])) if on]
    return " + ".join(parts) or "plain"


def run_gradflow(out_dir: str | Path, activations=tuple(ACTIVATIONS), depth: int = 16, width: int = 64,
                 seed: int = 0) -> list[dict]:
    if not 0 <= seed < 2**32:  # what torch's and numpy's generators take, as pretraining's seed
        raise InputError(f"seed must be in [0, 2**32), got {seed}")
    out = check_experiment_folder(out_dir, "gradflow", ENTRIES)
    activations = tuple(activations)
    if not activations or len(set(activations)) != len(activations):
        raise InputError(f"activations must name at least one activation, each once, got {activations}")
    rows = gradient_flow_table(tuple(activations), depth=depth, width=width, seed=seed)
    mark_experiment_folder(out, "gradflow", ENTRIES, {"activations": activations, "depth": depth, "width": width,
                                                      "seed": seed})
    atomic_write_json(out / "results.json", {"depth": depth, "width": width, "seed": seed, "results": rows})
    atomic_write_text(out / "gradflow.md", markdown_table(rows, depth, width))
    plot_gradflow(rows, out / "gradflow.png")
    return rows


def markdown_table(rows: list[dict], depth: int, width: int) -> str:
    lines = [f"| {r['activation']} | {setting_name(r)} | {r['first']:.3e} | {r['last']:.3e} | "
             f"{r['first_over_last']:.3e} |" for r in rows]
    return (f"# Gradient flow at initialisation\n\nA {depth}-layer, {width}-wide stack of act(W norm(x)) "
            "(optionally x + act(...)), random regression loss; Frobenius norm of each layer's weight gradient. "
            "first/last far below 1: the gradient vanishes before it reaches the input layers.\n\n"
            "| activation | setting | layer 1 grad norm | last layer grad norm | first / last |\n"
            "|---|---|---|---|---|\n" + "\n".join(lines) + "\n\n![gradient norm per layer](gradflow.png)\n")


def plot_gradflow(rows: list[dict], png_path: Path) -> None:
    activations = list(dict.fromkeys(r["activation"] for r in rows))
    n = len(activations)
    cols = min(n, 2)
    fig = new_figure(5 * cols, 3.6 * ((n + cols - 1) // cols), dpi=100)
    for i, act in enumerate(activations):
        ax = fig.add_subplot((n + cols - 1) // cols, cols, i + 1)
        for r in rows:
            if r["activation"] == act:
                ax.plot(range(1, len(r["norms"]) + 1), r["norms"], "o-", ms=3, lw=1.2, label=setting_name(r))
        ax.set_yscale("log")
        finish_axes(ax, "layer (1 = input side)", "weight gradient norm", act, legend_size=7)
    save_png(fig, png_path)
