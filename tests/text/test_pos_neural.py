"""The BiLSTM-CNN tagger and the perceptron + neural hybrid: learning, odd words, save/load, combination."""

import subprocess
import sys
from collections import Counter

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.base import normalize_text
from llmlab.text.clusters import word_vectors
from llmlab.text.neural import emission_scale
from llmlab.text.pos import load_tagger
from llmlab.text.pos_hybrid import HybridTagger, HybridTaggerConfig
from llmlab.text.pos_neural import (
    NeuralTagger,
    NeuralTaggerConfig,
    _build_net,
    _pretrain,
    char_table,
    holdout_split,
    per_direction_names,
)
from llmlab.text.pos_perceptron import PerceptronTagger, PerceptronTaggerConfig

N = 300
SMALL = NeuralTaggerConfig(epochs=2, word_dim=32, char_dim=16, filters=32, length_dim=4, hidden=32, batch_size=8,
                           lr=1e-2, holdout=10)
ODD = ["😀", "", " ", "\t\n", "\U00020000字", "ＡＢＣ１２３", "中国", "a" * 40, "\u0301", "\ufeff"]


@pytest.fixture(scope="module")
def data(train_tagged):
    return train_tagged[:N]


@pytest.fixture(scope="module")
def neural(data):
    return NeuralTagger.train(data, SMALL)


@pytest.fixture(scope="module")
def perceptron(data):
    return PerceptronTagger.train(data, PerceptronTaggerConfig(epochs=2, ensemble=1, beam=4, clusters=()))


def _words(sents):
    return [[w for w, _ in s] for s in sents]


def test_importing_the_module_does_not_import_torch():
    code = "import sys, llmlab.text.pos_neural, llmlab.text.pos_hybrid; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_it_learns_its_training_sentences_well_beyond_the_most_frequent_tag(neural, data):
    gold = [t for s in data for _, t in s]
    baseline = Counter(gold).most_common(1)[0][1] / len(gold)
    pred = [t for s in neural.tag_sentences(_words(data)) for t in s]
    acc = np.mean([p == g for p, g in zip(pred, gold)])
    assert acc > baseline + 0.3, (acc, baseline)
    assert neural.info["epoch"] in (1, 2) and neural.info["holdout_sentences"] == N // 10


def test_log_probs_are_normalised_and_agree_with_tags(neural, data):
    words = _words(data[:3])[2]
    lp = neural.log_probs(words)
    assert lp.shape == (len(words), len(neural.tags))
    np.testing.assert_allclose(np.exp(lp).sum(1), 1.0, rtol=1e-5)
    assert neural.tag(words) == [neural.tags[i] for i in lp.argmax(1)]


def test_odd_and_unknown_words_get_one_tag_each(neural, perceptron):
    hybrid = HybridTagger(perceptron, neural, 0.2, 10.0)
    for tagger in (neural, perceptron, hybrid):
        words_list = (ODD, ODD[:1], ["", ""], [])
        for words in words_list:
            tags = tagger.tag(words)
            assert len(tags) == len(words) and all(t in tagger.tags for t in tags)
        sents = [words_list[0], [], ["中国"]]
        assert tagger.tag_sentences(sents) == [tagger.tag(s) for s in sents]
    assert neural.log_probs([]).shape == (0, len(neural.tags))


def test_save_load_round_trip(neural, data, tmp_path):
    sents = _words(data[:40]) + [ODD]
    loaded = load_tagger(neural.save(tmp_path / "neural"))
    assert isinstance(loaded, NeuralTagger) and loaded.config == neural.config and loaded.info == neural.info
    assert loaded.tag_sentences(sents) == neural.tag_sentences(sents)
    for a, b in zip(loaded.log_probs_sentences(sents), neural.log_probs_sentences(sents)):
        np.testing.assert_array_equal(a, b)
    assert not list(tmp_path.rglob("*.pkl"))


def test_a_model_saved_before_pretrain_existed_loads_as_trained_without_it(neural, data, tmp_path):
    import json

    path = neural.save(tmp_path / "old") / "tagger.json"
    saved = json.loads(path.read_text())
    del saved["state"]["config"]["pretrain"], saved["state"]["config"]["layers"]
    path.write_text(json.dumps(saved))
    loaded = load_tagger(tmp_path / "old")
    assert loaded.config == NeuralTaggerConfig(**{**neural.config.__dict__, "pretrain": False})
    assert loaded.tag_sentences(_words(data[:20])) == neural.tag_sentences(_words(data[:20]))


def test_truncated_or_foreign_weights_are_one_clear_error_on_load(neural, tmp_path):
    from safetensors.numpy import save_file

    weights = neural.save(tmp_path / "n") / "neural.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cannot be read"):
        load_tagger(tmp_path / "n")
    other = {**neural.weights, "word.weight": neural.weights["word.weight"][:5]}  # another vocabulary's table
    save_file(other, str(weights))
    with pytest.raises(InputError, match=r"tagger\.json' is damaged .*: weights do not fit the model: .*word\.weight"):
        load_tagger(tmp_path / "n")


def test_same_seed_same_model(data):
    cfg = NeuralTaggerConfig(epochs=1, word_dim=8, char_dim=8, filters=8, length_dim=2, hidden=8, holdout=0)
    a, b = NeuralTagger.train(data[:60], cfg), NeuralTagger.train(data[:60], cfg)
    assert all(np.array_equal(a.weights[k], b.weights[k]) for k in a.weights)


def test_pretrain_starts_word_and_char_embeddings_at_the_scaled_ppmi_svd_vectors(neural, data):
    cfg = NeuralTaggerConfig(**{**SMALL.__dict__, "pretrain": True})
    tagger = NeuralTagger(neural.tags, neural.words, neural.chars, {}, cfg)
    net = _build_net(cfg, len(neural.words), len(neural.chars), len(neural.tags))
    tables = {"word": (neural.words, cfg.word_dim), "char": (neural.chars, cfg.char_dim),
              "first": (neural.chars, cfg.char_dim), "last": (neural.chars, cfg.char_dim)}
    before = {k: getattr(net, k).weight.detach().numpy().copy() for k in tables}
    norm = [[normalize_text(w) for w, _ in s] for s in holdout_split(data, cfg.holdout)[0]]
    _pretrain(net, tagger, norm)
    units = {"word": norm, "char": [list("".join(s)) for s in norm]}
    for name, (vocab, dim) in tables.items():
        after = getattr(net, name).weight.detach().numpy()
        seen, x = word_vectors(units["word" if name == "word" else "char"], cfg.min_count, dims=dim)
        ids = [vocab.index(u) for u in seen]
        assert len(ids) > 100 and x.shape[1] == dim
        np.testing.assert_allclose(after[ids], x * np.sqrt(dim), rtol=1e-5, atol=1e-6)
        untouched = sorted(set(range(len(vocab))) - set(ids))  # <pad>, <unk>, rare ones: as initialised
        assert untouched and np.array_equal(after[untouched], before[name][untouched])


def test_stacked_layers_train_and_round_trip(data, tmp_path):
    cfg = NeuralTaggerConfig(**{**SMALL.__dict__, "layers": 2, "epochs": 1, "pretrain": True})
    tagger = NeuralTagger.train(data[:60], cfg)
    assert len(tagger.net().rnn) == 4 and "rnn.3.weight_ih_l0" in tagger.weights
    loaded = load_tagger(tagger.save(tmp_path / "deep"))
    assert loaded.config == cfg
    sents = _words(data[:10]) + [ODD]
    assert loaded.tag_sentences(sents) == tagger.tag_sentences(sents)


@pytest.mark.parametrize("layers", [1, 2])
def test_bilstm_on_padded_batches_matches_a_packed_bidirectional_lstm(layers):
    """Reference: torch's own bidirectional nn.LSTM over packed sequences, its weights renamed by
    `per_direction_names` (how a tagger saved before the split loads)."""
    import torch

    cfg = NeuralTaggerConfig(**{**SMALL.__dict__, "layers": layers})
    net = _build_net(cfg, 10, 10, 3).eval()
    d_in = net.rnn[0].input_size
    torch.manual_seed(1)
    ref = torch.nn.LSTM(d_in, cfg.hidden, layers, batch_first=True, bidirectional=True).eval()
    renamed = per_direction_names({f"lstm.{k}": v.numpy() for k, v in ref.state_dict().items()})
    assert set(renamed) == {f"rnn.{k}" for k in net.rnn.state_dict()}
    net.rnn.load_state_dict({k[len("rnn."):]: torch.from_numpy(v) for k, v in renamed.items()})
    lengths = [7, 1, 4, 7, 2]
    x = torch.randn(len(lengths), max(lengths), d_in)
    with torch.no_grad():
        packed = torch.nn.utils.rnn.pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        want = torch.nn.utils.rnn.pad_packed_sequence(ref(packed)[0], batch_first=True)[0]
        x[0, 5:] = 1e3  # row 0 now holds 5 words and junk after them, which must not reach them
        got = net.bilstm(x, [5, *lengths[1:]])
    for b, n in enumerate([5, *lengths[1:]]):
        if b:
            torch.testing.assert_close(got[b, :n], want[b, :n], rtol=1e-5, atol=1e-6)
    x0 = x[:1, :5].clone()  # the reference on row 0's five words alone
    with torch.no_grad():
        want0 = ref(x0)[0]
    torch.testing.assert_close(got[0, :5], want0[0], rtol=1e-5, atol=1e-6)


def test_a_model_saved_with_one_bidirectional_lstm_loads(neural, data, tmp_path):
    from safetensors.numpy import load_file, save_file

    directory = neural.save(tmp_path / "bi")
    weights = load_file(str(directory / "neural.safetensors"))
    old = {}
    for name, value in weights.items():  # back to nn.LSTM(bidirectional=True)'s names
        if name.startswith("rnn."):
            _, i, param = name.split(".")
            name = f"lstm.{param[:-1]}{int(i) // 2}{'_reverse' if int(i) % 2 else ''}"
        old[name] = value
    assert "lstm.weight_ih_l0_reverse" in old and not any(k.startswith("rnn.") for k in old)
    save_file(old, str(directory / "neural.safetensors"))
    loaded = load_tagger(directory)
    sents = _words(data[:30]) + [ODD]
    for a, b in zip(loaded.log_probs_sentences(sents), neural.log_probs_sentences(sents)):
        np.testing.assert_array_equal(a, b)


def test_hybrid_with_lam_zero_tags_as_the_perceptron(neural, perceptron, data):
    sents = _words(data[:50]) + [[w for w in ODD if w]]
    assert HybridTagger(perceptron, neural, 0.0, 37.0).tag_sentences(sents) == perceptron.tag_sentences(sents)
    # and a large lam follows the neural tagger's choices far more often than the perceptron does
    strong = HybridTagger(perceptron, neural, 100.0, 1.0).tag_sentences(sents)
    nt = neural.tag_sentences(sents)
    agree = np.mean([a == b for x, y in zip(strong, nt) for a, b in zip(x, y)])
    assert agree > 0.95


@pytest.mark.parametrize("kind", ["hmm", "perceptron", "neural", "hybrid"])
def test_user_tags_fix_their_words_tags_and_nothing_else_is_forced(kind, data, neural, perceptron, test_words):
    """`add_user_tags` (jieba's user-dictionary tags): every occurrence of a user's word gets its tag,
    also a tag its training never gave it (full- and half-width alike), and only sentences holding
    such a word change; a tag outside the tagset is refused."""
    import copy

    from llmlab.text.pos import HmmTagger

    make = {"hmm": lambda: HmmTagger.train(data), "perceptron": lambda: copy.deepcopy(perceptron),
            "neural": lambda: copy.deepcopy(neural),
            "hybrid": lambda: HybridTagger(copy.deepcopy(perceptron), neural, 0.2, 10.0)}
    tagger = make[kind]()
    sents = test_words[:40]
    before = tagger.tag_sentences(sents)
    tag_of = {w: t for s, ts in zip(sents, before) for w, t in zip(s, ts)}
    user = {"的": "v", "中国": "a", "ＧＤＰ": "nz", "龘靐": "nr"}  # against what it learnt, and an unknown word
    tagger.add_user_tags(user.items())
    after = tagger.tag_sentences(sents + [["我们", "的", "GDP", "龘靐"]])
    for s, b, a in zip(sents + [["我们", "的", "GDP", "龘靐"]], before + [None], after):
        assert [t for w, t in zip(s, a) if w in user or w == "GDP"] == [user.get(w, "nz") for w in s
                                                                          if w in user or w == "GDP"]
        if b is not None and not any(w in user for w in s):
            assert a == b
    assert any(tag_of.get(w) not in (None, t) for w, t in user.items())  # some tags were changed
    with pytest.raises(InputError, match="user tag 'zz' of '发展' is not one of this tagger's tags"):
        tagger.add_user_tags([("发展", "zz")])
    for bad in (["跑v"], [("跑", "v", 3)], [("", "v")]):  # a two-character string would unpack as a pair
        with pytest.raises(InputError, match=r"\(word, tag\) pairs"):
            tagger.add_user_tags([("发展", "v"), *bad])
    assert tagger.tag_sentences(sents + [["我们", "的", "GDP", "龘靐"]]) == after  # the refused calls changed nothing


def test_hybrid_trains_and_round_trips(data, perceptron, tmp_path):
    perceptron.save(tmp_path / "perc")
    cfg = HybridTaggerConfig(neural=NeuralTaggerConfig(**{**SMALL.__dict__, "epochs": 1}),
                             perceptron_model=str(tmp_path / "perc"))
    hybrid = HybridTagger.train(data, cfg)
    held = holdout_split(data, SMALL.holdout)[1]
    assert hybrid.scale == emission_scale([perceptron.emissions(s) for s in _words(held)]) > 0
    sents = _words(data[:40]) + [[w for w in ODD if w]]
    loaded = load_tagger(hybrid.save(tmp_path / "hybrid"))
    assert isinstance(loaded, HybridTagger) and (loaded.lam, loaded.scale) == (0.2, hybrid.scale)
    assert loaded.tag_sentences(sents) == hybrid.tag_sentences(sents) == [hybrid.tag(s) for s in sents]
    assert isinstance(load_tagger(tmp_path / "hybrid" / "neural"), NeuralTagger)


def test_perceptron_emissions_decode_to_its_tags(perceptron, data):
    for words in _words(data[:20]) + [[]]:
        assert perceptron.decode(perceptron.emissions(words)) == perceptron.tag(words)


def test_letters_of_other_spaced_scripts_read_as_latin_ones():
    """pfr1998's foreign words are Latin (nx): a Cyrillic or Greek word's characters, unknown to the
    tagger, take the ids of Latin ones (the hybrid tagged Москва nr), while unknown symbols stay unknown."""
    ids = {"A": 2, "a": 3, "0": 4, "中": 5}
    assert [t.tolist() for t in char_table(["Москва", "Αθήνα٣"], ids, 8)] == \
        [t.tolist() for t in char_table(["Aaaaaa", "Aaaaa0"], ids, 8)]
    assert char_table(["中😀"], ids, 4)[0].tolist() == [[5, 1, 0, 0]]


def test_char_table_keeps_the_ends_of_long_words():
    chars, first, last, length = char_table(["abcdefgh"], {c: i + 2 for i, c in enumerate("abcdefgh")}, 4)
    assert chars.tolist() == [[2, 3, 8, 9]] and (first[0], last[0], length[0]) == (2, 9, 4)


@pytest.mark.parametrize("bad", [{"epochs": 0}, {"hidden": 0}, {"width": 2}, {"dropout": 1.0}, {"word_dropout": -0.1},
                                 {"lr": 0}, {"decay": 0}, {"clip": 0}, {"holdout": 1}, {"holdout": -1},
                                 {"threads": -1}, {"max_chars": 1}, {"decay_from": -1}, {"layers": 0}])
def test_bad_neural_config_is_rejected(bad):
    with pytest.raises(InputError, match=next(iter(bad))):
        NeuralTaggerConfig(**bad)


def test_bad_hybrid_config_and_data_are_rejected(data, tmp_path):
    with pytest.raises(InputError, match="lam"):
        HybridTaggerConfig(lam=-0.1)
    with pytest.raises(InputError, match="no tagged sentences"):
        NeuralTagger.train([], SMALL)
    one = NeuralTagger.train(data[:1], NeuralTaggerConfig(epochs=1, word_dim=4, char_dim=4, filters=4, hidden=4))
    assert one.info["holdout_sentences"] == 0 and len(one.tag(ODD)) == len(ODD)  # nothing held out: the last epoch


def test_cli_trains_and_tags_with_neural_and_hybrid(data, perceptron, tmp_path, monkeypatch, capsys):
    import io

    from llmlab.cli import main

    tagged, few = tmp_path / "tagged.txt", tmp_path / "few.txt"
    tagged.write_text("".join(" ".join(f"{w}/{t}" for w, t in s) + "\n" for s in data), encoding="utf-8")
    few.write_text("".join(" ".join(f"{w}/{t}" for w, t in s) + "\n" for s in data[:100]), encoding="utf-8")
    perceptron.save(tmp_path / "perc")
    assert main(["pos", "train", "--algo", "hybrid", "--train", str(few), "--perceptron-model", str(tmp_path / "perc"),
                 "-o", str(tmp_path / "h")]) == 2
    assert "train both on the same data" in capsys.readouterr().err
    for algo, extra in (("neural", ["--no-pretrain"]),
                        ("hybrid", ["--perceptron-model", str(tmp_path / "perc"), "--lam", "0.3", "--layers", "2"])):
        model = tmp_path / algo
        assert main(["pos", "train", "--algo", algo, "--train", str(tagged), "--epochs", "1", "--seed", "3", "-o",
                     str(model), *extra]) == 0
        monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO("中国 人民\n\n".encode()), encoding="utf-8"))
        assert main(["pos", "tag", "--model", str(model)]) == 0
        assert main(["pos", "eval", "--model", str(model), "--gold", str(tagged)]) == 0
        out = capsys.readouterr().out
        assert "/" in out.split("\n")[1] and "accuracy=" in out
    hybrid, neural = load_tagger(tmp_path / "hybrid"), load_tagger(tmp_path / "neural")
    assert hybrid.lam == 0.3 and (hybrid.neural.config.layers, hybrid.neural.config.pretrain) == (2, True)
    assert (neural.config.seed, neural.config.layers, neural.config.pretrain) == (3, 1, False)


def test_one_sentence_runs_on_one_thread_a_batch_on_torchs_count(neural, data):
    """`threads_for`: a pass over one sentence runs on one torch thread, a pass over 32 long ones
    (`SMALL_PASS` words or more) on torch's count; the count is restored after, and the
    log-probabilities agree."""
    import torch

    from llmlab.core.threads import SMALL_PASS

    before = torch.get_num_threads()
    torch.set_num_threads(2)
    seen: list[int] = []
    handle = neural.net().register_forward_hook(lambda *_: seen.append(torch.get_num_threads()))
    try:
        longest = sorted(_words(data), key=len)[-32:]
        assert sum(map(len, longest)) >= SMALL_PASS
        one, batch = neural.log_probs(longest[0]), neural.log_probs_sentences(longest)
        assert seen == [1, 2] and torch.get_num_threads() == 2
        assert np.allclose(one, batch[0], atol=1e-5)
    finally:
        handle.remove()
        torch.set_num_threads(before)
