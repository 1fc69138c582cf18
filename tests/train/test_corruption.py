import torch

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
