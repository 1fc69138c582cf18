"""CoNLL-U: round trips, agreement with the `conllu` package, and clear errors with line numbers."""

import pytest

from llmlab.core.errors import InputError
from llmlab.text.conllu import DepSentence, Token, format_conllu, from_words, parse_conllu, read_conllu, write_conllu
from llmlab.text.treebank import generate_treebank

# UD-style: comments, a multiword token (3-4) and an empty node (2.1) among the words
SAMPLE = """# sent_id = es-1
# text = Vamos al mar.
1\tVamos\tir\tVERB\t_\tMood=Ind\t0\troot\t_\t_
2\ta\ta\tADP\t_\t_\t4\tcase\t_\t_
2.1\tido\tir\tVERB\t_\t_\t_\t_\t0:root\t_
3-4\tal\t_\t_\t_\t_\t_\t_\t_\t_
3\tel\tel\tDET\t_\t_\t4\tdet\t_\t_
4\tmar\tmar\tNOUN\t_\t_\t1\tobl\t_\tSpaceAfter=No
5\t.\t.\tPUNCT\t_\t_\t1\tpunct\t_\t_

1\t好\t_\tADJ\ta\t_\t0\troot\t_\t_

"""


def test_round_trip_keeps_comments_and_non_word_lines(tmp_path):
    sents = parse_conllu(SAMPLE)
    assert [len(s.tokens) for s in sents] == [5, 1]
    assert sents[0].words == ["Vamos", "a", "el", "mar", "."]  # syntactic words only
    assert sents[0].heads == [0, 4, 4, 1, 1] and sents[0].comments[1] == "# text = Vamos al mar."
    assert format_conllu(sents) == SAMPLE
    write_conllu(tmp_path / "x.conllu", sents)
    assert (tmp_path / "x.conllu").read_text(encoding="utf-8") == SAMPLE
    assert read_conllu(tmp_path / "x.conllu") == sents


def test_generated_treebank_round_trips():
    sents = generate_treebank(50, seed=7)
    assert parse_conllu(format_conllu(sents)) == sents


def test_agrees_with_the_conllu_package():
    conllu = pytest.importorskip("conllu")
    text = SAMPLE + format_conllu(generate_treebank(30, seed=5))
    ours, theirs = parse_conllu(text), conllu.parse(text)
    assert len(ours) == len(theirs)
    for s, ref in zip(ours, theirs):
        words = [t for t in ref if isinstance(t["id"], int)]  # theirs keeps ranges and empty nodes as tuples
        assert [(t.id, t.form, t.lemma, t.upos, t.head, t.deprel) for t in s.tokens] == \
            [(t["id"], t["form"], t["lemma"], t["upos"], t["head"], t["deprel"]) for t in words]
        assert [c.split(" = ", 1)[0][2:] for c in s.comments] == list(ref.metadata)
        assert format_conllu([s]) == ref.serialize()


def test_unparsed_input_and_from_words():
    s = parse_conllu("1\t他\t_\t_\tr\t_\t_\t_\t_\t_\n2\t来\t_\t_\tv\t_\t_\t_\t_\t_\n")[0]
    assert not s.parsed and s.tags("xpos") == ["r", "v"]
    assert from_words(["他", "来"], ["r", "v"], "xpos").tokens == s.tokens
    with pytest.raises(InputError, match="tab"):
        from_words(["a\tb"])


def _line(i, head, form="w"):
    return f"{i}\t{form}\t_\t_\t_\t_\t{head}\tdep\t_\t_"


@pytest.mark.parametrize("lines, message", [
    ([_line(1, 0), _line(2, 9)], "sentence at line 3: not a tree: word 2 has head 9, beyond the 2 words"),
    ([_line(1, 2), _line(2, 1)], "sentence at line 3: not a tree: no word is attached to the root"),
    ([_line(1, 0), _line(2, 3), _line(3, 2)], "sentence at line 3: not a tree: word 2 is on a cycle"),
    ([_line(1, 0), _line(2, 0)], "words 1, 2 are all attached to the root"),
    ([_line(1, 1)], "word 1 is its own head"),
    ([_line(1, 0), _line(2, "x")], "line 4: HEAD 'x' is not a word ID"),
    ([_line(1, 0), _line(3, 1)], "line 4: word ID '3', expected 2"),
    ([_line(1, 0), "2\tw\t_"], "line 4: 3 tab-separated fields"),
    ([_line(1, 0), _line(2, "_")], "sentence at line 3: some words have a HEAD and some '_'"),
    ([_line(1, 0), "# late"], "line 4: comment after the words began"),
    (["# only a comment"], "line 3: a sentence without words"),
])
def test_malformed_input_names_the_line(lines, message):
    text = "1\t好\t_\t_\t_\t_\t0\troot\t_\t_\n\n" + "\n".join(lines) + "\n"  # a good sentence first: lines 1-2
    with pytest.raises(InputError) as e:
        parse_conllu(text)
    assert str(e.value).startswith("CoNLL-U input ") and message in str(e.value)


def test_read_errors_name_the_file(tmp_path):
    (tmp_path / "empty.conllu").write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="holds no sentences"):
        read_conllu(tmp_path / "empty.conllu")
    with pytest.raises(InputError, match="does not exist"):
        read_conllu(tmp_path / "none.conllu")


def test_with_arcs_copies():
    s = DepSentence([Token(1, "a"), Token(2, "b")], ["# x"])
    t = s.with_arcs([0, 1], ["root", "dep"])
    assert t.heads == [0, 1] and s.heads == [None, None] and t.comments == s.comments


def test_with_text_makes_the_text_comment_and_space_after_agree():
    from llmlab.text.conllu import with_text

    s = parse_conllu(SAMPLE)
    assert [with_text(x) for x in s] == [s[0], DepSentence(s[1].tokens, ["# text = 好"])]  # multiword tokens: kept
    empty_node = parse_conllu("1\t他\t_\t_\t_\t_\t2\tnsubj\t_\t_\n1.1\t说\t_\t_\t_\t_\t_\t_\t0:root\t_\n"
                              "2\t来\t_\t_\t_\t_\t0\troot\t_\t_\n")[0]
    t = with_text(empty_node, "他来")
    assert t.comments == ["# text = 他来"] and [w.misc for w in t.tokens] == ["SpaceAfter=No", "_"]
    assert parse_conllu(format_conllu([t])) == [t]


def test_the_generated_treebank_text_equals_its_words_joined_per_space_after():
    from llmlab.text.conllu import text_of
    from llmlab.text.treebank import generate_treebank

    for s in generate_treebank(50, seed=7):
        joined = "".join(w.form + ("" if "SpaceAfter=No" in w.misc.split("|") else " ") for w in s.tokens)
        assert text_of(s) == joined.rstrip(" ") and text_of(s) == "".join(w.form for w in s.tokens)
        assert s.tokens[-1].misc == "_"  # nothing follows the last word
