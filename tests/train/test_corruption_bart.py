"""BART denoising transforms (topic 27): invariants of each corruption and the objective switch."""

from collections import Counter

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.train.corruption import (
    DENOISING,
    denoising_pair,
    poisson_spans,
    sentence_permutation,
    text_infilling,
    token_deletion,
    token_masking,
)

MASK, END = 0, 9
IDS = [((i * 7) % 8) + 1 for i in range(200)]  # tokens 1..8, no mask (0) and no sentence end (9)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def is_subsequence(small, big):
    it = iter(big)
    return all(any(x == y for y in it) for x in small)


def test_token_masking_keeps_length_and_only_writes_masks():
    out = token_masking(IDS, MASK, 0.3, gen())
    assert len(out) == len(IDS)
    assert all(o in (t, MASK) for o, t in zip(out, IDS))
    assert 30 < out.count(MASK) < 90


def test_token_deletion_shortens_and_keeps_order():
    out = token_deletion(IDS, 0.3, gen())
    assert 110 < len(out) < 170
    assert is_subsequence(out, IDS)


@pytest.mark.parametrize("seed", range(5))
def test_text_infilling_replaces_each_span_with_one_mask(seed):
    out = text_infilling(IDS, MASK, ratio=0.3, lam=3.0, generator=gen(seed))
    kept = [t for t in out if t != MASK]
    assert len(kept) == len(IDS) - 60  # exactly round(0.3 * 200) tokens hidden
    assert is_subsequence(kept, IDS)
    assert all(not (a == MASK and b == MASK) for a, b in zip(out, out[1:]))  # one mask per span, never two
    assert 1 <= out.count(MASK) < 60  # spans average 3 tokens: far fewer masks than hidden tokens


def test_poisson_spans_have_mean_near_lambda_and_cover_the_budget():
    spans = poisson_spans(30000, 3.0, gen())
    assert sum(spans) == 30000
    assert 2.8 < sum(spans[:-1]) / len(spans[:-1]) < 3.2
    assert 0 in spans  # zero-length spans exist (an inserted mask)


def test_sentence_permutation_preserves_the_multiset_and_the_sentences():
    ids = [1, 2, END, 3, END, 4, 5, 6, END, 7, END]
    out = sentence_permutation(ids, (END,), gen(3))
    assert Counter(out) == Counter(ids) and len(out) == len(ids) and out != ids
    assert sorted(map(tuple, _split(out))) == sorted([(1, 2, END), (3, END), (4, 5, 6, END), (7, END)])


def _split(ids):
    cur, out = [], []
    for t in ids:
        cur.append(t)
        if t == END:
            out.append(cur)
            cur = []
    return out + ([cur] if cur else [])


@pytest.mark.parametrize("objective", DENOISING)
def test_every_objective_is_deterministic_under_a_seed(objective):
    ids = [t if i % 10 else END for i, t in enumerate(IDS)]
    kw = dict(mask_id=MASK, sentinel_ids=list(range(100, 140)), sentence_end_ids=(END,))
    a = denoising_pair(ids, objective, generator=gen(7), **kw)
    b = denoising_pair(ids, objective, generator=gen(7), **kw)
    assert a == b
    c = denoising_pair(ids, objective, generator=gen(8), **kw)
    assert c != a
    if objective != "span":
        assert a[1] == ids  # BART reconstructs the whole original


def test_bart_mix_permutes_then_infills():
    ids = [t if i % 10 else END for i, t in enumerate(IDS)]
    src, tgt = denoising_pair(ids, "bart", mask_id=MASK, sentence_end_ids=(END,), generator=gen(2))
    assert tgt == ids and MASK in src and len([t for t in src if t != MASK]) == len(ids) - 60


def test_missing_options_are_named():
    with pytest.raises(InputError, match="mask_id"):
        denoising_pair(IDS, "infill")
    with pytest.raises(InputError, match="sentence_end_ids"):
        denoising_pair(IDS, "permute")
    with pytest.raises(InputError, match="one of"):
        denoising_pair(IDS, "shuffle")
    with pytest.raises(InputError):
        token_masking(IDS, MASK, 1.5)
