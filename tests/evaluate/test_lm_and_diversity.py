"""Perplexity / bits per char (shared with llmlab.classic), distinct-n, rep-n and self-BLEU."""

import math
import random

import pytest

from llmlab.classic import information
from llmlab.core.errors import InputError
from llmlab.evaluate.bleu import BleuConfig
from llmlab.evaluate.diversity import distinct_n, rep_n, repeated_ngrams, self_bleu
from llmlab.evaluate.lm import bits_per_char, corpus_bits_per_char, corpus_perplexity, text_perplexity


def test_perplexity_is_classic_informations_and_a_uniform_model_gives_its_vocab_size():
    rng = random.Random(0)
    lps = [math.log(rng.uniform(0.01, 1)) for _ in range(50)]
    assert text_perplexity(lps) == information.perplexity(lps)
    assert text_perplexity([math.log(1 / 37)] * 11) == pytest.approx(37.0)


def test_corpus_perplexity_pools_tokens_not_texts():
    a, b = [math.log(0.5)] * 3, [math.log(0.1)]
    assert corpus_perplexity([a, b]) == pytest.approx(math.exp(-(3 * math.log(0.5) + math.log(0.1)) / 4))
    assert corpus_perplexity([a, b]) != pytest.approx((text_perplexity(a) + text_perplexity(b)) / 2)


def test_bits_per_char_by_hand():
    # 2 tokens of p=1/8 over 3 characters: 6 bits / 3 chars
    assert bits_per_char([math.log(1 / 8)] * 2, "abc") == pytest.approx(2.0)
    assert corpus_bits_per_char([[math.log(0.5)], [math.log(0.5)] * 3], ["ab", "cd"]) == pytest.approx(1.0)


@pytest.mark.parametrize("bad", [[], [0.5], [float("nan")]])
def test_bad_logprobs_are_clear_errors(bad):
    with pytest.raises(InputError):
        text_perplexity(bad)


def test_distinct_n_by_hand_and_on_chinese():
    assert distinct_n(["a b c", "a b d"], n=2) == pytest.approx(3 / 4)  # ab bc ab bd
    assert distinct_n(["今天好", "今天坏"], n=1) == pytest.approx(4 / 6)
    assert distinct_n([], n=2) == 0.0


def test_rep_n_counts_repeats_within_a_text():
    assert rep_n("a b c d", n=1) == 0.0
    assert rep_n("the cat the cat the cat", n=2) == pytest.approx(1 - 2 / 5)
    assert repeated_ngrams("好好学习好好", n=2) == {("好", "好"): 2}


def test_self_bleu_matches_sacrebleu_leave_one_out(gen):
    sacrebleu = pytest.importorskip("sacrebleu")
    texts = [gen.english(3, 15) for _ in range(12)]
    metric = sacrebleu.metrics.BLEU(effective_order=True)
    want = sum(metric.sentence_score(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts)) / len(texts)
    assert self_bleu(texts, BleuConfig(effective_order=True)) == pytest.approx(want, abs=1e-9)


def test_self_bleu_ranks_repetitive_sets_above_diverse_ones(gen):
    same = ["the cat sat on the mat today"] * 3 + ["the cat sat on the mat"]
    varied = [gen.english(6, 12) for _ in range(4)]
    assert self_bleu(same) > 80 > self_bleu(varied)
    with pytest.raises(InputError, match="at least 2"):
        self_bleu(["one"])


def test_default_orders_are_distinct_2_and_rep_4():
    # 4-grams of "a b c d e a b c d f": abcd bcde cdea deab eabc abcd bcdf -> 1 repeat of 7; no 5-gram repeats
    text = "a b c d e a b c d f"
    assert rep_n(text) == pytest.approx(1 / 7)
    assert repeated_ngrams(text) == {("a", "b", "c", "d"): 2}
    # bigrams: ab ba ab | ab b? -> "a b a b": ab ba ab (3, 2 distinct); trigrams aba bab (2, 2 distinct)
    assert distinct_n(["a b a b"]) == pytest.approx(2 / 3)


def test_self_bleu_defaults_are_sacrebleus_sentence_settings(gen):
    """With no config: effective order (short texts would otherwise score ~0) and the zh tokenizer on CJK."""
    sacrebleu = pytest.importorskip("sacrebleu")
    base_en, base_zh = "the cat sat on the mat", gen.chinese()[:8]
    for base, tok in ((base_en, "13a"), (base_zh, "zh")):
        texts = [gen.noisy_copy(base)[:12] for _ in range(5)]
        metric = sacrebleu.metrics.BLEU(effective_order=True, tokenize=tok)
        want = sum(metric.sentence_score(t, texts[:i] + texts[i + 1:]).score for i, t in enumerate(texts)) / len(texts)
        assert self_bleu(texts) == pytest.approx(want, abs=1e-9)


def test_corpus_scores_at_their_smallest_sizes():
    # one token of p=1/4 is perplexity 4; one character holding 1 bit is 1 bit per char
    assert corpus_perplexity([[math.log(0.25)]]) == pytest.approx(4.0)
    assert corpus_bits_per_char([[math.log(0.5)]], ["a"]) == pytest.approx(1.0)
    for empty in ([], [[]], [[], []]):
        with pytest.raises(InputError, match="zero tokens"):
            corpus_perplexity(empty)
    with pytest.raises(InputError, match="empty texts"):
        corpus_bits_per_char([[], []], ["", ""])
