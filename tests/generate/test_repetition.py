"""Repetition penalties and beam search against Hugging Face transformers (its logits processors, and its
`generate` on the same weights exported as a LLaMA checkpoint: the `model` and `hf_model` of conftest.py),
and against their definitions."""

import pytest
import torch

from llmlab.core.errors import InputError
from llmlab.generate import GenerationConfig, generate
from llmlab.generate.penalties import frequency_presence_penalty, no_repeat_ngram, repetition_penalty


def random_case(g, rows=3, length=12, vocab=9):
    """Small vocabularies, so that ids repeat and n-grams recur."""
    return torch.randn(rows, vocab, generator=g) * 3, torch.randint(0, vocab, (rows, length), generator=g)


def test_repetition_penalty_and_ngram_ban_match_transformers_processors():
    lp = pytest.importorskip("transformers.generation.logits_process")
    g = torch.Generator().manual_seed(0)
    for _ in range(50):
        logits, ids = random_case(g, length=int(torch.randint(0, 14, (1,), generator=g)))
        for penalty in (0.5, 1.0, 1.3, 2.0):
            ref = lp.RepetitionPenaltyLogitsProcessor(penalty)(ids, logits.clone())
            assert torch.equal(repetition_penalty(logits, ids, penalty), ref)
        for n in (1, 2, 3, 4):
            ref = lp.NoRepeatNGramLogitsProcessor(n)(ids, logits.clone())
            if torch.isinf(ref).all(-1).any():  # every token banned: llmlab says so instead
                with pytest.raises(InputError, match="bans every token"):
                    no_repeat_ngram(logits, ids, n)
            else:
                assert torch.equal(no_repeat_ngram(logits, ids, n), ref), (ids, n)


def test_no_repeat_ngram_bans_exactly_the_completions_of_earlier_ngrams():
    g = torch.Generator().manual_seed(1)
    for _ in range(100):
        logits, ids = random_case(g, rows=1, length=15, vocab=20)
        seq, n = ids[0].tolist(), int(torch.randint(1, 5, (1,), generator=g))
        grams = {tuple(seq[i:i + n]) for i in range(len(seq) - n + 1)}
        want = [tuple(seq[len(seq) - n + 1:] + [t]) in grams for t in range(20)]
        assert torch.isinf(no_repeat_ngram(logits, ids, n))[0].tolist() == want


def test_frequency_and_presence_penalties_follow_their_formula():
    g = torch.Generator().manual_seed(2)
    logits, ids = random_case(g)
    for length in range(5):  # no output yet, one token, a few (small vocabulary: repeats)
        for frequency, presence in [(0.7, 0.4), (0.0, 0.4), (0.7, 0.0), (1.0, 0.0), (0.0, 1.0), (0.0, 0.0)]:
            out = frequency_presence_penalty(logits, ids[:, :length], frequency, presence)
            for r in range(ids.shape[0]):
                for t in range(logits.shape[1]):
                    c = ids[r, :length].tolist().count(t)
                    want = logits[r, t].item() - frequency * c - presence * (c > 0)
                    assert out[r, t].item() == pytest.approx(want, abs=1e-6)


def test_greedy_decoding_with_penalties_matches_transformers(model, hf_model):
    prompt = [1, 5, 9, 5, 2]
    for kw in [dict(repetition_penalty=1.5), dict(no_repeat_ngram_size=2), dict(no_repeat_ngram_size=1),
               dict(repetition_penalty=0.8, no_repeat_ngram_size=3)]:
        ours = generate(model, prompt, GenerationConfig(max_new_tokens=15, temperature=0, **kw))
        theirs = hf_model.generate(torch.tensor([prompt]), do_sample=False, max_new_tokens=15, **kw)
        assert ours == theirs[0, len(prompt):].tolist(), kw


def test_penalties_reduce_repetition_in_greedy_output(model):
    """An untrained model's greedy output loops; the penalties act on that loop as they promise."""
    prompt = [3, 1, 4]
    plain = generate(model, prompt, GenerationConfig(max_new_tokens=20, temperature=0))
    assert len(set(plain)) < len(plain)  # the case worth testing: greedy repeats itself
    seq = prompt + generate(model, prompt, GenerationConfig(max_new_tokens=20, temperature=0, no_repeat_ngram_size=2))
    assert len({tuple(seq[i:i + 2]) for i in range(len(seq) - 1)}) == len(seq) - 1  # no bigram twice
    heavy = generate(model, prompt, GenerationConfig(max_new_tokens=20, temperature=0, presence_penalty=1e6))
    assert len(set(heavy)) == len(heavy)  # any reuse costs more than any logit gap


@pytest.mark.parametrize("beams,length_penalty,eos", [(2, 1.0, None), (3, 1.0, 31), (4, 0.0, 16), (3, 2.0, 10),
                                                       (5, -1.0, 35), (3, 1.0, 1)])
def test_beam_search_matches_transformers(model, hf_model, beams, length_penalty, eos):
    for prompt in ([1, 5, 9], [2], list(range(3, 11))):  # prompt and output within the context of 24
        kw = dict(num_beams=beams, length_penalty=length_penalty, max_new_tokens=16)
        ours = generate(model, prompt, GenerationConfig(**kw), eos_id=eos)
        out = hf_model.generate(torch.tensor([prompt]), do_sample=False, eos_token_id=eos,
                                pad_token_id=eos if eos is not None else 0, **kw)[0, len(prompt):].tolist()
        theirs = out[:out.index(eos)] if eos is not None and eos in out else out
        assert ours == theirs, (prompt, kw)


def test_beam_search_matches_transformers_on_random_settings(model, hf_model):
    """Finished hypotheses of different lengths compete (EOS ids the model often picks, length penalties
    of both signs), and the search often stops before max_new_tokens."""
    g = torch.Generator().manual_seed(5)
    pick = lambda options: options[int(torch.randint(len(options), (1,), generator=g))]  # noqa: E731
    for _ in range(20):
        length = int(torch.randint(1, 8, (1,), generator=g))
        prompt = torch.randint(0, model.config.vocab_size, (length,), generator=g).tolist()
        kw = dict(num_beams=pick([2, 3, 4, 6]), length_penalty=pick([-0.5, 0.0, 0.5, 1.0, 1.5, 3.0]),
                  max_new_tokens=pick([3, 8, 14]))
        eos = pick([31, 16, 10, 35, 1, 27])
        ours = generate(model, prompt, GenerationConfig(**kw), eos_id=eos)
        out = hf_model.generate(torch.tensor([prompt]), do_sample=False, eos_token_id=eos, pad_token_id=eos,
                                **kw)[0, len(prompt):].tolist()
        assert ours == (out[:out.index(eos)] if eos in out else out), (prompt, eos, kw)


def test_beam_search_with_penalties_matches_transformers(model, hf_model):
    prompt, eos = [6, 2, 9], 10
    plain = generate(model, prompt, GenerationConfig(num_beams=3, max_new_tokens=12), eos_id=eos)
    for kw in [dict(repetition_penalty=2.0), dict(no_repeat_ngram_size=2)]:
        ours = generate(model, prompt, GenerationConfig(num_beams=3, max_new_tokens=12, **kw), eos_id=eos)
        out = hf_model.generate(torch.tensor([prompt]), num_beams=3, max_new_tokens=12, do_sample=False,
                                eos_token_id=eos, pad_token_id=eos, **kw)[0, len(prompt):].tolist()
        assert ours == (out[:out.index(eos)] if eos in out else out) and ours != plain, kw


def test_beam_search_beats_greedy_on_total_log_probability_and_caching_changes_nothing(model):
    def logprob(prompt, new):
        seq = torch.tensor([prompt + new])
        with torch.no_grad():
            lp = torch.log_softmax(model(seq)[0, :-1].float(), -1)
        return float(lp[torch.arange(len(prompt) - 1, seq.shape[1] - 1), seq[0, len(prompt):]].sum())

    prompt = [6, 2, 9]
    greedy = generate(model, prompt, GenerationConfig(max_new_tokens=10, temperature=0))
    one_beam_more = GenerationConfig(max_new_tokens=10, num_beams=4, length_penalty=0.0)
    beam = generate(model, prompt, one_beam_more)
    assert len(beam) == 10 and logprob(prompt, beam) >= logprob(prompt, greedy) - 1e-5
    # past the context of 24 tokens the window slides, with or without the cache
    cached, uncached = (GenerationConfig(max_new_tokens=30, num_beams=3, use_cache=c) for c in (True, False))
    assert generate(model, prompt, cached) == generate(model, prompt, uncached)


def test_beam_search_of_zero_or_one_token(model):
    """One step: the best beam is the most likely token (the greedy one); no step: nothing."""
    for prompt in ([6, 2, 9], [1]):
        greedy = generate(model, prompt, GenerationConfig(max_new_tokens=1, temperature=0))
        assert generate(model, prompt, GenerationConfig(max_new_tokens=1, num_beams=3)) == greedy
        assert generate(model, prompt, GenerationConfig(max_new_tokens=0, num_beams=3)) == []


def test_beam_search_does_not_stream(model):
    from llmlab.generate import stream

    with pytest.raises(InputError, match="cannot stream"):
        next(stream(model, [1, 2], GenerationConfig(num_beams=2)))


def test_bad_penalty_settings_are_clear_errors():
    for kw, msg in [(dict(repetition_penalty=0), "repetition_penalty"), (dict(num_beams=0), "num_beams"),
                    (dict(no_repeat_ngram_size=-1), "no_repeat_ngram_size"),
                    (dict(presence_penalty=float("nan")), "presence_penalty")]:
        with pytest.raises(InputError, match=msg):
            GenerationConfig(**kw)
