"""Probing a frozen model (topic 30): what do its hidden states already know?

The backbone stays frozen; each layer's vectors, pooled over a text's tokens, feed a linear
classifier (multinomial logistic regression with an L2 penalty), and its held-out accuracy says how
linearly readable the label is at that layer. Two poolings: the mean over the text's tokens, and the
last token's vector, which in a causal decoder is the only one that has seen the whole text (the
role BERT's ``[CLS]`` plays in an encoder). A control probe on the same architecture with random
weights shows what token identity alone gives, so the trained model's margin over it is what
pretraining put there.

Layer 0 is the token embeddings; layer i is the output of block i.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from llmlab.core.errors import InputError
from llmlab.core.modes import eval_mode
from llmlab.core.progress import progress
from llmlab.models.scoring import text_start

log = logging.getLogger(__name__)
POOLINGS = ("mean", "last")


def encode_texts(tokenizer, texts: Sequence[str], max_len: int) -> list[list[int]]:
    """Token ids of each text after the context a text starts from (`text_start`: EOS, what every text
    an llmlab model pretrained on followed; BOS would be a token it never saw), cut to `max_len` in all."""
    start = text_start(tokenizer) if getattr(tokenizer, "eos_id", None) is not None else []
    out = [(start + tokenizer.encode(t))[:max_len] for t in texts]
    if any(not ids for ids in out):
        raise InputError("a text gave no tokens to probe (empty text and a tokenizer without a start token)")
    return out


@torch.no_grad()
def layer_features(model, ids: Sequence[Sequence[int]], batch_size: int = 32) -> dict[str, np.ndarray]:
    """{"mean": (L + 1, N, d), "last": (L + 1, N, d)} float32 pooled vectors of every layer for each
    sequence. Sequences are right-padded in batches of similar length: in a causal model no real
    position sees the padding after it, so the padding changes nothing (tested)."""
    layers = list(model.layers)
    outs: list[torch.Tensor] = []
    hooks = [model.embed_tokens.register_forward_hook(lambda m, a, o: outs.append(o))]
    hooks += [b.register_forward_hook(lambda m, a, o: outs.append(o[0] if isinstance(o, tuple) else o))
              for b in layers]
    n, dim = len(ids), model.config.dim
    pooled = {p: np.zeros((len(layers) + 1, n, dim), np.float32) for p in POOLINGS}
    order = np.argsort([len(s) for s in ids], kind="stable")
    device = next(model.parameters()).device
    head = model.lm_head
    model.lm_head = _NoLogits()  # the vocabulary projection is not probed: skip its (B, T, V) work
    try:
        with eval_mode(model):
            for lo in progress(range(0, n, batch_size), desc="features", unit="batch"):
                rows = order[lo:lo + batch_size]
                lengths = torch.tensor([len(ids[r]) for r in rows], device=device)
                batch = torch.zeros(len(rows), int(lengths.max()), dtype=torch.long, device=device)
                for j, r in enumerate(rows):
                    batch[j, : len(ids[r])] = torch.tensor(ids[r])
                outs.clear()
                model(batch)
                real = (torch.arange(batch.shape[1], device=device)[None, :] < lengths[:, None]).float()  # (B, T)
                for k, h in enumerate(outs):  # (B, T, d) per layer
                    h = h.float()
                    pooled["mean"][k, rows] = ((h * real[..., None]).sum(1) / lengths[:, None]).cpu().numpy()
                    pooled["last"][k, rows] = h[torch.arange(len(rows)), lengths - 1].cpu().numpy()
    finally:
        for hk in hooks:
            hk.remove()
        model.lm_head = head
    return pooled


class _NoLogits(torch.nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[..., :0]  # (B, T, 0)


def fit_logistic(x: np.ndarray, y: np.ndarray, c: float = 1.0, max_iter: int = 500) -> tuple[np.ndarray, ...]:
    """Multinomial logistic regression minimising ``sum of cross-entropies + ||W||^2 / (2 c)`` (the
    bias unpenalised) over labels 0..K-1: scikit-learn's ``LogisticRegression(C=c)`` for K > 2 (for
    two classes its binomial fit with ``C = 2 c`` has the same decision rule). Returns (W (K, d), b (K,),
    mean, std): features are standardised with the training mean and std first. L-BFGS in float64."""
    if c <= 0:
        raise InputError(f"the inverse regularisation strength c must be > 0, got {c}")
    if y.dtype.kind not in "iu" or y.min() < 0:
        raise InputError("labels must be integers 0..K-1")
    classes = int(y.max()) + 1
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    xt = torch.tensor((x - mean) / std, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.long)
    w = torch.zeros(classes, x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], lr=1, max_iter=max_iter, tolerance_grad=1e-7, tolerance_change=1e-10,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(xt @ w.T + b, yt, reduction="sum") + (w * w).sum() / (2 * c)
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), b.detach().numpy(), mean, std


def predict(params: tuple[np.ndarray, ...], x: np.ndarray) -> np.ndarray:
    w, b, mean, std = params
    return np.argmax(((x - mean) / std) @ w.T + b, axis=1)


@dataclass(frozen=True)
class ProbeResult:
    accuracy: dict[str, list[float]]  # pooling -> held-out accuracy per layer (0 = embeddings)
    majority: float  # accuracy of always answering the most frequent training label
    n_train: int
    n_test: int


def probe(model, tokenizer, train: Sequence[tuple[str, int]], test: Sequence[tuple[str, int]], c: float = 1.0,
          max_len: int | None = None, batch_size: int = 32) -> ProbeResult:
    """Held-out accuracy of a linear probe on every layer and pooling of a frozen `model`."""
    if not train or not test:
        raise InputError(f"probing needs labelled training and test texts, got {len(train)} and {len(test)}")
    y_train = np.array([y for _, y in train])
    y_test = np.array([y for _, y in test])
    if len(set(y_train.tolist())) < 2:
        raise InputError("the training labels hold one class only: nothing to probe")
    max_len = max_len or model.config.max_seq_len
    feats = [layer_features(model, encode_texts(tokenizer, [t for t, _ in part], max_len), batch_size)
             for part in (train, test)]
    accuracy = {}
    for pooling in POOLINGS:
        accuracy[pooling] = [float((predict(fit_logistic(tr, y_train, c), te) == y_test).mean())
                             for tr, te in zip(feats[0][pooling], feats[1][pooling])]
    majority = float((y_test == np.bincount(y_train).argmax()).mean())
    return ProbeResult(accuracy, majority, len(train), len(test))
