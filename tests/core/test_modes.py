import pytest
import torch
from torch import nn

from llmlab.core.modes import eval_mode
from llmlab.models import CausalLM
from llmlab.models.config import ModelConfig
from llmlab.train.trainer import evaluate_loss


def net() -> nn.Module:
    return nn.Sequential(nn.Linear(4, 4), nn.Dropout(0.5))


@pytest.mark.parametrize("training", [True, False])
def test_eval_mode_sets_every_submodule_and_restores_the_mode(training):
    m = net().train(training)
    with eval_mode(m) as inside:
        assert inside is m
        assert not any(x.training for x in m.modules())
        x = torch.ones(8, 4)
        assert torch.equal(m(x), m(x))  # dropout off
    assert all(x.training == training for x in m.modules())


def test_eval_mode_restores_when_the_block_raises():
    m = net().train()
    with pytest.raises(RuntimeError, match="boom"), eval_mode(m):
        raise RuntimeError("boom")
    assert all(x.training for x in m.modules())


def test_a_failed_evaluation_leaves_a_training_model_in_training_mode():
    torch.manual_seed(0)
    cfg = ModelConfig(vocab_size=16, dim=16, n_layer=1, n_head=2, n_kv_head=2, max_seq_len=8, dropout=0.1)
    model = CausalLM(cfg).train()
    with pytest.raises(IndexError):  # token 99 is outside the vocabulary of 16
        evaluate_loss(model, torch.tensor([1, 2, 99, 3]), seq_len=4, batch_size=1)
    assert model.training and all(x.training for x in model.modules())
