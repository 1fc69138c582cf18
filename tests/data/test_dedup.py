"""Dedup against datasketch (signatures, LSH parameters, candidate pairs), brute-force Jaccard and
brute-force exact grouping, plus the clustering invariants."""

import inspect
import math
import random

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.data.corpora import pfr1998_text
from llmlab.data.dedup import (
    MinHashConfig,
    MinHasher,
    candidate_pairs,
    exact_duplicates,
    jaccard_estimate,
    lsh_params,
    near_duplicates,
    normalize,
)
from llmlab.data.lsh import candidate_probability

datasketch = pytest.importorskip("datasketch")
from datasketch import MinHash, MinHashLSH  # noqa: E402
from datasketch.lsh import _optimal_param  # noqa: E402

HAS_SCHEMES = "scheme" in inspect.signature(MinHash).parameters  # datasketch >= 2.0
SCHEMES = ["legacy", "affine32"] if HAS_SCHEMES else ["legacy"]


def ref_minhash(num_perm, seed, scheme, shingles):
    m = MinHash(num_perm, seed, scheme=scheme) if HAS_SCHEMES else MinHash(num_perm, seed)
    for s in shingles:
        m.update(s.encode("utf-8"))
    return m


def ref_shingles(text, n, unit):
    """The documented shingles, written out independently of the library."""
    if unit == "word":
        toks = text.split()
        if not toks:
            return set()
        return {" ".join(toks[i:i + n]) for i in range(len(toks) - n + 1)} if len(toks) >= n else {" ".join(toks)}
    if not text:
        return set()
    return {text[i:i + n] for i in range(len(text) - n + 1)} if len(text) >= n else {text}


def exact_jaccard(a, b):
    return len(a & b) / len(a | b)


def text_jaccard(a, b, n=5):
    """Brute-force Jaccard similarity of two texts' character n-gram sets."""
    return exact_jaccard(ref_shingles(a, n, "char"), ref_shingles(b, n, "char"))


def random_texts(rng, count):
    pools = [[chr(c) for c in range(0x4E00, 0x4E60)], list("abcdefg"), [chr(c) for c in range(0x1F600, 0x1F610)],
             list(" \t\n\u3000\u00a0\x1c"), ["é", "e\u0301", "ß", "Ω"]]
    out = []
    for _ in range(count):
        k = rng.choice([0, 1, 2, 4, 5, 6, 12, 40])
        out.append("".join(rng.choice(rng.choice(pools)) for _ in range(k)))
    return out + ["哈哈哈哈哈哈哈哈哈哈", "ab ab ab ab ab ab", "   ", "单", "a  b", "x\u3000y z\tw"]


@pytest.fixture(scope="module")
def dev():
    return pfr1998_text("dev")


def plant(texts, rng, copies, min_len=60, per_edit=60):
    """Near-copies of `copies` long lines, one character replaced per `per_edit` characters."""
    sources = rng.sample([i for i, t in enumerate(texts) if len(t) >= min_len], copies)
    out = []
    for i in sources:
        t = list(texts[i])
        for _ in range(max(1, len(t) // per_edit)):
            t[rng.randrange(len(t))] = "某"
        out.append("".join(t))
    return sources, out


@pytest.mark.parametrize("scheme", SCHEMES)
@pytest.mark.parametrize("unit,n", [("char", 5), ("char", 1), ("char", 3), ("word", 2), ("word", 3)])
def test_sha1_signatures_equal_datasketch(dev, scheme, unit, n):
    rng = random.Random(n)
    texts = random_texts(rng, 120) + dev[:40] + [" ".join(t[:30]) for t in dev[40:60]]
    config = MinHashConfig(num_perm=64, ngram=n, unit=unit, seed=7, hash="sha1", scheme=scheme)
    sig = MinHasher(config).signatures(texts)
    assert sig.shape == (len(texts), 64)
    for text, row in zip(texts, sig):
        assert row.tolist() == ref_minhash(64, 7, scheme, ref_shingles(text, n, unit)).hashvalues.tolist(), text


@pytest.mark.parametrize("unit,n", [("char", 5), ("char", 2), ("word", 1), ("word", 3)])
def test_fast_hash_is_a_function_of_the_shingle(dev, unit, n):
    """Each shingle occurrence gets one value; equal shingles the same value, distinct ones distinct
    values (32-bit: no collision expected among a few thousand), and the legacy permutation then
    takes the minima as the numpy formula says."""
    texts = random_texts(random.Random(3), 150) + dev[:30] + [" ".join(t[:20]) for t in dev[30:50]]
    m = MinHasher(MinHashConfig(num_perm=32, ngram=n, unit=unit))
    hv, off = m.shingle_hashes(texts)
    value = {}
    for i, text in enumerate(texts):
        toks = text.split() if unit == "word" else list(text)
        k = min(n, len(toks))
        starts = range(len(toks) - k + 1) if k else []
        grams = [" ".join(toks[j:j + k]) if unit == "word" else text[j:j + k] for j in starts]
        assert off[i + 1] - off[i] == len(grams)
        for g, h in zip(grams, hv[off[i]:off[i + 1]].tolist()):
            assert value.setdefault(g, h) == h
    assert len(set(value.values())) == len(value) > (1000 if unit == "char" and n == 5 else 100)
    sig = m.signatures(texts)
    for i in range(len(texts)):
        h = hv[off[i]:off[i + 1]].astype(np.uint64)[:, None]
        want = ((h * m.a + m.b) % np.uint64(2**61 - 1) & np.uint64(0xFFFFFFFF)).min(0) if len(h) else 0xFFFFFFFF
        assert (sig[i] == want).all()


def test_fast_word_tokens_are_str_split():
    texts = ["a\u3000b\x1cc\u2028d  e", " a b c d e ", "a b c d e"]
    sig = MinHasher(MinHashConfig(num_perm=16, ngram=2, unit="word")).signatures(texts)
    assert (sig[1] == sig[2]).all() and (sig[0] == sig[2]).all()
    assert not (sig[0] == MinHasher(MinHashConfig(num_perm=16, ngram=2)).signatures(texts[:1])[0]).all()


@pytest.mark.parametrize("num_perm", [2, 7, 32, 128])
def test_lsh_params_equal_datasketch(num_perm):
    for t in (0.1, 0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        for w in ((0.5, 0.5), (0.3, 0.7), (0.9, 0.1)):
            assert lsh_params(t, num_perm, *w) == _optimal_param(t, num_perm, *w), (t, num_perm, w)


@pytest.mark.parametrize("params", [None, (16, 8), (4, 3)])
def test_candidate_pairs_equal_datasketch_lsh(dev, params):
    rng = random.Random(5)
    _, copies = plant(dev, rng, 80, per_edit=30)
    texts = [t for t in dev + copies + dev[:15] + dev[:3] if t]  # exact repeats, several times over
    sig = MinHasher(MinHashConfig(num_perm=128, hash="sha1")).signatures(texts)
    b, r = params or lsh_params(0.7, 128)
    lsh = MinHashLSH(num_perm=128, params=(b, r))
    kw = {"scheme": "legacy"} if HAS_SCHEMES else {}
    mins = [MinHash(128, 1, hashvalues=s.astype(np.uint64), **kw) for s in sig]
    for i, m in enumerate(mins):
        lsh.insert(i, m)
    want = sorted({(min(i, j), max(i, j)) for i, m in enumerate(mins) for j in lsh.query(m) if j != i})
    got = candidate_pairs(sig, b, r)
    assert [tuple(p) for p in got.tolist()] == want and len(want) > 80
    res = near_duplicates(texts, hash="sha1", bands=b, rows=r, threshold=0.7)
    assert res.candidate_pairs == len(want)


@pytest.mark.parametrize("hash_,scheme", [("sha1", "legacy"), ("fast", "legacy"), ("fast", "affine32")])
def test_jaccard_estimate_within_binomial_bound(dev, hash_, scheme):
    rng = random.Random(11)
    num_perm = 256
    pairs = []
    for _ in range(60):
        t = rng.choice([x for x in dev if len(x) > 40])
        u = list(t)
        for _ in range(rng.randrange(0, len(t) // 4)):
            u[rng.randrange(len(u))] = rng.choice("某甲乙丙")
        pairs.append((t, "".join(u) if rng.random() < 0.8 else rng.choice(dev)))
    config = MinHashConfig(num_perm=num_perm, hash=hash_, scheme=scheme)
    sig = MinHasher(config).signatures([x for p in pairs for x in p])
    est = jaccard_estimate(sig[0::2], sig[1::2])
    js = np.array([text_jaccard(a, b) for a, b in pairs])
    assert js.min() < 0.2 and js.max() > 0.9  # the pairs span the range
    # est ~ Binomial(num_perm, J) / num_perm; 5 standard deviations, plus 1/num_perm for hash collisions
    assert (np.abs(est - js) <= 5 * np.sqrt(js * (1 - js) / num_perm) + 1 / num_perm).all()


@pytest.fixture(scope="module")
def planted(dev):
    rng = random.Random(2)
    sources, copies = plant(dev, rng, 60)
    texts = dev + copies
    pairs = [(s, len(dev) + k) for k, s in enumerate(sources)]
    return texts, pairs


def test_near_duplicates_finds_planted_pairs(planted):
    texts, pairs = planted
    t, num_perm = 0.8, 128
    res = near_duplicates(texts, threshold=t, num_perm=num_perm)
    b, r = res.params["bands"], res.params["rows"]
    js = np.array([text_jaccard(texts[i], texts[j]) for i, j in pairs])
    # a pair is found when it shares a band and its estimate passes: both likely for J well above t
    k = math.ceil(t * num_perm)
    p_pass = np.array([sum(math.comb(num_perm, x) * j**x * (1 - j) ** (num_perm - x) for x in range(k, num_perm + 1))
                       for j in js])
    p = candidate_probability(js, b, r) * p_pass
    found = sum(res.cluster[i] == res.cluster[j] for i, j in pairs)
    assert found >= p.sum() - 4 * np.sqrt((p * (1 - p)).sum()) and p.sum() > 30  # 4 sd under the expectation
    for i, j in pairs:  # the copy comes later: when found, the original is the one kept
        assert res.keep[i] or res.cluster[i] != i
        if res.cluster[j] == res.cluster[i]:
            assert not res.keep[j]


def test_clusters_hold_no_far_pairs_and_keep_the_first(planted):
    texts, _ = planted
    t, num_perm = 0.8, 128
    res = near_duplicates(texts, threshold=t, num_perm=num_perm)
    floor = t - 5 * math.sqrt(0.25 / num_perm) - 1 / num_perm  # a verified edge lies above this, 5 sd
    sets = [ref_shingles(x, 5, "char") for x in texts]
    groups = res.groups()
    assert len(groups) >= 40
    for g in groups:
        for i in g:  # every member has an edge to some other member
            assert max(exact_jaccard(sets[i], sets[j]) for j in g if j != i) >= floor
        assert (res.cluster[g] == g[0]).all() and res.keep[g].tolist() == [True] + [False] * (len(g) - 1)
    alone = np.setdiff1d(np.arange(len(texts)), [i for g in groups for i in g])
    assert res.keep[alone].all() and (res.cluster[alone] == alone).all()
    assert res.n_removed == sum(len(g) - 1 for g in groups)


def test_clusters_do_not_depend_on_order(planted):
    texts, _ = planted
    base = near_duplicates(texts, threshold=0.7)
    perm = np.random.default_rng(0).permutation(len(texts))
    shuffled = near_duplicates([texts[i] for i in perm], threshold=0.7)
    as_sets = {frozenset(g) for g in base.groups()}
    assert {frozenset(perm[g].tolist()) for g in shuffled.groups()} == as_sets and as_sets
    assert (shuffled.candidate_pairs, shuffled.verified_pairs) == (base.candidate_pairs, base.verified_pairs)


def test_verification_only_splits_clusters(dev):
    """Heavily edited copies (J about 0.3) share a band now and then (the S-curve's tail); checking the
    estimate rejects them, so verified clusters are a strict refinement of unverified ones."""
    sources, copies = plant(dev, random.Random(8), 120, per_edit=6)
    texts = dev + copies
    js = np.array([text_jaccard(texts[i], c) for i, c in zip(sources, copies)])
    loose = near_duplicates(texts, threshold=0.5, num_perm=64, verify=False)
    tight = near_duplicates(texts, threshold=0.5, num_perm=64)
    b, r = tight.params["bands"], tight.params["rows"]
    assert js.max() < 0.5 and candidate_probability(js, b, r).sum() > 8  # expected tail candidates
    assert loose.verified_pairs == loose.candidate_pairs == tight.candidate_pairs > tight.verified_pairs
    for g in tight.groups():
        assert len(set(loose.cluster[g].tolist())) == 1
    assert loose.n_removed > tight.n_removed


def test_empty_texts_never_near_match():
    texts = ["", "", "   ", "同一句话重复出现了两次", "同一句话重复出现了两次", ""]
    res = near_duplicates(texts, hash="sha1")
    assert res.keep.tolist() == [True, True, True, True, False, True]
    words = near_duplicates(["  ", "\u3000", "a b c", "a b c"], unit="word", ngram=2)
    assert words.keep.tolist() == [True, True, True, False] and words.candidate_pairs == 1


def test_exact_duplicates_keep_first_and_match_brute_force(dev):
    rng = random.Random(4)
    texts = [rng.choice(dev[:30]) for _ in range(200)] + ["", " ", "A b", "a\u3000 B\n", "a b"]
    res = exact_duplicates(texts)
    first = {}
    want = [first.setdefault(" ".join(x.split()), i) for i, x in enumerate(texts)]
    assert res.cluster.tolist() == want and res.keep.tolist() == [w == i for i, w in enumerate(want)]
    assert res.verified_pairs == sum(math.comb(c, 2) for c in np.bincount(want) if c > 1)
    assert exact_duplicates(texts, casefold=True).cluster[-3:].tolist() == [len(texts) - 3] * 3
    raw = exact_duplicates(["a b", "a  b", "a b", ""], normalize_whitespace=False)
    assert raw.keep.tolist() == [True, True, False, True]


def test_normalize():
    assert normalize("\t两个\u3000空格  之间\n") == "两个 空格 之间"
    assert normalize("ÉCOLE Straße", casefold=True) == "école strasse" and normalize("AbC") == "AbC"


@pytest.mark.parametrize("kw,msg", [
    ({"threshold": 0.0}, "threshold"), ({"threshold": 1.0}, "threshold"), ({"threshold": float("nan")}, "threshold"),
    ({"num_perm": 1}, "num_perm"), ({"num_perm": 2.5}, "num_perm"), ({"ngram": 0}, "ngram"),
    ({"unit": "byte"}, "unit"), ({"hash": "md5"}, "hash"), ({"scheme": "affine64"}, "scheme"),
    ({"bands": 20, "rows": 7}, "bands \\* rows"), ({"bands": 4}, "both"), ({"bands": 0, "rows": 3}, "bands"),
    ({"seed": -1}, "seed"),
])
def test_bad_parameters(kw, msg):
    with pytest.raises(InputError, match=msg):
        near_duplicates(["abc", "abd"], **kw)


def test_bad_input():
    with pytest.raises(InputError, match=r"texts\[1\]"):
        near_duplicates(["a", b"b"])
    with pytest.raises(InputError, match="single string"):
        exact_duplicates("abc")
    with pytest.raises(InputError, match="threshold"):
        lsh_params(1.5, 128)
    with pytest.raises(InputError, match="false_positive_weight"):
        lsh_params(0.5, 128, -0.1, 0.5)
