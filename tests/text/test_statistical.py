"""The B/M/E/S HMM and the averaged perceptron: Viterbi against brute force, learning, saving."""

import itertools
import math

import numpy as np
import pytest

from llmlab.core.errors import InputError
from llmlab.text.base import load_segmenter, normalize_text
from llmlab.text.bmes import B, M, cut_by_tags, encode_tags, viterbi_bmes
from llmlab.text.hmm import HmmConfig, HmmSegmenter
from llmlab.text.lexicon import Lexicon
from llmlab.text.metrics import seg_scores
from llmlab.text.perceptron import PerceptronConfig, PerceptronSegmenter, read_dictionary

LEGAL_NEXT = {0: {1, 2}, 1: {1, 2}, 2: {0, 3}, 3: {0, 3}}


def legal(tags):
    return (tags[0] in (0, 3) and tags[-1] in (2, 3)
            and all(b in LEGAL_NEXT[a] for a, b in itertools.pairwise(tags)))


def test_viterbi_bmes_matches_brute_force():
    rng = np.random.default_rng(0)
    for n in range(1, 7):
        em = rng.normal(size=(n, 4)).tolist()
        trans = rng.normal(size=(4, 4)).tolist()

        def score(tags, em=em, trans=trans):
            return sum(em[i][t] for i, t in enumerate(tags)) + sum(trans[a][b] for a, b in itertools.pairwise(tags))

        best = max((t for t in itertools.product(range(4), repeat=n) if legal(t)), key=score)
        got = viterbi_bmes(em, trans)
        assert legal(got)
        assert math.isclose(score(got), score(best))


def test_viterbi_bmes_breaks_ties_as_documented():
    """Integer scores make many legal sequences tie. The documented rule (the text ends on E rather
    than S; each state keeps the first of its two predecessors, E before S and B before M) picks,
    among the best sequences, the one that read from the end prefers B/E to M/S earliest."""
    rng = np.random.default_rng(1)
    n_ties = 0
    for trial in range(150):
        n = 1 + trial % 6
        em = rng.integers(0, 2, size=(n, 4)).astype(float).tolist()
        trans = rng.integers(0, 2, size=(4, 4)).astype(float).tolist()

        def score(tags, em=em, trans=trans):
            return sum(em[i][t] for i, t in enumerate(tags)) + sum(trans[a][b] for a, b in itertools.pairwise(tags))

        seqs = [t for t in itertools.product(range(4), repeat=n) if legal(t)]
        top = max(map(score, seqs))
        best = [t for t in seqs if score(t) == top]
        n_ties += len(best) > 1
        want = min(best, key=lambda t: [tag in (1, 3) for tag in reversed(t)])
        assert viterbi_bmes(em, trans) == list(want), (em, trans)
    assert n_ties > 50


def test_tag_round_trip(train_words):
    for words in train_words[:50]:
        text = "".join(words)
        assert cut_by_tags(text, encode_tags(words)) == words
    assert cut_by_tags("", []) == []  # no empty word, even for no text
    assert cut_by_tags("中", [M]) == ["中"] and cut_by_tags("中国人", [B, M, M]) == ["中国人"]


def test_hmm_learns_counted_probabilities():
    seg = HmmSegmenter.train([["中国", "人"]] * 3)
    # B->E was seen every time after B; with add-k the legal B->M gets the rest
    assert seg.trans[0][2] > seg.trans[0][1] > -1e29
    assert seg.trans[0][0] == seg.trans[0][3] == -1e30  # illegal B->B, B->S
    assert seg.emit["中"][0] > seg.emit["中"][3]
    assert seg.cut("人中国") == ["人", "中国"]


@pytest.mark.parametrize("k", [0.5, 0.01, 2.0])
def test_hmm_probabilities_are_distributions(k, train_words):
    """Add-k smoothing keeps every table a distribution: per tag, the emissions of the seen characters
    plus one unseen character's sum to 1; the start distribution over B/S and each transition row over
    its two legal successors too. And the counts are the training data's."""
    seg = HmmSegmenter.train(train_words[:50], HmmConfig(smoothing=k))
    for t in range(4):
        total = sum(math.exp(v[t]) for v in seg.emit.values()) + math.exp(seg.unknown[t])
        assert total == pytest.approx(1.0), t
    assert math.exp(seg.start[0]) + math.exp(seg.start[3]) == pytest.approx(1.0)
    assert seg.start[1] == seg.start[2] == -1e30
    for a, legal_next in LEGAL_NEXT.items():
        assert sum(math.exp(seg.trans[a][b]) for b in legal_next) == pytest.approx(1.0)
        assert all(seg.trans[a][b] == -1e30 for b in range(4) if b not in legal_next)
    tags = [t for words in train_words[:50] for t in encode_tags(words)]
    chars = [normalize_text(c) for words in train_words[:50] for c in "".join(words)]
    n_tag, n_char = [tags.count(t) for t in range(4)], len(set(chars))
    ch = chars[0]  # its smoothed relative frequency under each tag
    for t in range(4):
        c = sum(1 for x, y in zip(chars, tags) if x == ch and y == t)
        assert seg.emit[ch][t] == pytest.approx(math.log((c + k) / (n_tag[t] + k * (n_char + 1))))
    starts = [encode_tags(words)[0] for words in train_words[:50]]
    assert seg.start[3] - seg.start[0] == pytest.approx(math.log((starts.count(3) + k) / (starts.count(0) + k)))


def _f1(seg, test_words, vocab=None):
    return seg_scores(test_words, [seg.cut("".join(s)) for s in test_words], vocab)


def test_perceptron_beats_the_hmm_and_dictionary(segmenters, test_words, train_words):
    vocab = {w for s in train_words for w in s}
    scores = {k: _f1(segmenters[k], test_words, vocab) for k in ("hmm", "fmm", "perceptron")}
    assert scores["perceptron"].f1 > scores["hmm"].f1
    assert scores["perceptron"].f1 > scores["fmm"].f1
    assert scores["perceptron"].oov_recall > scores["fmm"].oov_recall
    assert scores["perceptron"].f1 > 0.8


def test_perceptron_fits_its_training_data(train_words):
    seg = PerceptronSegmenter.train(train_words[:100], PerceptronConfig(epochs=6, folds=1))
    assert _f1(seg, train_words[:100]).f1 > 0.97


def test_perceptron_user_words_feed_the_lexicon_features(train_words):
    seg = PerceptronSegmenter.train(train_words[:200], PerceptronConfig(epochs=2, folds=2))
    text = "龘靐齉"
    before = seg.emissions(text)
    seg.add_word("龘靐齉")
    after = seg.emissions(text)
    assert not np.allclose(before, after)  # the lexicon match now shows up in the features
    assert "".join(seg.cut(text)) == text


def test_perceptron_config_is_validated():
    with pytest.raises(InputError, match="epochs"):
        PerceptronConfig(epochs=0)
    with pytest.raises(InputError, match="folds"):
        PerceptronConfig(folds=0)


def brute_spans(text, words, max_span=6):
    """Longest word (>= 2 chars, capped) beginning at / ending at / strictly covering each position, and
    the frequency bin of the longest one beginning there: every substring checked against the set."""
    n, longest = len(text), max(map(len, words))
    out = np.zeros((n, 4), dtype=np.int64)
    for i in range(n):
        for j in range(i + 2, min(n, i + longest) + 1):
            if text[i:j] in words:
                v = min(j - i, max_span)
                out[i, 0], out[i, 3] = v, 1 if words[text[i:j]] < 10 else (2 if words[text[i:j]] < 100 else 3)
                out[j - 1, 1] = max(out[j - 1, 1], v)
                for k in range(i + 1, j - 1):
                    out[k, 2] = max(out[k, 2], v)
    return out


def test_lexicon_matching_equals_brute_force(train_words):
    from llmlab.text.base import normalize_text
    from llmlab.text.features import BOS_CODE, EOS_CODE, codes_of
    from llmlab.text.lexicon import Lexicon
    from llmlab.text.lexmatch import SpanIndex

    lex = {normalize_text(w): c for w, c in Lexicon.from_sentences(train_words).counts.items()}
    lex.update({"ＡＢ１２中国人民": 2, "AB12": 1, "中国人民银行总行": 150})  # a word past the length cap
    index = SpanIndex(lex)
    text = "".join("".join(s) for s in train_words[:60]) + "ＡＢ１２中国人民银行总行😀中"
    want = brute_spans(normalize_text(text), lex)
    assert (index.spans(codes_of(text)) == want).all()
    assert want[:, 0].any() and want[:, 2].any() and (want[:, 0] == 6).any()  # begin, cover and capped lengths
    # padding codes (beyond Unicode) never match and do not disturb the real positions
    padded = np.concatenate([[BOS_CODE], codes_of(text), [EOS_CODE, BOS_CODE], codes_of("人民"), [EOS_CODE]])
    got = index.spans(padded.astype(np.uint64))
    assert (got[1 : len(text) + 1] == want).all() and (got[[0, len(text) + 1, len(text) + 2, -1]] == 0).all()


def test_compiled_emissions_equal_the_key_array_path(segmenters, test_words):
    # cutting scores characters in one compiled pass; training looks up the materialised keys: same sums, bit
    # for bit, over a batch of texts with full-width forms, ideographic spaces, astral and lone surrogates
    from llmlab.text import features as F

    seg = segmenters["perceptron"]
    rng = np.random.default_rng(11)
    alphabet = list("中国人民银行ＡＢ１２ab12，。\u3000年月😀\ud800Дом")
    alphabet += [chr(c) for c in rng.integers(32, 0x2FFFF, 60)]
    texts = ["".join(s) for s in test_words[:20]] + ["".join(rng.choice(alphabet, rng.integers(1, 30)))
                                                      for _ in range(40)]
    for lexicons in [(seg._span_index(), None, seg._av_index()), (None, None, None)]:
        for batch in [texts, texts[:1], texts[-3:]]:
            keys, cols = F.padded_keys(batch, seg._table, *lexicons)
            want = np.zeros((len(cols), 4))
            for rows in seg.index.lookup(keys[:, cols]):  # template by template, in float64
                want += seg.weights[rows]
            got = F.emission_scores(batch, seg._table, seg.index, seg.weights, *lexicons)
            assert got.dtype == want.dtype and np.array_equal(got, want)
    # the padded layout: each text's normalised codes and types between PAD BOS (type 8) and PAD EOS (type 9)
    c, t, _, cols = F._padded(texts, seg._table, None, None, None)
    start = 0
    for text in texts:
        real = cols[start : start + len(text)] + F.PAD
        codes = F.codes_of(text)
        assert (c[real] == codes).all() and (t[real] == F.types_of(codes, seg._table)).all()
        before, after = slice(real[0] - F.PAD, real[0]), slice(real[-1] + 1, real[-1] + 1 + F.PAD)
        assert (c[before] == F.BOS_CODE).all() and (t[before] == 8).all()
        assert (c[after] == F.EOS_CODE).all() and (t[after] == 9).all()
        start += len(text)
    assert len(c) == start + 2 * F.PAD * len(texts)


def test_viterbi_over_many_texts_equals_one_at_a_time():
    from llmlab.text.bmes import viterbi_bmes_many

    rng = np.random.default_rng(3)
    lens = rng.integers(0, 25, size=200).tolist()
    em = rng.normal(size=(sum(lens), 4))
    trans = rng.normal(size=(4, 4)).tolist()
    got = viterbi_bmes_many(em, lens, trans)
    start = 0
    for n in lens:
        assert got[start : start + n].tolist() == viterbi_bmes(em[start : start + n].tolist(), trans)
        start += n
    with pytest.raises(ValueError, match="add up"):
        viterbi_bmes_many(em, lens[:-1], trans)


def test_cut_lines_equals_cut(segmenters, test_words):
    lines = ["".join(s) for s in test_words] + ["", "  ", "ab 中文"]
    for seg in segmenters.values():
        assert seg.cut_lines(lines) == [seg.cut(x) for x in lines]


def width_normalised(text: str) -> list[int]:
    """Code points as the features read them, from NFKC: full-width ASCII forms as ASCII (other
    characters, even U+FF5F, as they are), and U+3000 as a space."""
    import unicodedata

    return [0x20 if ch == "\u3000" else ord(unicodedata.normalize("NFKC", ch)) if 0xFF01 <= ord(ch) <= 0xFF5E
            else ord(ch) for ch in text]


def test_character_types_and_width_normalisation_agree_with_unicodedata():
    """Every BMP code point's type, from Unicode names and str predicates rather than code ranges."""
    import unicodedata

    from llmlab.text import features as f

    table = f.type_table()
    for c in range(0x10000):
        ch = chr(c)
        want = f.OTHER
        if unicodedata.name(ch, "").startswith("CJK UNIFIED IDEOGRAPH"):
            want = f.HAN
        elif ch.isascii() and ch.isdigit():
            want = f.DIGIT
        elif ch.isascii() and ch.isalpha():
            want = f.LATIN
        elif ch.isascii() and ch.isprintable() and not ch.isspace():
            want = f.PUNCT
        want = {**dict.fromkeys(f._PUNCT, f.PUNCT), **dict.fromkeys(f._NUMERALS, f.NUMERAL),
                **dict.fromkeys(f._DATE, f.DATE)}.get(ch, want)
        assert table[c] == want, hex(c)
    assert f.types_of(f.codes_of("\U00020000😀"), table).tolist() == [f.RARE] * 2  # astral: rare, not a lookup
    text = "".join(map(chr, range(0xFEFF, 0xFF70))) + "\u3000\u2003"
    assert f.codes_of(text).tolist() == width_normalised(text)
    assert width_normalised("\uff01\uff5f\u3000\u2003") == [0x21, 0xFF5F, 0x20, 0x2003]


def test_feature_keys_equal_a_plain_python_reading_of_the_templates():
    """The 14 window templates, the 7 of a lexicon and the key hash, written again with Python ints: the
    keys saved models hold must not change unless FEATURE_SET does."""

    from llmlab.text import features as f

    m64 = (1 << 64) - 1

    def mix(value, template):
        h = (value * 0x9E3779B97F4A7C15 + (template + 1) * 0xBF58476D1CE4E5B9) & m64
        h ^= h >> 31
        h = (h * 0x94D049BB133111EB) & m64
        h ^= h >> 29
        return h | 1

    table = f.type_table()
    text = "Ａb中国国人。１2年三\u3000三x😀"  # a doubled character and an a-b-a window too
    codes = width_normalised(text)
    types = [int(table[c]) if c < 0x10000 else f.RARE for c in codes]
    c = [f.BOS_CODE] * 2 + codes + [f.EOS_CODE] * 2
    t = [8, 8] + types + [9, 9]
    want = []
    for j in range(len(text)):
        w0, w1, w2, w3, w4 = c[j:j + 5]
        y0, y1, y2, y3, y4 = t[j:j + 5]
        v = [w0, w1, w2, w3, w4, w0 << 21 | w1, w1 << 21 | w2, w2 << 21 | w3, w3 << 21 | w4, w1 << 21 | w3,
             (w1 << 21 | w2) << 21 | w3, y1 * 100 + y2 * 10 + y3, y0 * 10000 + y1 * 1000 + y2 * 100 + y3 * 10 + y4,
             (w2 == w1) + 2 * (w2 == w3) + 4 * (w2 == w0)]
        want.append([mix(x & m64, r) for r, x in enumerate(v)])
    assert f.feature_keys(text, table).tolist() == want
    # the 7 templates of a lexicon, over its spans (`SpanIndex` is held to brute force elsewhere)
    from llmlab.text.lexmatch import SpanIndex

    lexicon = SpanIndex({"中国": 3, "国国人": 40, "国人": 1, "人。": 2, "年三": 900, "2年": 1})
    sp = lexicon.spans(np.array(c, dtype=np.uint64)).tolist()
    for j in range(len(text)):
        (sb, se, sm, sf), before, after = sp[j + 2], sp[j + 1][1], sp[j + 3][0]
        u = [sb * 100 + se * 10 + sm, sb << 21 | c[j + 2], se << 21 | c[j + 2], sm << 21 | c[j + 2], sb * 10 + sf,
             before * 10 + after, sb * 1000 + se * 100 + before * 10 + after]
        want[j] += [mix(x, 14 + r) for r, x in enumerate(u)]
    assert any(row[:4] != [0, 0, 0, 0] for row in sp)
    assert f.feature_keys(text, table, lexicon).tolist() == want


def test_feature_index_agrees_with_a_dict():
    from llmlab.text.hashindex import FeatureIndex

    rng = np.random.default_rng(5)
    keys = np.unique(rng.integers(1, 2**63, size=5000, dtype=np.int64).astype(np.uint64))
    # keys that share their home slot force probing
    keys = np.concatenate([keys, np.arange(1, 200, dtype=np.uint64) << np.uint64(40)])
    index = FeatureIndex(keys)
    rows = index.lookup(keys)
    assert sorted(rows.tolist()) == list(range(len(keys))) and index.missing == index.size == len(keys)  # compact
    assert (index.keys[rows] == keys).all()
    absent = rng.integers(1, 2**63, size=3000, dtype=np.int64).astype(np.uint64)
    absent = absent[~np.isin(absent, keys)]
    assert (index.lookup(absent) == index.missing).all()


def test_feature_dictionary_helps_on_unseen_words_and_round_trips(train_words, test_words, tmp_path):
    # a dictionary holding the gold words (as jieba's word list holds most of them) must raise test F1
    words = {w: 1 for s in train_words[:300] + test_words for w in s}
    path = tmp_path / "dict.txt"
    path.write_text("# word count\n" + "".join(f"{w} {c}\n" for w, c in words.items()), encoding="utf-8")
    config = PerceptronConfig(epochs=2, folds=2)
    plain = PerceptronSegmenter.train(train_words[:300], config)
    with_dict = PerceptronSegmenter.train(train_words[:300], config, read_dictionary(path))
    vocab = {w for s in train_words[:300] for w in s}
    assert _f1(with_dict, test_words, vocab).oov_recall > _f1(plain, test_words, vocab).oov_recall
    with_dict.save(tmp_path / "m")
    back = load_segmenter(tmp_path / "m")
    texts = ["".join(s) for s in test_words[:20]] + ["ＡＢ１２😀 中文"]
    assert back.cut_lines(texts) == with_dict.cut_lines(texts)
    assert ["".join(ws) for ws in back.cut_lines(texts)] == texts
    assert back.dictionary is not None and len(back.dictionary) == len(words)


def test_a_long_line_is_scored_in_windows_with_the_same_cuts(segmenters, test_words, train_words):
    """A run longer than the batch is scored a window at a time (its features took ~400 bytes a
    character at once); each window sees as far as the features do, so the cuts are the same."""
    seg = segmenters["perceptron"]
    longest = max((w for s in train_words for w in s), key=len)
    text = "".join("".join(s) for s in test_words[:60]) + longest + "中国人民" + longest
    assert len(text) > 2000 and seg._reach() > len(longest)
    whole = seg._cut_runs([text], batch_chars=len(text))
    for window in (7, 64, 500):
        assert seg._cut_runs([text], batch_chars=window) == whole
    runs = ["中国", text, "人民", "经济"]  # a long run among short ones is cut alone; the others as before
    assert seg._cut_runs(runs, batch_chars=100) == seg._cut_runs(runs, batch_chars=10**6)


def test_words_beginning_with_a_number_sign_survive_save_and_load(tmp_path):
    """A saved model's feature dictionary is llmlab's own file, not a user dictionary: a word
    beginning with # there is a word, not a comment (it was dropped on load)."""
    sents = [["#话题#", "很", "好"], ["用", "C#", "写"], ["#", "井号", "#话题#"]] * 6
    dictionary = Lexicon({"#话题#": 5, "C#": 3, "#标签": 2})
    seg = PerceptronSegmenter.train(sents, PerceptronConfig(epochs=2, folds=1), dictionary=dictionary)
    seg.save(tmp_path / "m")
    back = load_segmenter(tmp_path / "m")
    assert back.dictionary.counts == seg.dictionary.counts == dictionary.counts
    texts = ["#话题#很好", "用C#写#标签"]
    assert back.cut_lines(texts) == seg.cut_lines(texts)


def test_a_model_of_another_feature_set_fails_to_load_clearly(segmenters, tmp_path):
    import json

    segmenters["perceptron"].save(tmp_path / "m")
    doc_path = tmp_path / "m" / "segmenter.json"
    doc = json.loads(doc_path.read_text(encoding="utf-8"))
    doc["state"]["feature_set"] = 1
    doc_path.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError, match="feature set 1.*retrain"):
        load_segmenter(tmp_path / "m")


def test_a_truncated_or_missing_weights_file_fails_to_load_clearly(segmenters, tmp_path):
    segmenters["perceptron"].save(tmp_path / "m")
    weights = tmp_path / "m" / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:50])
    with pytest.raises(InputError, match="perceptron weights .* cannot be read"):
        load_segmenter(tmp_path / "m")
    weights.unlink()
    with pytest.raises(InputError, match="perceptron weights .* does not exist"):
        load_segmenter(tmp_path / "m")
