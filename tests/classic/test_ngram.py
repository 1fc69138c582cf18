"""N-gram models: normalisation for every smoothing, chain rule, hand-computed cases, counting against a
naive counter, sampling, persistence and config errors."""

import math
from collections import Counter

import numpy as np
import pytest

from llmlab.classic.information import perplexity
from llmlab.classic.ngram import NgramConfig, NgramModel, split_units
from llmlab.classic.ngram_counts import count_ngrams
from llmlab.classic.smoothing import SMOOTHINGS
from llmlab.classic.vocab import Vocab, encode_sentences
from llmlab.core.errors import InputError

CORPUS = [s.split() for s in ["a b c a d", "b c a b", "a a b c", "c b a d d", "d a b c", "b b b b c a"]]
CONTEXTS = [[], ["a"], ["b", "c"], ["c", "a", "b"], ["zz"], ["a", "zz"], ["zz", "a"], ["d", "d", "d", "d"]]
TEST = [["a", "b", "c"], ["zz", "a", "b", "c", "a"], ["d"], []]


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 9])  # 9: longer than any sentence
def test_distribution_sums_to_one_for_every_context(smoothing, order):
    m = NgramModel.train(CORPUS, NgramConfig(order=order, smoothing=smoothing))
    for ctx in CONTEXTS:
        for bos in (True, False):
            d = m.distribution(ctx, bos=bos)
            assert "<s>" not in d and min(d.values()) >= 0
            assert math.isclose(sum(d.values()), 1.0, abs_tol=1e-12), (ctx, bos)


@pytest.mark.parametrize("smoothing", SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3, 4, 9])
def test_vectorised_scores_are_the_chain_rule_of_prob(smoothing, order):
    m = NgramModel.train(CORPUS, NgramConfig(order=order, smoothing=smoothing))
    sentences = TEST + CORPUS  # the training text holds every listed n-gram, the first of each table too
    lp, _ = m.token_logprobs(sentences)
    chain = []
    for s in sentences:
        for i in range(len(s) + 1):
            p = m.prob(s[i] if i < len(s) else "</s>", s[:i])
            chain.append(math.log(p) if p > 0 else -math.inf)
    np.testing.assert_allclose(lp, chain, rtol=1e-12)
    assert math.isclose(m.sentence_logprob(TEST[0]), sum(chain[:4]), rel_tol=1e-12)


def test_lookup_finds_keys_in_tables_of_any_size():
    from llmlab.classic.ngram_counts import lookup

    q = np.array([7, 3, 8, 0])
    assert lookup(np.zeros(0, dtype=np.int64), q).tolist() == [-1] * 4
    assert lookup(np.array([7]), q).tolist() == [0, -1, -1, -1]
    assert lookup(np.array([0, 3, 7]), q).tolist() == [2, 1, -1, 0]


@pytest.mark.parametrize("smoothing", [s for s in SMOOTHINGS if s != "mle"])
def test_perplexity_finite_on_unseen_words_and_contexts(smoothing):
    m = NgramModel.train(CORPUS, NgramConfig(order=3, smoothing=smoothing))
    ev = m.evaluate(TEST)
    assert ev["n_zero"] == 0 and math.isfinite(ev["perplexity"]) and ev["n_oov"] == 1
    lp, _ = m.token_logprobs(TEST)
    assert math.isclose(ev["perplexity"], perplexity(lp), rel_tol=1e-12)  # same function as neural models
    assert ev["n_tokens"] == sum(len(s) + 1 for s in TEST)
    n_chars = sum(len(w) for s in TEST for w in s) + len(TEST)
    assert ev["bits_per_char"] == pytest.approx(-lp.sum() / math.log(2) / n_chars)
    assert 2 ** ev["bits_per_token"] == pytest.approx(ev["perplexity"])


def test_mle_says_perplexity_is_infinite(caplog):
    m = NgramModel.train(CORPUS, NgramConfig(order=2, smoothing="mle"))
    ev = m.evaluate(TEST)
    assert ev["perplexity"] == math.inf and ev["n_zero"] >= 1
    assert "perplexity is infinite" in caplog.text


def test_mle_bigram_by_hand():
    m = NgramModel.train([["a", "b"], ["a", "c"], ["a", "b"]], NgramConfig(order=2, smoothing="mle"))
    assert m.prob("b", ["a"]) == pytest.approx(2 / 3)
    assert m.prob("a", []) == 1.0  # every sentence starts with a
    # p(<s> a b </s>) = p(a|<s>) p(b|a) p(</s>|b) = 1 * 2/3 * 1
    assert m.sentence_logprob(["a", "b"]) == pytest.approx(math.log(2 / 3))


def test_add_one_bigram_by_hand():
    m = NgramModel.train([["a", "b"], ["a", "c"]], NgramConfig(order=2, smoothing="add_k", k=1.0))
    # predictable: <unk> </s> a b c (5); c(a) as context = 2
    assert m.prob("b", ["a"]) == pytest.approx(2 / 7)
    assert m.prob("a", ["a"]) == pytest.approx(1 / 7)
    assert m.prob("a", ["zz"]) == pytest.approx(1 / 5)  # unseen context: uniform


def test_add_one_trigram_starts_sentences_with_the_bos_context():
    """Right after <s> the longest context is <s> itself: (c(<s> w) + 1) / (c(<s>) + |V|), not uniform."""
    sents = [s.split() for s in ["a b c", "a c b", "a b b", "a c c", "b a"]]
    m = NgramModel.train(sents, NgramConfig(order=3, smoothing="add_k", k=1.0))
    # predictable: <unk> </s> a b c (5); 5 sentences, 4 start with a
    assert m.prob("a", []) == pytest.approx((4 + 1) / (5 + 5))
    assert m.prob("c", []) == pytest.approx(1 / 10)
    assert m.prob("b", ["a"]) == pytest.approx((2 + 1) / (4 + 5))  # context (<s> a): the top order
    assert m.prob("c", ["a", "b"]) == pytest.approx((1 + 1) / (2 + 5))
    assert m.prob("a", ["zz", "yy"]) == pytest.approx(1 / 5)  # an unseen full context: uniform


def test_kn_bigram_by_hand():
    # order 2, fixed D = 0.5 at both levels; corpus "<s> a b </s>", "<s> a a </s>"
    m = NgramModel.train([["a", "b"], ["a", "a"]], NgramConfig(order=2, smoothing="kn", discounts=(0.5, 0.5)))
    # unigram continuation counts: a <- {<s>, a} = 2, b <- {a} = 1, </s> <- {b, a} = 2; total 5
    # p1(w) = (N1+(.w) - 0.5)/5 + (0.5 * 3 / 5) / 4 (uniform over <unk> </s> a b)
    p1 = {w: (c - 0.5) / 5 + 0.3 / 4 for w, c in {"a": 2, "b": 1, "</s>": 2}.items()}
    # context a: followed by b, a, </s> once each (3 tokens); gamma = 0.5 * 3 / 3
    assert m.prob("b", ["a"]) == pytest.approx((1 - 0.5) / 3 + 0.5 * p1["b"])
    assert m.prob("<unk>", ["a"]) == pytest.approx(0.5 * 0.3 / 4)


def test_counts_match_a_naive_counter():
    rng = np.random.default_rng(0)
    sents = [[f"w{x}" for x in rng.integers(0, 6, size=rng.integers(0, 9))] for _ in range(60)]
    vocab = Vocab.build(sents)
    ids, sent = encode_sentences(vocab, sents)
    keys, counts = count_ngrams(ids, sent, 4, len(vocab))
    for k in (2, 3, 4):
        naive = Counter()
        for s in sents:
            toks = ["<s>", *s, "</s>"]
            naive.update(tuple(toks[i : i + k]) for i in range(len(toks) - k + 1))
        ours = {}
        names = {0: [()]}
        names[1] = [(t,) for t in vocab.tokens]
        for j in range(2, k + 1):
            V = len(vocab)
            names[j] = [names[j - 1][key // V] + (vocab.tokens[key % V],) for key in keys[j].tolist()]
        ours = dict(zip(names[k], counts[k].tolist()))
        assert ours == dict(naive)


def test_train_save_load_roundtrip(tmp_path):
    m = NgramModel.train(CORPUS, NgramConfig(order=3, smoothing="modified_kn"))
    m.save(tmp_path / "m")
    m2 = NgramModel.load(tmp_path / "m")
    assert m2.config == m.config and m2.vocab.tokens == m.vocab.tokens
    np.testing.assert_array_equal(m.token_logprobs(TEST)[0], m2.token_logprobs(TEST)[0])


def test_a_failed_save_leaves_the_earlier_model_whole(tmp_path, monkeypatch):
    import llmlab.classic.ngram as ngram

    d = tmp_path / "m"
    NgramModel.train(CORPUS, NgramConfig(order=2)).save(d)
    before = {p.name: p.read_bytes() for p in d.iterdir()}

    def disk_full(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ngram, "atomic_write_json", disk_full)  # fails after the counts are written
    with pytest.raises(OSError, match="No space left"):
        NgramModel.train(CORPUS, NgramConfig(order=3)).save(d)
    assert {p.name: p.read_bytes() for p in d.iterdir()} == before
    assert NgramModel.load(d).order == 2


def test_sentences_must_be_token_lists_and_may_be_generators():
    """A string where a list of tokens belongs was read as its characters (space included); a
    generator of sentences was read twice and failed (training) or scored nothing (evaluating)."""
    m = NgramModel.train(CORPUS, NgramConfig(order=2, smoothing="kn"))
    g = NgramModel.train((s for s in CORPUS), NgramConfig(order=2, smoothing="kn"))
    assert g.vocab == m.vocab and g.evaluate(iter(CORPUS[:3])) == m.evaluate(CORPUS[:3])
    text = " ".join(CORPUS[0])
    first = r"sentences\[0\]"
    for call, what in ((lambda: NgramModel.train([text]), first), (lambda: m.evaluate([text]), first),
                       (lambda: m.sentence_logprob(text), first), (lambda: m.prob("a", text), "context"),
                       (lambda: m.sample(prefix=text), "prefix"), (lambda: NgramModel.train(text), "sentences")):
        with pytest.raises(InputError, match=what + " must be a list"):
            call()
    with pytest.raises(InputError, match=r"sentences\[1\] must be strings, got NoneType"):
        m.evaluate([CORPUS[0], [None]])


def test_sampling_is_seeded_and_follows_the_model():
    m = NgramModel.train([["a", "b", "c"]] * 3, NgramConfig(order=3, smoothing="mle"))
    assert m.sample(seed=1) == ["a", "b", "c"]  # MLE of a single repeated sentence is deterministic
    k = NgramModel.train(CORPUS, NgramConfig(order=2, smoothing="kn"))
    assert k.sample(seed=3, max_tokens=20) == k.sample(seed=3, max_tokens=20)
    draws = Counter((k.sample(seed=s, max_tokens=1) or ["</s>"])[0] for s in range(2000))
    first = k.distribution([])
    for w, n in draws.items():  # empirical first-token frequencies match p(w | <s>)
        assert abs(n / 2000 - first[w]) < 0.05
    assert sum(draws.values()) == 2000
    # temperature reshapes p ** (1 / T); near 0 it is greedy (the powers once underflowed to NaN)
    top = max(first, key=first.get)
    assert {k.sample(seed=s, max_tokens=1, temperature=0.002)[0] for s in range(20)} == {top}
    # far below float64's normal range every log-probability overflows to -inf but the top one's
    assert {k.sample(seed=s, max_tokens=1, temperature=1e-320)[0] for s in range(5)} == {top}
    hot = Counter((k.sample(seed=s, max_tokens=1, temperature=2.0) or ["</s>"])[0] for s in range(2000))
    flat = {w: p ** 0.5 for w, p in first.items()}
    for w, n in hot.items():
        assert abs(n / 2000 - flat[w] / sum(flat.values())) < 0.05
    for bad in (0, -1, float("nan"), float("inf")):
        with pytest.raises(InputError, match="temperature"):
            k.sample(temperature=bad)
    assert k.sample(seed=3, max_tokens=0) == []  # zero tokens asked for is allowed, a negative count is not
    with pytest.raises(InputError, match="max_tokens"):
        k.sample(max_tokens=-1)


def test_char_units_and_unknowns():
    assert split_units(" 我爱 北京 ", "char") == ["我", "爱", "北", "京"]
    sents = [split_units(s, "char") for s in ["我爱北京", "北京欢迎你"]]
    m = NgramModel.train(sents, NgramConfig(order=2, unit="char"))
    assert m.prob("京", ["北"]) > 0.5
    assert math.isfinite(m.evaluate([["火", "星"]])["perplexity"])


@pytest.mark.parametrize(
    "kwargs",
    [dict(order=0), dict(smoothing="good_turing"), dict(k=0), dict(unit="byte"), dict(min_count=0),
     dict(smoothing="modified_kn", discounts=(0.5, 0.5, 0.5)), dict(smoothing="kn", discounts=(0.5,)),
     dict(smoothing="kn", order=2, discounts=(0.5, 1.5))],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(InputError):
        NgramConfig(**kwargs)


def test_empty_training_set_is_refused():
    with pytest.raises(InputError, match="zero sentences"):
        NgramModel.train([], NgramConfig())


def test_load_refuses_a_model_of_another_order(tmp_path):
    import json

    NgramModel.train(CORPUS, NgramConfig(order=2)).save(tmp_path / "m")
    meta = json.loads((tmp_path / "m" / "config.json").read_text(encoding="utf-8"))
    meta["config"]["order"] = 3
    (tmp_path / "m" / "config.json").write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(InputError, match="lacks"):
        NgramModel.load(tmp_path / "m")
    with pytest.raises(InputError, match="does not exist"):
        NgramModel.load(tmp_path / "nothing")


def test_boundary_words_in_the_text_are_refused_and_unk_is_kept():
    with pytest.raises(InputError, match="holds the word '<s>'"):
        NgramModel.train([["a", "<s>", "b"]] + CORPUS, NgramConfig(order=2))
    m = NgramModel.train([["a", "<unk>", "b"]] + CORPUS, NgramConfig(order=2))  # Penn Treebank style
    assert "<unk>" in m.vocab and len(m.vocab) == len(NgramModel.train(CORPUS, NgramConfig(order=2)).vocab)
    with pytest.raises(InputError, match="holds the word '</s>'"):
        m.evaluate([["a", "</s>"]])


def test_load_refuses_a_damaged_model_clearly(tmp_path):
    import json

    d = tmp_path / "m"
    NgramModel.train(CORPUS, NgramConfig(order=2)).save(d)
    counts, meta = (d / "counts.safetensors").read_bytes(), (d / "config.json").read_text(encoding="utf-8")
    for cut in (0, 100, len(counts) - 8):
        (d / "counts.safetensors").write_bytes(counts[:cut])
        with pytest.raises(InputError, match="cannot be read"):
            NgramModel.load(d)
    (d / "counts.safetensors").write_bytes(counts)
    doc = json.loads(meta)
    for broken, message in (([1, 2], "format 'list'"), ({**doc, "config": None}, "needs a 'config' object"),
                            ({k: v for k, v in doc.items() if k != "vocab"}, "and a 'vocab' list"),
                            # a number in the vocabulary loaded, and sampling died on a TypeError in join
                            ({**doc, "vocab": [*doc["vocab"][:3], 7, *doc["vocab"][4:]]},
                             r"config\.json: a vocabulary's tokens are strings; token 3 is 7")):
        (d / "config.json").write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(InputError, match=message):
            NgramModel.load(d)
    (d / "config.json").write_text(meta, encoding="utf-8")
    from safetensors.numpy import load_file, save_file

    arrays = load_file(str(d / "counts.safetensors"))
    arrays["counts.2"][0] = -5  # loaded, and scored with it
    save_file(arrays, str(d / "counts.safetensors"))
    with pytest.raises(InputError, match="are damaged: counts must be whole numbers >= 0"):
        NgramModel.load(d)


def _katz_ratio(counts):
    """Katz's d_r from the counts of one order (Good-Turing, else absolute discounting), as a function of r."""
    n = Counter(counts)
    if all(n[r] > 0 for r in range(1, 7)):
        a = 6 * n[6] / n[1]
        d = {r: ((r + 1) * n[r + 1] / n[r] / r - a) / (1 - a) for r in range(1, 6)}
        if all(0 < x < 1 for x in d.values()):
            return lambda r: d.get(r, 1.0)
    D = n[1] / (n[1] + 2 * n[2]) if n[1] and n[2] else 0.5
    return lambda r: (r - D) / r if r <= 5 else 1.0


def _naive_katz(sents, order):
    """Katz backoff written from its definition with dicts: p(w | h) = d_r r / c(h) for a seen h w, else
    alpha(h) p(w | h minus its first word), alpha spreading the left-over mass over the unseen words;
    unigrams are interpolated with the uniform distribution."""
    grams = Counter()
    for s in sents:
        toks = ("<s>", *s, "</s>")
        grams.update(toks[i : i + k] for k in range(1, order + 1) for i in range(len(toks) - k + 1))
    del grams[("<s>",)]
    words = list(dict.fromkeys(["<unk>", "</s>", *(w for s in sents for w in s)]))
    ratio = {k: _katz_ratio([c for g, c in grams.items() if len(g) == k]) for k in range(1, order + 1)}
    n_r = {k: Counter(c for g, c in grams.items() if len(g) == k) for k in range(1, order + 1)}
    kn_d = {k: n[1] / (n[1] + 2 * n[2]) if n[1] and n[2] else 0.5 for k, n in n_r.items()}
    follow = {}
    for g, c in grams.items():
        follow.setdefault(g[:-1], {})[g[-1]] = c

    def p(w, h):
        seen = follow.get(h, {})
        total = sum(seen.values())
        disc = {x: ratio[len(h) + 1](c) * c / total for x, c in seen.items()}
        if seen and sum(disc.values()) > 1 - 1e-9:  # every follower seen > 5 times: absolute discounting
            disc = {x: (c - kn_d[len(h) + 1]) / total for x, c in seen.items()}
        left = 1 - sum(disc.values())
        if not h:
            return disc.get(w, 0.0) + left / len(words)
        if not seen:
            return p(w, h[1:])
        room = 1 - sum(p(x, h[1:]) for x in seen)
        if room <= 1e-12:  # h was followed by every word: nothing to back off to
            return disc.get(w, 0.0) / sum(disc.values())
        if w in seen:
            return disc[w]
        return left / room * p(w, h[1:])

    return p, words


@pytest.mark.parametrize("order", [2, 3])
def test_katz_equals_its_definition(order):
    """Count-of-counts n_1..n_6 of the unigrams put Good-Turing in range (d_r in (0, 1)); the bigrams and
    trigrams, mostly seen once, fall back to absolute discounting."""
    rng = np.random.default_rng(0)
    plan = {1: 40, 2: 15, 3: 8, 4: 5, 5: 3, 6: 2, 9: 2}  # count r: number of words seen r times
    toks = [f"w{r}_{i}" for r, m in plan.items() for i in range(m) for _ in range(r)]
    rng.shuffle(toks)
    sents = [toks[i : i + 7] for i in range(0, len(toks), 7)]
    _check_katz(sents[:4], sents, order)


@pytest.mark.parametrize("order", [2, 3])
@pytest.mark.parametrize("times", [1, 6])
def test_katz_where_counts_run_dry_or_a_context_saw_every_word(order, times):
    """After "a" only "b" comes, 7 times (more than Good-Turing discounts): absolute discounting gives
    it some mass to back off with; "c" is followed by every id, so nothing is left to back off to.
    Repeated 6 times, every count of every order is above 5."""
    sents = ([["a", "b"]] * 7 + [["c", x] for x in ("<unk>", "a", "b", "c", "d")] + [["c"], ["d", "a", "b"]]) * times
    _check_katz(sents, sents, order)


def _check_katz(test, sents, order):
    m = NgramModel.train(sents, NgramConfig(order=order, smoothing="katz"))
    p, words = _naive_katz(sents, order)
    for s in test:
        for i in range(len(s) + 1):
            h = ("<s>", *s[:i])[-(order - 1):]
            for w in words:
                assert m.prob(w, s[:i]) == pytest.approx(p(w, h), rel=1e-9, abs=1e-15), (w, h)


def test_good_turing_factors_by_hand_and_their_fallback():
    from llmlab.classic.smoothing import good_turing_factors

    def counts(n):  # n[r] n-grams seen r times
        return np.array([r for r, m in n.items() for _ in range(m)] + [0, 0])

    # Katz: d_r = (r*/r - a) / (1 - a), r* = (r + 1) n_{r+1} / n_r, a = 6 n_6 / n_1; every d_r in (0, 1)
    for n in ({1: 40, 2: 15, 3: 8, 4: 5, 5: 3, 6: 2, 30: 1}, {1: 40, 2: 15, 3: 8, 4: 5, 5: 3, 6: 1}):
        a = 6 * n[6] / n[1]
        star = [(r + 1) * n[r + 1] / n[r] for r in range(1, 6)]
        want = [1.0] + [(s / r - a) / (1 - a) for r, s in zip(range(1, 6), star)]
        np.testing.assert_allclose(good_turing_factors(counts(n)), want, rtol=1e-12)
    # out of range (d_3 = (4 * 4 / 4 / 3 - a) / (1 - a) > 1) or n_5 = 0: absolute discounting with
    # D = n_1 / (n_1 + 2 n_2), d_r = (r - D) / r
    for n in ({1: 40, 2: 15, 3: 4, 4: 4, 5: 3, 6: 2}, {1: 40, 2: 15, 3: 8, 4: 5, 6: 2}):
        D = 40 / (40 + 30)
        np.testing.assert_allclose(good_turing_factors(counts(n)), [1.0] + [(r - D) / r for r in range(1, 6)])


def test_modified_kn_discounts_follow_chen_goodman_and_fall_back_without_singletons_or_doubletons():
    from llmlab.classic.smoothing import modified_kn_discounts

    def counts(n):  # n[r] n-grams seen r times
        return np.array([r for r, m in n.items() for _ in range(m)] + [0])

    for n in ({1: 1, 2: 1, 3: 1, 4: 1}, {1: 9, 2: 4, 3: 3, 4: 2, 7: 3}):
        y = n[1] / (n[1] + 2 * n[2])  # D_r = r - (r + 1) Y n_{r+1} / n_r
        want = [r - (r + 1) * y * n[r + 1] / n[r] for r in (1, 2, 3)]
        np.testing.assert_allclose(modified_kn_discounts(counts(n)), want, rtol=1e-12)
    # no singletons or no doubletons: Y is degenerate (0 or 1), all three take KN's fallback 0.5
    for n in ({1: 3, 3: 2, 4: 1}, {2: 3, 3: 2, 4: 1}):
        assert modified_kn_discounts(counts(n)) == (0.5, 0.5, 0.5)


def test_min_count_and_max_vocab_map_rare_words_to_unk():
    sents = [s.split() for s in ["b a c d", "a b c e", "c a f b", "c c g"]]  # c 5, b 3, a 3, d e f g 1
    freq = Counter(w for s in sents for w in s)
    first = {w: i for i, w in reversed(list(enumerate(w for s in sents for w in s)))}
    ranked = sorted(freq, key=lambda w: (-freq[w], first[w]))  # falling count, ties in first-seen order
    n_tokens = sum(len(s) + 1 for s in sents)  # the words and one </s> each
    for kwargs, kept in ((dict(min_count=2), [w for w in ranked if freq[w] >= 2]), (dict(max_vocab=2), ["c", "b"]),
                         (dict(max_vocab=5), ranked[:5]), (dict(min_count=2, max_vocab=2), ranked[:2])):
        m = NgramModel.train(sents, NgramConfig(order=1, smoothing="mle", **kwargs))
        assert list(m.vocab.tokens[3:]) == kept, kwargs
        rare = sum(c for w, c in freq.items() if w not in kept)
        assert m.prob("<unk>", []) == pytest.approx(rare / n_tokens)  # MLE: the rare tokens' share
        assert m.prob("g", []) == m.prob("<unk>", []) and m.evaluate(sents)["n_oov"] == rare
