import json

import pytest

from llmlab.core.errors import InputError
from llmlab.data import SPLITS, arithmetic, corpus_text, lm_splits, pfr1998, pfr1998_text, pfr1998_words, sentiment
from llmlab.data.corpora import _pfr1998_all, user_corpus


def test_pfr1998_splits_partition_the_corpus_in_order():
    parts = [pfr1998(s) for s in SPLITS]
    assert sum(parts, []) == list(_pfr1998_all())
    n = len(_pfr1998_all())
    assert len(parts[0]) == int(n * 0.9) and len(parts[2]) == n - int(n * 0.95)
    assert n > 19000


def test_pfr1998_views_agree():
    tagged, words, text = pfr1998("dev"), pfr1998_words("dev"), pfr1998_text("dev")
    assert len(tagged) == len(words) == len(text)
    for t, w, s in zip(tagged[:200], words, text):
        assert [x for x, _ in t] == w and "".join(w) == s
        assert all(tag and " " not in word for word, tag in t)
    assert {tag for s in tagged for _, tag in s} >= {"n", "v", "w", "m"}


def test_sentiment_labels_and_split():
    train, dev = sentiment("train"), sentiment("dev")
    assert {y for _, y in train} == {0, 1}
    # distinct sentences: no sentence in two splits or under two labels
    everything = train + dev + sentiment("test")
    assert len({s for s, _ in everything}) == len(everything)
    assert all(s.strip() for s, _ in everything)
    assert 8000 < sum(y for _, y in everything) < 8400


def test_arithmetic_is_correct_deterministic_and_split_disjoint():
    train = arithmetic(500, "train", seed=3)
    assert train == arithmetic(500, "train", seed=3)
    for p in train:
        a, op, b = next((p.question[:i], c, p.question[i + 1:-1]) for i, c in enumerate(p.question) if i and c in "+-*")
        assert 2 <= len(a) <= 5 and 2 <= len(b) <= 5
        assert int(p.answer) == {"+": int(a) + int(b), "-": int(a) - int(b), "*": int(a) * int(b)}[op]
    test = arithmetic(200, "test", seed=3)
    assert not {p.question for p in train} & {p.question for p in test}
    with pytest.raises(InputError, match="ops"):
        arithmetic(1, ops="/")


def test_an_arithmetic_evaluation_set_is_the_streams_first_distinct_questions_capped_at_the_split():
    from llmlab.data.corpora import arithmetic_distinct, arithmetic_supply

    kind = dict(max_digits=2, ops="+")
    stream = arithmetic(20000, "test", **kind)  # with replacement: every question recurs many times
    problem = {p.question: p for p in stream}
    first_seen = [problem[q] for q in dict.fromkeys(p.question for p in stream)]  # first occurrences, in order
    assert len(first_seen) == 404 == arithmetic_supply("test", **kind)  # counted by enumeration
    assert arithmetic_distinct(300, **kind) == first_seen[:300]  # distinct, and the draws' order kept
    assert len({p.question for p in arithmetic(300, "test", **kind)}) < 300  # what the old draw held
    assert arithmetic_distinct(1000, **kind) == first_seen  # more than the split holds: all of it
    assert arithmetic_distinct(404, "dev", **kind)[0] == arithmetic(1, "dev", **kind)[0]
    assert arithmetic_distinct(0, **kind) == []
    big = arithmetic_distinct(300, max_digits=3)  # the split holds tens of thousands: no enumeration
    assert len({p.question for p in big}) == 300 and big[0] == arithmetic(1, "test", max_digits=3)[0]
    with pytest.raises(InputError, match="min_digits"):
        arithmetic_distinct(5, max_digits=1)


def test_corpus_errors_are_clear(tmp_path):
    with pytest.raises(InputError, match="unknown corpus 'nope'"):
        corpus_text("nope")
    with pytest.raises(InputError, match="split must be one of"):
        corpus_text("pfr1998", "validation")
    with pytest.raises(InputError, match="does not exist"):
        corpus_text(str(tmp_path / "missing.txt"))
    j = tmp_path / "c.jsonl"
    j.write_text(json.dumps({"text": "你好"}) + "\n\n" + json.dumps({"body": "x"}) + "\n")  # blank lines count
    with pytest.raises(InputError, match="line 3 has no string field 'text'"):
        user_corpus(j)
    t = tmp_path / "c.txt"
    t.write_text("a\nb\n")
    assert corpus_text(str(t)) == ["a", "b"]


def test_a_language_model_run_validates_on_held_out_lines_of_a_user_file(tmp_path):
    p = tmp_path / "c.txt"
    lines = [f"第{i}行" for i in range(101)]
    p.write_text("\n".join(lines) + "\n", encoding="utf-8")
    train, dev = lm_splits(str(p))
    assert train + dev == lines and len(dev) == 5 and not set(train) & set(dev)
    assert lm_splits("pfr1998") == (pfr1998_text("train"), pfr1998_text("dev"))
    p.write_text("只有一行\n", encoding="utf-8")
    with pytest.raises(InputError, match="needs at least 2"):
        lm_splits(str(p))
