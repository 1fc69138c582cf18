"""The reward model: Bradley-Terry loss against its formula, last-token scores against transformers'
LlamaForSequenceClassification, padding, saving, the comparison files, the sampled comparisons, and a
trainer that learns a preference and resumes exactly."""

import dataclasses
import json
import math
import random

import pytest
import torch

from llmlab.adapt.chat import ChatTemplate
from llmlab.core.errors import InputError
from llmlab.models import load_model
from llmlab.rl.preferences import (
    Preference,
    encode_preferences,
    near_miss_preferences,
    near_misses,
    read_preferences,
    sampled_preferences,
)
from llmlab.rl.reward_config import RM_TRAIN
from llmlab.rl.reward_model import (
    RewardScorer,
    load_reward_model,
    make_reward_model,
    pad_rows,
    pair_accuracy,
    preference_loss,
    save_reward_model,
    sequence_scores,
)
from llmlab.rl.reward_trainer import RewardTrainer, score_pairs


def random_head(rm, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        rm.lm_head.weight.copy_(torch.randn(rm.lm_head.weight.shape, generator=g))
    return rm


def test_preference_loss_is_the_bradley_terry_nll_element_by_element():
    g = torch.Generator().manual_seed(0)
    c, r, m = torch.randn(7, generator=g), torch.randn(7, generator=g), torch.rand(7, generator=g)
    nll = [-math.log(1 / (1 + math.exp(-(a - b - k)))) for a, b, k in zip(c.tolist(), r.tolist(), m.tolist())]
    assert float(preference_loss(c, r, m)) == pytest.approx(sum(nll) / 7, rel=1e-6)
    centre = sum((a + b) ** 2 for a, b in zip(c.tolist(), r.tolist())) / 7
    assert float(preference_loss(c, r, center_coef=0.01)) == pytest.approx(
        float(preference_loss(c, r)) + 0.01 * centre, rel=1e-6)
    # only differences count: shifting both scores changes nothing
    assert float(preference_loss(c + 3, r + 3)) == pytest.approx(float(preference_loss(c, r)), rel=1e-6)


def test_pair_accuracy_counts_ties_as_half_and_refuses_nothing_to_score():
    assert pair_accuracy(torch.tensor([1.0, 1.0, 0.0, 2.0]), torch.tensor([0.0, 1.0, 1.0, 1.0])) == 0.625
    with pytest.raises(InputError, match="no preference pairs"):
        pair_accuracy(torch.zeros(0), torch.zeros(0))


def test_a_new_reward_model_scores_everything_zero_and_leaves_the_policy_alone(policy):
    pol = policy(0)
    before = {k: v.clone() for k, v in pol.state_dict().items()}
    rm = make_reward_model(pol)
    x, n = pad_rows([[1, 2, 3], [4, 5]], pad_id=0)
    s = sequence_scores(rm, x, n).detach()
    assert s.tolist() == [0.0, 0.0]
    assert float(preference_loss(s[:1], s[1:])) == pytest.approx(math.log(2))
    with torch.no_grad():  # the copy's embedding is its own (the policy's head was tied to it)
        rm.embed_tokens.weight.add_(1.0)
        rm.lm_head.weight.add_(1.0)
    assert all(torch.equal(v, before[k]) for k, v in pol.state_dict().items())


def test_scores_are_the_last_tokens_and_padding_changes_nothing(policy):
    rm = random_head(make_reward_model(policy(1)))
    rows = [[3, 4, 5, 6, 7], [8, 9], [10, 11, 12]]
    batch = sequence_scores(rm, *pad_rows(rows, pad_id=0)).detach()
    alone = torch.cat([sequence_scores(rm, *pad_rows([r], pad_id=0)) for r in rows])
    torch.testing.assert_close(batch, alone, rtol=1e-5, atol=1e-6)
    full = rm(torch.tensor([rows[0]]))[0, :, 0].detach()  # every prefix's score: the row's is its last
    assert float(batch[0]) == pytest.approx(float(full[-1]), rel=1e-5)
    with pytest.raises(InputError, match="context"):
        sequence_scores(rm, *pad_rows([[1] * 40], pad_id=0))


def test_scores_equal_transformers_llama_for_sequence_classification(policy, chat_tok):
    transformers = pytest.importorskip("transformers")
    from llmlab.models.hf import hf_config

    rm = random_head(make_reward_model(policy(2)), seed=3)
    cfg = {k: v for k, v in hf_config(rm).items() if k not in ("architectures", "torch_dtype")}
    hf = transformers.LlamaForSequenceClassification(transformers.LlamaConfig(**cfg, num_labels=1,
                                                                              pad_token_id=chat_tok.pad_id))
    state = {f"model.{k}": v for k, v in rm.state_dict().items() if not k.startswith("lm_head")}
    state["score.weight"] = rm.lm_head.weight
    missing, unexpected = hf.load_state_dict(state, strict=False)
    assert not unexpected and all("rotary" in k for k in missing)
    hf.eval()
    rows = [[5, 6, 7, 8, 9, 10], [11, 12], [13, 14, 15, 16]]
    x, n = pad_rows(rows, chat_tok.pad_id)
    with torch.no_grad():
        ref = hf(input_ids=x).logits[:, 0]
        ours = sequence_scores(rm, x, n)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)


def test_save_and_load_give_the_same_normalised_scores(policy, chat_tok, tmp_path):
    rm = random_head(make_reward_model(policy(0)))
    save_reward_model(rm, tmp_path / "rm", chat_tok, None, mean=0.5, std=2.0)
    back, tok, norm = load_reward_model(tmp_path / "rm")
    assert norm == {"mean": 0.5, "std": 2.0} and tok.vocab_size == chat_tok.vocab_size
    prompts, replies = [[1, 2, 3], [4]], [[5, 6], [7, 8, 9]]
    raw = sequence_scores(rm, *pad_rows([p + c for p, c in zip(prompts, replies)], 0)).detach()
    torch.testing.assert_close(RewardScorer(back, 0, 0.5, 2.0)(prompts, replies), (raw - 0.5) / 2.0)
    with pytest.raises(InputError, match="holds a reward model"):
        load_model(tmp_path / "rm")
    with pytest.raises(InputError, match="positive std"):
        save_reward_model(rm, tmp_path / "bad", chat_tok, None, mean=0.0, std=0.0)
    assert not (tmp_path / "bad").exists()


def test_a_language_model_folder_is_not_a_reward_model(policy, chat_tok, tmp_path):
    from llmlab.models import save_model

    save_model(policy(0), tmp_path / "lm", chat_tok)
    with pytest.raises(InputError, match="not a reward model"):
        load_reward_model(tmp_path / "lm")


def write_lines(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def test_preference_files_read_both_prompt_forms_and_encode_replies_ending_in_end(tmp_path, chat_tok, end):
    conv = [{"role": "system", "content": "1"}, {"role": "user", "content": "2+2="}]
    f = write_lines(tmp_path / "p.jsonl", [{"prompt": "1+2=", "chosen": "3", "rejected": "4"},
                                          {"prompt": conv, "chosen": "4", "rejected": "22"}])
    prefs = read_preferences(f)
    assert [p.to_dict() for p in prefs] == [{"prompt": "1+2=", "chosen": "3", "rejected": "4"},
                                           {"prompt": conv, "chosen": "4", "rejected": "22"}]
    (p0, c0, r0), (p1, _, r1) = encode_preferences(chat_tok, ChatTemplate(), prefs, 32)
    assert p0 == ChatTemplate().prompt_ids(chat_tok, [{"role": "user", "content": "1+2="}])
    assert c0 == chat_tok.encode("3") + [end] and r1 == chat_tok.encode("22") + [end]
    assert p1 == ChatTemplate().prompt_ids(chat_tok, conv)
    with pytest.raises(InputError, match="beyond the model's context of 12"):
        encode_preferences(chat_tok, ChatTemplate(), prefs, 12)


@pytest.mark.parametrize("row,msg", [
    ({"prompt": "1+2=", "chosen": "3"}, "line 2: missing 'rejected'"),
    ({"prompt": "1+2=", "chosen": "3", "rejected": "3"}, "line 2: chosen and rejected are the same"),
    ({"prompt": "", "chosen": "3", "rejected": "4"}, "line 2: 'prompt' must be"),
    ({"prompt": [{"role": "user"}], "chosen": "3", "rejected": "4"}, "line 2: 'prompt' must be"),
    ({"prompt": "1+2=", "chosen": 3, "rejected": "4"}, "line 2: 'chosen' must be a non-empty string"),
    ([1, 2], "line 2: expected an object"),
])
def test_malformed_comparisons_are_refused_naming_the_line(tmp_path, row, msg):
    f = write_lines(tmp_path / "p.jsonl", [{"prompt": "1+1=", "chosen": "2", "rejected": "3"}, row])
    with pytest.raises(InputError, match=msg):
        read_preferences(f)


def test_a_bad_comparison_after_a_blank_line_is_named_by_its_line_in_the_file(tmp_path):
    f = tmp_path / "p.jsonl"
    f.write_text('{"prompt": "1+1=", "chosen": "2", "rejected": "3"}\n\n{"prompt": "1+2=", "chosen": "3"}\n')
    with pytest.raises(InputError, match="line 3: missing 'rejected'"):
        read_preferences(f)


def test_a_runs_pairs_file_keeps_its_split_and_another_file_holds_out_its_last_twentieth(tmp_path):
    from llmlab.rl.preferences import read_split_preferences

    rows = [{"prompt": f"{i}+1=", "chosen": str(i + 1), "rejected": str(i + 2)} for i in range(40)]
    train, dev = read_split_preferences(write_lines(tmp_path / "plain.jsonl", rows))
    assert [p.chosen for p in train] == [str(i + 1) for i in range(38)] and [p.chosen for p in dev] == ["39", "40"]
    split = [{**r, "split": "dev" if i % 4 == 0 else "train"} for i, r in enumerate(rows)]  # dev lines among train
    train, dev = read_split_preferences(write_lines(tmp_path / "run.jsonl", split))
    assert [p.chosen for p in dev] == [str(i + 1) for i in range(0, 40, 4)] and len(train) == 30
    for bad, msg in [(split[:1] + rows[1:], "on every line"), ([{**r, "split": "train"} for r in rows], "both present"),
                     ([{**rows[0], "split": "test"}] + split[1:], r"found \['dev', 'test', 'train'\]"),
                     ([{**rows[0], "split": ["dev"]}] + split[1:], "line 1: 'split' must be"),
                     (rows[:1], "at least 2 comparisons")]:
        with pytest.raises(InputError, match=msg):
            read_split_preferences(write_lines(tmp_path / "bad.jsonl", bad))


def test_sampled_comparisons_pit_each_distinct_wrong_answer_against_the_right_one(policy, chat_tok):
    from llmlab.data.corpora import arithmetic
    from llmlab.evaluate.tasks import exact_match

    problems = arithmetic(6, max_digits=2, ops="+")
    prefs = sampled_preferences(policy(0), chat_tok, ChatTemplate(), problems, 5, 4, 1.0,
                                torch.Generator().manual_seed(0))
    assert prefs  # a random policy is wrong almost always
    by_q = {p.question: p.answer for p in problems}
    for q in {p.messages[0][1] for p in prefs}:
        rejected = [p.rejected for p in prefs if p.messages[0][1] == q]
        assert len(rejected) == len(set(rejected)) <= 5
    for p in prefs:
        assert p.chosen == by_q[p.messages[0][1]] and not exact_match(p.rejected, p.chosen)
        assert chat_tok.decode(chat_tok.encode(p.rejected)) == p.rejected and "<" not in p.rejected


@pytest.mark.parametrize("answer", ["7", "68", "105", "-42", "1000"])
def test_near_misses_are_every_one_digit_slip_drawn_without_repeats(answer):
    every = near_misses(answer, 1000, random.Random(0))
    digits = sum(c.isdigit() for c in answer)
    # each digit can take 9 other values, but the leading one of a longer number never becomes 0
    assert len(every) == len(set(every)) == 9 * digits - (digits > 1)
    for m in every:
        assert len(m) == len(answer) and sum(x != y for x, y in zip(m, answer)) == 1 and int(m) != int(answer)
        assert len(m.lstrip("-")) == 1 or m.lstrip("-")[0] != "0"
    some = near_misses(answer, 3, random.Random(1))
    assert len(some) == len(set(some)) == min(3, len(every)) and set(some) <= set(every)
    assert near_misses(answer, 3, random.Random(1)) == some  # a seed fixes the draw


def test_near_miss_comparisons_prefer_each_right_answer_to_its_slips():
    from llmlab.data.corpora import arithmetic

    problems = arithmetic(20, max_digits=3, ops="+-*")
    prefs = near_miss_preferences(problems, 2, 5)
    assert len(prefs) == 40 and prefs == near_miss_preferences(problems, 2, 5)
    assert [p.chosen for p in prefs] == [p.answer for p in problems for _ in range(2)]
    assert all(p.messages == (("user", q.question),) for p, q in zip(prefs[::2], problems))
    assert all(p.rejected != p.chosen for p in prefs) and near_miss_preferences(problems, 0, 5) == []


def seven_pairs(chat_tok, prompt, end, n=64, seed=0):
    """Comparisons where the reply starting with 7 always wins: a preference a tiny model can learn."""
    g = torch.Generator().manual_seed(seed)
    digits = [chat_tok.encode(str(d))[0] for d in range(10)]
    out = []
    for _ in range(n):
        a, b = (int(x) for x in torch.randint(0, 10, (2,), generator=g))
        loser = [digits[d] for d in (a if a != 7 else 1, b)]
        out.append((prompt(f"{a}+{b}="), [digits[7], digits[b]] + [end], loser + [end]))
    return out


def trainer(policy, chat_tok, prompt, end, tmp_path, steps):
    cfg = dataclasses.replace(RM_TRAIN, steps=steps, lr=3e-3, min_lr=3e-4, warmup_steps=0, batch_size=16,
                              eval_every=0, checkpoint_every=0)
    return RewardTrainer(make_reward_model(policy(0)), cfg, seven_pairs(chat_tok, prompt, end),
                         seven_pairs(chat_tok, prompt, end, 32, seed=1), tmp_path, chat_tok.pad_id)


def test_the_trainer_learns_a_preference_and_resumes_exactly(policy, chat_tok, prompt, end, tmp_path):
    tr = trainer(policy, chat_tok, prompt, end, tmp_path / "a", steps=40)
    assert tr.evaluate(None)["val_accuracy"] == 0.5  # zero head: all ties
    tr.fit()
    ev = tr.evaluate(None)
    assert ev["val_accuracy"] > 0.95 and ev["val_loss"] < 0.3, ev
    c, r = score_pairs(tr.model, tr.dev, chat_tok.pad_id)
    assert pair_accuracy(c, r) == ev["val_accuracy"]
    # stopped after 20 steps and resumed: the weights of the uninterrupted run
    half = trainer(policy, chat_tok, prompt, end, tmp_path / "b", steps=40)
    half.model.train()
    for _ in range(20):
        half.train_step()
    half.save()
    rest = trainer(policy, chat_tok, prompt, end, tmp_path / "b", steps=40)
    assert rest.maybe_resume() and rest.step == 20
    rest.fit()
    for (k, v), w in zip(tr.model.state_dict().items(), rest.model.state_dict().values()):
        assert torch.equal(v, w), k


def test_preference_of_a_string_prompt_is_one_user_turn():
    p = Preference.of("1+1=", "2", "3")
    assert p.conversation == [{"role": "user", "content": "1+1="}]
