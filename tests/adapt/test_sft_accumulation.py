"""Gradient accumulation in SFT equals the larger batch: the step's loss is its weighted token losses
summed over all micro-batches and divided by the step's total weight, so micro-batches whose replies are
short do not weigh their tokens more (transformers' num_items_in_batch fix, 4.46)."""

import dataclasses

import pytest
import torch

from llmlab.adapt.batching import pad_batch
from llmlab.adapt.sft import SFT_TRAIN, SFTTrainer
from llmlab.models import CausalLM, ModelConfig
from llmlab.train.objectives import weighted_lm_loss


def conversations() -> list[tuple[list[int], list[int]]]:
    """Four (ids, loss mask) examples with 2, 3, 20 and 25 reply tokens: the first micro-batch of two holds
    5 of the 50, the second 45."""
    g = torch.Generator().manual_seed(0)
    out = []
    for prompt, reply in ((5, 2), (4, 3), (3, 20), (6, 25)):
        out.append((torch.randint(4, 50, (prompt + reply,), generator=g).tolist(), [0] * prompt + [1] * reply))
    return out


class InOrder(SFTTrainer):
    """Micro-batch m of every step is conversations [m*b, (m+1)*b): the same four either way."""

    def picked(self, micro):
        b = self.cfg.batch_size
        return self.examples[micro * b:(micro + 1) * b]


def step(tmp_path, grad_accum, batch_size, packing, prompt_loss_weight):
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=50, dim=32, n_layer=1, n_head=4, max_seq_len=64))
    cfg = dataclasses.replace(SFT_TRAIN, steps=1, batch_size=batch_size, grad_accum=grad_accum, seq_len=32,
                              eval_every=0, device="cpu")
    convs = conversations()
    t = InOrder(model, cfg, convs, convs, tmp_path / f"{grad_accum}-{packing}", pad_id=0,
                prompt_loss_weight=prompt_loss_weight, packing=packing)
    loss = t.forward_backward()
    return loss, {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("prompt_loss_weight", [0.0, 0.3])
@pytest.mark.parametrize("packing", [False, True])
def test_two_micro_batches_of_two_equal_one_batch_of_four(tmp_path, packing, prompt_loss_weight):
    loss1, whole = step(tmp_path, 1, 4, packing, prompt_loss_weight)
    loss2, accumulated = step(tmp_path, 2, 2, packing, prompt_loss_weight)
    assert loss2 == pytest.approx(loss1, rel=1e-6)  # the logged loss: the step's weighted token mean
    for k in whole:
        assert whole[k].abs().sum() > 0, k
        torch.testing.assert_close(accumulated[k], whole[k], rtol=0, atol=1e-6, msg=k)
    # and that batch of four is the plain weighted loss over all four conversations
    torch.manual_seed(0)
    model = CausalLM(ModelConfig(vocab_size=50, dim=32, n_layer=1, n_head=4, max_seq_len=64))
    x, y, w = pad_batch(conversations(), 0, prompt_loss_weight)
    with torch.no_grad():
        assert float(weighted_lm_loss(model(x), y, w)) == pytest.approx(loss1, rel=1e-6)
