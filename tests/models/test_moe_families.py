"""Mixture-of-experts feed-forward layers in the encoder and encoder-decoder families."""

import pytest
import torch

from llmlab.models import ModelConfig
from llmlab.models.encoder import Encoder
from llmlab.models.seq2seq import EncoderDecoder
from llmlab.nn.moe import MoEFeedForward
from llmlab.train.corruption import denoising_pair
from llmlab.train.objectives import causal_lm_loss, mlm_nsp_loss

MOE = ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=4, ffn_hidden=32, max_seq_len=48,
                  n_experts=4, moe_top_k=2, moe_capacity_factor=0.0)


def moe_blocks(layers):
    return [b for b in layers if isinstance(b.mlp, MoEFeedForward)]


def test_dense_configs_have_no_moe_loss():
    dense = ModelConfig(**{**MOE.__dict__, "n_experts": 0})
    enc, ed = Encoder(dense), EncoderDecoder(dense)
    enc(torch.randint(0, 40, (1, 5)))
    ed(torch.randint(0, 40, (1, 5)), torch.randint(0, 40, (1, 4)))
    assert enc.moe_loss() is None and ed.moe_loss() is None


def test_encoder_routes_every_token_and_reports_the_aux_loss():
    torch.manual_seed(0)
    model = Encoder(ModelConfig(**{**MOE.__dict__, "moe_every": 2}))
    assert [isinstance(b.mlp, MoEFeedForward) for b in model.layers] == [False, True]
    idx = torch.randint(0, 40, (2, 7))
    mlm, nsp = model(idx)
    aux = moe_blocks(model.layers)[0].moe_aux
    assert int(aux.tokens_per_expert.sum()) == 2 * 7 * 2  # every token reaches its top-2 experts
    assert float(aux.dropped_fraction) == 0.0
    expected = 0.01 * aux.load_balancing_loss + 0.001 * aux.z_loss  # the config's coefficients
    assert model.moe_loss().item() == pytest.approx(expected.item())
    labels = idx.masked_fill(torch.rand(idx.shape) < 0.5, -100)
    (mlm_nsp_loss(mlm, labels, nsp, torch.tensor([0, 1])) + model.moe_loss()).backward()
    assert moe_blocks(model.layers)[0].mlp.gate.weight.grad.abs().sum() > 0  # the router learns


def test_encoder_decoder_sums_encoder_and_decoder_aux_losses():
    torch.manual_seed(1)
    model = EncoderDecoder(MOE)
    assert len(moe_blocks(model.encoder.layers)) == 2 and len(moe_blocks(model.layers)) == 2
    src, tgt = torch.randint(0, 40, (2, 9)), torch.randint(0, 40, (2, 6))
    model(src, tgt)
    enc = sum(b.moe_aux.loss.item() for b in moe_blocks(model.encoder.layers))
    dec = sum(b.moe_aux.loss.item() for b in moe_blocks(model.layers))
    assert model.moe_loss().item() == pytest.approx(enc + dec, rel=1e-6)
    for b in moe_blocks(model.layers):
        assert int(b.moe_aux.tokens_per_expert.sum()) == 2 * 6 * 2  # decoder routes target tokens


def test_moe_encoder_decoder_learns_bart_denoising():
    torch.manual_seed(2)
    model = EncoderDecoder(MOE)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    BOS, MASK, END = 1, 2, 3
    losses = []
    for _ in range(40):
        ids = [int(t) for t in torch.randint(4, 12, (12,), generator=g)]
        ids[5] = ids[11] = END
        src, tgt = denoising_pair(ids, "bart", mask_id=MASK, sentence_end_ids=(END,), infill_ratio=0.2,
                                  generator=g)
        dec_in = torch.tensor([[BOS] + tgt[:-1]])
        loss = causal_lm_loss(model(torch.tensor([src]), dec_in), torch.tensor([tgt])) + model.moe_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 - 0.5


def test_encoder_padding_takes_no_expert_capacity():
    """With capacity limits, padding routed like tokens would crowd real tokens out of their experts:
    real positions must not depend on what the padding holds, and only real tokens are routed."""
    torch.manual_seed(0)
    model = Encoder(ModelConfig(**{**MOE.__dict__, "moe_capacity_factor": 1.0})).train()
    lengths = torch.tensor([3, 8])
    idx = torch.randint(0, 40, (2, 8))
    other = idx.clone()
    other[0, 3:] = torch.randint(0, 40, (5,))  # different padding, same real tokens
    a, b = model.hidden_states(idx, lengths=lengths), model.hidden_states(other, lengths=lengths)
    torch.testing.assert_close(a[0, :3], b[0, :3])
    torch.testing.assert_close(a[1], b[1])
    for block in moe_blocks(model.layers):
        kept = int(block.moe_aux.tokens_per_expert.sum())
        assert kept <= (3 + 8) * 2 and kept / (1 - float(block.moe_aux.dropped_fraction)) == pytest.approx(22)
