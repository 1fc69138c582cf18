"""Preference trainers (DPO, KTO, the reward model) train with dropout off, as TRL's do: on a model with
dropout, the first step's policy is still its reference (every implicit reward 0, DPO's loss log 2, KTO's 1/2)
and a reward model's training scores are the ones it gives when used."""

import dataclasses
import math
import random

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.models import CausalLM, ModelConfig
from llmlab.rl.dpo import DPOTrainer, dpo_loss, reference_table
from llmlab.rl.dpo_config import DPO_TRAIN
from llmlab.rl.kto import KTOData, KTOTrainer, reference_logps
from llmlab.rl.reward_config import RM_TRAIN
from llmlab.rl.reward_model import make_reward_model, preference_loss
from llmlab.rl.reward_trainer import RewardTrainer, score_pairs

# one step, and a rate too small to matter: the step's record is the loss before any update
ONE_STEP = dict(steps=1, lr=1e-9, min_lr=0.0, warmup_steps=0, eval_every=0, checkpoint_every=0, log_every=1)


def dropout_model(chat_tok, seed=0):
    torch.manual_seed(seed)
    return CausalLM(ModelConfig(vocab_size=chat_tok.vocab_size, dim=32, n_layer=1, n_head=2, n_kv_head=2,
                                max_seq_len=32, dropout=0.3))


def sums(prompt, chat_tok, end, n, seed=0):
    """(prompt, right answer, the answer with a digit too many) of 2-digit sums."""
    rng = random.Random(seed)
    out = []
    for _ in range(n):
        a, b = rng.randint(10, 49), rng.randint(10, 49)
        s = str(a + b)
        out.append((prompt(f"{a}+{b}="), chat_tok.encode(s) + [end], chat_tok.encode(s + "7") + [end]))
    return out


@pytest.mark.parametrize("loss", ["sigmoid", "hinge", "ipo"])
def test_dpo_starts_with_the_policy_as_its_reference(chat_tok, prompt, end, tmp_path, loss):
    model = dropout_model(chat_tok)
    pairs = sums(prompt, chat_tok, end, 16)
    ref = reference_table(model, pairs, chat_tok.pad_id, average=loss == "ipo")
    cfg = dataclasses.replace(DPO_TRAIN, batch_size=8, **ONE_STEP)
    t = DPOTrainer(model, cfg, pairs, [], ref, ref[:0], tmp_path, chat_tok.pad_id, beta=0.5, loss=loss)
    record = t.fit()["train"]
    z = torch.zeros(1)
    assert record["loss"] == pytest.approx(float(dpo_loss(z, z, z, z, beta=0.5, loss=loss)), abs=1e-6)
    assert record["reward_chosen"] == 0 and record["reward_rejected"] == 0 and record["reward_margin"] == 0
    if loss == "sigmoid":
        assert record["loss"] == pytest.approx(math.log(2), abs=1e-6)


def test_kto_starts_with_the_policy_as_its_reference(chat_tok, prompt, end, tmp_path):
    model = dropout_model(chat_tok)
    examples = [x for p, c, r in sums(prompt, chat_tok, end, 8) for x in ((p, c), (p, r))]
    data = KTOData.of(examples, [k % 2 == 0 for k in range(16)], batch_size=8, seed=0)
    ref = reference_logps(model, data, chat_tok.pad_id)
    cfg = dataclasses.replace(DPO_TRAIN, batch_size=8, **ONE_STEP)
    empty = KTOData([], torch.zeros(0, dtype=torch.bool), [], [])
    t = KTOTrainer(model, cfg, data, empty, ref, ref[:0], tmp_path, chat_tok.pad_id, beta=0.5)
    record = t.fit()["train"]
    assert record["loss"] == pytest.approx(0.5, abs=1e-7)  # 1 - sigmoid(0) for every example
    assert record["kl"] == 0 and record["reward_desirable"] == 0 and record["reward_undesirable"] == 0


def test_the_reward_model_scores_in_training_as_in_use(chat_tok, prompt, end, tmp_path):
    rm = make_reward_model(dropout_model(chat_tok))
    with torch.no_grad():  # a head that is not zero: the scores differ, and dropout would move them
        rm.lm_head.weight.normal_(generator=torch.Generator().manual_seed(1))
    pairs = sums(prompt, chat_tok, end, 16)
    cfg = dataclasses.replace(RM_TRAIN, batch_size=8, **ONE_STEP)
    t = RewardTrainer(rm, cfg, pairs, [], tmp_path, chat_tok.pad_id)
    batch = t.batch(0)[0]  # step 0's comparisons
    with torch.no_grad():
        first = score_pairs(rm.eval(), batch, chat_tok.pad_id)
        want = float(preference_loss(*first))
    assert want != pytest.approx(math.log(2), abs=1e-3)  # the scores are not all tied
    rm.train()
    record = t.fit()["train"]
    assert record["loss"] == pytest.approx(want, abs=1e-6)


def test_trainers_without_dropout_refuse_gradient_checkpointing(chat_tok, prompt, end, tmp_path):
    """Eval mode turns the model's gradient checkpointing off: asking for it is refused, not ignored."""
    rm = make_reward_model(dropout_model(chat_tok))
    cfg = dataclasses.replace(RM_TRAIN, grad_checkpoint=True)
    with pytest.raises(InputError, match="RewardTrainer trains in eval mode .* leave grad_checkpoint off"):
        RewardTrainer(rm, cfg, sums(prompt, chat_tok, end, 4), [], tmp_path, chat_tok.pad_id)
