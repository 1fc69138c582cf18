"""The BERT-style encoder: bidirectional attention, padding, segments, MLM + NSP training."""

from dataclasses import replace

import torch

from llmlab.models import ModelConfig
from llmlab.models.encoder import Encoder
from llmlab.train.corruption import mlm_corrupt
from llmlab.train.objectives import mlm_nsp_loss

CFG = ModelConfig(vocab_size=30, dim=32, n_layer=2, n_head=4, n_kv_head=4, max_seq_len=24)


def test_every_position_sees_the_whole_sequence():
    torch.manual_seed(0)
    enc = Encoder(CFG).eval()
    x = torch.randint(5, 30, (1, 10))
    y = x.clone()
    y[0, 9] = (y[0, 9] + 1) % 30
    with torch.no_grad():
        assert not torch.allclose(enc.hidden_states(x)[0, 0], enc.hidden_states(y)[0, 0])


def test_padding_changes_nothing_for_real_tokens():
    torch.manual_seed(1)
    enc = Encoder(CFG).eval()
    x = torch.randint(5, 30, (1, 7))
    padded = torch.cat([x, torch.randint(0, 30, (1, 5))], dim=1)
    with torch.no_grad():
        alone = enc.hidden_states(x)
        in_batch = enc.hidden_states(padded, lengths=torch.tensor([7]))
    torch.testing.assert_close(in_batch[:, :7], alone, atol=1e-5, rtol=1e-5)


def make_batch(g):
    # sentence pairs: "next" pairs continue the counting pattern, random pairs do not
    start = torch.randint(5, 25, (16, 1), generator=g)
    first = (start + torch.arange(6)) % 25 + 5
    is_next = torch.randint(0, 2, (16,), generator=g)
    second = torch.where(is_next[:, None].bool(), (first[:, -1:] - 4 + torch.arange(6)) % 25 + 5,
                         torch.randint(5, 30, (16, 6), generator=g))
    ids = torch.cat([torch.full((16, 1), 1), first, torch.full((16, 1), 2), second], dim=1)  # [CLS] a [SEP] b
    segments = torch.cat([torch.zeros(16, 8, dtype=torch.long), torch.ones(16, 6, dtype=torch.long)], dim=1)
    inputs, labels = mlm_corrupt(ids, 30, mask_id=3, special_ids=(1, 2), p=0.3, generator=g)
    return inputs, labels, segments, is_next


def test_segments_matter_and_training_learns_mlm_and_nsp():
    torch.manual_seed(2)
    enc = Encoder(CFG)
    opt = torch.optim.AdamW(enc.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    held_out = make_batch(torch.Generator().manual_seed(99))

    def held_out_loss():
        with torch.no_grad():
            inputs, labels, segments, is_next = held_out
            return mlm_nsp_loss(*enc(inputs, segments)[:1], labels, enc(inputs, segments)[1], is_next).item()

    before = held_out_loss()
    for _ in range(100):
        inputs, labels, segments, is_next = make_batch(g)
        mlm, nsp = enc(inputs, segments)
        loss = mlm_nsp_loss(mlm, labels, nsp, is_next)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert held_out_loss() < before - 0.6  # from chance (ln 30 + ln 2) towards the pattern
    inputs, _, segments, _ = held_out
    with torch.no_grad():
        assert not torch.allclose(enc.hidden_states(inputs, segments), enc.hidden_states(inputs, 0 * segments))


def test_position_schemes_and_final_norm_follow_the_config():
    """Same weights, other position scheme: other outputs (rope, alibi and none add no parameters).
    Without positions the encoder is order-blind (permuting tokens permutes outputs); ALiBi's bias by
    |distance| makes it mirror-symmetric (reversing the tokens reverses the outputs); RoPE is neither."""
    torch.manual_seed(3)
    x = torch.randint(5, 30, (1, 9))
    perm, rev = torch.randperm(9), torch.arange(8, -1, -1)
    base = Encoder(CFG).eval()
    out = {}
    for position in ("rope", "alibi", "none"):
        enc = Encoder(replace(CFG, position=position)).eval()
        enc.load_state_dict(base.state_dict())
        with torch.no_grad():
            h = out[position] = enc.hidden_states(x)[0]
            permuted, reversed_ = enc.hidden_states(x[:, perm])[0], enc.hidden_states(x[:, rev])[0]
        assert torch.allclose(permuted, h[perm], atol=1e-5) == (position == "none")
        assert torch.allclose(reversed_, h[rev], atol=1e-5) == (position in ("alibi", "none"))
    assert not torch.allclose(out["rope"], out["alibi"]) and not torch.allclose(out["alibi"], out["none"])
    learned = Encoder(replace(CFG, position="learned"))
    mlm, _ = learned(x)
    mlm.sum().backward()
    assert learned.embed_positions.weight.grad is not None  # learned positions are used
    assert isinstance(Encoder(replace(CFG, norm="layernorm")).norm, torch.nn.LayerNorm)
    assert isinstance(Encoder(replace(CFG, norm_position="post")).norm, torch.nn.Identity)
