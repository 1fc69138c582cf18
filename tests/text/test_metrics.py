"""SIGHAN-style scores on hand-computed cases, and their edge cases."""

import pytest

from llmlab.core.errors import InputError
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


def test_joint_segmentation_and_tagging_score():
    from llmlab.text.metrics import seg_tag_scores

    gold = [[("我", "r"), ("爱", "v"), ("北京", "ns")]]
    # 我/r right; 爱北京 wrong span; nothing else
    s = seg_tag_scores(gold, [[("我", "r"), ("爱北京", "v")]])
    assert s["precision"] == pytest.approx(1 / 2) and s["recall"] == pytest.approx(1 / 3)
    # right spans, one wrong tag
    s = seg_tag_scores(gold, [[("我", "r"), ("爱", "p"), ("北京", "ns")]])
    assert s["f1"] == pytest.approx(2 / 3)
