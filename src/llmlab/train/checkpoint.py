"""Checkpoints: model, optimizer and loop state in a directory that appears atomically.

Layout of ``<run>/checkpoints/step-00000100/``: ``model.safetensors``, ``optimizer.safetensors``
(every tensor of the optimizer state), ``state.json`` (step, optimizer hyper-parameters, extra
loop state) and ``manifest.json`` (SHA-256 of each file), written last. The directory is built
under a temporary name and renamed into place, so a crash leaves either the old checkpoints or a
complete new one. Loading verifies every checksum before touching the model, so a truncated or
corrupted checkpoint is refused whole, never half-loaded. No pickle anywhere.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_folder, atomic_write_bytes, sha256_file
from llmlab.core.optim_state import flatten_optimizer, unflatten_optimizer
from llmlab.models.io import load_state, model_state

FILES = ("model.safetensors", "optimizer.safetensors", "state.json")

log = logging.getLogger(__name__)


def save_checkpoint(directory: str | os.PathLike, step: int, model, optimizer: torch.optim.Optimizer,
                    extra: dict | None = None, keep: int = 2) -> Path:
    """Write ``step-NNNNNNNN`` under `directory`; keep only the newest `keep` checkpoints."""
    root = Path(directory)
    final = root / f"step-{step:08d}"
    # re-saving a step (a rerun of a finished run) swaps the old folder out whole
    with atomic_folder(final, (*FILES, "manifest.json"), "checkpoint") as tmp:
        atomic_write_bytes(tmp / "model.safetensors", save(model_state(model)))
        opt_tensors, opt_meta = flatten_optimizer(optimizer)  # no RNG state: each step seeds its own (step_seed)
        atomic_write_bytes(tmp / "optimizer.safetensors", save(opt_tensors))
        state = {"step": step, "optimizer": opt_meta, "extra": extra or {}}
        (tmp / "state.json").write_text(json.dumps(state, indent=1), encoding="utf-8")
        manifest = {name: sha256_file(tmp / name) for name in FILES}
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1), encoding="utf-8")
    prune_checkpoints(root, keep)
    return final


def checkpoint_step(path: str | os.PathLike) -> int:
    """The step of checkpoint folder `path`: ``.../step-00000100`` -> 100."""
    return int(Path(path).name.split("-")[1])


def prune_checkpoints(directory: str | os.PathLike, keep: int, shared: set[int] | None = None) -> None:
    """Delete the checkpoints under `directory` older than the newest `keep` (keep <= 0: delete none).

    `shared`: the steps every shard of a sharded run holds. Only those count then, so the newest step all
    shards can resume from is never deleted, and steps newer than every shared one stay (another shard
    may lack them). Shard {2, 4} beside a shard {2} (killed while saving step 4), keep 1: nothing goes.
    """
    found = {checkpoint_step(p): p for p in list_checkpoints(directory)}
    counted = sorted(found if shared is None else set(found) & set(shared))[-keep:] if keep > 0 else []
    for step, path in found.items():
        if counted and step < counted[-1] and step not in counted:
            shutil.rmtree(path)


def list_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """Complete checkpoints (those with a manifest), oldest first."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(p for p in root.glob("step-*") if (p / "manifest.json").is_file())


def incomplete_checkpoints(directory: str | os.PathLike) -> list[Path]:
    """What under `directory` is a checkpoint's remains, not a checkpoint: ``step-*`` entries without a
    manifest.json, and the hidden ``.step-*.tmp`` / ``.step-*.old`` folders a save builds in or swaps out.
    Saves build a checkpoint under a hidden temporary name and rename it whole, so a ``step-*`` entry
    without a manifest was made or emptied by something else (a copy, a sync, a hand edit), and a hidden
    one was left by a save that was killed (each can be as large as a checkpoint)."""
    root = Path(directory)
    if not root.is_dir():
        return []
    partial = [p for p in root.glob("step-*") if not (p / "manifest.json").is_file()]
    return sorted(partial + [*root.glob(".step-*.tmp"), *root.glob(".step-*.old")])


def warn_incomplete(directory: str | os.PathLike) -> None:
    """Log a warning naming each of `incomplete_checkpoints` that resuming skips; nothing is deleted."""
    for p in incomplete_checkpoints(directory):
        why = ("left by a save that was stopped" if p.name.startswith(".") else
               "checkpoints are written whole, so something else made or emptied it")
        log.warning("skipping %s: not a complete checkpoint (%s). Left in place (delete it to free its space); "
                    "resuming from the complete ones", p, why)


def latest_checkpoint(directory: str | os.PathLike) -> Path | None:
    """The newest complete checkpoint under `directory` (None: none), warning about incomplete ones."""
    warn_incomplete(directory)
    found = list_checkpoints(directory)
    return found[-1] if found else None


def _recorded_layout(ckpt: Path) -> tuple[int, int]:
    """The (tp, pp) a sharded checkpoint's state.json records (``"layout": "dp2 x tp2 x pp1"``); (1, 1) if
    it records none or cannot be read (loading it says why)."""
    try:
        layout = json.loads((ckpt / "state.json").read_text(encoding="utf-8"))["extra"]["layout"]
        t, p = re.fullmatch(r"dp\d+ x tp(\d+) x pp(\d+)", layout).groups()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 1, 1
    return int(t), int(p)


# What saves write under a run's checkpoints/ folder: step folders (whole ones, and the hidden ones a save
# builds in or swaps out) and a sharded run's tp{t}-pp{p} folders of them
_CHECKPOINT_ENTRY = re.compile(r"step-\d+|\.step-\d+\..+\.(tmp|old)")
_SHARD_ENTRY = re.compile(r"tp\d+-pp\d+")


def foreign_entries(root: str | os.PathLike) -> list[Path]:
    """What under a run's checkpoints folder `root` no save wrote (a user's notes, a copied folder): entries
    not named as `save_checkpoint` names them, at the top or in a shard's folder. --fresh deletes the
    folder whole, so it refuses while these are there.

    >>> import tempfile; d = Path(tempfile.mkdtemp())
    >>> for name in ("step-00000004", ".step-00000006.x1.tmp", "tp0-pp1/step-00000002", "tp0-pp1/mine", "keep"):
    ...     (d / name).mkdir(parents=True)
    >>> [str(p.relative_to(d)) for p in foreign_entries(d)]
    ['keep', 'tp0-pp1/mine']
    """
    root = Path(root)
    if not root.is_dir():
        return []
    out = []
    for p in sorted(root.iterdir()):
        if _SHARD_ENTRY.fullmatch(p.name) and p.is_dir() and not p.is_symlink():
            out += [q for q in sorted(p.iterdir()) if not _CHECKPOINT_ENTRY.fullmatch(q.name)]
        elif not _CHECKPOINT_ENTRY.fullmatch(p.name):
            out.append(p)
    return out


def checkpoint_layouts(root: str | os.PathLike) -> set[tuple[int, int]]:
    """The (tp, pp) shard layouts of the runs that saved under a run's ``checkpoints/`` folder.

    An unsharded run (one process, or data parallel) saves ``step-*`` there: (1, 1). A tensor- or
    pipeline-parallel run saves ``tp{t}-pp{p}/step-*``, each shard making its folder as its first save
    begins. Its layout is at least (max t + 1, max p + 1) over those folders, whether or not they hold a
    checkpoint yet (a shard killed during its first save holds none), and at least the layout its
    checkpoints record (a shard killed before its first save has no folder). A sharded run that shows
    neither (one empty ``tp0-pp0``) is (0, 0): some tensor/pipeline layout, unknown.
    """
    root = Path(root)
    found = set()
    if list_checkpoints(root):
        found.add((1, 1))
    names = [p.name[2:].split("-pp") for p in root.glob("tp*-pp*") if p.is_dir()]
    shards = [(int(t) + 1, int(q) + 1) for t, q in names if t.isdigit() and q.isdigit()]
    shards += [_recorded_layout(c) for p in root.glob("tp*-pp*") for c in list_checkpoints(p)[-1:]]
    if shards:
        layout = max(t for t, _ in shards), max(q for _, q in shards)
        found.add((0, 0) if layout == (1, 1) else layout)
    return found


def check_layout(root: str | os.PathLike, tp: int, pp: int) -> None:
    """InputError if the checkpoints under `root` were written by another tensor/pipeline layout: this
    run would neither resume them nor leave them alone (a new layout saves into other folders, or
    over some of theirs). The data-parallel degree may change: replicas are identical."""
    other = sorted(checkpoint_layouts(root) - {(tp, pp), (0, 0) if (tp, pp) != (1, 1) else None})
    if other:
        was = " and ".join(f"--tp {t} --pp {p}" if t else "a tensor/pipeline layout of unknown size" for t, p in other)
        raise InputError(f"the checkpoints in {str(root)!r} were written with {was}, this run has --tp {tp} "
                         f"--pp {pp}; resume with the same --tp/--pp, or --fresh to start over")


@contextlib.contextmanager
def resuming_from(path: str | os.PathLike) -> Iterator[None]:
    """Around reading checkpoint `path` to resume: its InputError (corrupt, missing a file) goes on to say
    that deleting the folder resumes from the previous checkpoint, and which one that is."""
    p = Path(path)
    try:
        yield
    except InputError as e:
        older = [c for c in list_checkpoints(p.parent) if c.name < p.name]
        then = f"resume from the previous one, {older[-1].name}" if older else "start over (there is no older one)"
        raise InputError(f"{e}. Delete that folder to {then}") from None


def verify_checkpoint(path: str | os.PathLike) -> dict:
    """Check every file against the manifest; return the parsed state.json."""
    p = Path(path)
    try:
        manifest = json.loads((p / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        manifest = None
    if not isinstance(manifest, dict):  # missing, torn, or JSON of another shape (a list, null)
        raise InputError(f"checkpoint {str(p)!r} has no readable manifest.json; refusing to load it")
    for name in FILES:
        f = p / name
        if not f.is_file():
            raise InputError(f"checkpoint {str(p)!r} is missing {name}; refusing to load it")
        if sha256_file(f) != manifest.get(name):
            raise InputError(f"checkpoint {str(p)!r}: {name} is corrupt (checksum mismatch); refusing to load it")
    return json.loads((p / "state.json").read_text(encoding="utf-8"))


def load_checkpoint(path: str | os.PathLike, model, optimizer: torch.optim.Optimizer | None = None) -> dict:
    """Restore model (and optimizer) from a verified checkpoint; return its state. (Checkpoints written
    before the trainer seeded torch's RNG at every step hold that RNG's state too; it is not needed.)"""
    p = Path(path)
    state = verify_checkpoint(p)
    try:
        weights = load_file(p / "model.safetensors")
        opt_tensors = load_file(p / "optimizer.safetensors")
    except (SafetensorError, OSError) as e:
        raise InputError(f"checkpoint {str(p)!r} cannot be read: {e}") from None
    opt_tensors.pop("__rng__.torch", None)
    load_state(model, weights, str(p / "model.safetensors"))
    if optimizer is not None:
        optimizer.load_state_dict(unflatten_optimizer(opt_tensors, state["optimizer"]))
    return state
