"""Eisner and Chu-Liu/Edmonds against brute force over every tree of up to 7 words."""

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.dep_decode import chu_liu_edmonds, eisner, projective


def test_enumeration_counts_trees(all_trees):
    # n^(n-1) single-rooted trees over n labelled words (Cayley); projective ones: OEIS A006013 (1, 2, 7, 30, 143...)
    for n, projective_count in [(1, 1), (2, 2), (3, 7), (4, 30), (5, 143), (6, 728)]:
        trees, proj = all_trees(n)
        assert len(trees) == n ** (n - 1) and proj.sum() == projective_count
        assert all(projective(t.tolist()) == p for t, p in zip(trees[:300], proj[:300]))


@pytest.mark.parametrize("n", range(1, 8))
def test_decoders_equal_brute_force(n, all_trees):
    trees, proj = all_trees(n)
    rng = np.random.default_rng(n)
    for _ in range(12 if n < 7 else 3):
        s = rng.normal(size=(n + 1, n + 1)) * rng.choice([0.1, 1.0, 10.0])
        total = s[trees, np.arange(1, n + 1)].sum(axis=1)  # (trees,) scores
        assert eisner(s) == trees[proj][np.argmax(total[proj])].tolist()
        assert chu_liu_edmonds(s) == trees[np.argmax(total)].tolist()


def test_one_root_even_when_the_root_arcs_score_best():
    s = np.zeros((4, 4))
    s[0, 1:] = 10.0  # every word would rather hang off the root
    for decode in (eisner, chu_liu_edmonds):
        heads = decode(s)
        assert heads.count(0) == 1


def test_chu_liu_edmonds_finds_a_crossing_tree_eisner_cannot():
    s = np.full((5, 5), -5.0)
    for h, d in [(0, 2), (2, 4), (4, 1), (2, 3)]:  # best tree: 4 -> 1 crosses the root arc 0 -> 2
        s[h, d] = 5.0
    assert chu_liu_edmonds(s) == [4, 0, 2, 2] and not projective([4, 0, 2, 2])
    assert projective(eisner(s))


@pytest.mark.parametrize("bad", [np.zeros((1, 1)), np.zeros((2, 3)), np.array([[0, np.nan], [0, 0]])])
def test_bad_scores_are_input_errors(bad):
    for decode in (eisner, chu_liu_edmonds):
        with pytest.raises(InputError, match="arc scores"):
            decode(bad)
