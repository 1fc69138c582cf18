"""Pretraining run: corpus -> tokenizer -> token streams -> LLaMA-style decoder -> training ->
evaluation -> samples -> saved model and a report, all under one run directory.

    runs/<name>/
      config.json        the RunConfig
      data.json          SHA-256 of the corpus splits the run trained on, and of its teacher's weights when it
                         distils from one (a resume must see the same)
      metrics.jsonl      training and evaluation records
      checkpoints/       resumable state (atomic)
      model/             config.json, model.safetensors, tokenizer.json, README.md (model card)
      loss.png           loss curve
      report.md          what was trained, on what, for how long, and how well

Running again with the same config resumes (or, if finished, just re-evaluates and re-reports).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from llmlab.classic.information import entropy
from llmlab.core.config import config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.io import (
    atomic_write_json,
    check_folder,
    check_output,
    json_text,
    read_json,
    within,
    write_jsonl,
)
from llmlab.data import lm_splits
from llmlab.generate import GenerationConfig, generate
from llmlab.models import CausalLM, ModelConfig, count_parameters, save_model
from llmlab.models.card import ModelCard
from llmlab.models.io import MODEL_FILES
from llmlab.models.scoring import text_start
from llmlab.pipeline.report import data_loss
from llmlab.tokenizers import ALGOS, CharTokenizer, Tokenizer, train_tokenizer
from llmlab.train import TrainConfig, Trainer, evaluate_loss
from llmlab.train.checkpoint import foreign_entries
from llmlab.train.trainer import perplexity, read_metrics

log = logging.getLogger(__name__)

DEFAULT_PROMPTS = ("中国", "新年", "经济发展", "北京")


@dataclass(frozen=True)
class RunConfig:
    name: str = "run"  # run directory name under the output root
    corpus: str = "pfr1998"  # built-in corpus name or a .txt/.jsonl path (train/dev split for built-ins)
    tokenizer: str = "char"  # char | bpe | unigram | wordpiece | whitespace, trained on the train split
    vocab_size: int = 0  # vocabulary size; 0 = every character of the training split (char only)
    model: ModelConfig = field(default_factory=ModelConfig)  # the decoder; vocab_size is set from the tokenizer
    train: TrainConfig = field(default_factory=TrainConfig)  # the training loop
    prompts: tuple[str, ...] = DEFAULT_PROMPTS  # prompts for the report's samples
    sample_tokens: int = 60  # new tokens per sample
    final_eval_tokens: int = 0  # dev tokens scored at the end (0 = the whole dev split)
    teacher: str = ""  # a saved model folder to distil from (llmlab.train.distill; train.kd_alpha weighs it); "" = none

    def __post_init__(self):
        if self.name in ("", ".", "..") or any(c in self.name for c in "/\\\0"):
            raise InputError(f"the run name must be a plain folder name (not empty, '.', '..', or a path), "
                             f"got {self.name!r}")
        if self.tokenizer not in ALGOS:
            raise InputError(f"tokenizer must be one of {ALGOS}, got {self.tokenizer!r}")
        if self.vocab_size < 0 or (self.vocab_size == 0 and self.tokenizer != "char"):
            raise InputError(f"vocab_size must be > 0 for a {self.tokenizer} tokenizer (0 means all characters, "
                             f"char only), got {self.vocab_size}")
        if self.train.kd_alpha and not self.teacher:
            raise InputError(f"kd_alpha {self.train.kd_alpha} weighs a distillation term: name the teacher model "
                             "(--teacher DIR)")

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        d = dict(d)
        d["model"] = config_from_dict(ModelConfig, d.get("model", {}), "model")
        d["train"] = config_from_dict(TrainConfig, d.get("train", {}), "train")
        return config_from_dict(cls, d, "run config")

    def replace(self, **changes) -> RunConfig:
        return dataclasses.replace(self, **changes)


def encode_stream(tok: Tokenizer, lines: list[str]) -> torch.Tensor:
    """One token stream: each line's ids followed by the end-of-sequence token."""
    eos = tok.eos_id
    ids: list[int] = []
    for line in lines:
        ids.extend(tok.encode(line))
        ids.append(eos)
    return torch.tensor(ids, dtype=torch.long)


def unigram_entropy(stream: torch.Tensor, vocab_size: int) -> float:
    """Entropy (nats) of the token frequency distribution: the loss of the best context-free model."""
    counts = np.bincount(stream.numpy(), minlength=vocab_size).astype(np.float64)
    return entropy((counts / counts.sum()).tolist(), base=math.e)


def prepare_streams(cfg: RunConfig, train_lines: list[str], dev_lines: list[str]):
    """The run's tokenizer, trained on the train lines, and both splits as token streams."""
    if cfg.tokenizer == "char":
        tok = CharTokenizer.train(train_lines, max_vocab=cfg.vocab_size or None)
    else:
        tok = train_tokenizer(cfg.tokenizer, train_lines, cfg.vocab_size)
    return tok, encode_stream(tok, train_lines), encode_stream(tok, dev_lines)


def data_fingerprint(train_lines: list[str], dev_lines: list[str]) -> dict:
    """What identifies a run's data: the SHA-256 of its train and dev lines. The tokenizer and both token
    streams are functions of them (and of the config), so equal digests mean the same ids."""
    digests = {}
    for split, lines in (("train", train_lines), ("dev", dev_lines)):
        h = hashlib.sha256()
        for line in lines:
            h.update(line.encode("utf-8", "surrogatepass") + b"\n")
        digests[f"{split}_sha256"] = h.hexdigest()
    return digests


# Training settings that do not change what a run computes, so a resumed run may change them.
BOOKKEEPING = ("max_minutes", "keep_checkpoints", "checkpoint_every", "log_every", "device")


def _identity(cfg: dict) -> dict:
    """A run config as a resume compares it: without the `BOOKKEEPING` settings, which each invocation
    may set anew, the run's name (the folder's: a copied run resumes under its new name) and the teacher's
    folder (data.json holds its weights' digest: a moved teacher is the same one)."""
    train = cfg.get("train") if isinstance(cfg, dict) else None
    if not isinstance(train, dict):
        return cfg
    return {**{k: v for k, v in cfg.items() if k not in ("name", "teacher")},
            "train": {k: v for k, v in train.items() if k not in BOOKKEEPING}}


def _as_read_now(doc, cfg) -> dict:
    """A saved run config as this version reads it, through `cfg`'s class: settings added since the run
    was saved take their defaults (an algorithm's, where the class resolves them), which compute what
    that run did. A document the class no longer reads is compared as it is (and then differs)."""
    with contextlib.suppress(InputError, TypeError, ValueError, AttributeError):
        doc = type(cfg).from_dict(doc).to_dict()
    return _identity(json.loads(json_text(doc)))


def _differences(a: dict, b: dict, prefix: str = "") -> list[str]:
    """Dotted names of the fields where two config dicts differ.

    >>> _differences({"train": {"lr": 1, "steps": 2}, "name": "x"}, {"train": {"lr": 3, "steps": 2}, "name": "x"})
    ['train.lr']
    """
    out = []
    for k in sorted(set(a) | set(b)):
        x, y = a.get(k), b.get(k)
        if isinstance(x, dict) and isinstance(y, dict):
            out += _differences(x, y, f"{prefix}{k}.")
        elif x != y:
            out.append(f"{prefix}{k}")
    return out


# What a run writes into its directory; --fresh deletes these and nothing else.
RUN_ENTRIES = ("config.json", "data.json", "metrics.jsonl", "checkpoints", "model", "prompt", "report.md",
               "summary.json", "loss.png", "pairs.jsonl")


def _saved_folders() -> dict[str, tuple[str, ...]]:
    """The folders a run saves as a whole at its end (`atomic_folder`), with the files each may hold."""
    from llmlab.adapt.prompt_tuning import PROMPT_FILES

    return {"model": MODEL_FILES, "prompt": PROMPT_FILES}


def _holds_a_run(out: Path) -> bool:
    """Whether `out`/config.json is a run config llmlab wrote (of this version or an earlier one)."""
    try:
        doc = json.loads((out / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and {"name", "model", "train"} <= doc.keys()


# Config fields that name what a run reads (a model folder, a data file), with the flag that sets each.
INPUT_FIELDS = {"model": "--model", "teacher": "--teacher", "reward_model": "--reward-model", "pairs": "--pairs",
                "data": "--data", "corpus": "--corpus"}
LISTS = {"reward_model"}  # those that may name several, comma-separated


def _check_inputs_outside(out: Path, cfg, elsewhere: str) -> None:
    """InputError when a file or folder the run reads lies in its run directory: the run replaces its
    model/ (and pairs.jsonl) when it ends and --fresh deletes them, so `sft --model runs/x/model --name x`
    lost the model it started from."""
    for name, flag in INPUT_FIELDS.items():
        value = getattr(cfg, name, None)
        for part in (value.split(",") if name in LISTS else [value]) if isinstance(value, str) else []:
            if part and Path(part).exists() and within(part, out):
                raise InputError(f"{flag} {part!r} lies in the run directory {str(out)!r}, which the run writes "
                                 f"over (and --fresh clears): copy it elsewhere or choose another {elsewhere}")


def check_run_dir(out: Path, cfg: RunConfig, fresh: bool, data: dict | None = None, elsewhere: str = "--name") -> None:
    """InputError unless `out` may hold the run of `cfg` on `data` (its `data_fingerprint`): it is new or
    empty, or holds a run, which (without `fresh`) must be of this config on this data and then resumes.
    A folder with files but no run is refused even with `fresh`: it is the user's, not a run to clear.
    The errors suggest `--fresh` or another `elsewhere` (the flag that names the folder)."""
    check_output(out, "run directory", folder=True)
    _check_inputs_outside(out, cfg, elsewhere)
    if out.is_dir() and any(out.iterdir()) and not _holds_a_run(out):
        names = ", ".join(sorted(p.name for p in out.iterdir())[:5])
        raise InputError(f"run directory {str(out)!r} holds files that are not an llmlab run ({names}); "
                         f"choose another {elsewhere}")
    for name, owned in _saved_folders().items():  # the run's end replaces them, --fresh deletes model/: refuse
        check_folder(out / name, owned, f"the run's {name} folder")  # another's files now, not after training
    saved, saved_data = out / "config.json", out / "data.json"
    foreign = foreign_entries(out / "checkpoints") if fresh and saved.exists() else []
    if foreign:  # --fresh deletes the folder whole
        names = ", ".join(str(p.relative_to(out / "checkpoints")) for p in foreign[:5])
        raise InputError(f"the run's checkpoints folder {str(out / 'checkpoints')!r} holds files no save wrote "
                         f"({names}), which --fresh would delete with it: move them out first")
    if saved.exists() and not fresh:
        old, new = _as_read_now(read_json(saved, "run config"), cfg), _identity(json.loads(json_text(cfg.to_dict())))
        if old != new:
            fields = ", ".join(_differences(old, new) if isinstance(old, dict) else ["all"])
            raise InputError(f"run directory {str(out)!r} holds a run with a different config ({fields}); "
                             f"pass --fresh to start over or choose another {elsewhere}")
        old_data = read_json(saved_data, "run data digest") if data is not None and saved_data.exists() else data
        if isinstance(old_data, dict) and old_data.get("teacher_sha256") != data.get("teacher_sha256"):
            then, now = (f"the teacher with weights SHA-256 {d['teacher_sha256'][:12]}..." if d.get("teacher_sha256")
                         else "no teacher" for d in (old_data, data))
            raise InputError(f"run directory {str(out)!r} was trained with {then}, this run has {now}; "
                             f"pass --fresh to start over or choose another {elsewhere}")
        if old_data != data:
            raise InputError(f"run directory {str(out)!r} was trained on other data: corpus {cfg.corpus!r} has "
                             "changed since, so its tokenizer and token ids would not match the checkpoints; "
                             f"pass --fresh to start over or choose another {elsewhere}")


def prepare_run_dir(out: Path, cfg: RunConfig, fresh: bool, data: dict | None = None) -> None:
    """Make the run directory, or check that the run in it has this config and `data` (`check_run_dir`);
    with `fresh`, clear an earlier run first (its `RUN_ENTRIES`; other files in the folder stay). Called
    once every setting has been checked, so a bad flag never costs a run."""
    check_run_dir(out, cfg, fresh, data)
    if fresh and (out / "config.json").exists():  # a run (check_run_dir): clear what it wrote, keep the rest
        import shutil

        for name in RUN_ENTRIES:
            path = out / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
    atomic_write_json(out / "config.json", cfg.to_dict())  # makes the folder, or says why it cannot
    if data is not None:
        atomic_write_json(out / "data.json", data)


def _last_train_loss(path: Path) -> float:
    """The data cross-entropy (`data_loss`) of the last training record in a run's metrics (nan if there is
    none, or it is null)."""
    losses = [data_loss(r) for r in read_metrics(path) if "loss" in r]
    return losses[-1] if losses and losses[-1] is not None else float("nan")


def log_final_eval(path: Path, record: dict) -> None:
    """Append the full-split evaluation, replacing one an earlier run of this directory wrote. The file is
    written again as strict JSON (`json_text`): a bare NaN an older version logged becomes null."""
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    kept = [r for ln in lines if ln and not (r := json.loads(ln)).get("final")]
    write_jsonl(path, [*kept, record])


def run_pretraining(cfg: RunConfig, out_root: str | Path = "runs", fresh: bool = False, mesh=None,
                    micro_batches: int = 0, schedule: str = "1f1b") -> dict | None:
    """Run (or resume) the whole pretraining pipeline; return the figures the report shows.

    With a `llmlab.dist.mesh.Mesh` every rank of the process group calls this; the model trains
    sharded over the mesh (see `llmlab.dist.trainer`), and rank 0 evaluates, saves and reports
    (the other ranks return None). `micro_batches` is the pipeline's micro-batch count (0 = pp) and
    `schedule` its schedule (1f1b or gpipe).
    """
    from llmlab.pipeline.report import plot_losses, write_report

    t_start = time.perf_counter()
    train_lines, dev_lines = lm_splits(cfg.corpus)
    out = Path(out_root) / cfg.name
    torch.manual_seed(cfg.train.seed)
    tok, train_ids, dev_ids = prepare_streams(cfg, train_lines, dev_lines)
    dev_unknown = sum(tok.count_unknown(s) for s in dev_lines)
    log.info("corpus %s: %d train / %d dev lines, %d / %d tokens, vocab %d, %d unknown dev characters",
             cfg.corpus, len(train_lines), len(dev_lines), train_ids.numel(), dev_ids.numel(),
             tok.vocab_size, dev_unknown)

    model_cfg = dataclasses.replace(cfg.model, vocab_size=tok.vocab_size)
    model = CausalLM(model_cfg)
    data = data_fingerprint(train_lines, dev_lines)
    teacher = None
    if cfg.teacher:
        if mesh is not None:
            raise InputError("distillation (--teacher) runs in one process: the distributed trainer does not "
                             "carry a teacher")
        from llmlab.models.io import resolve_device
        from llmlab.train.distill import load_teacher

        teacher, data["teacher_sha256"] = load_teacher(cfg.teacher, tok, cfg.train.seq_len,
                                                       resolve_device(cfg.train.device))
        log.info("distilling from %s (alpha %g, temperature %g)", cfg.teacher, cfg.train.kd_alpha,
                 cfg.train.kd_temperature)
    if mesh is None:
        trainer = Trainer(model, cfg.train, train_ids, dev_ids, out, teacher=teacher)
    else:
        from llmlab.dist.trainer import DistributedTrainer

        trainer = DistributedTrainer(model, cfg.train, train_ids, dev_ids, out, mesh, micro_batches, schedule)
    # only now, with the corpus, tokenizer, model and trainer settings all accepted, is the run
    # directory touched: a bad flag with --fresh must not delete the run it was meant to redo
    if mesh is None or mesh.writes:
        prepare_run_dir(out, cfg, fresh, data)
    if mesh is not None:
        import torch.distributed as dist

        dist.barrier()  # the run directory is ready (or a fresh start has cleared it)
    trainer.started = t_start  # the session's clock includes reading and tokenizing the corpus
    trainer.maybe_resume()
    result = trainer.fit()
    if mesh is not None:
        model = trainer.full_model()  # gathered onto rank 0; the rest of the pipeline runs there
        if model is None:
            return None

    eval_ids = dev_ids[: cfg.final_eval_tokens] if cfg.final_eval_tokens else dev_ids
    val_loss, val_tokens = evaluate_loss(model, eval_ids, cfg.train.seq_len, cfg.train.batch_size)
    log_final_eval(out / "metrics.jsonl", {"step": trainer.step, "val_loss": val_loss,
                                            "val_ppl": perplexity(val_loss), "val_tokens": val_tokens, "final": True})
    figures = {
        "name": cfg.name,
        "corpus": cfg.corpus,
        "train_lines": len(train_lines),
        "dev_lines": len(dev_lines),
        "train_tokens": train_ids.numel(),
        "dev_tokens": dev_ids.numel(),
        "vocab_size": tok.vocab_size,
        "dev_unknown_chars": dev_unknown,
        "parameters": count_parameters(model_cfg),
        "non_embedding_parameters": count_parameters(model_cfg, non_embedding=True),
        "steps": trainer.step,
        "tokens_seen": trainer.tokens_seen,
        "train_seconds": trainer.train_seconds,
        "stopped_early": result["stopped_early"],
        # a rerun of a finished run trains no step: the loss is the last one its metrics recorded
        "final_train_loss": data_loss(result["train"]) if result["train"] else _last_train_loss(out / "metrics.jsonl"),
        "val_loss": val_loss,
        "val_ppl": perplexity(val_loss),
        "val_tokens_scored": val_tokens,
        # characters per token over the dev split, EOS standing for the line break
        "val_bits_per_char": val_loss / math.log(2) * dev_ids.numel() / sum(len(s) + 1 for s in dev_lines),
        "unigram_entropy": unigram_entropy(train_ids, tok.vocab_size),
        "device": str(trainer.device),
        "layout": str(mesh.layout) if mesh is not None else "single process",
        "teacher": cfg.teacher,
    }
    gen_cfg = GenerationConfig(max_new_tokens=cfg.sample_tokens, temperature=0.8, top_k=50, seed=cfg.train.seed)
    figures["samples"] = [
        (p, tok.decode(generate(model, text_start(tok) + tok.encode(p), gen_cfg, eos_id=tok.eos_id)))
        for p in cfg.prompts
    ]
    card = ModelCard(
        name=f"llmlab-{cfg.name}", parameters=figures["parameters"],
        training_data=f"{cfg.corpus} train split ({len(train_lines)} lines, {train_ids.numel()} tokens)",
        tokenizer=f"{cfg.tokenizer}, {tok.vocab_size} tokens",
        metrics={"val_loss": val_loss, "val_ppl": figures["val_ppl"]},
    )
    save_model(model, out / "model", tok, card)
    plot_losses(out / "metrics.jsonl", out / "loss.png", baseline=figures["unigram_entropy"])
    figures["wall_seconds"] = trainer.total_wall_seconds()  # every session's, as train_seconds is
    write_report(out / "report.md", cfg, figures)
    atomic_write_json(out / "summary.json", figures)
    return figures
