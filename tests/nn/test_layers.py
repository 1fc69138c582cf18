import math

import pytest
import torch

from llmlab.nn import Attention, RMSNorm, RotaryEmbedding, apply_rope
from llmlab.nn.attention import causal_mask
from llmlab.nn.ffn import SwiGLU


def reference_attention(att: Attention, x, cos, sin):
    """Textbook attention written out: softmax(q k^T / sqrt(d) + causal mask) v, kv heads repeated."""
    B, T, _ = x.shape
    hs, nh, nkv = att.head_dim, att.n_head, att.n_kv_head
    q = att.q_proj(x).view(B, T, nh, hs).transpose(1, 2)
    k = att.k_proj(x).view(B, T, nkv, hs).transpose(1, 2)
    v = att.v_proj(x).view(B, T, nkv, hs).transpose(1, 2)
    q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
    out = torch.zeros(B, nh, T, hs)
    for h in range(nh):
        kh, vh = k[:, h // (nh // nkv)], v[:, h // (nh // nkv)]
        scores = q[:, h] @ kh.transpose(-1, -2) / math.sqrt(hs)
        scores = scores.masked_fill(~torch.ones(T, T, dtype=torch.bool).tril(), float("-inf"))
        out[:, h] = scores.softmax(-1) @ vh
    return att.o_proj(out.transpose(1, 2).reshape(B, T, nh * hs))


@pytest.mark.parametrize("n_head,n_kv_head", [(4, 4), (4, 2), (4, 1)])
def test_attention_matches_the_textbook_formula(n_head, n_kv_head):
    torch.manual_seed(0)
    att = Attention(32, n_head, n_kv_head)
    rope = RotaryEmbedding(32 // n_head, 16)
    x = torch.randn(2, 10, 32)
    cos, sin = rope(torch.arange(10))
    torch.testing.assert_close(att(x, cos, sin), reference_attention(att, x, cos, sin), atol=1e-5, rtol=1e-5)


def test_rope_scores_depend_only_on_distance():
    torch.manual_seed(0)
    rope = RotaryEmbedding(8, 64)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)

    def score(m, n):
        cq, sq = rope(torch.tensor([m]))
        ck, sk = rope(torch.tensor([n]))
        return float((apply_rope(q, cq, sq) * apply_rope(k, ck, sk)).sum())

    assert score(3, 1) == pytest.approx(score(40, 38), abs=1e-5)
    assert score(5, 5) == pytest.approx(float((q * k).sum()), abs=1e-5)  # distance 0: plain dot product
    assert score(3, 1) != pytest.approx(score(3, 2), abs=1e-3)


def test_rope_preserves_norms():
    rope = RotaryEmbedding(16, 32)
    x = torch.randn(2, 3, 32, 16)
    cos, sin = rope(torch.arange(32))
    torch.testing.assert_close(apply_rope(x, cos, sin).norm(dim=-1), x.norm(dim=-1))


def test_rmsnorm_matches_formula():
    norm = RMSNorm(6, eps=1e-5)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 7.0))
    x = torch.randn(3, 6)
    expected = x / torch.sqrt((x * x).mean(-1, keepdim=True) + 1e-5) * torch.arange(1.0, 7.0)
    torch.testing.assert_close(norm(x), expected)


def test_swiglu_matches_formula():
    torch.manual_seed(0)
    f = SwiGLU(8, 12)
    x = torch.randn(4, 8)
    a, b = x @ f.gate_proj.weight.T, x @ f.up_proj.weight.T
    torch.testing.assert_close(f(x), (a * torch.sigmoid(a) * b) @ f.down_proj.weight.T)


def test_causal_mask_with_past():
    m = causal_mask(3, 2)
    assert m.shape == (3, 5)
    assert m.sum(1).tolist() == [3, 4, 5]
