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
    span_corrupt,
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


def _hidden_runs(out, ids):
    """How many tokens each mask of `out` hides, reading `out` as `ids` (distinct tokens) with runs, each
    possibly empty, replaced by one MASK each; None if it is not such an infilling (order broken, two
    masks in one gap, or tokens gone without a mask)."""
    runs, prev, gap_has_mask = [], -1, False
    for t in [*out, None]:  # None: the end of the sequence, as if a kept token at len(ids)
        if t == MASK:
            if gap_has_mask:
                return None
            gap_has_mask = True
            continue
        at = len(ids) if t is None else ids.index(t)
        if at <= prev or (at - prev > 1 and not gap_has_mask):
            return None
        if gap_has_mask:
            runs.append(at - prev - 1)
        prev, gap_has_mask = at, False
    return runs


@pytest.mark.parametrize("ratio", [0.3, 0.8, 0.95])
def test_text_infilling_hides_its_poisson_spans_one_mask_each(ratio):
    ids = list(range(10, 30))
    budget = round(ratio * len(ids))
    at_start = at_end = 0
    for seed in range(40):
        out = text_infilling(ids, MASK, ratio, 3.0, gen(seed))
        # the spans drawn first from the generator; at most one per gap that the budget leaves
        spans = poisson_spans(budget, 3.0, gen(seed))[: len(ids) - budget + 1]
        assert sorted(_hidden_runs(out, ids)) == sorted(spans)
        at_start += out[0] == MASK
        at_end += out[-1] == MASK
    assert at_start and at_end  # a span may sit before the first or after the last kept token


def test_a_zero_probability_corrupts_nothing():
    assert token_masking(IDS, MASK, 0.0, gen()) == IDS
    assert token_deletion(IDS, 0.0, gen()) == IDS
    assert text_infilling(IDS, MASK, 0.0, 3.0, gen()) == IDS
    for f in (lambda: token_deletion(IDS, 1.0), lambda: text_infilling(IDS, MASK, 1.0)):
        with pytest.raises(InputError, match=r"\[0, 1\)"):
            f()


def test_defaults_are_the_papers_rates():
    # T5: 15% noise in spans of mean 3; BART: p = 0.15 token corruption, 30% infilled in Poisson(3) spans
    sentinels, kw = list(range(100, 140)), dict(mask_id=MASK, sentence_end_ids=(END,))
    assert span_corrupt(IDS, sentinels, generator=gen()) == span_corrupt(IDS, sentinels, 0.15, 3.0, gen())
    assert token_masking(IDS, MASK, generator=gen()) == token_masking(IDS, MASK, 0.15, gen())
    assert token_deletion(IDS, generator=gen()) == token_deletion(IDS, 0.15, gen())
    assert poisson_spans(100, generator=gen()) == poisson_spans(100, 3.0, gen())
    assert text_infilling(IDS, MASK, generator=gen()) == text_infilling(IDS, MASK, 0.3, 3.0, gen())
    for objective in ("span", "infill"):
        assert (denoising_pair(IDS, objective, sentinel_ids=sentinels, generator=gen(), **kw)
                == denoising_pair(IDS, objective, sentinel_ids=sentinels, p=0.15, infill_ratio=0.3, lam=3.0,
                                  generator=gen(), **kw))
