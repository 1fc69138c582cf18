"""llmlab attention: heatmaps of a trained causal model's attention weights on a text (topic 17)."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command


def register(sub) -> None:
    p = add_command(sub, "attention", "plot a model's attention weights on a text, one panel per head", run)
    p.add_argument("--model", required=True, help="model directory (config.json, model.safetensors, tokenizer.json)")
    p.add_argument("--text", required=True, help="text to run through the model")
    p.add_argument("--layer", type=int, default=-1, help="layer to plot (negative counts from the last)")
    p.add_argument("-o", "--out", default="attention.png", help="PNG to write")


def plot_heads(weights, labels: list[str], title: str, png_path) -> None:
    """One heatmap per head of weights (nh, T, S): row = query, column = key."""
    import math
    import warnings

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from llmlab.core.io import atomic_path

    nh = weights.shape[0]
    cols = min(nh, 4)
    rows = math.ceil(nh / cols)
    fig = Figure(figsize=(3.2 * cols, 3.2 * rows + 0.4), dpi=100)
    FigureCanvasAgg(fig)
    font = _cjk_font() if any(ord(c) > 0x2E7F for lb in labels for c in lb) else None
    for h in range(nh):
        ax = fig.add_subplot(rows, cols, h + 1)
        ax.imshow(weights[h].numpy(), cmap="viridis", vmin=0.0, vmax=1.0)
        ax.set_title(f"head {h}", fontsize=9)
        if len(labels) <= 40:
            ax.set_xticks(range(len(labels)), labels, fontsize=6, rotation=90, fontfamily=font)
            ax.set_yticks(range(len(labels)), labels, fontsize=6, fontfamily=font)
    fig.suptitle(title, fontsize=10)
    with warnings.catch_warnings(), atomic_path(png_path) as tmp:
        warnings.simplefilter("ignore")  # without a CJK font, CJK tick labels draw as boxes
        fig.tight_layout()
        fig.savefig(tmp, format="png")


def _cjk_font() -> str | None:
    """An installed font family that has CJK glyphs, if any (matplotlib's default has none)."""
    from matplotlib import font_manager

    for f in font_manager.fontManager.ttflist:
        if any(k in f.name for k in ("CJK", "WenQuanYi", "SimHei", "Heiti", "PingFang", "Droid Sans Fallback")):
            return f.name
    return None


def run(args: argparse.Namespace) -> int:
    import torch

    from llmlab.cli.common import load_any_model
    from llmlab.core.errors import InputError
    from llmlab.models.scoring import text_start

    model, tok = load_any_model(args.model)
    if tok is None:
        raise InputError(f"model directory {args.model!r} has no tokenizer.json to encode the text with")
    ids = text_start(tok) + tok.encode(args.text)
    if len(ids) > model.config.max_seq_len:
        raise InputError(f"text is {len(ids)} tokens with the start token; the model's context is "
                         f"{model.config.max_seq_len}")
    n = model.config.n_layer
    if not -n <= args.layer < n:
        raise InputError(f"--layer must be in [{-n}, {n - 1}] for a {n}-layer model, got {args.layer}")
    with torch.no_grad():
        _, weights = model(torch.tensor([ids]), return_attention=True)
    layer = args.layer % n
    labels = ["<|eos|>"] + [tok.decode([i]) for i in ids[1:]]  # the start token (text_start)
    plot_heads(weights[layer][0], labels, f"layer {layer}: attention weights (row = query)", args.out)
    print(f"{len(ids)} tokens, layer {layer}, {model.config.n_head} heads: {args.out}")
    return 0
