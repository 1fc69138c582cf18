"""New-word discovery (`llmlab.text.newwords`): every measure against a direct count over the text, the
ranking, and `llmlab seg newwords`."""

import math
import os
import threading
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.text.newwords import RANKS, Candidate, candidates, discover


def _direct(texts, max_n, min_count):
    """Each measure from its definition, one occurrence at a time."""
    n_chars = sum(map(len, texts))
    grams = Counter(t[i:i + k] for t in texts for k in range(1, max_n + 1) for i in range(len(t) - k + 1))
    out = {}
    for w, c in grams.items():
        if len(w) < 2 or c < min_count or not all("\u4e00" <= ch <= "\u9fff" for ch in w):
            continue
        left, right = Counter(), Counter()
        for k, t in enumerate(texts):
            for i in range(len(t) - len(w) + 1):
                if t.startswith(w, i):  # a text edge is a neighbour of its own each time
                    left[t[i - 1] if i else ("edge", k, i)] += 1
                    right[t[i + len(w)] if i + len(w) < len(t) else ("edge", k, i)] += 1
        entropy = [-sum(k / c * math.log(k / c) for k in side.values()) for side in (left, right)]
        cohesion = min(math.log(c * n_chars / (grams[w[:k]] * grams[w[k:]])) for k in range(1, len(w)))
        out[w] = (c, cohesion, *entropy, len(left), len(right))
    return out


@settings(max_examples=80, deadline=None)
@given(st.lists(st.text(st.sampled_from("甲乙丙丁戊己，a"), max_size=14), min_size=1, max_size=8),
       st.integers(2, 4), st.integers(1, 3), st.integers(1, 30))
def test_measures_equal_a_direct_count(texts, max_n, min_count, chunk_chars):
    found = {c.word: c for c in candidates(texts, max_n, min_count, chunk_chars)}
    ref = _direct(texts, max_n, min_count)
    assert found.keys() == ref.keys()
    for w, (count, cohesion, lh, rh, lav, rav) in ref.items():
        c = found[w]
        assert (c.count, c.left_av, c.right_av) == (count, lav, rav)
        assert c.cohesion == pytest.approx(cohesion, abs=1e-9)
        assert (c.left_entropy, c.right_entropy) == (pytest.approx(lh, abs=1e-12), pytest.approx(rh, abs=1e-12))


def test_a_word_outranks_its_fragments_and_word_pairs():
    """``民共`` lives inside ``人民共和国`` (cohesive, not free); ``的人`` is free, not cohesive; the word is both."""
    heads, tails = "甲乙丙丁戊己庚辛壬癸", "子丑寅卯辰巳午未申酉"
    texts = [f"{a}人民共和国{b}" for a in heads for b in tails] + [f"{a}的{b}" for a in "人们" for b in heads]
    texts += [f"{a}人{b}" for a in "的了" for b in tails]
    found = {c.word: c for c in candidates(texts, 5)}
    word, pair = found["人民共和国"], found["的人"]
    assert [c.word for c in discover(texts, top=1, max_n=5)] == ["人民共和国"]
    for fragment in ("民共", "共和", "人民共", "民共和国"):  # always beside the same character on one side
        assert min(found[fragment].left_entropy, found[fragment].right_entropy) == 0 == found[fragment].score()
        assert found[fragment].cohesion >= word.cohesion
    assert min(pair.left_entropy, pair.right_entropy) == word.left_entropy == pytest.approx(math.log(10))  # as free
    assert pair.cohesion < word.cohesion / 2 and pair.score() < word.score() / 4
    assert all(RANKS["combined"](c) == c.score() for c in found.values())


def test_known_words_top_and_ties():
    texts = ["中国人民银行", "中国人民", "银行中国", "人民银行"] * 3
    every = discover(texts, top=None, min_count=2)
    assert [c.score() for c in every] == sorted((c.score() for c in every), reverse=True)
    known = {every[0].word}
    assert [c.word for c in discover(texts, top=None, known=known, min_count=2)] == [c.word for c in every[1:]]
    assert discover(texts, top=2, min_count=2) == every[:2]
    by_count = discover(texts, top=None, rank="count", min_count=2)
    keys = [(-c.count, len(c.word), c.word) for c in by_count]
    assert keys == sorted(keys)  # equal scores (counts) fall to shorter, then code-point order


def test_width_forms_count_together_and_other_scripts_end_a_string():
    found = {c.word: c for c in candidates(["ＡＢ中国", "AB中国", "中国ok", "中国"], min_count=1)}
    assert set(found) == {"中国"} and found["中国"].count == 4


def test_bad_settings_are_refused():
    for kwargs, match in (({"max_n": 1}, "max_n"), ({"min_count": 0}, "min_count"), ({"rank": "x"}, "rank"),
                          ({"top": 0}, "top")):
        with pytest.raises(InputError, match=match):
            discover(["中国"], **kwargs)
    with pytest.raises(InputError, match="strings"):
        candidates(["中国", 3])
    with pytest.raises(InputError, match="not one string"):
        discover("咖啡馆里喝咖啡，他爱咖啡" * 5, min_count=1)  # its characters would be the texts: nothing found
    assert discover([]) == [] and isinstance(Candidate("中国", 1, 0.0, 0.0, 0.0, 1, 1).score("av"), float)


def test_cli_newwords(segmenters, tmp_path, cli):
    from llmlab.data.corpora import pfr1998_text

    text = "".join(line + "\n" for line in pfr1998_text("test")[:300])
    lines = text.splitlines()
    rc, out, _ = cli(["seg", "newwords", "-k", "15", "--min-count", "3"], text)
    assert rc == 0 and out.split("\n")[:-1] == [c.word for c in discover(lines, 15, min_count=3)]
    rc, out, _ = cli(["seg", "newwords", "-k", "0", "--rank", "av", "--max-n", "3", "--scores"], text)
    rows = [line.split("\t") for line in out.splitlines()]
    ref = discover(lines, None, rank="av", max_n=3)
    assert [r[0] for r in rows] == [c.word for c in ref] and all(len(r) == 7 for r in rows)
    assert [int(r[1]) for r in rows] == [c.count for c in ref]
    path = tmp_path / "raw.txt"
    path.write_text(text, encoding="utf-8")  # a file is read once per string length, not held
    rc, again, _ = cli(["seg", "newwords", "-k", "0", "--rank", "av", "--max-n", "3", "--scores", "--input",
                        str(path)], "never read\n")
    assert rc == 0 and again == out
    fifo = tmp_path / "fifo"  # a pipe can be read only once: it is spooled, not found empty on the second pass
    os.mkfifo(fifo)
    writer = threading.Thread(target=fifo.write_text, args=(text,), kwargs={"encoding": "utf-8"})
    writer.start()
    rc, again, _ = cli(["seg", "newwords", "-k", "0", "--rank", "av", "--max-n", "3", "--scores", "--input",
                        str(fifo)], "never read\n")
    writer.join()
    assert rc == 0 and again == out

    segmenters["unigram"].save(tmp_path / "uni")
    known = tmp_path / "known.txt"
    known.write_text("".join(f"{c.word} 3\n" for c in ref[:5]), encoding="utf-8")
    rc, out, _ = cli(["seg", "newwords", "-k", "0", "--min-count", "3", "--known", str(known), "--model",
                      str(tmp_path / "uni")], text)
    lexicon = set(segmenters["unigram"].lexicon.counts) | {c.word for c in ref[:5]}
    assert rc == 0 and out.split() == [c.word for c in discover(lines, None, lexicon, min_count=3)]

    segmenters["hmm"].save(tmp_path / "hmm")
    for argv, match in ((["--top-k", "-1"], "--top-k"), (["--max-n", "1"], "max_n"),
                        (["--model", str(tmp_path / "hmm")], "no lexicon")):
        rc, out, err = cli(["seg", "newwords", *argv], "never read\n")
        assert rc == 2 and match in err and out == ""
