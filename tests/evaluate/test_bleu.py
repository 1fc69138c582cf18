"""BLEU against sacrebleu: every tokenizer x smoothing x effective order, sentence and corpus level."""

import itertools
import math

import pytest

from llmlab.core.errors import InputError
from llmlab.evaluate.bleu import BleuConfig, bleu_signature, corpus_bleu, sentence_bleu
from llmlab.evaluate.bleu_tokenize import BLEU_TOKENIZERS, is_zh_char

sacrebleu = pytest.importorskip("sacrebleu")
from sacrebleu.metrics import BLEU  # noqa: E402

SMOOTHS = [("none", None), ("floor", None), ("floor", 0.3), ("add-k", None), ("add-k", 2.0), ("exp", None)]
COMBOS = list(itertools.product(sorted(BLEU_TOKENIZERS), SMOOTHS, [False, True]))


def _ref(cfg: BleuConfig) -> BLEU:
    return BLEU(tokenize=cfg.tokenize, lowercase=cfg.lowercase, smooth_method=cfg.smooth_method,
                smooth_value=cfg.smooth_value, effective_order=cfg.effective_order,
                max_ngram_order=cfg.max_ngram_order)


def _close(ours, theirs):
    assert ours.score == pytest.approx(theirs.score, abs=1e-6)
    assert ours.bp == pytest.approx(theirs.bp, abs=1e-9)
    assert (ours.sys_len, ours.ref_len) == (theirs.sys_len, theirs.ref_len)


@pytest.mark.parametrize("tok", sorted(BLEU_TOKENIZERS))
def test_tokenizers_match_sacrebleu(gen, tok):
    from sacrebleu.metrics.bleu import _get_tokenizer

    theirs = _get_tokenizer(tok)()
    ours = BLEU_TOKENIZERS[tok]
    for _ in range(1500):
        s = gen.sentence()
        assert ours(s) == theirs(s), s


def test_zh_char_table_matches_sacrebleu_over_the_bmp_and_beyond():
    from sacrebleu.tokenizers.tokenizer_zh import TokenizerZh

    for cp in itertools.chain(range(0, 0x10000, 7), range(0x1FFF0, 0x2FB00, 13), [0x2000, 0x2001, 0x2A6D, 0x2A6E]):
        ch = chr(cp)
        assert is_zh_char(ch) == TokenizerZh._is_chinese_char(ch), hex(cp)


@pytest.mark.parametrize("tok,smooth,eff", COMBOS)
def test_sentence_bleu_matches_sacrebleu(gen, tok, smooth, eff):
    cfg = BleuConfig(tokenize=tok, smooth_method=smooth[0], smooth_value=smooth[1], effective_order=eff,
                     lowercase=gen.rng.random() < 0.3)
    ref_metric = _ref(cfg)
    for _ in range(40):
        refs = [gen.sentence() for _ in range(gen.rng.randint(1, 3))]
        hyp = gen.noisy_copy(refs[0]) if gen.rng.random() < 0.8 else gen.sentence()
        _close(sentence_bleu(hyp, refs, cfg), ref_metric.sentence_score(hyp, refs))


@pytest.mark.parametrize("tok,smooth,eff", COMBOS)
def test_corpus_bleu_matches_sacrebleu(gen, tok, smooth, eff):
    cfg = BleuConfig(tokenize=tok, smooth_method=smooth[0], smooth_value=smooth[1], effective_order=eff)
    for n_refs in (1, 2):
        n = gen.rng.randint(1, 30)
        refs = [[gen.sentence() for _ in range(n)] for _ in range(n_refs)]
        hyps = [gen.noisy_copy(r) for r in refs[0]]
        _close(corpus_bleu(hyps, refs, cfg), _ref(cfg).corpus_score(hyps, refs))


def test_variable_reference_counts_and_max_order(gen):
    refs = [[gen.english(3) for _ in range(20)], [gen.english(3) if i % 3 else None for i in range(20)]]
    hyps = [gen.noisy_copy(r) for r in refs[0]]
    for order in (1, 2, 3, 6):
        cfg = BleuConfig(max_ngram_order=order)
        _close(corpus_bleu(hyps, refs, cfg), _ref(cfg).corpus_score(hyps, refs))


def test_signature_matches_sacrebleu_except_version():
    for cfg in (BleuConfig(), BleuConfig(tokenize="zh", smooth_method="add-k", lowercase=True, effective_order=True),
                BleuConfig(smooth_method="floor", smooth_value=0.25)):
        theirs = _ref(cfg)
        theirs.corpus_score(["a b"], [["a b"], ["a c"]])
        want = str(theirs.get_signature()).rsplit("|version:", 1)[0]
        assert bleu_signature(cfg, 2).rsplit("|version:", 1)[0] == want


def test_textbook_case_by_hand():
    # hyp "the cat on the mat" vs ref "the cat sat on a mat": p1=4/5 p2=1/4 p3=0/3 p4=0/2, BP=exp(1-6/5)
    hyp, refs = ["the cat on the mat"], [["the cat sat on a mat"]]
    s = corpus_bleu(hyp, refs, BleuConfig(smooth_method="none"))
    assert s.counts == (4, 1, 0, 0) and s.totals == (5, 4, 3, 2) and s.score == 0.0
    s = corpus_bleu(hyp, refs, BleuConfig(smooth_method="floor"))
    logs = math.log(4 / 5) + math.log(1 / 4) + math.log(0.1 / 3) + math.log(0.1 / 2)
    assert s.score == pytest.approx(100 * math.exp(1 - 6 / 5) * math.exp(logs / 4), rel=1e-12)
    s = corpus_bleu(hyp, refs, BleuConfig(smooth_method="exp"))  # mteval: 1/(2 * 3), 1/(4 * 2)
    logs = math.log(4 / 5) + math.log(1 / 4) + math.log(1 / 6) + math.log(1 / 8)
    assert s.score == pytest.approx(100 * math.exp(1 - 6 / 5) * math.exp(logs / 4), rel=1e-12)


def test_brevity_penalty_uses_closest_reference():
    s = corpus_bleu(["a b c"], [["a b c d e f"], ["a b c d"]])
    assert s.ref_len == 4 and s.bp == pytest.approx(math.exp(1 - 4 / 3))


@pytest.mark.parametrize("bad", [dict(tokenize="moses"), dict(smooth_method="add-one"), dict(max_ngram_order=0),
                                 dict(smooth_value=math.nan, smooth_method="floor"), dict(smooth_value=math.inf)])
def test_bad_config_is_a_clear_error(bad):
    with pytest.raises(InputError, match=list(bad)[0]):
        BleuConfig(**bad)


def test_mismatched_streams_are_a_clear_error():
    with pytest.raises(InputError, match="has 1 lines but there are 2"):
        corpus_bleu(["a", "b"], [["a"]])


@pytest.mark.parametrize("metric", ["bleu", "chrf", "rouge"])
def test_a_segment_without_any_reference_is_a_clear_error(metric):
    """None marks a missing reference; a segment with none at all has nothing to score against (sacrebleu
    fails there with an IndexError)."""
    from llmlab.evaluate import corpus_chrf, corpus_rouge

    score = {"bleu": corpus_bleu, "chrf": corpus_chrf, "rouge": corpus_rouge}[metric]
    with pytest.raises(InputError, match="segment 1 has no reference"):
        score(["a b", "c", "d"], [["a b", None, "d"], ["a c", None, None]])


def test_hypothesis_random_text_matches_sacrebleu():
    hyp_st = pytest.importorskip("hypothesis")
    st = hyp_st.strategies
    alphabet = st.sampled_from(list("ab c.,-1中文\u3000é!&;") + ["&amp;", "ab", " the "])

    @hyp_st.settings(max_examples=300, deadline=None, derandomize=True)
    @hyp_st.given(st.lists(alphabet, max_size=25).map("".join), st.lists(alphabet, max_size=25).map("".join),
                  st.sampled_from(sorted(BLEU_TOKENIZERS)), st.sampled_from(SMOOTHS))
    def check(hyp, ref, tok, smooth):
        cfg = BleuConfig(tokenize=tok, smooth_method=smooth[0], smooth_value=smooth[1], effective_order=True)
        _close(sentence_bleu(hyp, [ref], cfg), _ref(cfg).sentence_score(hyp, [ref]))

    check()


def test_format_line_matches_sacrebleu(gen):
    """The one-line summary (score, precisions, BP, ratio, lengths) is sacrebleu's, also when the
    references are empty (ratio printed as 0) and with a signature."""
    for i in range(60):
        refs = [gen.sentence() for _ in range(2)] if i % 10 else ["", ""]
        hyp = gen.noisy_copy(refs[0]) if i % 3 else gen.sentence()
        cfg = BleuConfig(effective_order=True)
        theirs = _ref(cfg).sentence_score(hyp, refs)
        assert sentence_bleu(hyp, refs, cfg).format() == theirs.format()
        assert sentence_bleu(hyp, refs, cfg).format("sig") == theirs.format(signature="sig")


@pytest.mark.parametrize("method", ["floor", "add-k"])
def test_zero_smooth_value_is_allowed_and_matches_sacrebleu(gen, method):
    """smooth_value=0 is a valid (if degenerate) choice that sacrebleu accepts; only negatives are errors."""
    cfg = BleuConfig(smooth_method=method, smooth_value=0.0, effective_order=True)
    for _ in range(30):
        refs = [gen.english(3)]
        hyp = gen.noisy_copy(refs[0])
        _close(sentence_bleu(hyp, refs, cfg), _ref(cfg).sentence_score(hyp, refs))
    with pytest.raises(InputError, match="smooth_value"):
        BleuConfig(smooth_method=method, smooth_value=-0.1)


@pytest.mark.parametrize("hyps,refs,words", [
    ("the cat", [["the cat"]], "hyps must be a list of strings, got str"),
    (["the cat"], ["the cat"], "reference stream 0 must be a list of strings, got str"),
    (["a", "b"], [["a", "b"], "ab"], "reference stream 1 must be a list of strings, got str"),  # not only the first
    ([None], [["a"]], "hypothesis 0 is NoneType"), (["a"], [[3]], "reference stream 0: reference 0 is int"),
    (None, [["a"]], "hyps must be a list of strings, got NoneType"), (["a"], None, "refs must be a list"),
], ids=["str-hyps", "flat-refs", "second-stream", "none-hyp", "int-ref", "no-hyps", "no-refs"])
def test_a_string_where_a_list_belongs_is_a_clear_error(hyps, refs, words):
    """A bare string of hypotheses, or references given as one flat list instead of a list of streams (the
    usual sacrebleu slip), would otherwise be scored character by character or stream by stream; a None or
    a number where a string belongs failed deep inside. The same check serves chrF and ROUGE."""
    from llmlab.evaluate.chrf import corpus_chrf
    from llmlab.evaluate.rouge import corpus_rouge

    for score in (corpus_bleu, corpus_chrf, corpus_rouge):
        with pytest.raises(InputError, match=words):
            score(hyps, refs)


def test_streams_may_be_generators():
    hyps, refs = ["the cat sat", "a dog"], [["the cat sat down", "a dog ran"], ["the cat", None]]
    assert corpus_bleu(iter(hyps), (iter(s) for s in refs)).score == corpus_bleu(hyps, refs).score


def test_one_segment_scores_refuse_what_is_not_text():
    from llmlab.evaluate.chrf import sentence_chrf
    from llmlab.evaluate.diversity import rep_n
    from llmlab.evaluate.rouge import RougeScorer
    from llmlab.evaluate.tasks import exact_match

    for call, words in ((lambda: sentence_bleu("a", None), "refs must be a list"),
                        (lambda: sentence_bleu(None, ["a"]), "hypothesis 0 is NoneType"),
                        (lambda: sentence_chrf(5, ["a"]), "hypothesis 0 is int"),
                        (lambda: RougeScorer().score(None, "a"), "target must be a string"),
                        (lambda: exact_match(None, "a"), "an answer must be a string"),
                        (lambda: rep_n([]), "the text must be a string")):
        with pytest.raises(InputError, match=words):
            call()
