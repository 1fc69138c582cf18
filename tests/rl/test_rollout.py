"""Rollouts against the references: the batched group sampler against `generate` (greedy rows and a
group of one with the same seed), per-token log-probabilities against `token_logprobs`, the critic's
values against a full forward."""

import pytest
import torch

from llmlab.generate import GenerationConfig, generate
from llmlab.models.scoring import token_logprobs
from llmlab.rl.rollout import Rollouts, completion_outputs, rollout, sample_group, sequence_logprobs
from llmlab.rl.value import completion_values, make_critic

PROMPTS = ["12+34=", "5+77=", "90+9="]


@pytest.mark.parametrize("seed", [0, 1])
def test_greedy_rows_are_generate_s_greedy_tokens(chat_tok, policy, prompt, end, seed):
    model = policy(seed)
    for q in PROMPTS:
        p = prompt(q)
        ro = sample_group(model, p, 3, 10, 0.0, end, chat_tok.pad_id, torch.Generator().manual_seed(0))
        want = generate(model, p, GenerationConfig(max_new_tokens=10, temperature=0.0), eos_id=end)
        for b in range(3):
            assert ro.answer_ids(b, end) == want
            assert bool(ro.truncated[b]) == (len(want) == 10 and int(ro.lengths[b]) == 10)


def test_a_group_of_one_samples_what_generate_samples_with_the_same_seed(chat_tok, policy, prompt, end):
    model = policy(3)
    for seed in range(5):
        p = prompt(PROMPTS[seed % 3])
        ro = sample_group(model, p, 1, 12, 1.3, end, chat_tok.pad_id, torch.Generator().manual_seed(seed))
        want = generate(model, p, GenerationConfig(max_new_tokens=12, temperature=1.3, seed=seed), eos_id=end)
        assert ro.answer_ids(0, end) == want
        ended = int(ro.lengths[0]) == len(want) + 1
        assert ended != bool(ro.truncated[0]) and (ended or len(want) == 12)


def test_rows_end_at_the_end_token_and_the_mask_covers_it(chat_tok, policy, prompt, end):
    model = policy(1)
    with torch.no_grad():  # make <|end|> likely so some rows end early
        model.lm_head.weight[end] *= 0
        model.embed_tokens.weight[end] *= 0
    ro = rollout(model, [prompt(q) for q in PROMPTS], [0, 1, 2], 4, 6, 1.0, end, chat_tok.pad_id,
                 torch.Generator().manual_seed(0))
    assert len(ro) == 12 and ro.source == [0] * 4 + [1] * 4 + [2] * 4
    for b in range(len(ro)):
        n = int(ro.lengths[b])
        row = ro.tokens[b].tolist()
        assert ro.mask[b, :n].eq(1).all() and ro.mask[b, n:].eq(0).all()
        assert all(t == chat_tok.pad_id for t in row[n:])
        assert (row[n - 1] == end) != bool(ro.truncated[b])
        assert end not in row[: n - 1]


def test_same_generator_seed_same_rollouts(chat_tok, policy, prompt, end):
    model = policy(2)
    args = ([prompt(q) for q in PROMPTS], [0, 1, 2], 4, 8, 1.0, end, chat_tok.pad_id)
    a = rollout(model, *args, torch.Generator().manual_seed(7))
    b = rollout(model, *args, torch.Generator().manual_seed(7))
    c = rollout(model, *args, torch.Generator().manual_seed(8))
    assert torch.equal(a.tokens, b.tokens) and not torch.equal(a.tokens, c.tokens)


def test_sequence_logprobs_equal_token_logprobs_on_each_row(chat_tok, policy, prompt, end):
    model = policy(4, n_layer=2)
    ro = rollout(model, [prompt(q) for q in PROMPTS], [0, 1, 2], 3, 9, 1.5, end, chat_tok.pad_id,
                 torch.Generator().manual_seed(1))
    assert len(set(ro.lengths.tolist())) > 1  # rows of several lengths, prompts of several lengths
    logp = sequence_logprobs(model, ro.prompts, ro.tokens, ro.mask)
    for b in range(len(ro)):
        n = int(ro.lengths[b])
        full = ro.prompts[b] + ro.tokens[b, :n].tolist()
        want = token_logprobs(model, full)[len(ro.prompts[b]) - 1:]
        torch.testing.assert_close(logp[b, :n], torch.tensor(want), atol=1e-5, rtol=1e-5)
        assert logp[b, n:].eq(0).all()


def test_logprobs_at_a_temperature_are_those_of_the_scaled_logits(chat_tok, policy, prompt, end):
    model = policy(5)
    p = [prompt("1+2=")]
    tokens = torch.tensor([[5, 6, 7]])
    logits = model(torch.tensor([p[0] + [5, 6]]))[0, len(p[0]) - 1:]  # (3, V)
    want = (logits / 0.7).log_softmax(-1).gather(-1, tokens[0, :, None])[:, 0]
    torch.testing.assert_close(sequence_logprobs(model, p, tokens, temperature=0.7)[0], want)


def test_critic_values_are_its_head_on_the_full_forward(chat_tok, policy, prompt, end):
    policy = policy(6)
    critic = make_critic(policy)
    assert critic.lm_head.out_features == 1 and policy.lm_head.out_features == chat_tok.vocab_size
    p = [prompt("3+4="), prompt("30+40=")]
    tokens = torch.tensor([[9, 10, 11], [12, 13, 0]])
    mask = torch.tensor([[1.0, 1, 1], [1, 1, 0]])
    assert completion_values(critic, p, tokens, mask).eq(0).all()  # zero-initialised head
    torch.nn.init.normal_(critic.lm_head.weight)
    v = completion_values(critic, p, tokens, mask)
    full = critic(torch.tensor([p[1] + [12, 13]]))[0, len(p[1]) - 1:-1, 0]
    torch.testing.assert_close(v[1, :2], full)
    assert v[1, 2] == 0
    assert completion_outputs(critic, p, tokens, mask).shape == (2, 3, 1)


def test_select_and_cat_keep_rows_aligned():
    a = Rollouts([[1]], [0], torch.tensor([[5, 6]]), torch.tensor([[1.0, 1.0]]), torch.tensor([True]))
    b = Rollouts([[2], [3]], [1, 2], torch.tensor([[7], [8]]), torch.ones(2, 1), torch.tensor([False, False]))
    c = Rollouts.cat([a, b], pad_id=0)
    assert c.tokens.tolist() == [[5, 6], [7, 0], [8, 0]] and c.mask.tolist() == [[1, 1], [1, 0], [1, 0]]
    s = c.select([2, 0])
    assert s.prompts == [[3], [1]] and s.source == [2, 0] and s.truncated.tolist() == [False, True]
