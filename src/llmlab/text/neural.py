"""What the neural taggers (`llmlab.text.pos_neural`, `llmlab.text.seg_neural`) share: the
bidirectional LSTM, the start from PPMI-SVD vectors, held-out sentences, length buckets and the training loop.

The BiLSTM is two unidirectional `nn.LSTM` per layer over padded batches, the backward one reading
each sentence reversed within its own length: torch's fused CPU kernels then do the work forward and
backward, where a bidirectional nn.LSTM over packed sequences runs step by step (its backward
zero-filled whole buffers at every step: POS training took about 23 minutes instead of 15).

Training is long (a quarter to half an hour on pfr1998), so within `epoch_checkpoints` the loop saves
its whole state after every epoch and an interrupted run resumes from the last one.

torch is imported inside the functions that need it, so ``llmlab.text`` stays torch-free.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import fields
from pathlib import Path

import numpy as np

from llmlab.core.config import config_to_dict
from llmlab.core.errors import InputError
from llmlab.core.io import atomic_folder, read_json, read_safetensors, write_safetensors
from llmlab.core.optim_state import flatten_optimizer, unflatten_optimizer
from llmlab.core.progress import progress

log = logging.getLogger(__name__)


def check_training(config) -> None:
    """The checks the neural taggers' configs share: their optimiser, schedule and held-out settings."""
    if not config.lr > 0:
        raise InputError(f"lr must be > 0, got {config.lr}")
    if not 0 < config.decay <= 1:
        raise InputError(f"decay must be in (0, 1], got {config.decay}")
    if not config.clip > 0:
        raise InputError(f"clip must be > 0, got {config.clip}")
    for name in ("decay_from", "threads", "seed"):
        if getattr(config, name) < 0:
            raise InputError(f"{name} must be >= 0, got {getattr(config, name)}")
    if config.holdout < 0 or config.holdout == 1:
        raise InputError(f"holdout must be 0 (none) or >= 2, got {config.holdout}")


def check_hybrid(config, default_perceptron) -> None:
    """The checks the hybrids' configs share: lam >= 0, and no perceptron settings (those that differ
    from `default_perceptron`) beside a saved perceptron model, which is used as it was trained."""
    if not config.lam >= 0:
        raise InputError(f"lam must be >= 0, got {config.lam}")
    if config.perceptron_model is not None:
        changed = [f.name for f in fields(default_perceptron)
                   if getattr(config.perceptron, f.name) != getattr(default_perceptron, f.name)]
        if changed:
            raise InputError(f"perceptron settings ({', '.join(changed)}) do not apply with a perceptron model "
                             f"({config.perceptron_model}): it is used as it was trained")


def holdout_split(sentences: list, every: int) -> tuple[list, list]:
    """(kept, held out): every `every`-th sentence held out (0: none held out).

    >>> holdout_split(list("abcdef"), 3)
    (['a', 'b', 'd', 'e'], ['c', 'f'])
    """
    if not every:
        return list(sentences), []
    return ([s for i, s in enumerate(sentences, 1) if i % every],
            [s for i, s in enumerate(sentences, 1) if not i % every])


def emission_scale(emissions: Sequence[np.ndarray]) -> float:
    """Standard deviation of the emission scores, leaving out tag-dictionary bans (< -1e5); 1 if none.

    >>> emission_scale([np.array([[1.0, -1e6], [3.0, 1.0]])])
    0.9428090415820634
    """
    em = np.concatenate([e.ravel() for e in emissions]) if emissions else np.zeros(0)
    em = em[em > -1e5]
    std = float(em.std()) if len(em) else 0.0
    return std if std > 0 else 1.0


def length_buckets(lengths: Sequence[int], size: int) -> list[list[int]]:
    """Indices sorted by length, cut into batches of `size` (similar lengths pad little).

    >>> length_buckets([3, 1, 2, 5], 2)
    [[1, 2], [0, 3]]
    """
    order = sorted(range(len(lengths)), key=lambda i: lengths[i])
    return [order[i : i + size] for i in range(0, len(order), size)]


_CHECKPOINTS: contextvars.ContextVar[Path | None] = contextvars.ContextVar("llmlab_epoch_checkpoints", default=None)
CHECKPOINT_FILES = ("state.safetensors", "state.json")


@contextlib.contextmanager
def epoch_checkpoints(directory: str | os.PathLike) -> Iterator[Path]:
    """Within this, `fit_epochs` writes its whole state (weights, optimiser, random generators, the
    best epoch so far) to `directory` after every epoch, replacing the last, and starts from the state
    there when it finds one of the same run: the same config, batches and starting weights. An
    interrupted training run again resumes after its last finished epoch and ends with the weights an
    uninterrupted one gives. A state of another run is refused."""
    token = _CHECKPOINTS.set(Path(directory))
    try:
        yield Path(directory)
    finally:
        _CHECKPOINTS.reset(token)


def fit_epochs(net, config, buckets: list[list[int]], batch, held_score, n_held: int, rng: np.random.Generator,
               desc: str, metric: str, logger: logging.Logger = log):
    """Train `net` as the neural taggers do; returns (`net` in eval mode at its best epoch, that epoch, its score).

    Each epoch visits the length `buckets` in an order drawn from `rng`; `batch(indices)` gives (logits
    (B, L, K), gold (B, L) with -100 padding, lengths) and the step is Adam on their cross-entropy with the
    gradient norm clipped at ``config.clip``, the learning rate times ``config.decay`` per epoch from
    ``config.decay_from`` on. After each epoch `held_score()` scores the `n_held` held-out sentences
    (`metric` names it in the log); the earliest best epoch is kept, the last one without held-out sentences.
    Inside `epoch_checkpoints`, each epoch's end is saved and a saved run is resumed.
    """
    import torch
    import torch.nn.functional as F

    c = config
    opt = torch.optim.Adam(net.parameters(), lr=c.lr)
    best, best_epoch, best_score = None, 0, -1.0
    start, directory = 0, _CHECKPOINTS.get()
    if directory is not None:
        run = _fingerprint(net, c, buckets, desc)
        resumed = _resume(directory, run, net, opt, rng)
        if resumed is not None:
            start, best, best_epoch, best_score = resumed
            logger.info("%s: resuming after epoch %d of %d (%s)", desc, start, c.epochs, directory)
    for epoch in range(start, c.epochs):
        if epoch >= c.decay_from:
            for g in opt.param_groups:
                g["lr"] *= c.decay
        net.train()
        total, n_units = 0.0, 0
        for b in progress(rng.permutation(len(buckets)), desc=f"{desc} epoch {epoch + 1}/{c.epochs}"):
            logits, gold, lengths = batch(buckets[b])
            loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), gold.reshape(-1), ignore_index=-100)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), c.clip)
            opt.step()
            total, n_units = total + loss.item() * sum(lengths), n_units + sum(lengths)
        score = held_score()
        if n_held:
            logger.info("epoch %d: training loss %.4f, held-out %s %.4f (%d sentences)", epoch + 1,
                        total / n_units, metric, score, n_held)
        else:  # too few sentences to hold any out: the last epoch is kept
            logger.info("epoch %d: training loss %.4f (no held-out sentences)", epoch + 1, total / n_units)
        if score > best_score or not n_held:
            best_epoch, best_score = epoch + 1, score
            best = {k: v.detach().clone() for k, v in net.state_dict().items()}
        if directory is not None:
            _save_epoch(directory, run, epoch + 1, net, opt, rng, best, best_epoch, best_score)
    net.load_state_dict(best)
    return net.eval(), best_epoch, best_score


def _fingerprint(net, config, buckets: list[list[int]], desc: str) -> str:
    """What makes a training run the same one: the config, the batches (the data, in order) and the
    starting weights (the vocabularies and the seed)."""
    h = hashlib.sha256(json.dumps([desc, config_to_dict(config), buckets], sort_keys=True).encode())
    for name, value in sorted(net.state_dict().items()):
        h.update(name.encode())
        h.update(value.detach().numpy().tobytes())
    return h.hexdigest()


def _save_epoch(directory: Path, run: str, epoch: int, net, opt, rng: np.random.Generator, best: dict,
                best_epoch: int, best_score: float) -> None:
    import torch

    opt_tensors, opt_meta = flatten_optimizer(opt)
    arrays = {**{f"net.{k}": v.detach().numpy() for k, v in net.state_dict().items()},
              **{f"best.{k}": v.numpy() for k, v in best.items()},
              **{f"opt.{k}": v.numpy() for k, v in opt_tensors.items()},
              "torch_rng": torch.get_rng_state().numpy()}
    state = {"run": run, "epoch": epoch, "best_epoch": best_epoch,
             "best_score": None if math.isnan(best_score) else best_score,  # NaN: no held-out sentences
             "rng": rng.bit_generator.state, "optimizer": opt_meta}
    with atomic_folder(directory, CHECKPOINT_FILES, "training checkpoint") as tmp:
        write_safetensors(tmp / "state.safetensors", arrays)
        (tmp / "state.json").write_text(json.dumps(state), encoding="utf-8")


def _resume(directory: Path, run: str, net, opt, rng: np.random.Generator) -> tuple[int, dict, int, float] | None:
    """Load the state `_save_epoch` left in `directory` into `net`, `opt`, `rng` and torch's generator:
    (epochs done, best weights, best epoch, best score); None when there is none."""
    import torch

    if not (directory / "state.json").exists():
        return None
    state = read_json(directory / "state.json", "training checkpoint")
    if not isinstance(state, dict) or state.get("run") != run:
        raise InputError(f"training checkpoint {str(directory)!r} is from another run (other data, settings or "
                         "seed): delete it to start over")
    arrays = read_safetensors(directory / "state.safetensors", "training checkpoint")

    def part(prefix: str) -> dict:
        return {k[len(prefix):]: torch.from_numpy(v.copy()) for k, v in arrays.items() if k.startswith(prefix)}

    net.load_state_dict(part("net."))
    opt.load_state_dict(unflatten_optimizer(part("opt."), state["optimizer"]))
    torch.set_rng_state(torch.from_numpy(arrays["torch_rng"].copy()))
    rng.bit_generator.state = state["rng"]
    score = state["best_score"]
    return state["epoch"], part("best."), state["best_epoch"], math.nan if score is None else score


def make_bilstm(d_in: int, hidden: int, layers: int):
    """`layers` bidirectional layers as an nn.ModuleList of one unidirectional LSTM per layer and
    direction (layer 0 forward, layer 0 backward, ...), drawing the same initial weights as one
    bidirectional nn.LSTM; `run_bilstm` runs them."""
    from torch import nn

    return nn.ModuleList(nn.LSTM(d_in if i < 2 else 2 * hidden, hidden, batch_first=True) for i in range(2 * layers))


def run_bilstm(rnns, x, lengths: Sequence[int], drop=None):
    """(B, L, d_in) padded -> (B, L, 2 * hidden) through `make_bilstm`'s layers, `drop` (a module, if
    any) between layers. Rows past a sentence's end come out as junk and never reach its own rows."""
    import torch

    pos, n = torch.arange(x.shape[1]), torch.as_tensor(lengths).unsqueeze(1)
    # each sentence read backwards: position i takes n - 1 - i, padding stays at the end (its own inverse)
    back = torch.where(pos < n, n - 1 - pos, pos).unsqueeze(2)  # (B, L, 1)
    h = x
    for k in range(len(rnns) // 2):
        if k and drop is not None:
            h = drop(h)
        # padding follows each sentence in both directions, so no word's state depends on it
        rev = rnns[2 * k + 1](h.gather(1, back.expand_as(h)))[0]
        h = torch.cat([rnns[2 * k](h)[0], rev.gather(1, back.expand_as(rev))], 2)
    return h


PARTS = ("perceptron", "neural")  # a hybrid's two parts, each saved in the subdirectory of its name


def save_hybrid(hybrid, directory: Path) -> dict:
    """Save a hybrid's perceptron and neural part in their subdirectories; the state that finds them."""
    for part in PARTS:
        getattr(hybrid, part).save(directory / part)
    return {"lam": hybrid.lam, "scale": hybrid.scale, **{f"{part}_dir": part for part in PARTS}}


def hybrid_further(cls, sentences: list, config, init):
    """The hybrid `cls` of `init`'s two parts, each trained further on `sentences` by its own ``train``
    with its ``init`` and `config`'s settings for it; `config`'s lam, and `init`'s emission scale so that
    lam weighs the parts as before."""
    if config.perceptron_model:
        raise InputError("a hybrid trained further trains its own perceptron further: give no perceptron model")
    perceptron = type(init.perceptron).train(sentences, config.perceptron, init=init.perceptron)
    neural = type(init.neural).train(sentences, config.neural, init=init.neural)
    return cls(perceptron, neural, config.lam, init.scale)


def load_hybrid(cls, state: dict, directory: Path, load, kinds: tuple[type, type], what: str):
    """The hybrid `cls` saved by `save_hybrid`: its two parts read with `load` (a segmenter's or tagger's
    loader) must be of `kinds` (perceptron, neural), else InputError naming what was found."""
    parts = [load(directory / state[f"{part}_dir"]) for part in PARTS]
    if not all(isinstance(p, k) for p, k in zip(parts, kinds)):
        raise InputError(f"hybrid {what} in {str(directory)!r}: expected a perceptron and a neural {what}, "
                         f"found {parts[0].kind} and {parts[1].kind}")
    return cls(parts[0], parts[1], float(state["lam"]), float(state["scale"]))


def with_weights(net, weights: dict[str, np.ndarray]):
    """`net` holding `weights` (numpy arrays by state-dict name), in eval mode; weights that do not fit
    it (a size mismatch, missing or extra names) are a ValueError naming the first reason."""
    import torch

    try:
        net.load_state_dict({k: torch.from_numpy(v) for k, v in weights.items()})
    except RuntimeError as e:
        reasons = str(e).splitlines()
        raise ValueError(f"weights do not fit the model: {reasons[-1].strip()}") from None
    return net.eval()


def grown(weights: dict[str, np.ndarray], rows: dict[str, int], fills: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`weights` with each table named in `rows` grown to that many rows, every new row a copy of the
    table's `fills` row: a network's start when training goes on with larger vocabularies. A new unit
    that starts as the unknown unit (its fill) is scored as the network scored it before. The arrays
    are copies: training the start leaves `weights` as they were.

    >>> w = grown({"emb": np.array([[0.0], [1.0]]), "bias": np.zeros(2)}, {"emb": 4}, {"emb": np.array([1.0])})
    >>> w["emb"].ravel().tolist(), w["bias"].tolist()
    ([0.0, 1.0, 1.0, 1.0], [0.0, 0.0])
    """
    out = {k: v.copy() for k, v in weights.items()}
    for name, n in rows.items():
        old = out[name]
        if n < len(old):
            raise ValueError(f"{name} has {len(old)} rows: it cannot shrink to {n}")
        more = np.broadcast_to(fills[name], (n - len(old), *old.shape[1:]))
        out[name] = np.concatenate([old, more]).astype(old.dtype)
    return out


def start_at_vectors(weights: list, ids: dict[str, int], sentences: list[list[str]], min_count: int, seed: int,
                     what: str) -> None:
    """Overwrite the rows of the embedding tables `weights` (same width) of the units that get PPMI-SVD
    vectors from `sentences` (`llmlab.text.clusters.word_vectors`), scaled to the default
    initialisation's unit variance per dimension."""
    import torch

    from llmlab.text.clusters import word_vectors

    units, x = word_vectors(sentences, min_count, dims=weights[0].shape[1], seed=seed)
    rows = [(ids[u], i) for i, u in enumerate(units) if u in ids]
    if not rows:
        return
    at, src = map(list, zip(*rows))
    with torch.no_grad():
        for weight in weights:
            weight[at, : x.shape[1]] = torch.from_numpy(x[src] * np.sqrt(x.shape[1])).float()
    log.info("embeddings of %d %s start from PPMI-SVD vectors (%d dims)", len(at), what, x.shape[1])
