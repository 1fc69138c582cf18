"""word2vec: the sampling pieces against gensim and by hand, and training that learns a planted structure."""

import re

import numpy as np
import pytest

from llmlab.classic.word2vec import (
    ROW_CAP,
    Word2VecConfig,
    _epoch_examples,
    _scratch,
    _step,
    build_vocab,
    huffman_paths,
    keep_probabilities,
    negative_table,
    train_word2vec,
    window_pairs,
)
from llmlab.core.errors import InputError


def _two_topics(n=600, seed=0):
    """Sentences drawn from one of two disjoint word groups: a model must put each group together."""
    rng = np.random.default_rng(seed)
    groups = [[f"a{i}" for i in range(8)], [f"b{i}" for i in range(8)]]
    return [list(rng.choice(groups[i % 2], size=8)) for i in range(n)], groups


def _separation(wv, groups):
    within = np.mean([wv.similarity(x, y) for g in groups for x in g for y in g if x != y])
    across = np.mean([wv.similarity(x, y) for x in groups[0] for y in groups[1]])
    return within - across


@pytest.mark.parametrize(
    "kwargs",
    [dict(model="skipgram"), dict(model="cbow", lr=0.05), dict(model="skipgram", hs=True, negative=0),
     dict(model="cbow", hs=True, negative=3, lr=0.05)],
)
def test_training_groups_words_that_share_contexts(kwargs):
    sents, groups = _two_topics()
    cfg = Word2VecConfig(dim=16, window=3, min_count=1, epochs=3, sample=0, batch_size=64, seed=1, **kwargs)
    wv, stats = train_word2vec(sents, cfg)
    assert len(wv) == 16 and wv.dim == 16
    assert stats.words == 3 * 600 * 8 and stats.predictions > 0
    assert _separation(wv, groups) > 0.3
    top = [w for w, _ in wv.most_similar("a0", topn=5)]
    assert all(w.startswith("a") for w in top)


def _hs_torch(w_hs, h, grad_h, tgt, points, labels, lengths, lr, cap):
    """The hierarchical softmax step as torch tensors (llmlab's implementation before the compiled one)."""
    import torch

    w_hs, h, grad_h, tgt = (torch.from_numpy(x) for x in (w_hs, h, grad_h, tgt))
    real = torch.arange(points.shape[1])[None, :] < torch.from_numpy(lengths)[:, None]
    points, labels = torch.from_numpy(points), torch.from_numpy(labels)
    b, l = real[tgt].nonzero(as_tuple=True)  # (P,) example and depth of every real node
    nodes = points[tgt[b], l]  # (P,)
    v = w_hs.index_select(0, nodes)  # (P, d)
    hb = h.index_select(0, b)  # (P, d)
    g = (labels[tgt[b], l] - torch.sigmoid((hb * v).sum(1))) * lr  # (P,)
    grad_h.index_add_(0, b, g[:, None] * v)
    seen = torch.bincount(nodes, minlength=w_hs.shape[0]).to(g.dtype)
    g = g * (cap / seen.clamp(min=cap))[nodes]
    w_hs.index_add_(0, nodes, g[:, None] * hb)


@pytest.mark.parametrize("cap", [2.0, 1000.0])
def test_hs_kernel_is_the_batched_torch_step(cap):
    """Same update from the same values: grads from the batch's starting nodes, node sums capped."""
    from llmlab.classic.w2v_kernels import logistic_update

    rng = np.random.default_rng(0)
    V, B, d = 9, 12, 7
    points, codes, real = huffman_paths(rng.integers(1, 50, size=V))
    labels, lengths = (1.0 - codes).astype(np.float32), real.sum(1).astype(np.int64)
    w_hs = rng.normal(size=(V - 1, d)).astype(np.float32)
    h = rng.normal(size=(B, d)).astype(np.float32)
    tgt = rng.integers(0, V, size=B)  # repeats: the root is on all 12 paths, capped when cap = 2
    want_w, want_g = w_hs.copy(), np.zeros_like(h)
    _hs_torch(want_w, h, want_g, tgt, points, labels, lengths, 0.3, cap)
    delta, seen = np.zeros_like(w_hs), np.zeros(V - 1, dtype=np.int64)
    got_g = np.zeros_like(h)
    logistic_update(w_hs, h, got_g, points[tgt], labels[tgt], real[tgt] > 0, 0.3, cap, delta, seen)
    np.testing.assert_allclose(w_hs, want_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-5, atol=1e-6)
    assert not delta.any() and not seen.any()  # scratch left zero for the next batch


def _ns_torch(w_neg, h, grad_h, tgt, neg, lr):
    """The negative sampling step as torch tensors (llmlab's implementation before the compiled one)."""
    import torch

    w_neg, h, grad_h, tgt, neg = (torch.from_numpy(x) for x in (w_neg, h, grad_h, tgt, neg))
    out = torch.cat([tgt[:, None], neg], 1)  # (B, 1+K): the true word first
    label = torch.zeros(out.shape)
    label[:, 0] = 1.0
    live = torch.ones(out.shape)
    live[:, 1:] = (neg != tgt[:, None]).float()
    v = w_neg.index_select(0, out.reshape(-1)).view(*out.shape, h.shape[1])  # (B, 1+K, d)
    g = (label - torch.sigmoid(torch.einsum("bd,btd->bt", h, v))) * (lr * live)  # (B, 1+K)
    grad_h += torch.einsum("bt,btd->bd", g, v)
    w_neg.index_add_(0, out.reshape(-1), (g[:, :, None] * h[:, None, :]).reshape(-1, h.shape[1]))


def test_negative_sampling_kernel_is_the_batched_torch_step():
    """Rows hit several times in a batch (and negatives equal to the target, skipped) sum their updates."""
    from llmlab.classic.word2vec import _negative_sampling

    rng = np.random.default_rng(0)
    V, B, K, d = 6, 20, 4, 7
    w_neg = rng.normal(size=(V, d)).astype(np.float32)
    h = rng.normal(size=(B, d)).astype(np.float32)
    tgt, neg = rng.integers(0, V, size=B), rng.integers(0, V, size=(B, K))
    assert (neg == tgt[:, None]).any()
    want_w, want_g = w_neg.copy(), np.zeros_like(h)
    _ns_torch(want_w, h, want_g, tgt, neg, 0.3)
    got_g, scratch = np.zeros_like(h), _scratch(V, d)
    _negative_sampling(w_neg, h, got_g, tgt, neg, 0.3, scratch)
    np.testing.assert_allclose(w_neg, want_w, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_g, want_g, rtol=1e-5, atol=1e-6)
    assert not scratch[0].any() and not scratch[1].any()


@pytest.mark.parametrize("cap", [2.0, np.inf])
def test_context_update_sums_each_row_capped(cap):
    """Every input slot adds its example's gradient to its row; a row hit more than cap times in the batch
    gets cap times the mean of its updates instead of their sum (cap = inf: the plain sum)."""
    from llmlab.classic.w2v_kernels import add_to_context

    rng = np.random.default_rng(0)
    V, B, d = 5, 6, 4
    w_in = rng.normal(size=(V, d)).astype(np.float32)
    grad_h = rng.normal(size=(B, d)).astype(np.float32)
    width = rng.integers(1, 5, size=B)
    ctx = rng.integers(0, V - 1, size=width.sum())  # word V - 1 never hit, rows 0-3 several times
    offsets = np.concatenate(([0], np.cumsum(width)))
    want = w_in.copy()
    for r in range(V):
        ups = [grad_h[i] for i in range(B) for j in range(offsets[i], offsets[i + 1]) if ctx[j] == r]
        if ups:
            want[r] += np.sum(ups, 0) * min(1.0, cap / len(ups))
    assert np.bincount(ctx).max() > cap or cap == np.inf
    delta, seen = _scratch(V, d)
    add_to_context(w_in, ctx, offsets, grad_h, cap, delta, seen)
    np.testing.assert_allclose(w_in, want, rtol=1e-5, atol=1e-6)
    assert not delta.any() and not seen.any()  # scratch left zero for the next batch


def test_batched_cbow_does_not_diverge_on_a_word_in_every_window():
    """One word in every other slot sits in ~half of a batch's CBOW windows; summing all those stale
    whole-window gradients sent its vector (and then every vector) to norms of 1e13-1e14 here, where the
    capped sums stay in the hundreds (one example per step: about 5)."""
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]
    sents = [[w if j % 2 else "x" for j, w in enumerate(rng.choice(words, size=40))] for _ in range(100)]
    cfg = Word2VecConfig(model="cbow", dim=16, window=5, negative=5, sample=0, min_count=1, epochs=3, lr=0.05,
                         batch_size=1024, seed=0)
    wv, _ = train_word2vec(sents, cfg)
    assert np.isfinite(wv.vectors).all() and np.linalg.norm(wv.vectors, axis=1).max() < 1e4


def _window_pairs_ref(ids, sent, window, rng):
    """window_pairs with numpy (llmlab's before the compiled loop): the pairs at each distance and side,
    then sorted by centre."""
    n = len(ids)
    reach = rng.integers(1, window + 1, size=n)  # effective window of each centre
    centres, contexts = [], []
    for o in range(1, window + 1):
        for sign in (1, -1):
            pos = np.arange(max(0, -sign * o), min(n, n - sign * o))
            other = pos + sign * o
            ok = (reach[pos] >= o) & (sent[pos] == sent[other])
            centres.append(pos[ok])
            contexts.append(other[ok])
    c, x = np.concatenate(centres), np.concatenate(contexts)
    order = np.argsort(c, kind="stable")
    return c[order], x[order]


@pytest.mark.parametrize("window", [1, 2, 5])
def test_window_pairs_are_the_numpy_ones(window):
    """Same pairs in the same order (it decides the batches) from the same draws."""
    rng = np.random.default_rng(window)
    sent = np.repeat(np.arange(30), rng.integers(1, 12, size=30))  # sentences shorter and longer than windows
    ids = np.arange(len(sent))
    c, x = window_pairs(ids, sent, window, np.random.default_rng(0))
    want_c, want_x = _window_pairs_ref(ids, sent, window, np.random.default_rng(0))
    np.testing.assert_array_equal(c, want_c)
    np.testing.assert_array_equal(x, want_x)
    assert window_pairs(ids[:0], sent[:0], window, rng)[0].shape == (0,)


def _epoch_examples_ref(ids, sent, keep, cfg, rng):
    """One epoch's examples as padded rows (llmlab's before the compiled step): (input ids (N, C), input
    mask (N, C), target ids (N,)); CBOW puts each centre's context words in one row, skip-gram one each."""
    kept = rng.random(len(ids)) < keep[ids]
    ids, sent = ids[kept], sent[kept]
    c, x = _window_pairs_ref(ids, sent, cfg.window, rng)
    if cfg.model == "skipgram":
        return ids[x][:, None], np.ones((len(x), 1), dtype=np.float32), ids[c]
    starts = np.searchsorted(c, np.arange(len(ids)))
    width = np.diff(np.append(starts, len(c)))
    has = np.flatnonzero(width > 0)
    col = np.arange(len(c)) - starts[c]
    inp = np.zeros((len(ids), 2 * cfg.window), dtype=np.int64)
    mask = np.zeros((len(ids), 2 * cfg.window), dtype=np.float32)
    inp[c, col], mask[c, col] = ids[x], 1.0
    return inp[has], mask[has], ids[has]


def _step_ref(w_in, w_neg, w_hs, inp, mask, tgt, neg, lr, hs):
    """One SGD step with torch (llmlab's before the compiled one): the masked mean of the input rows
    predicts the target from the batch's starting values, and every unmasked input slot, repeats
    included, gets the whole gradient of that mean, a row's sum capped at ROW_CAP times its mean."""
    import torch

    B, C = inp.shape
    d = w_in.shape[1]
    w_in, inp, mask = (torch.from_numpy(x) for x in (w_in, inp, mask))
    rows = w_in.index_select(0, inp.reshape(-1)).view(B, C, d)  # (B, C, d)
    h = ((rows * mask[:, :, None]).sum(1) / mask.sum(1, keepdim=True)).numpy()  # (B, d)
    grad_h = np.zeros_like(h)
    if neg is not None:
        _ns_torch(w_neg, h, grad_h, tgt, neg, lr)
    if hs is not None:
        points, labels, lengths = hs
        _hs_torch(w_hs, h, grad_h, tgt, points, labels, lengths, lr, ROW_CAP)
    rows = inp.reshape(-1)[mask.reshape(-1) > 0]  # every input slot, repeats included
    seen = torch.bincount(rows, minlength=w_in.shape[0]).float()
    grad = torch.from_numpy(grad_h)[:, None, :].expand(B, C, d)[mask > 0]  # (slots, d)
    w_in.index_add_(0, rows, grad * (ROW_CAP / seen.clamp(min=ROW_CAP))[rows, None])  # sums capped


@pytest.mark.parametrize(
    "model, negative, hs",
    [("cbow", 3, False), ("cbow", 0, True), ("cbow", 2, True), ("skipgram", 3, False), ("skipgram", 0, True)],
)
def test_compiled_steps_are_the_torch_steps(model, negative, hs):
    """A few batches of the compiled step against the torch one, from the same examples and negatives."""
    rng = np.random.default_rng(0)
    V, d, n_sent = 6, 5, 12
    sent = np.repeat(np.arange(n_sent), rng.integers(1, 8, size=n_sent))  # windows cut by sentence ends
    ids = rng.integers(0, V, size=len(sent))  # 6 words: repeats within a window
    keep = np.where(np.arange(V) == 0, 0.5, 1.0)  # subsampling draws too
    counts = np.bincount(ids, minlength=V) + 1
    cfg = Word2VecConfig(model=model, dim=d, window=3, negative=negative, hs=hs, batch_size=7)
    want_inp, want_mask, want_tgt = _epoch_examples_ref(ids, sent, keep, cfg, np.random.default_rng(1))
    ctx, offsets, tgt = _epoch_examples(ids, sent, keep, cfg, np.random.default_rng(1))
    np.testing.assert_array_equal(tgt, want_tgt)
    if model == "cbow":  # rows of 1 to 5 context words, some with a word twice
        assert set(want_mask.sum(1)) == {1, 2, 3, 4, 5}
        assert any(len(set(r[m > 0])) < m.sum() for r, m in zip(want_inp, want_mask))
    neg = rng.integers(0, V, size=(len(tgt), negative)) if negative else None
    points, codes, real = huffman_paths(counts)
    w_in, w_neg, w_hs = (rng.normal(size=(r, d)).astype(np.float32) for r in (V, V, V - 1))
    want_in, want_neg, want_hs = w_in.copy(), w_neg.copy(), w_hs.copy()
    hs_ref = (points, (1.0 - codes).astype(np.float32), real.sum(1).astype(np.int64)) if hs else None
    hs_ours = (points, 1.0 - codes, real > 0, *_scratch(V - 1, d)) if hs else None
    neg_scratch, in_scratch = _scratch(V, d) if negative else None, _scratch(V, d)
    for lo in range(0, len(tgt), cfg.batch_size):
        sl = slice(lo, lo + cfg.batch_size)
        b_neg = None if neg is None else neg[sl]
        _step_ref(want_in, want_neg, want_hs, want_inp[sl], want_mask[sl], tgt[sl], b_neg, 0.3, hs_ref)
        _step(w_in, w_neg, w_hs, ctx, offsets[lo : lo + cfg.batch_size + 1], tgt[sl], b_neg, 0.3, hs_ours,
              neg_scratch, in_scratch)
    for got, want in ((w_in, want_in), (w_neg, want_neg), (w_hs, want_hs)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_same_seed_same_vectors():
    sents, _ = _two_topics(200)
    cfg = Word2VecConfig(dim=8, min_count=1, epochs=1, batch_size=32, seed=3)
    a, _ = train_word2vec(sents, cfg)
    b, _ = train_word2vec(sents, cfg)
    np.testing.assert_array_equal(a.vectors, b.vectors)
    # a generator is read once: the vectors are trained, the same as from the list (they were left untrained)
    c, stats = train_word2vec((s for s in sents), cfg)
    np.testing.assert_array_equal(a.vectors, c.vectors)
    assert stats.words > 0
    with pytest.raises(InputError, match=r"sentences\[0\] must be a list of tokens"):
        train_word2vec([" ".join(s) for s in sents], cfg)


def test_subsampling_matches_gensim():
    gensim = pytest.importorskip("gensim.models")
    rng = np.random.default_rng(0)
    sents = [[f"w{int(x)}" for x in rng.zipf(1.5, size=20) if x < 200] for _ in range(300)]
    model = gensim.Word2Vec(sents, vector_size=4, min_count=1, sample=1e-3, epochs=1, workers=1, seed=0)
    words, counts = build_vocab(sents, 1)
    ours = keep_probabilities(counts, 1e-3)
    theirs = np.array([model.wv.get_vecattr(w, "sample_int") for w in words]) / 2**32
    np.testing.assert_allclose(ours, theirs, atol=1e-6)


def test_negative_table_follows_unigram_to_three_quarters():
    counts = np.array([1000, 100, 10, 1])
    table = negative_table(counts, size=100_000)
    share = np.bincount(table, minlength=4) / len(table)
    want = counts**0.75 / (counts**0.75).sum()
    np.testing.assert_allclose(share, want, atol=1e-4)


def test_huffman_codes_are_prefix_free_and_short_for_frequent_words():
    counts = np.array([50, 20, 10, 8, 5, 3, 2, 1, 1])
    points, codes, mask = huffman_paths(counts)
    lengths = mask.sum(1).astype(int)
    words = ["".join(str(int(c)) for c in codes[w, : lengths[w]]) for w in range(len(counts))]
    assert len(set(words)) == len(words)
    assert not any(a != b and b.startswith(a) for a in words for b in words)
    assert sum(2.0 ** -n for n in lengths) == pytest.approx(1.0)  # a full binary tree (Kraft equality)
    n = len(counts)
    assert all(lengths[i] <= lengths[j] for i in range(n) for j in range(n) if counts[i] > counts[j])
    assert (points[mask > 0] < len(counts) - 1).all() and (points[:, 0] == points[0, 0]).all()  # one root


def test_window_pairs_stay_in_sentence_and_window():
    rng = np.random.default_rng(0)
    sent = np.repeat(np.arange(20), 7)
    ids = np.arange(len(sent))
    c, x = window_pairs(ids, sent, 3, rng)
    assert (sent[c] == sent[x]).all() and (np.abs(c - x) <= 3).all() and (c != x).all()
    assert (np.diff(c) >= 0).all()
    full, _ = window_pairs(ids, sent, 1, rng)  # window 1 never shrinks: every neighbour pair, both ways
    assert len(full) == 20 * 6 * 2


@pytest.mark.parametrize(
    "kwargs",
    [dict(model="glove"), dict(dim=0), dict(negative=0, hs=False), dict(sample=-1), dict(lr=0),
     dict(min_lr=1.0)],
)
def test_bad_config_is_refused(kwargs):
    with pytest.raises(InputError):
        Word2VecConfig(**kwargs)


def test_min_count_too_high_is_explained():
    with pytest.raises(InputError, match="min_count"):
        train_word2vec([["a", "b"]], Word2VecConfig(min_count=5))



@pytest.mark.parametrize("token", ["a b", "", "x\ny"])
def test_a_token_the_vectors_cannot_hold_is_refused_before_training(token, monkeypatch):
    """Training ran to the end, then WordVectors refused the result naming neither word nor sentence; now the
    token and its first sentence are named before a step is taken."""
    import llmlab.classic.word2vec as w2v

    def no_training(*args):
        raise AssertionError("training started")

    monkeypatch.setattr(w2v, "_step", no_training)
    sentences = [["c", "d", "e"]] * 5 + [["c", token, "d"]] * 20
    with pytest.raises(InputError, match=rf"sentences\[5\] holds the token {re.escape(repr(token))}"):
        train_word2vec(sentences, Word2VecConfig(min_count=1, epochs=1, dim=4))


def test_words_with_other_whitespace_train_and_save(tmp_path):
    """An ideographic space or a tab is no separator of the format: such words train, save and load back."""
    from llmlab.classic.vectors import WordVectors

    wv, _ = train_word2vec([["北京\u3000市", "a\tb", "c"]] * 10, Word2VecConfig(min_count=1, epochs=1, dim=4))
    wv.save_word2vec(tmp_path / "v.txt")
    assert WordVectors.load_word2vec(tmp_path / "v.txt").words == wv.words
