"""Pseudo-projective parsing: projectivize always gives a projective tree, deprojectivize undoes it where
the labels tell, and the transition parser learns crossing arcs with it."""

import json

import numpy as np
import pytest

from llmlab.core.config import config_to_dict
from llmlab.core.errors import InputError
from llmlab.text.conllu import DepSentence, Token, tree_error
from llmlab.text.dep_decode import projective
from llmlab.text.dep_eval import attachment_scores
from llmlab.text.dep_parser import MODEL_FILE, load_parser
from llmlab.text.dep_transition import TransitionParser, TransitionParserConfig
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


def crossing_treebank(n, seed):
    """Sentences of a toy grammar, half with a crossing arc: "[a] N [d] V [N] [x] ." where the extraposed x
    word modifies the subject N across the verb (acl), and the stop attaches to the verb."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        toks = []  # (word, tag, head index into toks or -1 for the root, label)

        def add(word, tag, head, rel, toks=toks):
            toks.append([word, tag, head, rel])
            return len(toks) - 1

        adj = rng.random() < 0.4
        subj = add(f"n{rng.integers(8)}", "n", None, "nsubj")
        if adj:
            toks.insert(0, [f"a{rng.integers(4)}", "a", None, "amod"])
            subj = 1
        if rng.random() < 0.3:
            add(f"d{rng.integers(3)}", "d", None, "advmod")
        verb = add(f"v{rng.integers(6)}", "v", -1, "root")
        for t in toks[:verb]:
            t[2] = subj if t[3] == "amod" else verb
        if rng.random() < 0.7:
            add(f"n{rng.integers(8)}", "n", verb, "obj")
        if rng.random() < 0.5:
            add(f"x{rng.integers(3)}", "x", subj, "acl")
        add(".", "w", verb, "punct")
        out.append(DepSentence([Token(i, w, xpos=t, head=h + 1, deprel=r) for i, (w, t, h, r) in
                                enumerate(toks, 1)]))
    return out


@pytest.fixture(scope="module")
def crossing():
    train, test = crossing_treebank(300, seed=1), crossing_treebank(120, seed=2)
    parsers = {pp: TransitionParser.train(train, TransitionParserConfig(epochs=4, pseudo_projective=pp))
               for pp in (True, False)}
    return train, test, parsers


def test_crossing_treebank_has_crossing_trees(crossing):
    train, test, _ = crossing
    assert all(tree_error(s.heads) is None for s in train + test)
    share = np.mean([not projective(s.heads) for s in train])
    assert 0.3 < share < 0.7


def test_transition_parser_learns_crossing_arcs_only_pseudo_projectively(crossing):
    _, test, parsers = crossing
    crossing_test = [s for s in test if not projective(s.heads)]
    scores = {}
    for pp, p in parsers.items():
        pred = p.parse_sentences(crossing_test)
        assert all(tree_error(s.heads) is None and SEP not in "".join(s.rels) for s in pred)
        scores[pp] = attachment_scores(crossing_test, pred)
        scores[pp]["crossing"] = sum(not projective(s.heads) for s in pred)
    print({pp: (round(s["uas"], 3), round(s["las"], 3), s["crossing"]) for pp, s in scores.items()})
    assert scores[False]["crossing"] == 0  # arc-standard alone cannot build one
    assert scores[True]["crossing"] >= len(crossing_test) // 2
    assert scores[True]["uas"] > scores[False]["uas"] + 0.05
    assert scores[True]["las"] > scores[False]["las"] + 0.05


def test_pseudo_projective_model_saves_and_old_models_load(crossing, tmp_path):
    _, test, parsers = crossing
    p = parsers[True]
    loaded = load_parser(p.save(tmp_path / "m"))
    assert loaded.config == p.config and loaded.config.pseudo_projective
    assert loaded.parse_sentences(test) == p.parse_sentences(test)
    # a folder saved before the field existed: trained without it, so it loads with it off
    doc_path = tmp_path / "m" / MODEL_FILE
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    del doc["state"]["config"]["pseudo_projective"]
    doc_path.write_text(json.dumps(doc), encoding="utf-8")
    old = load_parser(tmp_path / "m")
    assert old.config == TransitionParserConfig(**{**config_to_dict(p.config), "pseudo_projective": False})
