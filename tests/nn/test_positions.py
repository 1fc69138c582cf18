import math

import pytest
import torch
import torch.nn.functional as F

from llmlab.core.errors import InputError
from llmlab.nn.positions import (
    LearnedPositions,
    SinusoidalPositions,
    alibi_bias,
    alibi_slopes,
    sinusoidal_table,
)


def test_sinusoidal_table_matches_the_formula():
    P, d = 50, 12
    table = sinusoidal_table(P, d)
    for p in (0, 1, 7, 49):
        for i in range(d // 2):
            angle = p / 10000 ** (2 * i / d)
            assert float(table[p, 2 * i]) == pytest.approx(math.sin(angle), abs=1e-6)
            assert float(table[p, 2 * i + 1]) == pytest.approx(math.cos(angle), abs=1e-6)


def test_sinusoidal_table_matches_distilbert():
    pytest.importorskip("transformers")
    from transformers.models.distilbert.modeling_distilbert import _create_sinusoidal_embeddings

    out = torch.empty(64, 16)
    _create_sinusoidal_embeddings(64, 16, out)
    torch.testing.assert_close(sinusoidal_table(64, 16), out, atol=1e-6, rtol=1e-6)


def test_sinusoidal_offset_is_a_rotation():
    # PE[p + k] = PE[p] @ M_k for every p, M_k rotating each (sin, cos) pair by k * w_i: the property
    # Vaswani et al. cite for attending by relative position
    d, k = 8, 3
    table = sinusoidal_table(40, d)
    M = torch.zeros(d, d)
    for i in range(d // 2):
        a = k / 10000 ** (2 * i / d)
        M[2 * i:2 * i + 2, 2 * i:2 * i + 2] = torch.tensor([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    torch.testing.assert_close(table[:-k] @ M, table[k:], atol=1e-5, rtol=1e-5)


def test_position_modules_index_their_tables():
    torch.manual_seed(0)
    sin_pos, learned = SinusoidalPositions(8, 16), LearnedPositions(8, 16)
    positions = torch.tensor([3, 0, 15])
    torch.testing.assert_close(sin_pos(positions), sinusoidal_table(16, 8)[positions])
    torch.testing.assert_close(learned(positions), learned.weight[positions])
    assert list(sin_pos.parameters()) == [] and sin_pos.state_dict() == {}
    assert sum(p.numel() for p in learned.parameters()) == 16 * 8
    learned(positions).sum().backward()
    assert learned.weight.grad[positions].abs().sum() > 0 and learned.weight.grad[1].abs().sum() == 0


def test_sinusoidal_rejects_odd_dim():
    with pytest.raises(InputError):
        sinusoidal_table(4, 5)


def test_alibi_slopes_textbook_case():
    assert alibi_slopes(8).tolist() == [2.0 ** -k for k in range(1, 9)]


@pytest.mark.parametrize("n_head", [1, 2, 3, 5, 6, 8, 12, 16, 20, 24, 32, 40])
def test_alibi_slopes_match_bloom(n_head):
    pytest.importorskip("transformers")
    from transformers.models.bloom.modeling_bloom import _get_alibi_slopes

    torch.testing.assert_close(alibi_slopes(n_head), _get_alibi_slopes(n_head, torch.device("cpu")))


@pytest.mark.parametrize("n_head", [4, 6])
def test_alibi_attention_matches_bloom(n_head):
    # BLOOM adds slope * key_position (no query term): softmax is shift invariant per row, so the
    # attention weights must equal ours, which subtract slope * (query - key).
    pytest.importorskip("transformers")
    from transformers.models.bloom.modeling_bloom import build_alibi_tensor

    torch.manual_seed(0)
    T = 7
    scores = torch.randn(n_head, T, T)
    bloom = build_alibi_tensor(torch.ones(1, T), n_head, torch.float32)  # (nh, 1, T)
    causal = torch.full((T, T), float("-inf")).triu(1)
    expected = (scores + bloom + causal).softmax(-1)
    torch.testing.assert_close((scores + alibi_bias(n_head, T)).softmax(-1), expected)


def test_alibi_bias_is_an_sdpa_mask():
    torch.manual_seed(0)
    nh, T, hs = 4, 6, 8
    q, k, v = (torch.randn(2, nh, T, hs) for _ in range(3))
    bias = alibi_bias(nh, T)  # (nh, T, T)
    out = F.scaled_dot_product_attention(q, k, v, attn_mask=bias)
    distance = torch.arange(T)[:, None] - torch.arange(T)[None, :]  # (T, T): i - j
    expected = torch.zeros_like(out)
    for h, slope in enumerate(alibi_slopes(nh).tolist()):
        scores = q[:, h] @ k[:, h].transpose(-1, -2) / math.sqrt(hs) - slope * distance
        scores = scores.masked_fill(distance < 0, float("-inf"))
        expected[:, h] = scores.softmax(-1) @ v[:, h]
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("past,T", [(0, 5), (4, 1), (4, 3), (9, 2)])
def test_alibi_bias_with_a_cache_offset_is_a_slice_of_the_full_bias(past, T):
    full = alibi_bias(6, past + T)
    torch.testing.assert_close(alibi_bias(6, T, past=past), full[:, past:, :])


def test_alibi_bidirectional_bias_is_symmetric_and_causal_bias_hides_the_future():
    both = alibi_bias(3, 5, causal=False)
    torch.testing.assert_close(both, both.transpose(1, 2))
    causal = alibi_bias(3, 5)
    assert torch.isinf(causal).sum() == 3 * 10
    torch.testing.assert_close(causal.tril(), both.tril())
    assert (both <= 0).all() and (both.diagonal(dim1=1, dim2=2) == 0).all()


def test_alibi_rejects_no_heads():
    with pytest.raises(InputError):
        alibi_slopes(0)


def test_the_decoder_adds_sinusoids_at_its_embedding_scale():
    from llmlab.models import CausalLM, ModelConfig

    cfg = ModelConfig(vocab_size=16, dim=8, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=16, position="sinusoidal",
                      init_std=0.05)
    model = CausalLM(cfg)
    positions = torch.arange(16)
    torch.testing.assert_close(model.embed_positions(positions), 0.05 * sinusoidal_table(16, 8))
    torch.testing.assert_close(SinusoidalPositions(8, 16, scale=3.0)(positions), 3.0 * sinusoidal_table(16, 8))
