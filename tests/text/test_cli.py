"""`llmlab seg` and `llmlab pos` end to end on small files."""


import io

import pytest

from llmlab.cli import main


@pytest.fixture()
def files(tmp_path, train_words, train_tagged, test_words):
    train = tmp_path / "train.txt"
    train.write_text("".join(" ".join(s) + "\n" for s in train_words[:300]), encoding="utf-8")
    tagged = tmp_path / "tagged.txt"
    tagged.write_text("".join(" ".join(f"{w}/{t}" for w, t in s) + "\n" for s in train_tagged[:300]),
                      encoding="utf-8")
    gold = tmp_path / "gold.txt"
    gold.write_text("".join(" ".join(s) + "\n" for s in test_words[:20]), encoding="utf-8")
    user = tmp_path / "user.txt"
    user.write_text("龘靐齉\n", encoding="utf-8")
    return {"train": train, "tagged": tagged, "gold": gold, "user": user, "dir": tmp_path}


@pytest.mark.parametrize("algo", ["fmm", "bimm", "unigram", "hmm", "perceptron"])
def test_seg_train_cut_eval(files, algo, cli):
    model = files["dir"] / algo
    args = ["seg", "train", "--algo", algo, "--train", str(files["train"]), "-o", str(model)]
    if algo == "perceptron":
        args += ["--epochs", "1", "--folds", "2", "--feature-dict", str(files["user"])]
    assert cli(args, "")[0] == 0
    gold_lines = files["gold"].read_text(encoding="utf-8").splitlines()
    raw = "\n".join(line.replace(" ", "") for line in gold_lines) + "\n\n龘靐齉 ok\n"
    cut_args = ["seg", "cut", "--model", str(model)]
    if algo != "hmm":
        cut_args += ["--user-dict", str(files["user"])]
    rc, out, _ = cli(cut_args, raw)
    lines = out.split("\n")[:-1]
    assert rc == 0 and len(lines) == len(gold_lines) + 2
    assert lines[-2] == ""  # empty line for empty line
    if algo != "hmm":
        assert lines[-1] == "龘靐齉   ok"  # the user word, the space run as a word, ok
    assert [line.replace(" ", "") for line in lines[:-2]] == [g.replace(" ", "") for g in gold_lines]
    pred = files["dir"] / f"{algo}.pred"
    pred.write_text("\n".join(lines[:-2]) + "\n", encoding="utf-8")
    rc, out, _ = cli(["seg", "eval", str(files["gold"]), str(pred), "--train-words", str(files["train"])])
    assert rc == 0 and "F1=" in out and "OOV-R=" in out


def test_seg_eval_errors_name_both_files_and_the_line(tmp_path, capsys):
    gold, pred = tmp_path / "gold.txt", tmp_path / "pred.txt"
    gold.write_text("中国 人民\n\n北京 大学\n", encoding="utf-8")
    pred.write_text("中国 人民\n\n北京 大字\n", encoding="utf-8")  # line 3 holds other characters
    assert main(["seg", "eval", str(gold), str(pred)]) == 2
    err = capsys.readouterr().err
    assert f"gold file {str(gold)!r} against prediction file {str(pred)!r}: line 3:" in err
    pred.write_text("中国 人民\n", encoding="utf-8")
    assert main(["seg", "eval", str(gold), str(pred)]) == 2
    assert f"{str(pred)!r}: gold has 3 sentences but the prediction has 1" in capsys.readouterr().err


@pytest.mark.parametrize("algo", ["fmm", "perceptron"])
def test_seg_cut_gives_a_line_for_each_line(segmenters, algo, tmp_path, cli):
    """Only "\\n" ends a line: a form feed or U+2028 inside one stays there, and the words give it back."""
    segmenters[algo].save(tmp_path / algo)
    lines = ["中国人民\u2028银行\x0c开业", "", "迈向 新世纪\r"]
    rc, out, _ = cli(["seg", "cut", "--model", str(tmp_path / algo)], "\n".join(lines) + "\r\n")
    got = out.split("\n")
    assert rc == 0 and got[-1] == "" and len(got) == len(lines) + 1
    assert [g.replace(" ", "") for g in got[:-1]] == [x.replace(" ", "") for x in lines]


@pytest.mark.parametrize("mode", ["search", "full"])
def test_seg_cut_modes_give_the_apis_words(segmenters, mode, tmp_path, test_words, cli):
    """`seg cut --mode search|full` writes `cut_for_search` / `cut_all` of each line; a model without a
    lexicon (the HMM) is refused before any input is read."""
    seg = segmenters["unigram"]
    seg.save(tmp_path / "u")
    lines = ["".join(s) for s in test_words[:20]] + ["", "中国 人民"]
    rc, out, _ = cli(["seg", "cut", "--model", str(tmp_path / "u"), "--mode", mode], "\n".join(lines) + "\n")
    want = seg.cut_for_search if mode == "search" else seg.cut_all
    assert rc == 0 and out == "".join(" ".join(want(x)) + "\n" for x in lines)
    assert out != "".join(" ".join(seg.cut(x)) + "\n" for x in lines)  # the mode changed the words
    segmenters["hmm"].save(tmp_path / "h")
    rc, out, err = cli(["seg", "cut", "--model", str(tmp_path / "h"), "--mode", mode], "中国\n")
    assert rc == 2 and out == "" and f"{mode} mode looks words up in the segmenter's lexicon, and a 'hmm'" in err


def test_seg_errors_are_one_line(files, cli):
    rc, _, err = cli(["seg", "cut", "--model", str(files["dir"] / "nothing")])
    assert rc == 2 and err.startswith("llmlab: error:") and err.count("\n") == 1
    rc, _, err = cli(["seg", "train", "--algo", "hmm", "--train", str(files["train"]), "--user-dict",
                      str(files["user"]), "-o", str(files["dir"] / "h")])
    assert rc == 2 and "--user-dict applies to --algo fmm / bmm" in err
    rc, _, err = cli(["seg", "train", "--algo", "fmm", "--train", str(files["tagged"]), "-o", str(files["dir"] / "t")])
    assert rc == 2 and "looks POS-tagged" in err and not (files["dir"] / "t").exists()


@pytest.mark.parametrize("args", [["seg", "train", "--algo", "perceptron"], ["pos", "train", "--algo", "perceptron"],
                                  ["pos", "train", "--algo", "neural"]])
def test_a_negative_seed_is_refused(files, args, cli):
    train = files["train" if args[0] == "seg" else "tagged"]
    rc, _, err = cli([*args, "--seed", "-1", "--train", str(train), "-o", str(files["dir"] / "m")])
    assert rc == 2 and err == "llmlab: error: seed must be >= 0, got -1\n"


@pytest.mark.parametrize("argv", ["seg hmm --epochs 2", "seg fmm --seed 1", "seg unigram --folds 2",
                                  "seg bigram --no-av-lexicon", "seg hmm --min-count 2", "pos hmm --epochs 2",
                                  "pos hmm --beam 2", "pos neural --no-clusters", "pos perceptron --layers 2",
                                  "pos neural --lam 1"])
def test_train_flags_of_another_algo_are_refused(files, argv, cli):
    group, algo, flag, *value = argv.split()
    train = files["train" if group == "seg" else "tagged"]
    rc, _, err = cli([group, "train", "--algo", algo, flag, *value, "--train", str(train), "-o",
                      str(files["dir"] / "m")])
    assert rc == 2 and err.startswith(f"llmlab: error: {flag} applies to --algo ") and err.endswith(f"not {algo}\n")
    assert not (files["dir"] / "m").exists()


@pytest.mark.parametrize("algo", ["perceptron", "hybrid"])
def test_beam_is_refused_for_a_first_order_tagger(files, algo, cli, tmp_path):
    """--beam narrows the second-order Viterbi; at --order 1 it was saved in tagger.json and read by nothing
    (the weights equal the run without it). So too for a first-order tagger trained further."""
    train = ["--train", str(files["tagged"])]
    rc, _, err = cli(["pos", "train", "--algo", algo, "--order", "1", "--beam", "2", *train, "-o", str(tmp_path / "m")])
    assert rc == 2 and "--beam applies to the second-order tagger (--order 2)" in err and not (tmp_path / "m").exists()
    if algo == "perceptron":
        assert cli(["pos", "train", "--order", "1", "--epochs", "1", "--ensemble", "1", "--no-clusters", *train,
                    "-o", str(tmp_path / "o1")])[0] == 0
        rc, _, err = cli(["pos", "train", "--init-model", str(tmp_path / "o1"), "--beam", "2", *train, "-o",
                          str(tmp_path / "m")])
        assert rc == 2 and "--beam applies to the second-order tagger" in err


def test_hybrid_refuses_perceptron_flags_beside_a_perceptron_model(files, cli):
    """--order/--beam/--ensemble/--no-clusters train the hybrid's perceptron; a saved one is used as it is."""
    rc, _, err = cli(["pos", "train", "--algo", "hybrid", "--perceptron-model", str(files["dir"] / "p"),
                      "--ensemble", "5", "--no-clusters", "--train", str(files["tagged"]), "-o",
                      str(files["dir"] / "m")])
    assert rc == 2 and "--ensemble, --no-clusters train the hybrid's perceptron" in err
    assert not (files["dir"] / "m").exists()
    from llmlab.core.errors import InputError
    from llmlab.text.pos_hybrid import HybridTaggerConfig
    from llmlab.text.pos_perceptron import PerceptronTaggerConfig

    with pytest.raises(InputError, match=r"perceptron settings \(ensemble, clusters\) do not apply"):
        HybridTaggerConfig(perceptron=PerceptronTaggerConfig(ensemble=5, clusters=()), perceptron_model="p")
    for flag, value in (("--ensemble", "3"), ("--order", "2"), ("--beam", "6")):  # the defaults: the config can't tell
        rc, _, err = cli(["pos", "train", "--algo", "hybrid", "--perceptron-model", str(files["dir"] / "p"), flag,
                          value, "--train", str(files["tagged"]), "-o", str(files["dir"] / "m")])
        assert rc == 2 and f"{flag} train the hybrid's perceptron" in err


def test_pos_tag_refuses_tagged_input(files, cli):
    """Tagged text given again came out as word/TAG/TAG with exit status 0."""
    tagged = files["tagged"].read_text(encoding="utf-8")
    rc, out, err = cli(["pos", "tag", "--model", str(files["dir"] / "nope")], tagged)
    assert rc == 2 and "nope" in err  # (a missing model is the first error; now with a model)
    model = files["dir"] / "hmm"
    assert cli(["pos", "train", "--algo", "hmm", "--train", str(files["tagged"]), "-o", str(model)])[0] == 0
    rc, out, err = cli(["pos", "tag", "--model", str(model)], tagged)
    assert rc == 2 and out == "" and "the input looks POS-tagged" in err
    words = "".join(" ".join(w.rpartition("/")[0] for w in line.split()) + "\n" for line in tagged.splitlines())
    rc, out, _ = cli(["pos", "tag", "--model", str(model)], words)
    assert rc == 0 and len(out.splitlines()) == len(tagged.splitlines())


@pytest.mark.parametrize("algo", ["bimm", "unigram"])
def test_seg_train_dict_only(files, algo, cli):
    """A dictionary segmenter from the user dictionary alone: only its words, counted once."""
    words = files["dir"] / "words.txt"
    words.write_text("研究 10\n研究生 5 n\n生命 8\n起源\n", encoding="utf-8")
    model = files["dir"] / algo
    args = ["seg", "train", "--algo", algo, "--dict-only", "--user-dict", str(words), "-o", str(model)]
    assert cli(args, "")[0] == 0
    rc, out, _ = cli(["seg", "cut", "--model", str(model)], "研究生命起源\n")
    assert rc == 0 and out == "研究 生命 起源\n"
    from llmlab.text.base import load_segmenter

    lex = load_segmenter(model).lexicon
    assert sorted(lex.counts) == ["生命", "研究", "研究生", "起源"] and lex.count("研究") == 10
    for extra, msg in ((["--train", str(files["train"])], "--train does not apply with --dict-only"),
                       (["--split", "dev"], "--split does not apply")):
        rc, _, err = cli([*args, *extra, "-o", str(files["dir"] / "m")])
        assert rc == 2 and msg in err
    assert cli([*args[:-2], "--min-count", "6", "-o", str(files["dir"] / "mc")])[0] == 0
    assert sorted(load_segmenter(files["dir"] / "mc").lexicon.counts) == ["生命", "研究", "起源"]  # 研究生 5 < 6
    rc, _, err = cli(["seg", "train", "--algo", algo, "--dict-only", "-o", str(files["dir"] / "m")])
    assert rc == 2 and "give one" in err
    rc, _, err = cli(["seg", "train", "--algo", "bigram", "--dict-only", "--user-dict", str(words), "-o",
                      str(files["dir"] / "m")])
    assert rc == 2 and "--dict-only applies to --algo fmm / bmm / bimm / unigram" in err
    assert not (files["dir"] / "m").exists()


def test_a_user_dictionary_count_of_0_takes_the_word_out(files, segmenters, tmp_path, cli):
    """jieba's ``word 0`` line in --user-dict: `seg cut` no longer gives the word, `seg train --dict-only`
    leaves it out, and a dictionary that also adds it is refused before any output."""
    seg = segmenters["fmm"]
    seg.save(tmp_path / "fmm")
    line = next("".join(s) for s in [seg.cut("中国人民和世界人民")] if "人民" in s)
    user = tmp_path / "user.txt"
    user.write_text("# 人民 5\n人民 0\n", encoding="utf-8")
    cut = ["seg", "cut", "--model", str(tmp_path / "fmm")]
    assert "人民" in cli(cut, line + "\n")[1].split()
    rc, out, _ = cli([*cut, "--user-dict", str(user)], line + "\n")
    assert rc == 0 and "".join(out.split()) == line and "人民" not in out.split()
    user.write_text("人民 0\n人民 3\n", encoding="utf-8")
    rc, out, err = cli([*cut, "--user-dict", str(user)], line + "\n")
    assert rc == 2 and out == "" and "both adds '人民' and takes it out" in err
    words = tmp_path / "words.txt"
    words.write_text("研究 10\n研究生 0\n生命 8\n起源\n", encoding="utf-8")
    model = tmp_path / "uni"
    assert cli(["seg", "train", "--algo", "unigram", "--dict-only", "--user-dict", str(words), "-o",
                str(model)])[0] == 0
    from llmlab.text.base import load_segmenter

    assert sorted(load_segmenter(model).lexicon.counts) == ["生命", "研究", "起源"]


@pytest.mark.parametrize("argv", ["seg train --algo fmm --train {train} -o {dir}/m",
                                  "pos train --algo hmm --train {tagged} -o {dir}/m",
                                  "pos eval --model {dir}/none --gold {tagged}"])
def test_split_beside_a_file_is_refused_not_ignored(files, argv, cli):
    args = argv.format(**files).split() + ["--split", "dev"]
    rc, _, err = cli(args, "")
    assert rc == 2 and "--split picks a split of a built-in corpus; it does not apply with" in err
    assert not (files["dir"] / "m").exists()


def test_min_count_sets_the_perceptron_lexicon_and_folds_are_capped(monkeypatch):
    import argparse

    import llmlab.text.perceptron as perceptron
    from llmlab.cli.seg import _config_for

    args = argparse.Namespace(min_count=3, epochs=None, folds=None, seed=None, av_lexicon=None)
    assert _config_for("perceptron", args).lexicon_min_count == 3
    sents = [["中国", "人民"], ["人民", "银行"], ["中国", "银行"]]
    small = perceptron.PerceptronSegmenter.train(sents, perceptron.PerceptronConfig(epochs=2, folds=3))
    matchers, span_index = [], perceptron.SpanIndex
    monkeypatch.setattr(perceptron, "SpanIndex", lambda *a: matchers.append(a) or span_index(*a))
    many = perceptron.PerceptronSegmenter.train(sents, perceptron.PerceptronConfig(epochs=2, folds=1000))
    assert (many.weights == small.weights).all() and len(matchers) < 10  # a fold per sentence, not 1000


def test_seg_kbest(files, cli):
    model = files["dir"] / "uni"
    cli(["seg", "train", "--algo", "unigram", "--train", str(files["train"]), "-o", str(model)])
    rc, out, _ = cli(["seg", "kbest", "--model", str(model), "-k", "3"], "中国人民\n")
    rows = [r for r in out.splitlines() if r]
    assert rc == 0 and len(rows) == 3 and all(r.split("\t")[1].replace(" ", "") == "中国人民" for r in rows)


@pytest.mark.parametrize("algo", ["hmm", "perceptron"])
def test_pos_train_tag_eval(files, algo, cli):
    model = files["dir"] / f"pos-{algo}"
    args = ["pos", "train", "--algo", algo, "--train", str(files["tagged"]), "-o", str(model)]
    if algo == "perceptron":
        args += ["--epochs", "2", "--beam", "4"]
    assert cli(args, "")[0] == 0
    rc, out, _ = cli(["pos", "tag", "--model", str(model)], "中国 人民\n\n")
    lines = out.split("\n")[:-1]
    assert rc == 0 and len(lines) == 2 and lines[1] == ""
    assert [tok.rsplit("/", 1)[0] for tok in lines[0].split()] == ["中国", "人民"]
    seg_model = files["dir"] / "segfmm"
    cli(["seg", "train", "--algo", "fmm", "--train", str(files["train"]), "-o", str(seg_model)])
    rc, out, _ = cli(["pos", "tag", "--model", str(model), "--seg-model", str(seg_model)], "中国人民 银行\n")
    assert rc == 0 and "".join(tok.rsplit("/", 1)[0] for tok in out.split()) == "中国人民银行"
    rc, out, _ = cli(["pos", "eval", "--model", str(model), "--gold", str(files["tagged"])])
    assert rc == 0 and "accuracy=" in out
    # unknown words are those of --train-words' file when given: here its first line's
    first = files["dir"] / "first.txt"
    first.write_text(files["tagged"].read_text(encoding="utf-8").split("\n")[0] + "\n", encoding="utf-8")
    known = {t.rsplit("/", 1)[0] for t in first.read_text(encoding="utf-8").split()}
    words = files["tagged"].read_text(encoding="utf-8").split()
    rc, out, _ = cli(["pos", "eval", "--model", str(model), "--gold", str(files["tagged"]), "--train-words",
                      str(first)])
    unseen = sum(t.rsplit("/", 1)[0] not in known for t in words)
    assert rc == 0 and 0 < unseen < len(words) and f"({len(words)} words, {unseen} unknown to '{first}')" in out
    rc, out, _ = cli(["pos", "eval", "--model", str(model), "--gold", str(files["tagged"]), "--seg-model",
                      str(seg_model)])
    from llmlab.text.base import load_segmenter
    from llmlab.text.metrics import read_tagged, seg_tag_scores
    from llmlab.text.pos import cut_and_tag, load_tagger

    gold = read_tagged(files["tagged"])
    seg, tagger = load_segmenter(seg_model), load_tagger(model)
    want = seg_tag_scores(gold, [cut_and_tag(seg, tagger, "".join(w for w, _ in s)) for s in gold])["f1"]
    assert rc == 0 and f"F1={want:.4f}" in out and want > 0.5
    # ASCII words side by side in the gold are told apart: the text gets a space between them, and the
    # space is not scored, so every word is cut right and only the tags can be wrong
    both = files["dir"] / "ascii.txt"
    both.write_text("我/r 用/v Windows/nx 95/m 。/w\n", encoding="utf-8")
    rc, out, _ = cli(["pos", "eval", "--model", str(model), "--gold", str(both), "--seg-model", str(seg_model)])
    pred = cut_and_tag(seg, tagger, "我用Windows 95。")
    assert [w for w, _ in pred] == ["我", "用", "Windows", " ", "95", "。"]
    want = seg_tag_scores(read_tagged(both), [[p for p in pred if p[0] != " "]])["f1"]
    assert rc == 0 and f"F1={want:.4f}" in out and f"accuracy={want:.4f}" in out
    # so are full-width ones (１０ｎｍ was one unit no segmenter may cut: 177 train-split sentences hold such)
    wide = files["dir"] / "wide.txt"
    wide.write_text("直径/n １０/m ｎｍ/q 。/w\n", encoding="utf-8")
    rc, out, _ = cli(["pos", "eval", "--model", str(model), "--gold", str(wide), "--seg-model", str(seg_model)])
    pred = cut_and_tag(seg, tagger, "直径１０ ｎｍ。")
    assert [w for w, _ in pred if w != " "][-3:] == ["１０", "ｎｍ", "。"]
    want = seg_tag_scores(read_tagged(wide), [[p for p in pred if p[0] != " "]])["f1"]
    assert rc == 0 and f"F1={want:.4f}" in out


def test_pos_tag_user_dict_fixes_tags_and_reaches_the_segmenter(files, segmenters, train_tagged, tmp_path, cli):
    """`pos tag --user-dict`: a word with a tag gets it (raw or segmented input); with --seg-model every
    word of the dictionary is also cut whole; a segmenter without a dictionary is refused."""
    from llmlab.text.pos import HmmTagger

    HmmTagger.train(train_tagged[:300]).save(tmp_path / "pos")
    segmenters["fmm"].save(tmp_path / "fmm")
    segmenters["hmm"].save(tmp_path / "hmmseg")
    user = tmp_path / "user.txt"
    user.write_text("龘靐齉 5 nz\n中国人民 v\n鱻犇 3\n", encoding="utf-8")
    tag = ["pos", "tag", "--model", str(tmp_path / "pos"), "--user-dict", str(user)]
    rc, out, _ = cli([*tag, "--seg-model", str(tmp_path / "fmm")], "龘靐齉和中国人民和鱻犇\n")
    toks = out.split()
    assert rc == 0 and toks[0] == "龘靐齉/nz" and "中国人民/v" in toks and toks[-1].startswith("鱻犇/")
    rc, out, _ = cli(tag, "中国人民 的 龘靐齉\n")
    assert rc == 0 and out.split()[0] == "中国人民/v" and out.split()[-1] == "龘靐齉/nz"
    rc, _, err = cli([*tag, "--seg-model", str(tmp_path / "hmmseg")], "中国\n")
    assert rc == 2 and "--user-dict: the 'hmm' segmenter" in err and "has no dictionary" in err
    untagged = tmp_path / "untagged.txt"  # words and counts only: without a segmenter nothing reads them
    untagged.write_text("川普 5\n通电话\n", encoding="utf-8")
    rc, _, err = cli(["pos", "tag", "--model", str(tmp_path / "pos"), "--user-dict", str(untagged)], "与 川普\n")
    assert rc == 2 and "gives no tags, and its words and counts reach a segmenter: give --seg-model" in err


def test_user_dict_lines_are_read_by_one_rule_for_seg_and_pos(segmenters, train_tagged, tmp_path, cli):
    """A user-dictionary line is `word [count] [tag]`: a fourth field, or a tag that is no tag (``块链 条目``,
    which jieba reads as one word holding a space), is refused by `seg cut` and `pos tag` alike, naming the
    file and line, rather than read one way where tags go unused and another where they are used."""
    import jieba

    from llmlab.text.lexicon import read_user_entries
    from llmlab.text.pos import HmmTagger

    HmmTagger.train(train_tagged[:300]).save(tmp_path / "pos")
    segmenters["unigram"].save(tmp_path / "seg")
    user = tmp_path / "user.txt"
    commands = (["seg", "cut", "--model", str(tmp_path / "seg")], ["pos", "tag", "--model", str(tmp_path / "pos")])
    for line, match in (("块链 条目", "'条目' is no POS tag"), ("区块链 nz Ng", "count 'nz'"),
                        ("区块链网 5 n extra junk", "'extra junk' after the tag")):
        assert jieba.re_userdict.match(line).group(1) != line.split()[0]  # jieba: no word without a space
        user.write_text(f"中国 3 ns\n{line}\n", encoding="utf-8")
        for argv in commands:
            rc, out, err = cli([*argv, "--user-dict", str(user)], "区块链网\n")
            assert rc == 2 and out == "" and f"{str(user)!r} line 2: " in err and match in err, (argv, err)
    user.write_text("区块链 5 nz\n云计算 Ng\n大模型 3 PROPN\n台中\t7\n", encoding="utf-8")  # tags of any tagset's form
    assert read_user_entries(user) == [("区块链", 5, "nz"), ("云计算", None, "Ng"), ("大模型", 3, "PROPN"),
                                       ("台中", 7, None)]
    assert cli([*commands[0], "--user-dict", str(user)], "区块链\n")[:2] == (0, "区块链\n")
    rc, _, err = cli([*commands[1], "--user-dict", str(user)], "区块链\n")  # the tagger's own check, of its tagset
    assert rc == 2 and "user tag 'PROPN' of '大模型' is not one of this tagger's tags" in err


def test_t2s_reads_traditional_text_and_writes_its_characters(segmenters, train_tagged, test_words, tmp_path, cli):
    """`seg cut --t2s` (every mode) and `pos tag --t2s` (raw or segmented input) give the cuts and tags
    of the simplified text, written in the input's own traditional characters."""
    from llmlab.text.base import same_cuts
    from llmlab.text.pos import HmmTagger, cut_and_tag
    from llmlab.text.script import to_simplified, to_traditional

    seg, tagger = segmenters["perceptron"], HmmTagger.train(train_tagged[:300])
    seg.save(tmp_path / "seg")
    tagger.save(tmp_path / "pos")
    lines = [to_traditional("".join(s)) for s in test_words[:20]] + ["", "我們的國家 體育館"]
    assert sum(to_simplified(x) != x for x in lines) > 15
    stdin = "\n".join(lines) + "\n"
    cut = ["seg", "cut", "--model", str(tmp_path / "seg")]
    rc, out, _ = cli([*cut, "--t2s"], stdin)
    assert rc == 0 and out == "".join(" ".join(same_cuts(x, seg.cut(to_simplified(x)))) + "\n" for x in lines)
    assert out != cli(cut, stdin)[1]  # without it the model reads other characters
    for mode in ("search", "full"):
        rc, out, _ = cli([*cut, "--t2s", "--mode", mode], stdin)
        want = [[x[a:b] for _, a, b in seg.tokenize(to_simplified(x), mode)] for x in lines]
        assert rc == 0 and out == "".join(" ".join(ws) + "\n" for ws in want)
    tag = ["pos", "tag", "--model", str(tmp_path / "pos"), "--t2s"]
    rc, out, _ = cli([*tag, "--seg-model", str(tmp_path / "seg")], stdin)
    want = [[(w, t) for w, (_, t) in zip(same_cuts(x, [w for w, _ in pairs]), pairs) if not w.isspace()]
            for x, pairs in ((x, cut_and_tag(seg, tagger, to_simplified(x))) for x in lines)]
    assert rc == 0 and out == "".join(" ".join(f"{w}/{t}" for w, t in p) + "\n" for p in want)
    words = "我們 的 國家 體育館"
    rc, out, _ = cli(tag, words + "\n")
    tags = tagger.tag(to_simplified(words).split())
    assert rc == 0 and out == " ".join(f"{w}/{t}" for w, t in zip(words.split(), tags)) + "\n"
    # a user dictionary in traditional characters reaches both models as they read the text
    user = tmp_path / "user.txt"
    user.write_text("體育館內 5 nz\n", encoding="utf-8")
    line = "我們的體育館內很大"
    assert "體育館內" not in cli([*cut, "--t2s"], line + "\n")[1].split()
    rc, out, _ = cli([*cut, "--t2s", "--user-dict", str(user)], line + "\n")
    assert rc == 0 and "體育館內" in out.split()
    rc, out, _ = cli([*tag, "--seg-model", str(tmp_path / "seg"), "--user-dict", str(user)], line + "\n")
    assert rc == 0 and "體育館內/nz" in out.split()


def test_default_models_train_once_and_are_cached(defaults, caplog, cli):
    import llmlab.text
    from llmlab.text.base import load_segmenter
    from llmlab.text.default import segmenter_name, tagger_name

    trained, clear, cache = defaults
    text = "迈向充满希望的新世纪，中国人民银行"
    caplog.set_level("INFO", logger="llmlab.core.cache")
    rc, out, _ = cli(["seg", "cut"], text + "\n")
    assert rc == 0 and trained == {"seg": 1, "pos": 0} and "training the default segmenter" in caplog.text
    caplog.clear()
    cached = load_segmenter(cache / segmenter_name())
    assert out == " ".join(cached.cut(text)) + "\n"
    clear()
    rc, again, _ = cli(["seg", "cut"], text + "\n")
    assert rc == 0 and again == out and trained["seg"] == 1 and "training" not in caplog.text
    assert "".join(llmlab.text.cut(text)) == text and trained["seg"] == 1
    assert llmlab.text.cut_for_search(text) == cached.cut_for_search(text)
    assert llmlab.text.cut_all(text) == cached.cut_all(text) and trained["seg"] == 1
    assert llmlab.text.tokenize(text, "search") == cached.tokenize(text, "search")

    rc, out, _ = cli(["pos", "tag"], "中国 人民 银行\n")
    assert rc == 0 and trained["pos"] == 1 and (cache / tagger_name()).is_dir()
    assert [tok.rsplit("/", 1)[0] for tok in out.split()] == ["中国", "人民", "银行"]
    clear()
    assert cli(["pos", "tag"], "中国 人民 银行\n")[1] == out and trained["pos"] == 1


def test_default_models_take_a_user_dictionary(defaults, tmp_path):
    """`llmlab.text.load_userdict` and `add_word` (jieba's) reach both default models of this process,
    forced words included; a bad tag changes neither; `cut_and_tag` is the two models in turn."""
    import llmlab.text
    from llmlab.core.errors import InputError
    from llmlab.text.default import default_segmenter, default_tagger
    from llmlab.text.pos import cut_and_tag

    trained, clear, _ = defaults
    text = "他们在体育馆内看見龘靐"
    plain = llmlab.text.cut_and_tag(text)
    assert plain == cut_and_tag(default_segmenter(), default_tagger(), text) and "".join(w for w, _ in plain) == text
    assert "馆内看見" not in [w for w, _ in plain]
    user = tmp_path / "user.txt"
    user.write_text("馆内看見 n\n龘靐 3 v\n", encoding="utf-8")
    llmlab.text.load_userdict(user, force=True)
    pairs = llmlab.text.cut_and_tag(text)
    assert ("馆内看見", "n") in pairs and pairs[-1] == ("龘靐", "v")
    counts = dict(default_segmenter().lexicon.counts)
    with pytest.raises(InputError, match="tag"):
        llmlab.text.add_word("他们在", tag="NOT-A-TAG", force=True)
    assert default_segmenter().lexicon.counts == counts and llmlab.text.cut(text)[0] != "他们在"
    llmlab.text.add_word("他们在", force=True)
    assert llmlab.text.cut(text)[0] == "他们在"
    llmlab.text.del_word("他们在")  # out of the lexicon and the forced words
    assert "他们在" not in default_segmenter().lexicon and llmlab.text.cut(text)[0] != "他们在"
    count = llmlab.text.suggest_freq("他们在")
    assert count == default_segmenter().suggest_freq("他们在") and "他们在" not in default_segmenter().lexicon
    assert llmlab.text.suggest_freq("他们在", tune=True) == count == default_segmenter().lexicon.count("他们在")
    clear()  # a new process: the cached models, without the user's words
    assert llmlab.text.cut_and_tag(text) == plain and trained == {"seg": 1, "pos": 1}

    # a refused entry changes neither model (a tag was given to the tagger before the count was checked)
    for bad in ([("龘靐", -1, "v")], [("龘靐", 2.0, "v")], [("龘 靐", 3, "v")]):
        with pytest.raises(InputError):
            llmlab.text.load_userdict(bad)
        assert llmlab.text.cut_and_tag(text) == plain
    # jieba's forms: an open file (text or binary) and entries with or without a tag; others are refused
    with open(user, encoding="utf-8") as f:
        llmlab.text.load_userdict(f, force=True)
    assert ("馆内看見", "n") in llmlab.text.cut_and_tag(text)
    clear()
    with open(user, "rb") as f:
        llmlab.text.load_userdict(f, force=True)
    llmlab.text.load_userdict([("他们在", None)], force=True)
    assert ("馆内看見", "n") in llmlab.text.cut_and_tag(text) and llmlab.text.cut(text)[0] == "他们在"
    for bad, words in ((None, "got NoneType"), (b"user.txt", "got bytes"), ([("他们在",)], "entries are"),
                       ([("他们在", 3, 5)], "entries are"), (io.BytesIO(b"\xff\xfe 3\n"), "is not UTF-8")):
        with pytest.raises(InputError, match=words):
            llmlab.text.load_userdict(bad)


def test_default_models_load_once_for_threads_that_ask_together(defaults):
    """Threads that first use the default models at once share one model each: with lru_cache each loaded
    its own copy and the cache kept one, so the words the other threads added were lost."""
    from concurrent.futures import ThreadPoolExecutor

    import llmlab.text
    from llmlab.text.default import default_segmenter

    trained, clear, _ = defaults
    default_segmenter()  # trained into the cache once; then a new process loads it
    clear()
    words = ["龘靐甲", "龘靐乙", "龘靐丙", "龘靐丁"]
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda w: llmlab.text.add_word(w, force=True), words))
    assert set(default_segmenter().forced.words) >= set(words) and trained["seg"] == 1
    with ThreadPoolExecutor(4) as pool:
        assert len({id(m) for m in pool.map(lambda _: default_segmenter(), range(8))}) == 1


def test_jobs_give_the_output_of_one_process(segmenters, train_tagged, test_words, tmp_path, cli):
    """`seg cut --jobs 2` and `pos tag --jobs 2`: worker processes load the models themselves (with the
    user dictionary) and the batches come back in the input's order, as one process writes them."""
    from llmlab.text.pos import HmmTagger

    segmenters["perceptron"].save(tmp_path / "seg")
    HmmTagger.train(train_tagged[:300]).save(tmp_path / "pos")
    user = tmp_path / "user.txt"
    user.write_text("龘靐齉 5 nz\n", encoding="utf-8")
    lines = ["".join(s) for s in test_words] * 30 + ["龘靐齉和中国"]  # 2,401 lines: two batches of lines
    text = "\n".join(lines) + "\n"
    for argv in (["seg", "cut", "--model", str(tmp_path / "seg"), "--user-dict", str(user), "--force-words"],
                 ["pos", "tag", "--model", str(tmp_path / "pos"), "--seg-model", str(tmp_path / "seg"),
                  "--user-dict", str(user)]):
        rc, one, _ = cli(argv, text)
        assert rc == 0 and len(one.splitlines()) == len(lines) and one.splitlines()[-1].startswith("龘靐齉")
        rc, two, _ = cli([*argv, "--jobs", "2"], text)
        assert rc == 0 and two == one
    rc, _, err = cli(["seg", "cut", "--model", str(tmp_path / "nothing"), "-j", "2"], text)
    assert rc == 2 and "nothing" in err  # the model is loaded here before any worker starts
