"""Helpers the command modules share: subcommands with defaults in --help, flags from dataclasses."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import math
import shutil
import sys
import typing
from collections.abc import Callable, Iterator
from pathlib import Path


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows "(default: X)" except for flags whose None default means "keep the config's value"."""

    def _get_help_string(self, action):
        if action.default is None or "default:" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def add_command(sub, name: str, help: str, func: Callable[[argparse.Namespace], int]) -> argparse.ArgumentParser:
    p = sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
    p.set_defaults(func=func)
    return p


def add_jobs(p: argparse.ArgumentParser) -> None:
    """-j/--jobs of the commands that stream lines through models (`llmlab.core.parallel.ordered_map`)."""
    p.add_argument("-j", "--jobs", type=_jobs, default=1,
                   help="worker processes, each loading its own copy of the models and taking batches of lines in "
                   "turn; the output keeps the input's order (0: one per CPU core). For large inputs: a worker takes "
                   "a second or two to start")


def _jobs(text: str) -> int:
    """argparse type of --jobs: a whole number >= 0."""
    from llmlab.core.errors import InputError
    from llmlab.core.parallel import job_count

    try:
        jobs = int(text)
        job_count(jobs)
    except (ValueError, InputError):
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0 (0: one per CPU core), got {text!r}") from None
    return jobs


def add_run_flags(p: argparse.ArgumentParser, name: str | None,
                  name_help: str = "run name: output goes to OUT/NAME") -> None:
    """The flags of every command that writes a run folder, OUT/NAME: --name, -o/--out and --fresh."""
    p.add_argument("--name", default=name, help=name_help)
    p.add_argument("-o", "--out", default="runs", help="directory holding run directories")
    p.add_argument("--fresh", action="store_true", help="delete an existing run of this name first")


def add_group(sub, name: str, help: str):
    """A command group such as ``llmlab seg``; returns the group's own subparsers."""
    p = sub.add_parser(name, help=help, description=help, formatter_class=HelpFormatter)
    return p.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _field_help(cls, name: str) -> str:
    """The field's trailing comment from the class source (our configs document each field so)."""
    return _field_comments(cls).get(name, "")


@functools.cache
def _field_comments(cls) -> dict[str, str]:
    """Each field's trailing comment in `cls`'s source, read once per class (every command's parser is
    built at start-up, and reading the source again for each of ~350 fields took most of that)."""
    import inspect

    try:
        src = inspect.getsource(cls)
    except (OSError, TypeError):
        return {}
    comments: dict[str, str] = {}
    for line in src.splitlines():
        s = line.strip()
        name, colon, _ = s.partition(":")
        if colon and "#" in s and name.isidentifier():
            comments.setdefault(name, s.split("#", 1)[1].strip())
    return comments


def finite_float(text: str) -> float:
    """argparse type for every float flag: a number, never NaN or infinity (which would slip past
    range checks such as ``x < 0`` and surface later as a NaN result or a traceback).

    >>> finite_float("1e-3"), finite_float(" 2 ")
    (0.001, 2.0)
    >>> finite_float("nan")
    Traceback (most recent call last):
    ...
    argparse.ArgumentTypeError: expected a finite number, got 'nan'
    """
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return x


def add_dataclass_flags(p: argparse.ArgumentParser, cls, skip: tuple[str, ...] = (), shown=None) -> None:
    """One ``--flag`` per scalar field of a config dataclass, defaulting to None (= keep the config's).

    The help text shows the field's comment and its default: the class's, or `shown`'s value when the
    command starts from another instance (``llmlab sft``'s training settings are not pretraining's).
    """
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        t = hints[f.name]
        origin = typing.get_origin(t)
        if origin is typing.Union or str(origin) == "<class 'types.UnionType'>":
            args = [a for a in typing.get_args(t) if a is not type(None)]
            t = args[0] if len(args) == 1 else str
        if t not in (int, float, str, bool):
            continue
        flag = "--" + f.name.replace("_", "-")
        default = getattr(shown, f.name) if shown is not None else (
            f.default if f.default is not dataclasses.MISSING else None)
        doc = _field_help(cls, f.name).replace("%", "%%")
        if t is bool:
            p.add_argument(flag, dest=f.name, default=None, action=argparse.BooleanOptionalAction,
                           help=f"{doc} (default: {default})")
        else:
            p.add_argument(flag, dest=f.name, type=finite_float if t is float else t, default=None,
                           metavar=f.name.upper(),
                           help=f"{doc} (default: {default})")


def dataclass_overrides(args: argparse.Namespace, cls) -> dict:
    """The flags the user actually gave for fields of `cls`."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in vars(args).items() if k in names and v is not None}


def run_config(args: argparse.Namespace, cls, train_defaults, **given):
    """A run config `cls` (one with a `train` TrainConfig) from the command line: the `given` fields as passed
    (name, model, ...), `cls`'s own flags the user gave, and `train` the command's `train_defaults` with the
    training flags the user gave."""
    from llmlab.train.config import TrainConfig

    own = {k: v for k, v in dataclass_overrides(args, cls).items() if k not in (*given, "train")}
    train = dataclass_overrides(args, TrainConfig)
    cfg = cls(**given, **own, train=dataclasses.replace(train_defaults, **train))
    refuse_unapplied(cfg, own)
    refuse_unapplied(cfg.train, train)
    return cfg


def refuse_unapplied(cfg, given) -> None:
    """InputError for a flag in `given` (settings the user gave) that does nothing in the run of `cfg`, per its
    class's APPLIES table (`llmlab.core.config.check_applies`): the config refuses such a setting changed
    from its default; this also one given at its default (``--gamma 1.0`` with grpo)."""
    from llmlab.core.config import check_applies

    if hasattr(type(cfg), "APPLIES"):
        check_applies(cfg, given)


def split_unless_file(file: str | None, split: str | None, default: str, file_flag: str,
                      split_flag: str = "--split") -> str:
    """The built-in corpus split a command reads when no `file_flag` file is given (`default` if `split_flag` was
    not given, its argparse default being None); a split beside a file would be ignored, so it is refused."""
    from llmlab.core.errors import InputError

    if file and split is not None:
        if not Path(file).exists():  # a mistyped corpus name: say so, not that the split does not apply
            raise InputError(f"{file_flag} {file!r} is no file (nor a built-in corpus)")
        raise InputError(f"{split_flag} picks a split of a built-in corpus; it does not apply with {file_flag} FILE")
    return split or default


def refuse_other_algo_flags(args: argparse.Namespace, flags: dict[str, tuple[str, tuple[str, ...]]]) -> None:
    """InputError for a training flag given with an `--algo` it does not apply to. `flags` maps a flag to
    (its argparse dest, the algos it applies to); a flag not given must leave its dest None."""
    from llmlab.core.errors import InputError

    for flag, (dest, algos) in flags.items():
        if getattr(args, dest) is not None and args.algo not in algos:
            raise InputError(f"{flag} applies to --algo {' / '.join(algos)}, not {args.algo}")


TRAINED_FURTHER = ("perceptron", "neural", "hybrid")  # the kinds of model `--init-model` trains further


def init_model_algo(args: argparse.Namespace, load, default, what: str):
    """The model `--init-model` names (read by `load`; `--init-model` without a folder: `default()`, the
    default model), with `args.algo` set to its kind; a different `--algo`, or a kind that cannot be
    trained further, is refused. Without `--init-model`: None, and `--algo` defaults to perceptron."""
    from llmlab.core.errors import InputError

    if args.init_model is None:
        args.algo = args.algo or "perceptron"
        return None
    if args.algo not in (None, *TRAINED_FURTHER):  # before loading, or training, the default model
        raise InputError(f"--init-model applies to --algo {' / '.join(TRAINED_FURTHER)}, not {args.algo}")
    given = args.init_model is not True
    init = load(args.init_model) if given else default()
    where = f"{args.init_model!r} holds" if given else "the default model is"
    if init.kind not in TRAINED_FURTHER:
        raise InputError(f"--init-model: {where} a {init.kind!r} {what}; training goes on from a perceptron, neural "
                         f"or hybrid {what}")
    if args.algo not in (None, init.kind):
        raise InputError(f"--init-model: {where} a {init.kind} {what}, not {args.algo}: give --algo {init.kind}, or "
                         "no --algo")
    args.algo = init.kind
    return init


def config_with(cls, base, fields: dict):
    """``cls(**fields)``, or for a model trained further its config `base` with `fields` changed."""
    return dataclasses.replace(base, **fields) if base is not None else cls(**fields)


def add_init_model(p: argparse.ArgumentParser, what: str, more: str) -> None:
    """`--init-model [DIR]` of `seg train` and `pos train` (`init_model_algo` reads it)."""
    p.add_argument("--init-model", nargs="?", const=True, metavar="DIR",
                   help=f"train further from this saved perceptron, neural or hybrid {what} (without DIR: the "
                   f"default one, which `{'seg cut' if what == 'segmenter' else 'pos tag'}` uses without --model) "
                   f"on the training text alone: its weights are the start; {more}")


def add_fresh_flag(p: argparse.ArgumentParser) -> None:
    """`--fresh` of the text trainings that keep epoch checkpoints (`resumable_training`)."""
    p.add_argument("--fresh", action="store_true", default=None,
                   help="neural, hybrid: start over, deleting the checkpoint an interrupted run of this -o left "
                   "(without it, the same command resumes that run)")


@contextlib.contextmanager
def resumable_training(output: str, resumable: bool, fresh: bool) -> Iterator[None]:
    """Around a text model's training and saving to `output`: where it is `resumable` (a neural tagger or
    segmenter), each epoch's end is saved in ``OUTPUT.checkpoint`` (`llmlab.text.neural.epoch_checkpoints`),
    an interrupted run of the same command resumes from there (`fresh`: deletes it first), and the
    checkpoint goes once the model is saved."""
    if not resumable:
        yield
        return
    from llmlab.core.io import check_folder
    from llmlab.text.neural import CHECKPOINT_FILES, epoch_checkpoints

    directory = check_folder(Path(f"{Path(output)}.checkpoint"), CHECKPOINT_FILES, "training checkpoint")
    if fresh and directory.exists():
        shutil.rmtree(directory)
    print(f"saving each epoch's end in {directory}: if stopped, the same command resumes there", file=sys.stderr)
    with epoch_checkpoints(directory):
        yield
    shutil.rmtree(directory, ignore_errors=True)


def load_any_model(directory: str, device: str = "cpu", soft_prompt: str | None = None):
    """(model, tokenizer) of a model directory, float or quantized (`llmlab quantize`): the loader below
    the adapt layer cannot build quantized layers, so commands that read models come through here.
    `soft_prompt` is a prompt folder (`llmlab sft --prompt-tuning` writes runs/NAME/prompt) put before every input."""

    from llmlab.core.io import existing_folder
    from llmlab.models.io import is_quantized, load_model

    existing_folder(directory, "model directory")
    if is_quantized(directory):
        from llmlab.adapt.quantize import load_quantized

        model, tok = load_quantized(directory, device=device)
    else:
        model, tok = load_model(directory, device=device)
    if soft_prompt is not None:
        from llmlab.adapt.prompt_tuning import load_prompt

        load_prompt(model, soft_prompt)
    return model, tok


def arithmetic_questions(args: argparse.Namespace, split: str) -> list:
    """The first `--problems` distinct arithmetic questions of `split` (`arithmetic_distinct`) with
    operands of 2 to `--max-digits` digits and `--ops` operators; InputError, naming the flag, unless
    --problems, --max-new-tokens (the answers' budget) and --max-digits are in range."""
    from llmlab.core.errors import InputError
    from llmlab.data.corpora import arithmetic_distinct

    if args.problems < 1 or args.max_new_tokens < 1:
        raise InputError("--problems and --max-new-tokens must be >= 1")
    if args.max_digits < 2:
        raise InputError(f"--max-digits must be >= 2 (operands have 2 to that many digits), got {args.max_digits}")
    return arithmetic_distinct(args.problems, split, max_digits=args.max_digits, ops=args.ops)
