"""ROUGE against rouge-score on English (with and without stemming), the Porter stemmer against NLTK's,
and Chinese scored by characters or segmenter words instead of a silent 0."""

import random
import re

import pytest

from llmlab.core.errors import InputError
from llmlab.evaluate.porter import porter_stem
from llmlab.evaluate.rouge import RougeConfig, RougeScorer, corpus_rouge, lcs_indices, lcs_length

TYPES = ("rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum")


def _lcs_dp(a, b):
    t = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i in range(1, len(a) + 1):
        for j in range(1, len(b) + 1):
            t[i][j] = t[i - 1][j - 1] + 1 if a[i - 1] == b[j - 1] else max(t[i - 1][j], t[i][j - 1])
    return t[-1][-1]


def test_bit_parallel_lcs_equals_the_dp_table():
    try:
        from rouge_score import rouge_scorer as rs
    except ImportError:
        rs = None
    rng = random.Random(1)
    for _ in range(2000):
        a = [rng.choice("abcd") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 70))]
        assert lcs_length(a, b) == _lcs_dp(a, b)
        idx = lcs_indices(a, b)
        assert len(idx) == _lcs_dp(a, b) and idx == sorted(set(idx))
        if rs is not None:
            assert idx == rs.lcs_ind(a, b)  # the same LCS rouge-score reads back, not just one as long


def _english_doc(gen, max_sents=3):
    return "\n".join(gen.english(0, 20) for _ in range(gen.rng.randint(1, max_sents)))


@pytest.mark.parametrize("stem", [False, True])
@pytest.mark.parametrize("mode", ["english", "char"])  # char: what a CJK character anywhere in the pair selects
def test_rouge_matches_rouge_score_on_english(gen, stem, mode):
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    theirs = rs.RougeScorer(list(TYPES), use_stemmer=stem)
    ours = RougeScorer(RougeConfig(rouge_types=TYPES, use_stemmer=stem, tokenize=mode))
    for _ in range(800):
        target = _english_doc(gen)
        pred = gen.noisy_copy(target) if gen.rng.random() < 0.8 else _english_doc(gen)
        a, b = ours.score(target, pred), theirs.score(target, pred)
        for k in TYPES:
            assert tuple(a[k]) == pytest.approx(tuple(b[k]), abs=1e-12), (k, target, pred)


def test_score_multi_picks_the_target_rouge_score_picks(gen):
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    theirs = rs.RougeScorer(list(TYPES), use_stemmer=True)
    ours = RougeScorer(RougeConfig(rouge_types=TYPES, use_stemmer=True))
    for _ in range(200):
        targets = [_english_doc(gen, 2) for _ in range(gen.rng.randint(1, 4))]
        pred = gen.noisy_copy(targets[0])
        a, b = ours.score_multi(targets, pred), theirs.score_multi(targets, pred)
        for k in TYPES:
            assert tuple(a[k]) == pytest.approx(tuple(b[k]), abs=1e-12)


def test_porter_stemmer_equals_nltk(gen):
    porter = pytest.importorskip("nltk.stem.porter")
    nltk_stem = porter.PorterStemmer().stem
    rng = random.Random(3)
    suffix_text = ("ational tional enci anci izer bli alli entli eli ousli ization ation ator alism iveness fulness "
                "ousness aliti iviti biliti fulli logi icate ative alize iciti ical ful ness al ance ence er ic "
                "able ible ant ement ment ent ion sion tion ou ism ate iti ous ive ize e ll s ies ied ed ing eed "
                "y sses ss")
    suffixes = suffix_text.split()
    words = {w.lower() for w in re.findall(r"[A-Za-z]+", porter.__doc__ + (porter.PorterStemmer.__doc__ or ""))}
    for _ in range(20000):
        stem = "".join(rng.choice("bcdfghlmnprstvwxyzaeiouy") for _ in range(rng.randint(0, 6)))
        words.add(stem + rng.choice(suffixes) + (rng.choice(suffixes) if rng.random() < 0.3 else ""))
    words |= {w.lower() for _ in range(300) for w in re.findall(r"[a-z]+", gen.english().lower())}
    bad = [w for w in sorted(words) if porter_stem(w) != nltk_stem(w)]
    assert not bad, bad[:10]


def test_chinese_is_scored_by_characters_not_a_silent_zero():
    scorer = RougeScorer(RougeConfig(rouge_types=("rouge1", "rouge2", "rougeL")))
    s = scorer.score("今天天气很好", "今天天气不好")
    # 6 vs 6 chars: unigram overlap 今天天气好 = 5; bigrams 今天 天天 天气 = 3 of 5; LCS 今天天气好 = 5
    assert s["rouge1"].fmeasure == pytest.approx(5 / 6)
    assert s["rouge2"].fmeasure == pytest.approx(3 / 5)
    assert s["rougeL"].fmeasure == pytest.approx(5 / 6)


def test_chinese_with_a_segmenter_uses_its_words():
    def cut(text):  # a toy segmenter: two-character words
        return [text[i:i + 2] for i in range(0, len(text), 2)]

    scorer = RougeScorer(RougeConfig(rouge_types=("rouge1",)), cut=cut)
    assert scorer.mode_for("今天天气", "今天") == "words"
    s = scorer.score("今天天气很好", "今天天气不好")  # words 今天 天气 很好 vs 今天 天气 不好
    assert s["rouge1"].fmeasure == pytest.approx(2 / 3)


def test_english_tokenizer_on_chinese_is_an_error_not_zero():
    scorer = RougeScorer(RougeConfig(tokenize="english"))
    with pytest.raises(InputError, match="no tokens"):
        scorer.score("今天天气很好", "今天天气不好")


def test_words_mode_needs_a_segmenter():
    with pytest.raises(InputError, match="segmenter"):
        RougeScorer(RougeConfig(tokenize="words"))


def test_corpus_rouge_is_the_mean_of_pair_scores(gen):
    refs = [_english_doc(gen, 1) + " x" for _ in range(30)]
    preds = [gen.noisy_copy(r) for r in refs]
    scorer = RougeScorer(RougeConfig(rouge_types=("rouge2",)))
    mean_f = sum(scorer.score(r, p)["rouge2"].fmeasure for r, p in zip(refs, preds)) / len(refs)
    got = corpus_rouge(preds, [refs], RougeConfig(rouge_types=("rouge2",)))["rouge2"].fmeasure
    assert got == pytest.approx(mean_f)


def test_corpus_rouge_skips_missing_references_as_bleu_does(gen):
    """A None entry means that segment has fewer references: the mean of rouge-score's score_multi over
    the references that are there."""
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    refs = [[_english_doc(gen, 1) + " x" for _ in range(20)]]
    refs.append([_english_doc(gen, 1) if i % 3 else None for i in range(20)])
    preds = [gen.noisy_copy(r) for r in refs[0]]
    theirs = rs.RougeScorer(list(TYPES))
    pairs = [theirs.score_multi([r for r in seg if r is not None], p) for p, *seg in zip(preds, *refs)]
    got = corpus_rouge(preds, refs, RougeConfig(rouge_types=TYPES))
    for k in TYPES:
        assert tuple(got[k]) == pytest.approx(tuple(sum(s[k][j] for s in pairs) / len(pairs) for j in range(3)))


@pytest.mark.parametrize("types", [("rouge0",), ("rougeX",), ()])
def test_bad_rouge_types_are_clear_errors(types):
    with pytest.raises(InputError):
        RougeConfig(rouge_types=types)


def test_auto_falls_back_to_characters_when_english_rules_would_drop_everything():
    scorer = RougeScorer(RougeConfig(rouge_types=("rouge1",)))
    assert scorer.mode_for("（Ａ、Ｂ）") == "char" and scorer.mode_for("αβγ δεζ") == "char"
    assert scorer.score("αβγ δεζ", "αβγ")["rouge1"].recall == pytest.approx(0.5)
    assert scorer.score("（Ａ、Ｂ）", "（Ａ）")["rouge1"].precision == 1.0
    assert scorer.mode_for("naïve café") == "english"  # rouge-score keeps 'na', 've', 'caf': stay compatible


def _matches_rouge_score(vocabulary: list[str], max_words: int) -> None:
    """Random texts of up to `max_words` words of `vocabulary`: every ROUGE type, stemmed or not, as rouge-score."""
    hyp_st = pytest.importorskip("hypothesis")
    rs = pytest.importorskip("rouge_score.rouge_scorer")
    st = hyp_st.strategies
    words = st.sampled_from(vocabulary)
    theirs = {s: rs.RougeScorer(list(TYPES), use_stemmer=s) for s in (False, True)}

    @hyp_st.settings(max_examples=300, deadline=None, derandomize=True)
    @hyp_st.given(st.lists(words, max_size=max_words).map(" ".join), st.lists(words, max_size=max_words).map(" ".join),
                  st.booleans())
    def check(target, pred, stem):
        ours = RougeScorer(RougeConfig(rouge_types=TYPES, use_stemmer=stem))
        a, b = ours.score(target, pred), theirs[stem].score(target, pred)
        for k in TYPES:
            assert tuple(a[k]) == pytest.approx(tuple(b[k]), abs=1e-12), (k, target, pred)

    check()


def test_hypothesis_random_english_matches_rouge_score():
    _matches_rouge_score(["the", "cats", "running", "ran", "a", "b", "42", "it's", ",", ".", "\n", "  ", "Happily"], 20)


def test_hypothesis_small_vocabulary_many_lines_matches_rouge_score():
    """Few word types over many lines: ROUGE-Lsum's union LCS then meets a token more often than the other
    side holds it (the count cap decides), and short words (3 letters or fewer) that Porter would change
    ('was' -> 'wa') stay unstemmed as in rouge-score."""
    _matches_rouge_score(["a", "b", "was", "wa", "has", "ha", "ties", "tie", "\n", "\n"], 16)


@pytest.mark.parametrize("targets", ["a single string", []], ids=["str", "empty"])
def test_score_multi_needs_a_non_empty_list_of_targets(targets):
    with pytest.raises(InputError, match="non-empty list"):
        RougeScorer().score_multi(targets, "a b")
