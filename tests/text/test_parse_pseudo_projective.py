"""Pseudo-projective parsing: projectivize always gives a projective tree, deprojectivize undoes it where
the labels tell, and the transition parser learns crossing arcs with it."""

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.conllu import tree_error
from llmlab.text.dep_decode import projective
from llmlab.text.pseudo_projective import SEP, deprojectivize, nonprojective_arcs, projectivize


def random_tree(rng, n):
    """Heads of a random single-rooted tree over n words: each word in a random order attaches to an earlier one."""
    order = rng.permutation(n) + 1
    heads = [0] * n
    for i, d in enumerate(order[1:], 1):
        heads[d - 1] = int(order[rng.integers(i)])
    return heads


def _random_trees(count, labels):
    """(heads, labels) of `count` random trees over 2..24 words; labels "distinct" or drawn from 4."""
    for seed in range(count):
        rng = np.random.default_rng(seed)
        n = int(rng.integers(2, 25))
        lab = [f"l{i}" for i in range(n)] if labels == "distinct" else [f"l{x}" for x in rng.integers(0, 4, n)]
        yield random_tree(rng, n), lab


def test_nonprojective_arcs_agree_with_crossing_arcs(all_trees):
    for n in range(1, 6):
        trees, proj = all_trees(n)
        for t, p in zip(trees.tolist(), proj, strict=True):
            assert (not nonprojective_arcs(t)) == p


def test_projectivize_gives_a_projective_tree_of_the_same_words():
    lifted = 0
    for heads, labels in _random_trees(1500, "few"):
        ph, pl = projectivize(heads, labels)
        assert projective(ph) and tree_error(ph) is None and len(ph) == len(heads)
        assert ph.index(0) == heads.index(0)  # the same root word, and only it
        assert [x.split(SEP)[0] for x in pl] == labels  # lifted words keep their label before the arrow
        changed = [i for i in range(len(heads)) if ph[i] != heads[i]]
        assert all(SEP in pl[i] for i in changed) and sum(SEP in x for x in pl) == len(changed)
        if projective(heads):
            assert (ph, pl) == (heads, labels)
        lifted += bool(changed)
    assert lifted > 1000  # random trees are mostly not projective


def test_every_small_tree(all_trees):
    for n in range(1, 6):
        trees, _ = all_trees(n)
        for t in trees.tolist():
            labels = [f"r{i}" for i in range(n)]
            ph, pl = projectivize(t, labels)
            assert projective(ph)
            assert deprojectivize(ph, pl) == (t, labels)


def test_round_trip_on_the_papers_sentence_and_by_hand():
    # Nivre & Nilsson 2005, Figure 1: "Z nich je jen jedna na kvalitu ." (the final stop under je, one root)
    heads, labels = [5, 1, 0, 5, 3, 3, 6, 3], ["AuxP", "Atr", "Pred", "AuxZ", "Sb", "AuxP", "Adv", "AuxK"]
    assert projectivize(heads, labels) == ([3, 1, 0, 5, 3, 3, 6, 3], ["AuxP↑Sb", *labels[1:]])
    assert deprojectivize(*projectivize(heads, labels)) == (heads, labels)
    # a word lifted twice keeps the label of its original head: 3 -> 6 spans 4 and 5, then 2 -> 6 does
    heads, labels = [0, 1, 2, 1, 4, 3], ["root", "a", "b", "c", "d", "e"]
    assert nonprojective_arcs(heads) == [6]
    ph, pl = projectivize(heads, labels)
    assert ph == [0, 1, 2, 1, 4, 1] and pl == [*labels[:5], "e↑b"] and projective(ph)
    assert deprojectivize(ph, pl) == (heads, labels)
    # with word 2 labelled b too, breadth-first search under word 1 meets it first: the round trip fails
    labels = ["root", "b", "b", "c", "d", "e"]
    ph, pl = projectivize(heads, labels)
    assert pl[5] == "e↑b" and deprojectivize(ph, pl) == ([0, 1, 2, 1, 4, 2], labels)


def test_round_trip_exact_with_distinct_labels_and_mostly_otherwise():
    for heads, labels in _random_trees(1500, "distinct"):
        assert deprojectivize(*projectivize(heads, labels)) == (heads, labels)
    trips = [deprojectivize(*projectivize(h, lab)) == (h, lab) for h, lab in _random_trees(1500, "few")
             if not projective(h)]
    share = np.mean(trips)
    print(f"round trip with 4 labels on {len(trips)} non-projective random trees: {share:.3f}")
    assert share > 0.1  # labels drawn from 4: the Head scheme often has several words to choose from


def test_deprojectivize_keeps_what_it_cannot_place_and_checks_its_input():
    assert deprojectivize([2, 0, 2], ["a↑zz", "root", "b"]) == ([2, 0, 2], ["a", "root", "b"])
    assert deprojectivize([2, 0, 2], ["a", "root", "b"]) == ([2, 0, 2], ["a", "root", "b"])
    with pytest.raises(InputError, match="not a tree"):
        projectivize([2, 1], ["a", "b"])
    with pytest.raises(InputError, match="2 heads but 1 labels"):
        deprojectivize([2, 0], ["a"])
    with pytest.raises(InputError, match="holds"):
        projectivize([2, 0], [f"a{SEP}b", "root"])
