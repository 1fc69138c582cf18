"""The T5-style encoder-decoder: causal target, cross-attention to the source, span-corruption training."""

from dataclasses import replace

import pytest
import torch

from llmlab.models import ModelConfig
from llmlab.models.seq2seq import EncoderDecoder
from llmlab.train.corruption import span_corrupt
from llmlab.train.objectives import causal_lm_loss

CFG = ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=4, max_seq_len=32)


VARIANTS = [{}, {"position": "alibi"}, {"position": "learned"}, {"position": "sinusoidal"}, {"position": "none"},
            {"norm": "layernorm", "norm_position": "post", "ffn_kind": "gelu"}, {"dropout": 0.1}]


@pytest.mark.parametrize("variant", VARIANTS, ids=str)
def test_target_is_causal_and_source_is_seen(variant):
    torch.manual_seed(0)
    model = EncoderDecoder(replace(CFG, **variant)).eval()
    src, tgt = torch.randint(4, 40, (1, 10)), torch.randint(4, 40, (1, 8))
    later_tgt, other_src = tgt.clone(), src.clone()
    later_tgt[0, 5] = (tgt[0, 5] + 1) % 40
    other_src[0, 9] = (src[0, 9] + 1) % 40
    with torch.no_grad():
        base = model(src, tgt)
        torch.testing.assert_close(model(src, later_tgt)[:, :5], base[:, :5])  # no peeking ahead
        assert not torch.allclose(model(other_src, tgt)[:, 0], base[:, 0])  # the first step sees all the source


def test_source_padding_changes_nothing():
    torch.manual_seed(1)
    model = EncoderDecoder(CFG).eval()
    src, tgt = torch.randint(4, 40, (1, 7)), torch.randint(4, 40, (1, 5))
    padded = torch.cat([src, torch.randint(0, 40, (1, 4))], dim=1)
    with torch.no_grad():
        torch.testing.assert_close(model(padded, tgt, src_lengths=torch.tensor([7])), model(src, tgt),
                                   atol=1e-5, rtol=1e-5)


def test_span_corruption_training_learns_to_fill_spans():
    torch.manual_seed(2)
    model = EncoderDecoder(CFG)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    sentinels, bos = list(range(30, 40)), 1

    def batch():
        pairs = []
        for _ in range(16):
            start = int(torch.randint(4, 30, (1,), generator=g))
            ids = [(start + i - 4) % 26 + 4 for i in range(20)]  # counting: spans are predictable
            pairs.append(span_corrupt(ids, sentinels, 0.15, 2.0, g))
        S, T = max(len(s) for s, _ in pairs), max(len(t) for _, t in pairs)
        src = torch.tensor([s + [0] * (S - len(s)) for s, _ in pairs])
        tgt = torch.tensor([[bos] + t + [0] * (T - len(t)) for _, t in pairs])
        labels = torch.tensor([t + [-100] * (T - len(t) + 1) for _, t in pairs])
        return src, torch.tensor([len(s) for s, _ in pairs]), tgt, labels

    held_out = batch()

    def loss_on(b):
        src, lengths, tgt, labels = b
        return causal_lm_loss(model(src, tgt, lengths), labels)

    with torch.no_grad():
        before = loss_on(held_out).item()
    for _ in range(80):
        loss = loss_on(batch())
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert loss_on(held_out).item() < before / 2


def test_config_choices_reach_the_decoder_side():
    """Same weights, other positions: other target logits; norms and FFN kind as configured."""
    torch.manual_seed(4)
    src, tgt = torch.randint(4, 40, (1, 6)), torch.randint(4, 40, (1, 7))
    base = EncoderDecoder(CFG).eval()
    outs = []
    for position in ("rope", "alibi", "none"):
        model = EncoderDecoder(replace(CFG, position=position)).eval()
        model.load_state_dict(base.state_dict())
        with torch.no_grad():
            outs.append(model(src, tgt))
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    other = EncoderDecoder(replace(CFG, norm="layernorm", ffn_kind="gelu", norm_position="post"))
    block = other.layers[0]
    assert isinstance(block.self_norm, torch.nn.LayerNorm) and isinstance(other.norm, torch.nn.Identity)
    assert (block.mlp.kind, base.layers[0].mlp.kind) == ("gelu", "swiglu")


def test_targets_past_the_context_are_a_clear_error_and_greedy_stops_there():
    torch.manual_seed(5)
    model = EncoderDecoder(replace(CFG, max_seq_len=8)).eval()
    src = torch.randint(4, 40, (1, 5))
    with pytest.raises(ValueError, match="beyond the context length 8"):
        model(src, torch.randint(4, 40, (1, 9)))
    assert len(model.greedy(src, 1, 50)) == 7  # the start token and 7 more fill the context
