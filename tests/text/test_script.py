"""Traditional -> simplified characters (`llmlab.text.script`): checked against snownlp's own converter,
and the invariants the segmenters rely on (same length, simplified text unchanged, idempotent)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.data.corpora import pfr1998_words
from llmlab.text.script import simplified_table, to_simplified, to_traditional


def _gb2312(ch):
    try:
        ch.encode("gb2312")
        return True
    except UnicodeEncodeError:
        return False


def test_each_character_converts_as_snownlp_converts_it():
    """Alone (no phrase entry can apply), every traditional character of the table converts as snownlp's
    ``zh2hans`` converts it, or to the end of that conversion's chain; a GB 2312 character never converts."""
    from snownlp.normal import zh2hans

    table = simplified_table()
    assert len(table) > 2500
    for trad, simp in table.items():
        assert not _gb2312(trad) and len(trad) == len(simp) == 1
        theirs = zh2hans(trad)
        while len(theirs) == 1 and zh2hans(theirs) != theirs and not _gb2312(theirs):
            theirs = zh2hans(theirs)
        assert theirs == simp, trad
    assert to_simplified("著名 其余 乾隆 覆盖") == "著名 其余 乾隆 覆盖"  # the table would change these


def test_simplified_training_text_is_unchanged_and_traditional_text_comes_back():
    train = "".join("".join(s) for s in pfr1998_words("train"))
    assert to_simplified(train) == train
    test = ["".join(s) for s in pfr1998_words("test")]
    trad = [to_traditional(t) for t in test]
    changed = sum(a != b for t, u in zip(test, trad) for a, b in zip(t, u))
    assert changed > 0.2 * sum(map(len, test))  # a fifth of the characters differ in traditional form
    back = [to_simplified(t) for t in trad]
    assert sum(b == t for b, t in zip(back, test)) > 0.99 * len(test)  # 塚 (in the test text) comes back as 冢


@given(st.text(max_size=80) | st.text(alphabet="們國體育館發展著名塚冢薴苧苎", max_size=30))
@settings(max_examples=300, deadline=None)
def test_same_length_idempotent_and_only_the_table_changes(text):
    out = to_simplified(text)
    assert len(out) == len(text)
    assert to_simplified(out) == out
    table = simplified_table()
    assert all(b == table.get(a, a) for a, b in zip(text, out))
