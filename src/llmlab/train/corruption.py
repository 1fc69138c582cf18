"""Input corruption for the non-causal objectives: BERT's masked LM (topic 26), T5's span corruption and
BART's denoising transforms (topic 27). Pure functions of token ids and a generator; the losses are then
ordinary cross-entropy on the returned labels or targets.

BART (Lewis et al. 2020) corrupts the encoder input and asks the decoder for the original sequence:
token masking, token deletion, text infilling (Poisson(3)-long spans, each replaced by a single mask, so
the model must also guess how many tokens are missing) and sentence permutation. `denoising_pair` picks
one of them, T5's span corruption, or "bart" (infilling + permutation, the paper's best mix) by name.
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError


def mlm_corrupt(ids: torch.Tensor, vocab_size: int, mask_id: int, special_ids: tuple[int, ...] = (),
                p: float = 0.15, generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT masking: choose each non-special token with probability `p`; of those, 80% become
    `mask_id`, 10% a random token, 10% stay. Returns (inputs, labels); labels are -100 where the token
    was not chosen, so only chosen positions are predicted."""
    if not 0 < p < 1:
        raise InputError(f"p must be in (0, 1), got {p}")
    special = torch.zeros_like(ids, dtype=torch.bool)
    for s in special_ids:
        special |= ids == s
    chosen = (torch.rand(ids.shape, generator=generator) < p) & ~special
    action = torch.rand(ids.shape, generator=generator)
    inputs = ids.clone()
    inputs[chosen & (action < 0.8)] = mask_id
    randomize = chosen & (action >= 0.8) & (action < 0.9)
    inputs[randomize] = torch.randint(0, vocab_size, ids.shape, generator=generator)[randomize]
    labels = ids.masked_fill(~chosen, -100)
    return inputs, labels


def random_spans(length: int, noise_density: float, mean_span: float,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    """Boolean (length,) noise mask with round(length * density) noise tokens in spans of mean length
    `mean_span`, alternating with kept spans, starting with a kept one (the T5 recipe).

    >>> random_spans(20, 0.15, 3.0, torch.Generator().manual_seed(0)).sum().item()
    3
    """
    n_noise = max(1, min(length - 1, round(length * noise_density)))
    n_spans = max(1, min(n_noise, round(n_noise / mean_span)))

    def split(total: int) -> list[int]:  # `total` items into n_spans non-empty parts, at random
        cuts = torch.randperm(total - 1, generator=generator)[: n_spans - 1].sort().values + 1
        edges = [0, *cuts.tolist(), total]
        return [b - a for a, b in zip(edges, edges[1:])]

    mask = []
    for keep, noise in zip(split(length - n_noise), split(n_noise)):
        mask += [False] * keep + [True] * noise
    return torch.tensor(mask)


def span_corrupt(ids: list[int], sentinel_ids: list[int], noise_density: float = 0.15, mean_span: float = 3.0,
                 generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """T5 span corruption: each noise span is replaced by one sentinel in the encoder input; the
    target lists each sentinel followed by the tokens it hid (and a final sentinel).

    `a b c d e` with span `c d` -> input `a b <s0> e`, target `<s0> c d <s1>`.
    """
    if len(ids) < 2:
        raise InputError("span corruption needs at least 2 tokens")
    noise = random_spans(len(ids), noise_density, mean_span, generator).tolist()
    inputs, targets, s = [], [], 0
    for i, (tok, is_noise) in enumerate(zip(ids, noise)):
        starts = is_noise and (i == 0 or not noise[i - 1])
        if starts:
            if s >= len(sentinel_ids) - 1:
                raise InputError(f"{len(sentinel_ids)} sentinels are too few for this many spans")
            inputs.append(sentinel_ids[s])
            targets.append(sentinel_ids[s])
            s += 1
        (targets if is_noise else inputs).append(tok)
    targets.append(sentinel_ids[s])
    return inputs, targets


DENOISING = ("span", "mask", "delete", "infill", "permute", "bart")


def token_masking(ids: list[int], mask_id: int, p: float = 0.15, generator: torch.Generator | None = None) -> list[int]:
    """BART token masking: each token becomes `mask_id` with probability `p`; the length is kept."""
    _check_p(p)
    hit = (torch.rand(len(ids), generator=generator) < p).tolist()
    return [mask_id if h else t for t, h in zip(ids, hit)]


def token_deletion(ids: list[int], p: float = 0.15, generator: torch.Generator | None = None) -> list[int]:
    """BART token deletion: each token is dropped with probability `p` (the model must find where)."""
    _check_p(p)
    hit = (torch.rand(len(ids), generator=generator) < p).tolist()
    return [t for t, h in zip(ids, hit) if not h]


def poisson_spans(n_tokens: int, lam: float = 3.0, generator: torch.Generator | None = None) -> list[int]:
    """Span lengths drawn from Poisson(lam) until they cover `n_tokens` (the last one cut to fit).

    Zero-length spans are kept: text infilling inserts a mask there, hiding nothing.

    >>> sum(poisson_spans(10, 3.0, torch.Generator().manual_seed(0)))
    10
    """
    spans, total = [], 0
    rate = torch.tensor([float(lam)])
    while total < n_tokens:
        k = min(int(torch.poisson(rate, generator=generator)), n_tokens - total)
        spans.append(k)
        total += k
    return spans


def text_infilling(ids: list[int], mask_id: int, ratio: float = 0.3, lam: float = 3.0,
                   generator: torch.Generator | None = None) -> list[int]:
    """BART text infilling: hide round(ratio * len) tokens in Poisson(lam) spans, each span (even an empty
    one) replaced by one `mask_id`. Spans sit in distinct gaps between kept tokens, so masks never touch.

    `a b c d e f` with spans [2, 0] in gaps 1 and 3 -> `a <m> d <m> e f` (b c hidden, one mask inserted).
    """
    _check_p(ratio)
    n_hide = round(ratio * len(ids))
    spans = poisson_spans(n_hide, lam, generator) if n_hide else []
    n_keep = len(ids) - n_hide
    spans = spans[: n_keep + 1]  # at most one span per gap between kept tokens
    n_hide = sum(spans)  # (only changes if spans were dropped above)
    n_keep = len(ids) - n_hide
    gaps = sorted(torch.randperm(n_keep + 1, generator=generator)[: len(spans)].tolist())  # gap g: before kept g
    order = torch.randperm(len(spans), generator=generator).tolist()  # which span goes to which gap
    span_at = {g: spans[i] for g, i in zip(gaps, order)}
    out, pos = [], 0
    for g in range(n_keep + 1):
        if g in span_at:
            out.append(mask_id)
            pos += span_at[g]  # skip the hidden tokens
        if g < n_keep:
            out.append(ids[pos])
            pos += 1
    return out


def sentence_permutation(ids: list[int], sentence_end_ids: tuple[int, ...],
                         generator: torch.Generator | None = None) -> list[int]:
    """BART sentence permutation: split after every sentence-final token (e.g. the ids of 。！？) and
    shuffle the sentences; a trailing piece without an end token counts as a sentence.

    >>> sentence_permutation([1, 9, 2, 9, 3], (9,), torch.Generator().manual_seed(1))
    [2, 9, 3, 1, 9]
    """
    ends = set(sentence_end_ids)
    sentences, cur = [], []
    for t in ids:
        cur.append(t)
        if t in ends:
            sentences.append(cur)
            cur = []
    if cur:
        sentences.append(cur)
    order = torch.randperm(len(sentences), generator=generator).tolist()
    return [t for i in order for t in sentences[i]]


def denoising_pair(ids: list[int], objective: str, *, mask_id: int | None = None,
                   sentinel_ids: list[int] | None = None, sentence_end_ids: tuple[int, ...] = (),
                   p: float = 0.15, infill_ratio: float = 0.3, lam: float = 3.0,
                   generator: torch.Generator | None = None) -> tuple[list[int], list[int]]:
    """(encoder input, decoder target) for an encoder-decoder objective named in `DENOISING`.

    "span" is T5's (noise density `p`, mean span `lam`; target: sentinels and the hidden spans). The BART
    kinds reconstruct all of `ids`: "mask" and "delete" hit each token with probability `p`, "infill"
    hides `infill_ratio` of the tokens in Poisson(`lam`) spans, "bart" permutes sentences then infills.
    """
    if objective not in DENOISING:
        raise InputError(f"denoising objective must be one of {DENOISING}, got {objective!r}")
    if objective == "span":
        if not sentinel_ids:
            raise InputError("span corruption needs sentinel_ids")
        return span_corrupt(ids, sentinel_ids, p, lam, generator)
    if objective in ("mask", "infill", "bart") and mask_id is None:
        raise InputError(f"denoising objective {objective!r} needs a mask_id")
    if objective in ("permute", "bart") and not sentence_end_ids:
        raise InputError(f"denoising objective {objective!r} needs sentence_end_ids")
    if objective == "mask":
        return token_masking(ids, mask_id, p, generator), list(ids)
    if objective == "delete":
        return token_deletion(ids, p, generator), list(ids)
    if objective == "infill":
        return text_infilling(ids, mask_id, infill_ratio, lam, generator), list(ids)
    permuted = sentence_permutation(ids, sentence_end_ids, generator)
    if objective == "permute":
        return permuted, list(ids)
    return text_infilling(permuted, mask_id, infill_ratio, lam, generator), list(ids)


def _check_p(p: float) -> None:
    if not 0 <= p < 1:
        raise InputError(f"corruption probability must be in [0, 1), got {p}")
