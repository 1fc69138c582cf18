"""The losses of `llmlab.train.objectives` against hand-written negative log-likelihoods."""

import torch

from llmlab.models import CausalLM, ModelConfig
from llmlab.train.objectives import mlm_nsp_loss, moe_aux_loss


def nll(logits, targets):
    """Mean of -log p(target) over the targets that are not -100, written out."""
    logp = logits.log_softmax(-1)
    picked = [-logp[i][t] for i, t in enumerate(targets.tolist()) if t != -100]
    return torch.stack(picked).mean()


def test_mlm_nsp_loss_is_the_masked_nll_plus_the_next_sentence_nll():
    g = torch.Generator().manual_seed(0)
    mlm, nsp = torch.randn(2, 6, 11, generator=g), torch.randn(2, 2, generator=g)
    labels = torch.randint(0, 11, (2, 6), generator=g).masked_fill(torch.rand(2, 6, generator=g) < 0.5, -100)
    is_next = torch.tensor([1, 0])
    masked = nll(mlm.reshape(12, 11), labels.reshape(12))
    torch.testing.assert_close(mlm_nsp_loss(mlm, labels, nsp, is_next), masked + nll(nsp, is_next))
    torch.testing.assert_close(mlm_nsp_loss(mlm, labels), masked)  # RoBERTa-style: no NSP head


def test_moe_aux_loss_is_the_models_routing_loss_or_none():
    cfg = ModelConfig(vocab_size=20, dim=16, n_layer=1, n_head=2, n_kv_head=2, ffn_hidden=16, max_seq_len=8)
    moe = CausalLM(ModelConfig(**{**cfg.__dict__, "n_experts": 4, "moe_top_k": 2}))
    moe(torch.randint(0, 20, (1, 5)))
    assert moe_aux_loss(moe) is not None and torch.equal(moe_aux_loss(moe), moe.moe_loss())
    dense = CausalLM(cfg)
    dense(torch.randint(0, 20, (1, 5)))
    assert moe_aux_loss(dense) is None
    assert moe_aux_loss(torch.nn.Linear(2, 2)) is None  # a model without the method at all
