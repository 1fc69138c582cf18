"""Domain selection by cross-entropy difference (llmlab.classic.selection)."""

from collections import Counter

import numpy as np
import pytest

from llmlab.classic.ngram import NgramConfig, NgramModel, split_units
from llmlab.classic.selection import OTHER, doc_cross_entropy, moore_lewis_scores, select_domain
from llmlab.core.errors import InputError
from llmlab.data.corpora import corpus_text


def test_doc_cross_entropy_is_each_sentences_chain_rule_per_token():
    rng = np.random.default_rng(0)
    sents = [list(rng.choice(list("abcde"), size=rng.integers(1, 12))) for _ in range(40)]
    model = NgramModel.train(sents[:30], NgramConfig(order=3, unit="char"))
    got = doc_cross_entropy(model, sents[30:] + [[]])
    want = [-model.sentence_logprob(s) / (len(s) + 1) for s in sents[30:] + [[]]]
    np.testing.assert_allclose(got, want, rtol=1e-12)


def test_tokens_outside_the_domain_vocabulary_are_one_token():
    # "x" and "y" occur once in the domain sample, "q" never: all three are <other>, so swapping one
    # for another throughout the pool changes no score; "a", seen twice, is a token of its own.
    domain = ["abab", "abba", "baab", "x", "y", "ab"]
    pool = ["abxb", "xxab", "bax", "abab", "baba", "aabb", "bbaa", "xbxb"] * 3
    s = moore_lewis_scores(pool, domain)
    for c in "yq":
        np.testing.assert_array_equal(moore_lewis_scores([p.replace("x", c) for p in pool], domain), s)
    assert not np.array_equal(moore_lewis_scores([p.replace("x", "a") for p in pool], domain), s)


def test_a_sampled_pool_document_is_scored_by_the_model_of_the_other_half():
    # The documented rule, rebuilt: the pool sample is a seeded permutation's prefix holding as many
    # tokens as the domain; its even positions train model A, its odd ones model B; a document of
    # A's half is scored by B, every other document by A.
    rng = np.random.default_rng(5)
    domain = ["".join(rng.choice(list("abcdef"), size=12)) for _ in range(30)]
    pool = ["".join(rng.choice(list("abcdefgh"), size=rng.integers(3, 20))) for _ in range(200)]
    config = NgramConfig(order=3, unit="char")
    got = moore_lewis_scores(pool, domain, config, seed=7)

    vocab = {t for t, c in Counter("".join(domain)).items() if c >= 2}
    tok = lambda xs: [[t if t in vocab else OTHER for t in x] for x in xs]  # noqa: E731
    order = np.random.default_rng(7).permutation(len(pool))
    sizes = np.cumsum([len(pool[i]) + 1 for i in order])
    sample = order[: int(np.searchsorted(sizes, sum(len(d) + 1 for d in domain))) + 1]
    a, b = (NgramModel.train(tok([pool[i] for i in h]), config) for h in (sample[0::2], sample[1::2]))
    h_dom = doc_cross_entropy(NgramModel.train(tok(domain), config), tok(pool))
    in_a = set(sample[0::2].tolist())
    want = [h_dom[i] - doc_cross_entropy(b if i in in_a else a, tok([p]))[0] for i, p in enumerate(pool)]
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.fixture(scope="module")
def reviews_in_news():
    domain = corpus_text("sentiment", "train")[::20]  # a small domain sample: product reviews
    reviews, news = corpus_text("sentiment", "dev"), corpus_text("pfr1998", "train")
    return domain, news + reviews, len(news)


def test_selection_finds_reviews_hidden_in_news_better_than_domain_perplexity(reviews_in_news):
    domain, pool, n_news = reviews_in_news
    n_reviews = len(pool) - n_news
    picked = select_domain(pool, domain, keep=n_reviews)
    precision = np.mean(picked >= n_news)

    # The baseline Moore and Lewis improve on: rank by the domain model's cross-entropy alone.
    counts = Counter(t for x in domain for t in x)
    vocab = {t for t, c in counts.items() if c >= 2}
    tok = lambda xs: [[t if t in vocab else OTHER for t in split_units(x, "char")] for x in xs]  # noqa: E731
    model = NgramModel.train([s for s in tok(domain) if s], NgramConfig(order=3, unit="char"))
    baseline = np.mean(np.argsort(doc_cross_entropy(model, tok(pool)), kind="stable")[:n_reviews] >= n_news)
    assert precision >= 0.85, precision
    assert precision >= baseline + 0.05, (precision, baseline)


def test_keep_as_a_fraction_and_determinism(reviews_in_news):
    domain, pool, _ = reviews_in_news
    pool = pool[-400:]
    a = select_domain(pool, domain, keep=0.25, seed=3)
    assert len(a) == 100 and len(set(a.tolist())) == 100
    np.testing.assert_array_equal(a, select_domain(pool, domain, keep=0.25, seed=3))
    assert len(select_domain(pool, domain, keep=10_000)) == len(pool)


@pytest.mark.parametrize("kw, msg", [
    (dict(pool=["ab"], domain=[""]), "no tokens"),
    (dict(pool=[], domain=["ab"]), "no documents"),
    (dict(pool=["ab", "ba"], domain=["ab"], keep=0), "at least 1"),
    (dict(pool=["ab", "ba"], domain=["ab"], keep=1.5), r"\(0, 1\]"),
    (dict(pool=["", ""], domain=["abab"]), "too little text"),
])
def test_errors(kw, msg):
    kw.setdefault("keep", 1)
    with pytest.raises(InputError, match=msg):
        select_domain(**kw)
