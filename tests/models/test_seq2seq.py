"""The T5-style encoder-decoder: causal target, cross-attention to the source, span-corruption training."""

import torch

from llmlab.models import ModelConfig
from llmlab.models.seq2seq import EncoderDecoder
from llmlab.train.corruption import span_corrupt
from llmlab.train.objectives import causal_lm_loss

CFG = ModelConfig(vocab_size=40, dim=32, n_layer=2, n_head=4, n_kv_head=4, max_seq_len=32)


def test_target_is_causal_and_source_is_seen():
    torch.manual_seed(0)
    model = EncoderDecoder(CFG).eval()
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
