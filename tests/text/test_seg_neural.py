"""The BiLSTM segmenter and the perceptron + neural hybrid: learning, lexicon matches, long runs,
save/load, the combination, and the CLI. The segmenter contract (lossless on any text, units whole,
width-blind, save/load) is checked for every kind in test_contract.py."""

import io
import json
import subprocess
import sys
from collections import Counter
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

import llmlab.text.seg_neural as seg_neural
from llmlab.core.errors import InputError
from llmlab.text.base import load_segmenter, normalize_text
from llmlab.text.bmes import decode_runs, encode_tags
from llmlab.text.lexicon import Lexicon
from llmlab.text.lexmatch import MAX_SPAN, SpanIndex
from llmlab.text.metrics import seg_scores
from llmlab.text.neural import emission_scale, holdout_split
from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter
from llmlab.text.seg_hybrid import HybridSegmenter, HybridSegmenterConfig
from llmlab.text.seg_neural import NO_TRANS, NeuralSegmenter, NeuralSegmenterConfig, bigrams, n_lexicons, training_rows


@pytest.fixture(scope="module")
def neural(segmenters):
    return segmenters["neural"]


@pytest.fixture(scope="module")
def perceptron(segmenters):
    return segmenters["perceptron"]


def _texts(sents):
    return ["".join(s) for s in sents]


def test_importing_the_modules_does_not_import_torch():
    code = "import sys, llmlab.text.seg_neural, llmlab.text.seg_hybrid; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_it_learns_far_beyond_cutting_every_character(neural, train_words, test_words):
    chars = [list(t) for t in _texts(test_words)]
    baseline = seg_scores(test_words, chars).f1
    f1 = seg_scores(test_words, neural.cut_lines(_texts(test_words))).f1
    assert f1 > baseline + 0.25, (f1, baseline)
    train_f1 = seg_scores(train_words[:200], neural.cut_lines(_texts(train_words[:200]))).f1
    assert train_f1 > f1
    assert neural.info["epoch"] in (1, 2) and neural.info["holdout_sentences"] == len(train_words) // 10


def test_log_probs_are_normalised_and_cuts_are_their_viterbi_path(neural, test_words):
    runs = _texts(test_words[:5])
    lps = neural.log_probs_runs(runs)
    assert [lp.shape for lp in lps] == [(len(r), 4) for r in runs]
    for lp in lps:
        np.testing.assert_allclose(np.exp(lp).sum(1), 1.0, rtol=1e-5)
    assert neural.cut_lines(runs) == decode_runs(runs, np.concatenate(lps), NO_TRANS)


def test_bigrams_surround_each_character():
    assert bigrams("") == ["", ""]
    assert bigrams("a") == ["", ""]
    text = "中国人民"
    grams = bigrams(text)
    assert len(grams) == len(text) + 1
    assert all(grams[i + 1] == text[i : i + 2] for i in range(len(text) - 1))


def test_a_long_run_is_scored_in_windows_that_see_their_margins(neural, test_words, monkeypatch):
    text = "".join(_texts(test_words))[:700]
    monkeypatch.setattr(seg_neural, "WINDOW", 200)
    monkeypatch.setattr(seg_neural, "MARGIN", 30)
    pieces = seg_neural._windows(len(text))
    assert [a for a, *_ in pieces] == [0, 200, 400, 600] and pieces[-1][1] == 700
    got = neural.log_probs_runs([text])[0]
    monkeypatch.setattr(seg_neural, "WINDOW", 1000)
    for a, b, lo, hi in pieces:
        assert lo == max(0, a - 30) and hi == min(700, b + 30)
        want = neural.log_probs_runs([text[lo:hi]])[0][a - lo : b - lo]  # what the window sees, scored whole
        np.testing.assert_allclose(got[a:b], want, rtol=1e-5, atol=1e-6)
    assert np.abs(got - neural.log_probs_runs([text])[0]).max() > 1e-6  # the windows do cut the context


def test_training_sentences_see_only_the_other_folds_words(neural, train_words):
    """Sentence i's lexicon matches come from the words of the other folds; new text matches them all."""
    sents = train_words[:40]
    texts = [normalize_text(t) for t in _texts(sents)]
    seg = NeuralSegmenter(neural.chars, neural.bigram_list, neural.weights, Lexicon.from_sentences(sents),
                          replace(neural.config, folds=2), neural.av_words)
    rows = training_rows(seg, sents, texts)
    assert [r[3].tolist() for r in rows] == [encode_tags(s) for s in sents]
    av = seg.matchers()[1]
    for i in (0, 1):
        others = Lexicon.from_sentences(sents[1 - i :: 2])
        want = seg._row(texts[i], [SpanIndex(others.counts), av])[2]
        np.testing.assert_array_equal(rows[i][2], want)
    full = seg._row(texts[0], seg.matchers())[2]
    assert (rows[0][2] <= full).all() and (rows[0][2][:, 0] < full[:, 0]).any()  # words only sentence 0's fold has


def test_user_words_reach_the_lexicon_matches(neural, tmp_path):
    seg = load_segmenter(neural.save(tmp_path / "n"))  # a copy: the fixture stays as trained
    word = "龘靐齉"
    before = seg._row(word, seg.matchers())[2]
    seg.add_word(word, 5)
    after = seg._row(word, seg.matchers())[2]
    assert before[0, 0] == 0 and after[0, 0] == 3  # the longest lexicon word beginning at its first character


def test_save_load_keeps_the_lexicon_pseudo_words_and_info(neural, tmp_path, test_words):
    loaded = load_segmenter(neural.save(tmp_path / "n"))
    assert isinstance(loaded, NeuralSegmenter)
    assert loaded.lexicon.counts == neural.lexicon.counts and loaded.av_words == neural.av_words
    assert loaded.info == neural.info and loaded.config == neural.config
    runs = _texts(test_words[:10])
    for a, b in zip(loaded.log_probs_runs(runs), neural.log_probs_runs(runs)):
        np.testing.assert_array_equal(a, b)


def test_truncated_or_foreign_weights_are_one_clear_error_on_load(neural, tmp_path):
    folder = neural.save(tmp_path / "n")
    weights = folder / "neural.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(InputError):
        load_segmenter(folder)
    folder = neural.save(tmp_path / "m")
    from safetensors.numpy import load_file, save_file

    w = load_file(str(folder / "neural.safetensors"))
    w["out.weight"] = w["out.weight"][:, :-1].copy()
    save_file(w, str(folder / "neural.safetensors"))
    with pytest.raises(ValueError, match="do not fit the model: size mismatch for out.weight"):
        load_segmenter(folder)


def test_too_few_sentences_to_hold_out_log_no_held_out_score(small_neural, caplog):
    with caplog.at_level("INFO", logger="llmlab"):
        NeuralSegmenter.train([["中国", "人民"]], small_neural)
    epochs = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch")]
    assert epochs and all("no held-out sentences" in m and "nan" not in m for m in epochs)


def test_same_seed_same_model(train_words, small_neural):
    a, b = (NeuralSegmenter.train(train_words[:100], small_neural) for _ in range(2))
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"hidden": 0}, {"dropout": 1.0}, {"lr": 0}, {"holdout": 1},
                                 {"folds": 0}, {"av_max_n": 7}, {"pretrain": "yes"}, {"decay": 0}, {"threads": -1},
                                 {"clip": 0}, {"decay": 1.5}, {"holdout": -1}, {"av_max_n": 1}, {"dropout": -0.1},
                                 {"batch_size": 0}, {"span_dim": 0}, {"av_min": 0}, {"bigram_min_count": 0},
                                 {"layers": 0}, {"seed": -1}, {"decay_from": -1}, {"lexicon_features": 1}])
def test_bad_neural_config_is_rejected(bad):
    with pytest.raises(InputError):
        NeuralSegmenterConfig(**bad)


@pytest.mark.parametrize("edge", [{"dropout": 0.0}, {"av_max_n": 2}, {"av_max_n": MAX_SPAN}, {"decay": 1.0},
                                  {"holdout": 0}, {"holdout": 2}, {"clip": 0.5}, {"lr": 1e-6}, {"decay_from": 0},
                                  {"threads": 0}, {"epochs": 1}, {"folds": 1}, {"bigram_min_count": 1}])
def test_neural_config_accepts_the_edges_of_each_range(edge):
    """Each documented range includes its closed ends (mutation testing found none of them checked)."""
    assert getattr(NeuralSegmenterConfig(**edge), next(iter(edge))) == next(iter(edge.values()))


def test_hybrid_config_accepts_lam_zero():
    assert HybridSegmenterConfig(lam=0.0).lam == 0.0  # the perceptron alone: a valid (baseline) setting
    with pytest.raises(InputError, match="lam"):
        HybridSegmenterConfig(lam=-1e-9)


def test_constructor_checks_vocabularies_and_defaults():
    lex = Lexicon.from_sentences([["中国"]])
    seg = NeuralSegmenter(["<pad>", "<unk>", "中"], ["<pad>", "<unk>", ""], {}, lex, av_words={})
    assert seg.config == NeuralSegmenterConfig() and seg.info == {}
    for chars, grams in ((["<unk>", "<pad>"], ["<pad>", "<unk>", ""]), (["<pad>", "<unk>"], ["<pad>", "<unk>"])):
        with pytest.raises(InputError, match="vocabularies"):
            NeuralSegmenter(chars, grams, {}, lex, av_words={})
    with pytest.raises(InputError, match="av_words"):
        NeuralSegmenter(["<pad>", "<unk>"], ["<pad>", "<unk>", ""], {}, lex)


def test_vocabularies_are_the_kept_sentences_units_and_unseen_ones_are_unknown(neural, train_words):
    """Characters of the kept (not held-out) training text, bigrams seen >= bigram_min_count times there
    (not across a run's edges); an unseen character or bigram gets the <unk> id, the edges the '' id."""
    kept = holdout_split(train_words, neural.config.holdout)[0]
    texts = [normalize_text("".join(s)) for s in kept]
    assert neural.chars[:2] == ["<pad>", "<unk>"] and set(neural.chars[2:]) == {ch for t in texts for ch in t}
    counts = Counter(t[i : i + 2] for t in texts for i in range(len(t) - 1))
    want = {b for b, n in counts.items() if n >= neural.config.bigram_min_count}
    assert neural.bigram_list[:3] == ["<pad>", "<unk>", ""] and set(neural.bigram_list[3:]) == want
    assert 0 < len(want) < len(counts)  # some bigrams are rare: the threshold matters here
    c, b, spans, _ = neural._row("龘靐", [])
    unk, edge = neural.chars.index("<unk>"), neural.bigram_list.index("")
    assert c.tolist() == [unk, unk] and b.tolist() == [edge, neural.bigram_list.index("<unk>"), edge]
    assert spans.shape == (2, 0)


def test_match_features_are_three_per_lexicon_and_reach_the_network(neural, test_words):
    """A row has begin/end/cover lengths per lexicon, one embedding each in the net, and a user word
    changes the scores of a text it occurs in."""
    text = _texts(test_words)[0]
    assert len(neural.matchers()) == n_lexicons(neural.config) == 2
    assert neural._row(text, neural.matchers())[2].shape == (len(text), 6) and len(neural.net().spans) == 6
    seg = NeuralSegmenter(neural.chars, neural.bigram_list, neural.weights,
                          Lexicon.from_dict(neural.lexicon.to_dict()), neural.config, neural.av_words)
    index = seg.matchers()[0]
    assert seg.matchers()[0] is index  # built once while the lexicon is unchanged
    before = seg.log_probs_runs([text])[0]
    seg.add_word(text[1:5], 3)
    assert seg.matchers()[0] is not index
    assert np.abs(seg.log_probs_runs([text])[0] - before)[1:5].max() > 1e-4


def test_empty_runs_have_no_scores(neural):
    assert [lp.shape for lp in neural.log_probs_runs(["", "中国", ""])] == [(0, 4), (2, 4), (0, 4)]


def test_the_best_epoch_by_held_out_f1_is_kept_and_the_first_of_a_tie(train_words, small_neural, monkeypatch):
    """Scripted held-out F1s: the weights are those after the best epoch, the earliest on a tie."""
    import torch

    script, nets, snapshots = iter([0.5, 0.9, 0.9, 0.2]), [], []
    build = seg_neural._build_net
    monkeypatch.setattr(seg_neural, "_build_net", lambda *a: nets.append(build(*a)) or nets[-1])

    def scores(gold, cut):
        snapshots.append({k: v.detach().clone() for k, v in nets[-1].state_dict().items()})
        return SimpleNamespace(f1=next(script))

    monkeypatch.setattr(seg_neural, "seg_scores", scores)
    seg = NeuralSegmenter.train(train_words[:60], replace(small_neural, epochs=4, holdout=5, pretrain=False))
    assert seg.info == {"epoch": 2, "holdout_f1": 0.9, "holdout_sentences": 12} and len(snapshots) == 4
    for k, v in seg.weights.items():
        np.testing.assert_array_equal(v, snapshots[1][k].numpy())
    assert any(not torch.equal(snapshots[1][k], snapshots[2][k]) for k in snapshots[1])  # epochs do differ
    monkeypatch.setattr(seg_neural, "seg_scores", lambda *a: pytest.fail("no held-out sentences to score"))
    seg = NeuralSegmenter.train(train_words[:30], replace(small_neural, epochs=2, holdout=0, pretrain=False))
    assert seg.info == {"epoch": 2, "holdout_f1": None, "holdout_sentences": 0}


def test_hybrid_with_lam_zero_cuts_as_the_perceptron(neural, perceptron, test_words):
    hybrid = HybridSegmenter(perceptron, neural, 0.0, 10.0)
    texts = _texts(test_words)
    assert hybrid.cut_lines(texts) == perceptron.cut_lines(texts)


def test_hybrid_with_a_huge_lam_cuts_as_the_neural_segmenter(neural, perceptron, test_words):
    hybrid = HybridSegmenter(perceptron, neural, 1e9, 1.0)
    texts = _texts(test_words)
    assert hybrid.cut_lines(texts) == neural.cut_lines(texts)


def test_hybrid_emissions_add_the_scaled_log_probs(neural, perceptron, test_words):
    text = _texts(test_words)[3]
    hybrid = HybridSegmenter(perceptron, neural, 0.3, 7.0)
    want = perceptron.emissions(text) + 0.3 * 7.0 * neural.log_probs_runs([text])[0]
    np.testing.assert_allclose(hybrid.emissions(text), want, rtol=1e-6)


def test_hybrid_trains_and_round_trips(segmenters, test_words, tmp_path):
    hybrid = segmenters["hybrid"]
    assert hybrid.scale > 0 and hybrid.lam == HybridSegmenterConfig().lam
    loaded = load_segmenter(hybrid.save(tmp_path / "h"))
    assert isinstance(loaded, HybridSegmenter) and (loaded.lam, loaded.scale) == (hybrid.lam, hybrid.scale)
    assert isinstance(load_segmenter(tmp_path / "h" / "neural"), NeuralSegmenter)  # the parts load alone too
    assert loaded.cut_lines(_texts(test_words)) == hybrid.cut_lines(_texts(test_words))


def test_hybrid_scale_is_the_perceptron_emission_std_on_the_held_out_sentences(segmenters, train_words):
    hybrid = segmenters["hybrid"]
    held = holdout_split(train_words, hybrid.neural.config.holdout)[1]
    on = [hybrid.perceptron.emissions("".join(s)) for s in held]
    assert hybrid.scale == pytest.approx(emission_scale(on), rel=1e-9)
    every = emission_scale([hybrid.perceptron.emissions("".join(s)) for s in train_words])
    assert abs(every - hybrid.scale) > 1e-6 * hybrid.scale  # the choice of sentences shows in the scale


@pytest.mark.parametrize("dirs", [("neural", "neural"), ("neural", "perceptron"), ("perceptron", "perceptron")])
def test_hybrid_load_names_the_wrong_parts(segmenters, tmp_path, dirs):
    folder = segmenters["hybrid"].save(tmp_path / "h")
    doc = json.loads((folder / "segmenter.json").read_text(encoding="utf-8"))
    doc["state"]["perceptron_dir"], doc["state"]["neural_dir"] = dirs
    (folder / "segmenter.json").write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match=f"found {dirs[0]} and {dirs[1]}"):
        load_segmenter(folder)


def test_hybrid_user_words_reach_both_parts(segmenters, tmp_path):
    hybrid = load_segmenter(segmenters["hybrid"].save(tmp_path / "h"))  # a copy: the fixture stays as trained
    hybrid.add_word("龘靐齉", 7)
    assert hybrid.perceptron.lexicon.count("龘靐齉") == 7 and hybrid.neural.lexicon.count("龘靐齉") == 7
    assert hybrid.lexicon is hybrid.perceptron.lexicon


def test_hybrid_uses_a_saved_perceptron_and_refuses_other_models(perceptron, train_words, small_neural, tmp_path):
    perceptron.save(tmp_path / "p")
    cfg = HybridSegmenterConfig(perceptron_model=str(tmp_path / "p"), neural=small_neural)
    hybrid = HybridSegmenter.train(train_words[:100], cfg)
    assert hybrid.perceptron.weights.shape == perceptron.weights.shape
    with pytest.raises(InputError, match="do not apply"):
        HybridSegmenterConfig(perceptron_model=str(tmp_path / "p"), perceptron=PerceptronConfig(epochs=3))
    with pytest.raises(InputError, match="lam"):
        HybridSegmenterConfig(lam=-1)
    load_segmenter(hybrid.save(tmp_path / "h"))
    with pytest.raises(InputError, match="not a perceptron"):
        HybridSegmenter.train(train_words[:100], HybridSegmenterConfig(perceptron_model=str(tmp_path / "h" / "neural"),
                                                                       neural=small_neural))
    assert isinstance(hybrid.perceptron, PerceptronSegmenter)


def test_gold_tags_of_training_rows_are_the_bmes_of_the_words(neural, train_words):
    text = normalize_text("".join(train_words[0]))
    row = neural._row(text, neural.matchers(), encode_tags(train_words[0]))
    assert row[3].tolist() == encode_tags(train_words[0]) and len(row[1]) == len(text) + 1


def test_cli_trains_and_cuts_with_neural_and_hybrid(train_words, tmp_path, monkeypatch, capsys, perceptron):
    from llmlab.cli import main

    train = tmp_path / "train.txt"
    train.write_text("".join(" ".join(s) + "\n" for s in train_words[:60]), encoding="utf-8")
    assert main(["seg", "train", "--algo", "neural", "--train", str(train), "--epochs", "1", "--seed", "3",
                 "--folds", "2", "-o", str(tmp_path / "n")]) == 0
    seg = load_segmenter(tmp_path / "n")
    assert seg.config.epochs == 1 and seg.config.seed == 3 and seg.config.folds == 2
    perceptron.save(tmp_path / "p")
    assert main(["seg", "train", "--algo", "hybrid", "--train", str(train), "--epochs", "1", "--lam", "0.5",
                 "--perceptron-model", str(tmp_path / "p"), "-o", str(tmp_path / "h")]) == 0
    hybrid = load_segmenter(tmp_path / "h")
    assert hybrid.lam == 0.5 and hybrid.neural.config.epochs == 1
    capsys.readouterr()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("中国人民银行\n".encode()), encoding="utf-8"))
    assert main(["seg", "cut", "--model", str(tmp_path / "h")]) == 0
    assert capsys.readouterr().out.replace(" ", "") == "中国人民银行\n"
    capsys.readouterr()
    for flags in (["--algo", "perceptron", "--lam", "1"], ["--algo", "neural", "--feature-dict", str(train)],
                  ["--algo", "hybrid", "--perceptron-model", str(tmp_path / "p"), "--folds", "3"]):
        assert main(["seg", "train", "--train", str(train), "-o", str(tmp_path / "x"), *flags]) == 2


def test_batch_pads_to_the_longest_row_and_reports_the_character_counts():
    """`_batch`'s lengths are characters, not bigrams (a mutant that used the bigram count fed every run a
    phantom padding character that the window slicing then hid)."""
    rng = np.random.default_rng(0)
    rows = [(rng.integers(3, 9, n), rng.integers(3, 9, n + 1), rng.integers(0, 6, (n, 6)), rng.integers(0, 4, n))
            for n in (3, 7, 1)]
    chars, bis, spans, gold, lengths = seg_neural._batch(rows)
    assert lengths == [3, 7, 1] and chars.shape == (3, 7) and bis.shape == (3, 8) and spans.shape == (3, 7, 6)
    for k, (c, b, sp, g) in enumerate(rows):
        n = len(c)
        assert chars[k, :n].tolist() == c.tolist() and (chars[k, n:] == seg_neural.PAD).all()
        assert bis[k, : n + 1].tolist() == b.tolist() and (bis[k, n + 1 :] == seg_neural.PAD).all()
        np.testing.assert_array_equal(spans[k, :n].numpy(), sp)
        assert gold[k, :n].tolist() == g.tolist() and (gold[k, n:] == -100).all()


def test_one_line_runs_on_one_thread_many_on_torchs_count(neural, test_words):
    """`threads_for`: a pass over one line runs on one torch thread, a pass over `SMALL_PASS`
    characters or more on torch's count; the count is restored after, and the log-probabilities agree."""
    import torch

    from llmlab.core.threads import SMALL_PASS

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[tuple[int, int]] = []  # (characters, threads) of each pass
    handle = neural.net().register_forward_hook(
        lambda _, args, __: seen.append((sum(args[3]), torch.get_num_threads())))  # args[3]: the lengths
    try:
        texts = _texts(test_words)
        one, many = neural.log_probs_runs(texts[:1]), neural.log_probs_runs(texts)
        assert seen[0] == (len(texts[0]), 1) and any(n >= SMALL_PASS for n, _ in seen[1:])
        assert all(t == (1 if n < SMALL_PASS else 2) for n, t in seen) and torch.get_num_threads() == 2
        assert np.allclose(one[0], many[0], atol=1e-5)
    finally:
        handle.remove()
        torch.set_num_threads(before)
