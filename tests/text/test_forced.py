"""Forced words (`Segmenter.force_words`, `--force-words`): cut whole by forward maximum matching before
any model sees the text, checked against a direct reading of that rule for every segmenter."""

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.text.base import KINDS, ForcedWords, load_segmenter, normalize_text, split_spaces, unit_spans, word_spans

CHINESE = st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4E20), max_size=40)
MIXED = st.text(alphabet=st.sampled_from("中国人民ab1１２Ａ。 \u0301"), max_size=40)


def forward_max_match(run: str, words: set[str]) -> list[tuple[str, bool]]:
    """The rule, read plainly: from each position, the longest forced word (width-normalised) that
    neither starts nor ends strictly inside a unit; else one character on."""
    norm = normalize_text(run)
    inside = {k for a, b in unit_spans(run) for k in range(a + 1, b)}
    out, i, done = [], 0, 0
    while i < len(run):
        ends = [j for j in range(len(run), i, -1) if norm[i:j] in words and i not in inside and j not in inside]
        if not ends:
            i += 1
            continue
        if done < i:
            out.append((run[done:i], False))
        out.append((run[i:ends[0]], True))
        i = done = ends[0]
    if done < len(run):
        out.append((run[done:], False))
    return out


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_forced_words_are_cut_whole_and_the_model_cuts_the_rest(segmenters, kind):
    """The cut of a text is, run by run, each forced match whole and the model's cut of each piece
    between, as if that piece were a text of its own."""
    plain = segmenters[kind]

    @settings(max_examples=30, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(CHINESE, MIXED), st.data())
    def check(text, data):
        subs = sorted({text[i:j] for i in range(len(text)) for j in range(i + 1, min(i + 5, len(text)) + 1)
                       if not text[i:j].isspace() and " " not in text[i:j]})
        words = data.draw(st.lists(st.sampled_from(subs), max_size=4)) if subs else []
        seg = copy.copy(plain)  # the fixture's own model stays without forced words
        seg.force_words(words + ["龘"])
        want = []
        for piece in split_spaces(text):
            if piece.isspace():
                want.append(piece)
                continue
            for part, forced in forward_max_match(piece, {normalize_text(w) for w in words} | {"龘"}):
                want += [part] if forced else plain.cut(part)
        assert seg.cut(text) == want
        assert "".join(want) == text
        assert seg.cut_lines([text, text]) == [want, want]

    check()
    assert "_forced" not in vars(plain)


def test_forced_words_match_either_width_and_never_split_a_unit():
    f = ForcedWords(["ab", "中国", "ＣＣ"])
    assert f.split("ａｂ中国") == [("ａｂ", True), ("中国", True)]  # full-width text, half-width word
    assert f.split("CC中国abc") == [("CC", True), ("中国", True), ("abc", False)]  # abc is one unit
    assert ForcedWords().split("中国") == [("中国", False)]


@pytest.mark.parametrize("kind", ["hmm", "perceptron", "hybrid"])
def test_add_user_dict_with_force(segmenters, kind, tmp_path):
    """`add_user_dict(..., force=True)` (a file or pairs) and `add_word(..., force=True)` force the words
    and, where there is a lexicon, add them to it; without `force` a segmenter without one refuses."""
    seg = copy.deepcopy(segmenters[kind])
    user = tmp_path / "user.txt"
    user.write_text("体育馆内看 2 n\n", encoding="utf-8")
    if kind == "hmm":
        with pytest.raises(InputError, match="no dictionary"):
            seg.add_user_dict(user)
    seg.add_user_dict(user, force=True)
    seg.add_word("龘靐", force=True)
    assert seg.forced.words == {"体育馆内看", "龘靐"}
    assert "体育馆内看" in seg.cut("他们在体育馆内看比赛") and seg.cut("龘靐靐")[0] == "龘靐"
    if kind != "hmm":
        assert "体育馆内看" in seg.lexicon and "龘靐" in seg.lexicon
    with pytest.raises(InputError, match="not one string"):
        seg.force_words("比赛")  # would force 比 and 赛
    assert seg.forced.words == {"体育馆内看", "龘靐"}


@pytest.mark.parametrize("kind", ["unigram", "bigram"])
def test_k_best_cuts_keep_forced_words_and_the_first_is_the_cut(segmenters, kind, test_words):
    seg = copy.copy(segmenters[kind])
    texts = ["".join(s) for s in test_words[:30]]
    seg.force_words({t[i:i + 3] for t in texts for i in range(0, len(t) - 3, 11)})
    several = 0
    for text in texts:
        pieces = seg.forced.split(text)
        fixed = {(w, a) for (w, a, _), (_, forced) in zip(word_spans([p for p, _ in pieces]), pieces) if forced}
        paths = seg.k_best(text, 4)
        assert paths[0][1] == seg.cut(text)
        several += len(paths) > 1 and len(fixed) > 0
        for _, words in paths:
            assert fixed <= {(w, a) for w, a, _ in word_spans(words)}
    assert several > 20


def test_forced_words_are_checked():
    for bad in ["", "中 国", None, 3]:
        with pytest.raises(InputError, match="forced word"):
            ForcedWords([bad])


@pytest.mark.parametrize("kind", ["hmm", "perceptron", "unigram"])
def test_forced_words_are_saved_with_the_model(segmenters, kind, tmp_path):
    seg = copy.copy(segmenters[kind])
    seg.force_words(["的中国人", "龘靐"])
    seg.save(tmp_path / kind)
    loaded = load_segmenter(tmp_path / kind)
    assert loaded.forced.words == {"的中国人", "龘靐"}
    assert loaded.cut("我的中国人龘靐") == seg.cut("我的中国人龘靐")
    path = tmp_path / kind / "segmenter.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    for bad in (["a b"], {"中国": 1}, [""]):
        doc["forced_words"] = bad
        path.write_text(json.dumps(doc), encoding="utf-8")
        with pytest.raises(InputError, match="damaged: 'forced_words'"):
            load_segmenter(tmp_path / kind)
    segmenters[kind].save(tmp_path / "plain")  # no forced words: no key
    assert "forced_words" not in json.loads((tmp_path / "plain" / "segmenter.json").read_text(encoding="utf-8"))


def test_cli_force_words(segmenters, train_words, train_tagged, tmp_path, cli):
    """`--force-words` keeps the --user-dict words whole in `seg cut` (traditional input too) and in
    `pos tag --seg-model`, and with it a segmenter without a lexicon (the HMM) takes a user dictionary;
    `seg train` saves them; without --user-dict (or --seg-model) it is refused."""
    from llmlab.text.pos import HmmTagger

    segmenters["hmm"].save(tmp_path / "hmm")
    line = "他们在体育馆内看見龘靐"
    plain = segmenters["hmm"].cut(line)
    user = tmp_path / "user.txt"
    user.write_text("馆内看見\n龘靐 3 nz\n", encoding="utf-8")
    cut = ["seg", "cut", "--model", str(tmp_path / "hmm"), "--user-dict", str(user)]
    rc, _, err = cli(cut, line + "\n")
    assert rc == 2 and "has no dictionary; with --force-words" in err
    rc, out, _ = cli([*cut, "--force-words"], line + "\n")
    words = out.split()
    assert rc == 0 and "馆内看見" in words and words[-1] == "龘靐" and "".join(words) == line
    assert "馆内看見" not in plain
    rc, out, _ = cli([*cut, "--force-words", "--t2s"], "他們在體育館內看見龘靐\n")
    assert rc == 0 and "館內看見" in out.split()  # the dictionary's word read as simplified, like the text

    train = tmp_path / "train.txt"
    train.write_text("".join(" ".join(s) + "\n" for s in train_words[:300]), encoding="utf-8")
    rc, _, _ = cli(["seg", "train", "--algo", "hmm", "--train", str(train), "--user-dict", str(user),
                    "--force-words", "-o", str(tmp_path / "hmm2")])
    assert rc == 0 and load_segmenter(tmp_path / "hmm2").forced.words == {"馆内看見", "龘靐"}
    rc, out, _ = cli(["seg", "cut", "--model", str(tmp_path / "hmm2")], line + "\n")
    assert rc == 0 and "馆内看見" in out.split()

    segmenters["unigram"].save(tmp_path / "unigram")
    rc, out, _ = cli(["seg", "kbest", "--model", str(tmp_path / "unigram"), "--user-dict", str(user), "--force-words",
                      "-k", "3"], line + "\n")
    paths = [row.split("\t")[1].split() for row in out.strip().split("\n")]
    assert rc == 0 and len(paths) >= 2 and all("馆内看見" in p and p[-1] == "龘靐" for p in paths)

    HmmTagger.train(train_tagged[:300]).save(tmp_path / "pos")
    tag = ["pos", "tag", "--model", str(tmp_path / "pos"), "--user-dict", str(user), "--force-words"]
    rc, out, _ = cli([*tag, "--seg-model", str(tmp_path / "hmm")], line + "\n")
    assert rc == 0 and any(t.startswith("馆内看見/") for t in out.split()) and out.split()[-1] == "龘靐/nz"
    for argv in (tag, ["seg", "cut", "--force-words"], ["seg", "train", "--force-words", "-o", str(tmp_path / "x")]):
        rc, _, err = cli(argv, line + "\n")
        assert rc == 2 and "--force-words" in err


def test_saved_forced_words_under_t2s_removal_and_min_count(segmenters, tmp_path, cli):
    """Three ways a model's forced words went wrong from the command line: with --t2s its saved traditional
    forced word was matched against simplified text and cut; a `word 0` dictionary could not take one out
    of an HMM without --force-words (which only adds); and --dict-only --force-words forced the words
    --min-count had left out of the lexicon, undoing it."""
    from llmlab.text.base import load_segmenter

    trad = tmp_path / "trad.txt"
    trad.write_text("體育館內\n", encoding="utf-8")
    segmenters["hmm"].save(tmp_path / "hmm")
    train = ["seg", "train", "--algo", "hmm", "--train"]
    words = tmp_path / "w.txt"
    words.write_text("他们 在 体育 馆 内\n", encoding="utf-8")
    assert cli([*train, str(words), "--user-dict", str(trad), "--force-words", "-o", str(tmp_path / "f")])[0] == 0
    for flags in ([], ["--t2s"]):
        rc, out, _ = cli(["seg", "cut", "--model", str(tmp_path / "f"), *flags], "去體育館內看\n")
        assert rc == 0 and "體育館內" in out.split(), (flags, out)
    gone = tmp_path / "gone.txt"
    gone.write_text("體育館內 0\n", encoding="utf-8")
    rc, out, _ = cli(["seg", "cut", "--model", str(tmp_path / "f"), "--user-dict", str(gone)], "去體育館內看\n")
    assert rc == 0 and "體育館內" not in out.split() and "".join(out.split()) == "去體育館內看"

    d = tmp_path / "d.txt"
    d.write_text("南京 5\n南京市 2\n市长 3\n长江 10\n大桥 10\n长江大桥 1\n", encoding="utf-8")
    assert cli(["seg", "train", "--algo", "fmm", "--dict-only", "--user-dict", str(d), "--min-count", "3",
                "--force-words", "-o", str(tmp_path / "ddf")])[0] == 0
    assert load_segmenter(tmp_path / "ddf").forced.words == {"南京", "市长", "长江", "大桥"}
