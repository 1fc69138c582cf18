"""Packed rows (padding-free batching): documents concatenated in one row, told apart by `segments`, get
exactly the logits (and gradients) each gets alone, at every position scheme, with grouped-query heads;
what cannot be packed is refused by name."""

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig
from llmlab.models.config import POSITIONS
from llmlab.nn.masks import segment_mask
from llmlab.nn.positions import segment_positions

BASE = dict(vocab_size=50, dim=32, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=32)
CONFIGS = {p: ModelConfig(**BASE, position=p) for p in POSITIONS} | {  # every position kind, and:
    "mqa-untied": ModelConfig(**{**BASE, "n_kv_head": 1}, tie_embeddings=False),
    # dynamic NTK within its trained length is plain RoPE, packed or not
    "dynamic": ModelConfig(**BASE, rope_scaling="dynamic", rope_factor=2.0, rope_original_max_seq_len=24),
}
ROWS = [[5, 3, 7, 2], [9, 1, 6]]  # document lengths per row (the last of row 0 stands for padding)


def packed(lengths_per_row, vocab, seed=0):
    """Random documents, and the rows that pack them: ids (B, T) and segments (B, T), rows right-padded
    with a segment of their own."""
    g = torch.Generator().manual_seed(seed)
    docs = [[torch.randint(0, vocab, (n,), generator=g) for n in row] for row in lengths_per_row]
    T = max(sum(row) for row in lengths_per_row)
    ids = torch.zeros(len(docs), T, dtype=torch.long)
    seg = torch.full((len(docs), T), len(max(lengths_per_row, key=len)), dtype=torch.long)
    for b, row in enumerate(docs):
        ids[b, :sum(map(len, row))] = torch.cat(row)
        seg[b, :sum(map(len, row))] = torch.cat([torch.full((len(d),), i) for i, d in enumerate(row)])
    return docs, ids, seg


@pytest.mark.parametrize("name", CONFIGS)
def test_a_packed_row_gives_each_document_its_logits_alone(name):
    torch.manual_seed(0)
    model = CausalLM(CONFIGS[name]).eval()
    docs, ids, seg = packed(ROWS, model.config.vocab_size)
    with torch.no_grad():
        logits = model(ids, segments=seg)  # (B, T, V)
        for b, row in enumerate(docs):
            at = 0
            for d in row:
                alone = model(d[None])[0]  # (n, V)
                assert torch.allclose(logits[b, at:at + len(d)], alone, atol=1e-5), (name, b, at)
                at += len(d)
        # the same ids without segments read as one sequence: the later documents' logits change
        assert not torch.allclose(model(ids)[0, 5:8], logits[0, 5:8], atol=1e-3)


@pytest.mark.parametrize("name", ["rope", "learned"])
def test_packed_gradients_equal_the_sum_over_documents_alone(name):
    torch.manual_seed(1)
    model = CausalLM(CONFIGS[name])
    docs, ids, seg = packed([[6, 4], [7, 3]], model.config.vocab_size, seed=1)  # full rows: no padding
    model(ids, segments=seg).square().mean(-1).sum().backward()
    packed_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    for d in (d for row in docs for d in row):
        model(d[None]).square().mean(-1).sum().backward()
    for p, g in zip(model.parameters(), packed_grads):
        assert torch.allclose(p.grad, g, atol=1e-5)


def test_segment_ids_need_only_change_at_boundaries():
    seg = torch.tensor([[4, 4, 9, 9, 9, 4]])
    assert segment_positions(seg).tolist() == [[0, 1, 0, 1, 2, 0]]
    mask = segment_mask(seg)[0, 0]  # (T, T)
    assert not mask[5, :5].any() and mask[5, 5]  # the last 4 is a new document, not the first one's continuation
    assert mask[4, 2:5].all() and not mask[4, :2].any()


def test_what_cannot_be_packed_is_refused():
    model = CausalLM(CONFIGS["rope"])
    ids = torch.zeros(1, 6, dtype=torch.long)
    seg = torch.zeros(1, 6, dtype=torch.long)
    with pytest.raises(InputError, match="shape of the token ids"):
        model(ids, segments=seg[:, :5])
    with pytest.raises(InputError, match="integer tensor"):
        model(ids, segments=seg.float())
    with pytest.raises(InputError, match="no cache or mask"):
        model(ids, cache=model.new_cache(1), segments=seg)
    dynamic = CausalLM(CONFIGS["dynamic"])  # trained length 24: a 30-token row would need per-document frequencies
    with pytest.raises(InputError, match="dynamic NTK"):
        dynamic(torch.zeros(1, 30, dtype=torch.long), segments=torch.zeros(1, 30, dtype=torch.long))


def test_without_segments_the_forward_is_unchanged():
    torch.manual_seed(2)
    model = CausalLM(CONFIGS["rope"]).eval()
    ids = torch.randint(0, 50, (2, 9))
    with torch.no_grad():  # one document per row: the same logits as the plain causal pass
        assert torch.allclose(model(ids, segments=torch.zeros_like(ids)), model(ids), atol=1e-6)
