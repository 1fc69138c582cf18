"""Word clusters: sparse products and randomized SVD against dense numpy, PPMI against its definition,
k-means invariants, and clusters of words that share their contexts."""

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.clusters import Csr, kmeans, ppmi_matrix, randomized_svd, word_clusters


def _sparse(n, m, density, seed):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, m)) * (rng.random((n, m)) < density)


def test_sparse_products_match_dense():
    a = _sparse(30, 20, 0.2, 0)
    a[3] = 0.0  # an empty row
    csr, b, c = Csr.from_dense(a), np.random.default_rng(1).standard_normal((20, 4)), np.ones((30, 2))
    assert np.allclose(csr @ b, a @ b) and np.allclose(csr.rmatmul(c), a.T @ c)
    assert np.array_equal(csr.toarray(), a)
    rows, cols = np.nonzero(a)
    shuffled = np.random.default_rng(2).permutation(len(rows))  # from_coo sorts its triples itself
    assert np.array_equal(Csr.from_coo(rows[shuffled], cols[shuffled], a[rows, cols][shuffled], a.shape).toarray(), a)


@pytest.mark.parametrize("shape", [(80, 50), (40, 60)])
def test_randomized_svd_matches_numpy(shape):
    a = _sparse(*shape, 0.15, 3)
    u, s, vt = randomized_svd(Csr.from_dense(a), rank=5, oversample=15, power_iters=30, seed=0)
    exact = np.linalg.svd(a, compute_uv=False)[:5]
    assert np.allclose(s, exact, rtol=1e-6, atol=0)
    assert np.allclose(u.T @ u, np.eye(5), atol=1e-10) and np.allclose(vt @ vt.T, np.eye(5), atol=1e-10)
    assert np.allclose(a @ vt.T, u * s, atol=1e-10)  # the triplets belong together
    again = randomized_svd(Csr.from_dense(a), rank=5, oversample=15, power_iters=30, seed=0)
    assert all(np.array_equal(x, y) for x, y in zip((u, s, vt), again))  # deterministic, signs included


def test_randomized_svd_is_exact_when_the_sketch_covers_the_rank():
    rng = np.random.default_rng(4)
    a = rng.standard_normal((50, 3)) @ rng.standard_normal((3, 30))  # rank 3
    _, s, _ = randomized_svd(Csr.from_dense(a), rank=3, oversample=2, power_iters=0)
    assert np.allclose(s, np.linalg.svd(a, compute_uv=False)[:3], rtol=1e-10)
    with pytest.raises(InputError, match="rank"):
        randomized_svd(Csr.from_dense(a), rank=31)


def test_ppmi_matches_its_definition():
    sents = [["我", "吃", "饭"], ["你", "吃", "面"], ["我", "喝", "水"], ["他", "吃", "饭"], ["饭"]]
    words, m = ppmi_matrix(sents, min_count=1, contexts=3)
    ctx = sorted({w for s in sents for w in s}, key=lambda w: (-sum(s.count(w) for s in sents), w))[:3]
    cols = [*(("L", c) for c in [*ctx, "<s>", "</s>"]), *(("R", c) for c in [*ctx, "<s>", "</s>"])]
    counts = np.zeros((len(words), len(cols)))
    for s in sents:
        padded = ["<s>", *s, "</s>"]
        for i, w in enumerate(s, 1):
            for side, c in (("L", padded[i - 1]), ("R", padded[i + 1])):
                if (side, c) in cols:
                    counts[words.index(w), cols.index((side, c))] += 1
    p_wc = counts / counts.sum()
    p_c = counts.sum(0) ** 0.75 / (counts.sum(0) ** 0.75).sum()
    with np.errstate(divide="ignore", invalid="ignore"):  # never-seen pairs and contexts: no PPMI
        expected = np.nan_to_num(np.maximum(np.log(p_wc / (p_wc.sum(1, keepdims=True) * p_c)), 0.0))
    assert np.allclose(m.toarray(), expected)


def _blobs(seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((6, 3)) * 5
    return np.concatenate([c + rng.standard_normal((40, 3)) for c in centres])


def test_kmeans_at_convergence_assigns_every_point_to_its_nearest_centroid():
    x = _blobs()
    labels, c = kmeans(x, 8, max_iter=200, tol=0.0, seed=1)
    d = ((x[:, None, :] - c[None]) ** 2).sum(-1)
    assert np.array_equal(labels, d.argmin(1))
    for j in range(8):  # and every centroid is the mean of its points
        assert (labels == j).any() and np.allclose(c[j], x[labels == j].mean(0))
    again = kmeans(x, 8, max_iter=200, tol=0.0, seed=1)
    assert np.array_equal(again[0], labels) and np.array_equal(again[1], c)


def test_kmeans_needs_as_many_distinct_points_as_clusters():
    x = np.repeat(np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0]]), 5, axis=0)
    labels, c = kmeans(x, 3, tol=0.0)
    assert len(set(labels.tolist())) == 3 and np.allclose(c[labels], x)  # duplicates stay together
    with pytest.raises(InputError, match="distinct"):
        kmeans(x, 4)


def test_words_with_identical_contexts_share_a_cluster():
    subjects, verbs, objects = ["我", "你", "他", "她"], ["吃", "喝", "买"], ["饭", "面", "水", "茶"]
    sents = [[s, v, o] for s in subjects for v in verbs for o in objects]
    sents += [["猫", v, o] for v in verbs for o in objects] + [["狗", v, o] for v in verbs for o in objects]
    ids = word_clusters(sents, sizes=(6, 3), dims=8, seed=0)
    assert ids["猫"] == ids["狗"] and len(ids["猫"]) == 2
    assert ids["吃"][0] == ids["喝"][0] == ids["买"][0] != ids["饭"][0]
    assert word_clusters(sents, sizes=(6, 3), dims=8, seed=0) == ids  # deterministic
    assert set(word_clusters(sents, sizes=(500,), dims=8).values()) <= {(k,) for k in range(500)}  # size capped
    assert word_clusters([["独"]], sizes=(4,)) == {}  # nothing seen twice
    with pytest.raises(InputError, match="sizes"):
        word_clusters(sents, sizes=())
