"""SIGHAN-style scores on hand-computed cases, and their edge cases."""

import pytest

from llmlab.core.errors import InputError
from llmlab.text.base import normalize_text
from llmlab.text.metrics import read_segmented, read_tagged, seg_scores, tag_accuracy


def test_hand_computed_scores():
    gold = [["我", "爱", "北京", "天安门"], ["研究", "生命"]]
    pred = [["我", "爱北京", "天安门"], ["研究生", "命"]]
    s = seg_scores(gold, pred, train_words={"我", "爱", "天安门", "研究"})
    # correct: 我, 天安门 -> 2 of 5 predicted, 2 of 6 gold
    assert (s.n_correct, s.n_pred, s.n_gold) == (2, 5, 6)
    assert s.precision == pytest.approx(2 / 5) and s.recall == pytest.approx(2 / 6)
    assert s.f1 == pytest.approx(2 * 0.4 * (1 / 3) / (0.4 + 1 / 3))
    # OOV gold words: 北京, 生命 (none found); IV: 我 爱 天安门 研究 (我, 天安门 found)
    assert s.oov_recall == 0.0 and s.iv_recall == pytest.approx(0.5)


def test_perfect_and_mismatched():
    s = seg_scores([["a", "bc"]], [["a", "bc"]])
    assert (s.precision, s.recall, s.f1, s.oov_recall) == (1.0, 1.0, 1.0, None)
    with pytest.raises(InputError, match="sentence 1"):
        seg_scores([["ab"]], [["ac"]])
    with pytest.raises(InputError, match="2 sentences"):
        seg_scores([["a"], ["b"]], [["a"]])


def test_sentences_or_training_words_given_as_strings_are_refused():
    """A string's characters would be taken for its words: "中国 人" against itself scored 1.0 as four
    one-character words, and train_words="中国" made a vocabulary of 中 and 国."""
    from llmlab.text.metrics import seg_tag_scores, tag_accuracy

    for call in (lambda: seg_scores(["中国 人"], ["中国 人"]), lambda: seg_scores([["中国"]], ["中国"]),
                 lambda: tag_accuracy(["中国"], [["n"]]), lambda: seg_tag_scores([[("中国", "ns")]], ["中国"])):
        with pytest.raises(InputError, match="sentence 1: sentences are lists of words"):
            call()
    for call in (lambda: seg_scores([["中国"]], [["中国"]], "中国"),
                 lambda: tag_accuracy([[("中", "n")]], [["n"]], "中")):
        with pytest.raises(InputError, match="not one string"):
            call()


def test_readers(tmp_path):
    p = tmp_path / "seg.txt"
    p.write_text("中国 人民\n\n银行\n", encoding="utf-8")
    assert read_segmented(p) == [["中国", "人民"], [], ["银行"]]
    t = tmp_path / "tag.txt"
    t.write_text("中国/ns 人民/n\n", encoding="utf-8")
    assert read_tagged(t) == [[("中国", "ns"), ("人民", "n")]]
    t.write_text("中国/ns 人民\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1"):
        read_tagged(t)


def test_tag_accuracy_counts_unknown_words():
    acc = tag_accuracy([[("a", "x"), ("b", "y"), ("c", "z")]], [["x", "y", "q"]], train_words={"a"})
    assert acc["accuracy"] == pytest.approx(2 / 3) and acc["unknown_accuracy"] == pytest.approx(0.5)


def test_known_words_are_known_in_either_width():
    """The taggers and segmenters see "ＧＤＰ" as "GDP": a half-width gold file tripled pos eval's
    unknown words (and seg eval's OOV words) with the same predictions."""
    gold = [[("ＧＤＰ", "nx"), ("增长", "v"), ("１０％", "m")]]
    for train in ({"GDP", "增长", "10%"}, {"ＧＤＰ", "增长", "１０％"}):
        for g in (gold, [[(normalize_text(w), t) for w, t in s] for s in gold]):
            assert tag_accuracy(g, [["nx", "v", "m"]], train)["n_unknown"] == 0
            words = [[w for w, _ in s] for s in g]
            assert seg_scores(words, words, train).n_oov == 0


def test_rates_over_no_words_are_undefined_and_no_gold_words_is_an_error():
    s = seg_scores([["a", "bc"]], [["a", "b", "c"]], train_words={"a", "bc"})
    assert (s.oov_recall, s.n_oov, s.iv_recall) == (None, 0, 0.5)  # no OOV word: no OOV recall, not 0
    s = seg_scores([["a", "bc"]], [["a", "bc"]], train_words=set())
    assert (s.oov_recall, s.n_oov, s.iv_recall) == (1.0, 2, None)
    acc = tag_accuracy([[("a", "x")]], [["y"]], train_words={"a"})
    assert (acc["accuracy"], acc["unknown_accuracy"], acc["n_unknown"]) == (0.0, None, 0)
    with pytest.raises(InputError, match="no words"):
        seg_scores([[], []], [[], []])
    with pytest.raises(InputError, match="no words"):
        tag_accuracy([[]], [[]])


def test_cli_eval_prints_n_a_for_no_oov_words_and_refuses_empty_gold(tmp_path, capsys):
    from llmlab.cli import main

    gold, empty = tmp_path / "gold.txt", tmp_path / "empty.txt"
    gold.write_text("中国 人民\n", encoding="utf-8")
    empty.write_text("\n", encoding="utf-8")
    assert main(["seg", "eval", str(gold), str(gold), "--train-words", str(gold)]) == 0
    assert capsys.readouterr().out == ("P=1.0000 R=1.0000 F1=1.0000 OOV-R=n/a IV-R=1.0000 "
                                       "(gold 2 words, 0 OOV, predicted 2, correct 2)\n")
    assert main(["seg", "eval", str(empty), str(empty)]) == 2
    assert f"gold file {str(empty)!r} holds no words" in capsys.readouterr().err
    tagged = tmp_path / "tagged.txt"
    tagged.write_text("中国/ns 人民/n\n", encoding="utf-8")
    assert main(["pos", "train", "--algo", "hmm", "--train", str(tagged), "-o", str(tmp_path / "t")]) == 0
    assert main(["pos", "eval", "--model", str(tmp_path / "t"), "--gold", str(tagged)]) == 0
    assert "accuracy=1.0000 unknown-word accuracy=n/a (2 words, 0 unknown" in capsys.readouterr().out
    assert main(["pos", "eval", "--model", str(tmp_path / "t"), "--gold", str(empty)]) == 2
    assert "holds no words" in capsys.readouterr().err


def test_joint_segmentation_and_tagging_score():
    from llmlab.text.metrics import seg_tag_scores

    gold = [[("我", "r"), ("爱", "v"), ("北京", "ns")]]
    # 我/r right; 爱北京 wrong span; nothing else
    s = seg_tag_scores(gold, [[("我", "r"), ("爱北京", "v")]])
    assert s["precision"] == pytest.approx(1 / 2) and s["recall"] == pytest.approx(1 / 3)
    # right spans, one wrong tag
    s = seg_tag_scores(gold, [[("我", "r"), ("爱", "p"), ("北京", "ns")]])
    assert s["f1"] == pytest.approx(2 / 3)
    # another sentence, or a cut-short one, is an error as in seg_scores (it scored F1 1.0, or silently)
    for other in ([("你", "r"), ("爱", "v"), ("北京", "ns")], [("我", "r"), ("爱", "v")]):
        with pytest.raises(InputError, match="sentence 1: gold and prediction hold different characters"):
            seg_tag_scores(gold, [other])
