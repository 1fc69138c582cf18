"""llmlab memory / llmlab params: size a model before you train it."""

from __future__ import annotations

import argparse

from llmlab.cli.common import add_command, add_dataclass_flags, dataclass_overrides, finite_float, refuse_unapplied

DEFAULT_MODEL = "llama-7b"
ACTIVATION_FLAGS = {"batch_size": "--batch-size", "seq_len": "--seq-len", "grad_checkpoint": "--[no-]grad-checkpoint"}


def _model_source(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", nargs="?", default=None,
                   help="a model preset (llama-7b, llama-13b, llama2-70b, speedrun-small), a model directory, "
                        f"or an llmlab config.json (default: {DEFAULT_MODEL})")


def register(sub) -> None:
    from llmlab.train.memory import MemoryConfig

    p = add_command(sub, "memory", "estimate training memory per device, row by row, with formulas", run_memory)
    _model_source(p)
    p.add_argument("--params", type=finite_float, default=None,
                   help="size by a bare parameter count instead (weights/gradients/optimizer rows only)")
    add_dataclass_flags(p, MemoryConfig)
    p = add_command(sub, "params", "exact parameter count of a model config, by part", run_params)
    _model_source(p)


def _load_config(spec: str):
    from pathlib import Path

    from llmlab.core.errors import InputError
    from llmlab.models.io import load_config_file
    from llmlab.models.presets import MODEL_PRESETS, model_preset

    if spec in MODEL_PRESETS:
        return model_preset(spec)
    path = Path(spec)
    if path.is_dir():
        return load_config_file(path)
    if path.name == "config.json":
        return load_config_file(path.parent)
    if path.exists():
        raise InputError(f"{spec!r} is a file: give a model folder, its config.json, or a preset")
    if len(path.parts) > 1 or path.suffix:  # meant as a path, not a preset's name
        raise InputError(f"model folder {spec!r} does not exist (presets: {', '.join(MODEL_PRESETS)})")
    return model_preset(spec)  # raises the clear "unknown model preset" error


def run_memory(args: argparse.Namespace) -> int:
    from llmlab.core.errors import InputError
    from llmlab.train.memory import (
        MemoryConfig,
        estimate_memory,
        format_bytes,
        rule_of_thumb,
        static_rows,
    )

    given = dataclass_overrides(args, MemoryConfig)
    mem = MemoryConfig(**given)
    refuse_unapplied(mem, given)  # --n-devices 1 at ZeRO stage 0 too: the flag would do nothing
    if args.params is not None:
        if args.model is not None:  # it was sized by the count, the model ignored
            raise InputError(f"--params sizes by a bare parameter count; it takes no model ({args.model!r}): "
                             "give one or the other")
        if args.params < 1 or args.params != int(args.params):  # NaN and infinity stop at the flag's type
            raise InputError(f"--params must be a whole parameter count >= 1 (7e9 is one), got {args.params:g}")
        if mem.lora_rank:
            raise InputError("LoRA's adapter size needs the architecture: pass a preset or config, not --params")
        for name, flag in ACTIVATION_FLAGS.items():
            if name in given:
                raise InputError(f"{flag} applies to the activation rows, which need the architecture (a preset "
                                 "or config, not --params): leave it out")
        P = int(args.params)
        rows = static_rows(P, mem)
        print(f"{P:,} parameters, {mem.optimizer}, {mem.precision}, ZeRO-{mem.zero_stage} over "
              f"{mem.n_devices} device(s):")
        for name, b, formula in rows:
            print(f"  {name:<26} {format_bytes(b):>12}   {formula}")
        print(f"  {'static total':<26} {format_bytes(sum(b for _, b, _ in rows)):>12}")
        rule = format_bytes(rule_of_thumb(P)["document"])
        print(f"  the document's fp32 rule, 4P weights + 8P Adam states, gives {rule}: it leaves out the gradients")
        print("  activations need the architecture: pass a preset or config instead of --params")
        return 0
    model = args.model or DEFAULT_MODEL
    cfg = _load_config(model)
    check_context(cfg, mem.seq_len)
    print(f"{model}: batch {mem.batch_size} x {mem.seq_len} tokens, {mem.optimizer}, {mem.precision}, "
          f"checkpointing {'on' if mem.grad_checkpoint else 'off'}, ZeRO-{mem.zero_stage} over {mem.n_devices} "
          f"device(s)" + (f", LoRA r={mem.lora_rank}" if mem.lora_rank else "") + _moe_summary(cfg))
    for name, b, formula in estimate_memory(cfg, mem):
        print(f"  {name:<26} {format_bytes(b):>12}   {formula}")
    return 0


def check_context(cfg, seq_len: int) -> None:
    """Sequences longer than the model's context: refused for learned positions (there is no table
    row past ``max_seq_len``), a note otherwise (the estimate assumes the positions are extended)."""
    from llmlab.core.errors import InputError

    if seq_len <= cfg.max_seq_len:
        return
    if cfg.position == "learned":
        raise InputError(f"--seq-len {seq_len} is longer than the model's {cfg.max_seq_len} learned positions")
    print(f"note: --seq-len {seq_len} is beyond the model's max_seq_len {cfg.max_seq_len}; the estimate assumes "
          f"its {cfg.position} positions are extended that far")


def _moe_summary(cfg) -> str:
    if not cfg.n_experts:
        return ""
    every = "every layer" if cfg.moe_every == 1 else f"every {cfg.moe_every} layers"
    return (f", MoE {cfg.n_experts} {cfg.ffn_kind} experts top-{cfg.moe_top_k} ({cfg.moe_router}) in {every}, "
            f"capacity factor {cfg.moe_capacity_factor:g}")


def run_params(args: argparse.Namespace) -> int:
    from llmlab.models.params import count_parameters, human_count, parameter_breakdown

    cfg = _load_config(args.model or DEFAULT_MODEL)
    for part, n in parameter_breakdown(cfg).items():
        print(f"  {part:<10} {n:>16,}")
    total = count_parameters(cfg)
    print(f"  {'total':<10} {total:>16,}  ({human_count(total)}; {count_parameters(cfg, True):,} non-embedding)")
    return 0
