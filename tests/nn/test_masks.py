import math

import pytest
import torch
import torch.nn.functional as F

from llmlab.core.errors import InputError
from llmlab.nn import attention
from llmlab.nn.masks import (
    bidirectional_mask,
    causal_mask,
    combine_masks,
    cross_mask,
    left_padded_mask,
    padding_mask,
    prefix_lm_mask,
)


def brute_prefix(prefix_len: int, T: int, past: int = 0) -> torch.Tensor:
    """The definition, one entry at a time: key k is visible from query position q iff k < prefix or k <= q."""
    m = torch.zeros(T, past + T, dtype=torch.bool)
    for i in range(T):
        q = past + i
        for k in range(past + T):
            m[i, k] = k < prefix_len or k <= q
    return m


def softmax_reference(q, k, v, mask):
    """softmax(q k^T / sqrt(d), masked keys -> -inf) v, written out."""
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(dim=-1) @ v


def qkv(B=2, nh=2, T=6, S=None, hs=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    S = T if S is None else S
    return (torch.randn(B, nh, T, hs, generator=g), torch.randn(B, nh, S, hs, generator=g),
            torch.randn(B, nh, S, hs, generator=g))


def sdpa(q, k, v, mask):
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask)


@pytest.mark.parametrize("T,past", [(1, 0), (5, 0), (3, 4)])
def test_causal_mask_is_the_lower_triangle_after_the_past(T, past):
    m = causal_mask(T, past)
    for i in range(T):
        assert m[i].tolist() == [k <= past + i for k in range(past + T)]
    torch.testing.assert_close(m, attention.causal_mask(T, past))  # same rule as Attention's own


def test_causal_never_sees_the_future():
    q, k, v = qkv(T=7)
    y = sdpa(q, k, v, causal_mask(7))
    k2, v2 = k.clone(), v.clone()
    k2[:, :, 4:] += 5.0  # change keys and values from position 4 on
    v2[:, :, 4:] -= 3.0
    y2 = sdpa(q, k2, v2, causal_mask(7))
    torch.testing.assert_close(y[:, :, :4], y2[:, :, :4])  # positions 0..3 cannot tell
    assert not torch.allclose(y[:, :, 4:], y2[:, :, 4:])
    torch.testing.assert_close(y, F.scaled_dot_product_attention(q, k, v, is_causal=True))


@pytest.mark.parametrize("prefix_len,T,past", [(0, 5, 0), (3, 5, 0), (5, 5, 0), (2, 3, 4), (6, 2, 5)])
def test_prefix_lm_mask_matches_the_brute_force_definition(prefix_len, T, past):
    assert torch.equal(prefix_lm_mask(prefix_len, T, past), brute_prefix(prefix_len, T, past))


def test_prefix_lm_edge_cases_are_causal_and_bidirectional():
    assert torch.equal(prefix_lm_mask(0, 6), causal_mask(6))
    assert torch.equal(prefix_lm_mask(1, 6), causal_mask(6))  # position 0 sees itself under causal too
    assert torch.equal(prefix_lm_mask(6, 6), bidirectional_mask(6))


def test_per_batch_prefix_lengths_stack_the_int_masks():
    lengths = torch.tensor([0, 2, 5])
    m = prefix_lm_mask(lengths, 5)
    assert m.shape == (3, 1, 5, 5)
    for b, n in enumerate(lengths.tolist()):
        assert torch.equal(m[b, 0], brute_prefix(n, 5))


def test_prefix_sees_its_whole_prefix_and_not_the_future_after_it():
    P, T = 3, 7
    q, k, v = qkv(T=T, seed=1)
    mask = prefix_lm_mask(P, T)
    y = sdpa(q, k, v, mask)
    v2 = v.clone()
    v2[:, :, P - 1] += 1.0  # the last prefix token
    assert not torch.allclose(sdpa(q, k, v2, mask)[:, :, 0], y[:, :, 0])  # position 0 sees it
    v3 = v.clone()
    v3[:, :, 5:] += 1.0  # target tokens from position 5 on
    torch.testing.assert_close(sdpa(q, k, v3, mask)[:, :, :5], y[:, :, :5])  # earlier positions cannot tell


@pytest.mark.parametrize("left", [False, True])
def test_padding_keys_are_never_attended(left):
    lengths = torch.tensor([6, 3])
    q, k, v = qkv(T=6, seed=2)
    mask = padding_mask(lengths, 6, left=left)
    y = sdpa(q, k, v, mask)
    pad = ~mask[:, 0, 0]  # (B, S) True at padding
    k2, v2 = k.clone(), v.clone()
    k2[pad[:, None].expand_as(k2[..., 0])] = 100.0  # garbage in padded keys and values
    v2[pad[:, None].expand_as(v2[..., 0])] = -100.0
    torch.testing.assert_close(sdpa(q, k2, v2, mask), y)
    assert mask.shape == (2, 1, 1, 6) and mask.sum().item() == 9


def test_padding_mask_agrees_with_sdpa_on_a_truncated_batch():
    q, k, v = qkv(B=1, T=5, seed=3)
    y = sdpa(q, k, v, combine_masks(causal_mask(5), padding_mask(torch.tensor([3]), 5)))
    torch.testing.assert_close(y[:, :, :3], sdpa(q[:, :, :3], k[:, :, :3], v[:, :, :3], causal_mask(3)))


@pytest.mark.parametrize("T", [1, 3, 5])
def test_left_padded_mask_matches_its_definition(T):
    """Key s is visible from query slot q iff s <= q and s is real, or s is q itself (a padding query then
    still sees one key); checked entry by entry."""
    real = torch.tensor([[False, False, True, True, True], [True, True, True, True, True],
                         [True, False, False, True, True]])  # the last: a soft prompt's slot, then padding
    mask = left_padded_mask(real, T)
    B, S = real.shape
    assert mask.shape == (B, 1, T, S)
    for b in range(B):
        for i in range(T):
            q = S - T + i
            for s in range(S):
                assert bool(mask[b, 0, i, s]) == ((s <= q and bool(real[b, s])) or s == q)


def test_combining_masks_is_elementwise_and_broadcasts():
    lengths = torch.tensor([4, 2])
    m = combine_masks(prefix_lm_mask(2, 4), padding_mask(lengths, 4))
    assert m.shape == (2, 1, 4, 4)
    for b in range(2):
        for i in range(4):
            for j in range(4):
                assert m[b, 0, i, j] == ((j < 2 or j <= i) and j < lengths[b])


def test_cross_mask_hides_only_encoder_padding():
    assert torch.equal(cross_mask(2, 5), torch.ones(2, 5, dtype=torch.bool))
    m = cross_mask(3, 5, torch.tensor([5, 1]))
    assert m.shape == (2, 1, 3, 5)
    assert m[0].all() and m[1, 0, :, :1].all() and not m[1, 0, :, 1:].any()


@pytest.mark.parametrize("name", ["causal", "bidirectional", "prefix", "prefix_batched", "cross", "causal_pad"])
def test_sdpa_under_each_mask_equals_the_softmax_reference(name):
    T, S = 6, 6
    masks = {
        "causal": causal_mask(T),
        "bidirectional": bidirectional_mask(T),
        "prefix": prefix_lm_mask(2, T),
        "prefix_batched": prefix_lm_mask(torch.tensor([1, 4]), T),
        "cross": cross_mask(T, S + 3, torch.tensor([9, 4])),
        "causal_pad": combine_masks(causal_mask(T), padding_mask(torch.tensor([6, 4]), S)),
    }
    mask = masks[name]
    q, k, v = qkv(T=T, S=mask.shape[-1], seed=4)
    y = sdpa(q, k, v, mask)
    torch.testing.assert_close(y, softmax_reference(q, k, v, mask), atol=1e-5, rtol=1e-5)


def test_bad_lengths_are_rejected():
    with pytest.raises(InputError):
        prefix_lm_mask(7, 5)
    with pytest.raises(InputError):
        prefix_lm_mask(torch.tensor([1, -1]), 5)
    with pytest.raises(InputError):
        padding_mask(torch.tensor([2, 6]), 5)
    with pytest.raises(InputError):
        padding_mask(torch.tensor([[2]]), 5)
    with pytest.raises(InputError):
        combine_masks()


def test_matches_hf_masking_utils_for_prefix_padding_and_cached_causal():
    mu = pytest.importorskip("transformers.masking_utils")
    prefix, lengths, T = torch.tensor([2, 4, 0]), torch.tensor([6, 5, 3]), 6
    prefix_fn = mu.or_masks(mu.causal_mask_function, lambda b, h, q, kv: kv < prefix[b])
    hf = mu.sdpa_mask(batch_size=3, q_length=T, kv_length=T, mask_function=prefix_fn,
                      attention_mask=padding_mask(lengths, T)[:, 0, 0].long(), allow_is_causal_skip=False)
    assert torch.equal(combine_masks(prefix_lm_mask(prefix, T), padding_mask(lengths, T)), hf)
    hf = mu.sdpa_mask(batch_size=1, q_length=3, kv_length=7, q_offset=4, allow_is_causal_skip=False)
    assert torch.equal(causal_mask(3, past=4), hf[0, 0])
