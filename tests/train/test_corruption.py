import itertools
from collections import Counter

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.train.corruption import mlm_corrupt, random_spans, span_corrupt


def test_mlm_corruption_follows_80_10_10():
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(5, 1000, (200, 500), generator=g)
    ids[:, 0] = 1  # a special token ([CLS]) in every row
    inputs, labels = mlm_corrupt(ids, vocab_size=1000, mask_id=4, special_ids=(1,), generator=g)
    chosen = labels != -100
    assert not chosen[:, 0].any()  # specials are never chosen
    assert abs(chosen.float().mean().item() - 0.15) < 0.005
    assert torch.equal(labels[chosen], ids[chosen])
    assert torch.equal(inputs[~chosen], ids[~chosen])  # everything else untouched
    masked = (inputs[chosen] == 4).float().mean().item()
    kept = (inputs[chosen] == ids[chosen]).float().mean().item()
    assert abs(masked - 0.8) < 0.01 and abs(kept - 0.1 - 0.1 / 1000) < 0.01  # random draws can hit the original
    assert abs(1 - masked - kept - 0.1) < 0.01


def test_span_corruption_round_trips_and_respects_the_density():
    g = torch.Generator().manual_seed(0)
    sentinels = list(range(1000, 1100))
    total_noise = total = 0
    for n in (10, 37, 100, 256):
        ids = list(range(n))
        inputs, targets = span_corrupt(ids, sentinels, 0.15, 3.0, g)
        # put every hidden span back in place of its sentinel: the original comes back exactly
        spans, cur = {}, None
        for t in targets:
            if t in sentinels:
                cur = t
                spans[cur] = []
            else:
                spans[cur].append(t)
        rebuilt = [tok for t in inputs for tok in (spans[t] if t in sentinels else [t])]
        assert rebuilt == ids
        assert targets[-1] in sentinels and not spans[targets[-1]]
        total_noise += len(targets) - len(spans)
        total += n
    assert abs(total_noise / total - 0.15) < 0.02


def test_random_spans_alternate_and_start_with_a_kept_span():
    mask = random_spans(100, 0.15, 3.0, torch.Generator().manual_seed(1))
    assert not mask[0] and mask.sum() == 15
    starts = int((mask[1:] & ~mask[:-1]).sum())
    assert starts == 5  # round(15 / 3) spans


def test_mlm_probability_outside_0_1_is_refused():
    ids = torch.arange(10)
    for p in (0.0, 1.0, 1.5):
        with pytest.raises(InputError, match="p must be in"):
            mlm_corrupt(ids, vocab_size=10, mask_id=0, p=p)


def _t5_masks(length, n_noise, n_spans):
    """Every mask T5's recipe can draw: n_spans kept runs alternating with n_spans noise runs, kept first,
    all runs non-empty, n_noise noise tokens in all."""
    out = set()
    for mask in itertools.product([False, True], repeat=length):
        runs = [(k, len(list(g))) for k, g in itertools.groupby(mask)]
        if sum(mask) == n_noise and len(runs) == 2 * n_spans and not runs[0][0]:
            out.add(mask)
    return out


def test_random_spans_draw_each_segmentation_of_t5s_recipe_equally_often():
    # 10 tokens, 4 noise in round(4 / 2) = 2 spans: C(5, 1) kept splits x C(3, 1) noise splits = 15 masks
    masks = _t5_masks(10, 4, 2)
    assert len(masks) == 15
    g = torch.Generator().manual_seed(0)
    seen = Counter(tuple(random_spans(10, 0.4, 2.0, g).tolist()) for _ in range(1500))
    assert set(seen) == masks  # T5 segments uniformly: every composition of the counts is possible
    assert all(60 < c < 140 for c in seen.values())  # 100 each expected


def _t5_reference(ids, noise, sentinels):
    """Each run of noise tokens -> one sentinel in the input; the target: each sentinel then its run."""
    inputs, targets, s = [], [], 0
    for is_noise, run in itertools.groupby(zip(ids, noise), key=lambda x: x[1]):
        toks = [t for t, _ in run]
        if is_noise:
            inputs.append(sentinels[s])
            targets += [sentinels[s], *toks]
            s += 1
        else:
            inputs += toks
    return inputs, targets + [sentinels[s]]


@pytest.mark.parametrize("n", [2, 3, 7, 40])
def test_span_corruption_puts_one_sentinel_per_span_in_order(n):
    ids, sentinels = list(range(n)), list(range(1000, 1020))
    for seed in range(20):
        noise = random_spans(n, 0.3, 2.0, torch.Generator().manual_seed(seed)).tolist()
        got = span_corrupt(ids, sentinels, 0.3, 2.0, torch.Generator().manual_seed(seed))
        assert got == _t5_reference(ids, noise, sentinels)


def test_span_corruption_needs_one_sentinel_more_than_spans():
    ids = list(range(40))  # 12 noise tokens in round(12 / 3) = 4 spans: 5 sentinels with the final one
    inputs, targets = span_corrupt(ids, [100, 101, 102, 103, 104], 0.3, 3.0, torch.Generator().manual_seed(0))
    assert targets[-1] == 104 and len(inputs) == 40 - 12 + 4
    with pytest.raises(InputError, match="too few"):
        span_corrupt(ids, [100, 101, 102, 103], 0.3, 3.0, torch.Generator().manual_seed(0))
    with pytest.raises(InputError, match="at least 2"):
        span_corrupt([5], [100, 101], 0.3, 3.0)
