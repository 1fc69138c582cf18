"""chrF and chrF++ against sacrebleu on English, Chinese and mixed text, one and several references."""

import itertools

import pytest

from llmlab.core.errors import InputError
from llmlab.evaluate.chrf import ChrfConfig, chrf_signature, corpus_chrf, sentence_chrf

pytest.importorskip("sacrebleu")
from sacrebleu.metrics import CHRF  # noqa: E402

VARIANTS = [dict(), dict(word_order=2), dict(word_order=1, char_order=4), dict(lowercase=True, word_order=2),
            dict(whitespace=True), dict(eps_smoothing=True, word_order=2), dict(beta=1), dict(beta=3, char_order=3)]


def _ref(cfg: ChrfConfig) -> CHRF:
    return CHRF(char_order=cfg.char_order, word_order=cfg.word_order, beta=cfg.beta, lowercase=cfg.lowercase,
                whitespace=cfg.whitespace, eps_smoothing=cfg.eps_smoothing)


@pytest.mark.parametrize("kw", VARIANTS, ids=str)
def test_sentence_chrf_matches_sacrebleu(gen, kw):
    cfg = ChrfConfig(**kw)
    theirs = _ref(cfg)
    for _ in range(150):
        refs = [gen.sentence() for _ in range(gen.rng.randint(1, 3))]
        hyp = gen.noisy_copy(refs[0]) if gen.rng.random() < 0.8 else gen.sentence()
        assert sentence_chrf(hyp, refs, cfg) == pytest.approx(theirs.sentence_score(hyp, refs).score, abs=1e-6)


@pytest.mark.parametrize("kw,n_refs", list(itertools.product(VARIANTS, [1, 2])), ids=str)
def test_corpus_chrf_matches_sacrebleu(gen, kw, n_refs):
    cfg = ChrfConfig(**kw)
    n = 40
    refs = [[gen.sentence() for _ in range(n)] for _ in range(n_refs)]
    hyps = [gen.noisy_copy(r) for r in refs[0]]
    assert corpus_chrf(hyps, refs, cfg) == pytest.approx(_ref(cfg).corpus_score(hyps, refs).score, abs=1e-6)


def test_identical_text_scores_100_and_disjoint_scores_0():
    assert sentence_chrf("今天天气很好", ["今天天气很好"]) == pytest.approx(100.0)
    assert sentence_chrf("abc", ["xyz"]) == 0.0


def test_hand_computed_unigram_bigram_case():
    # hyp "ab", ref "abc", orders 1..2, beta=1: P1=1 R1=2/3, P2=1 R2=1/2 -> avg P=1, R=7/12
    p, r = 1.0, 7 / 12
    assert sentence_chrf("ab", ["abc"], ChrfConfig(char_order=2, beta=1)) == pytest.approx(100 * 2 * p * r / (p + r))


def test_signature_matches_sacrebleu_except_version():
    cfg = ChrfConfig(word_order=2, lowercase=True)
    theirs = _ref(cfg)
    theirs.corpus_score(["a"], [["a"]])
    assert chrf_signature(cfg, 1).rsplit("|version:", 1)[0] == str(theirs.get_signature()).rsplit("|version:", 1)[0]


def test_several_references_near_a_tie_pick_sacrebleus_reference():
    # the two references' segment scores differ in the last bit only: the order of the final
    # multiply and divide decides which reference's statistics enter the corpus score
    hyps, refs = ["ba ca", "cab"], [[" ddba", "cab"], ["bb ", "aab cbca"]]
    assert corpus_chrf(hyps, refs) == pytest.approx(_ref(ChrfConfig()).corpus_score(hyps, refs).score, abs=1e-9)


def test_bad_config_is_a_clear_error():
    for beta in (0, -1, float("nan"), float("inf")):
        with pytest.raises(InputError, match="beta"):
            ChrfConfig(beta=beta)


def test_hypothesis_random_text_matches_sacrebleu():
    hyp_st = pytest.importorskip("hypothesis")
    st = hyp_st.strategies
    alphabet = st.sampled_from(list("ab c.,-1中文\u3000é!(") + ["ab", " the ", "(hi)"])

    @hyp_st.settings(max_examples=300, deadline=None, derandomize=True)
    @hyp_st.given(st.lists(alphabet, max_size=25).map("".join), st.lists(alphabet, max_size=25).map("".join),
                  st.sampled_from(VARIANTS))
    def check(hyp, ref, kw):
        cfg = ChrfConfig(**kw)
        assert sentence_chrf(hyp, [ref], cfg) == pytest.approx(_ref(cfg).sentence_score(hyp, [ref]).score, abs=1e-6)

    check()


@pytest.mark.parametrize("kw", [dict(char_order=1), dict(char_order=0, word_order=2), dict(char_order=0, word_order=1),
                                dict(char_order=1, word_order=1)], ids=str)
def test_smallest_orders_and_word_only_chrf_match_sacrebleu(gen, kw):
    """The edges of the order range: unigram-only chrF and word-only chrF (char_order=0) are valid."""
    cfg = ChrfConfig(**kw)
    theirs = _ref(cfg)
    for _ in range(40):
        refs = [gen.english(3) for _ in range(gen.rng.randint(1, 2))]
        hyp = gen.noisy_copy(refs[0])
        assert sentence_chrf(hyp, refs, cfg) == pytest.approx(theirs.sentence_score(hyp, refs).score, abs=1e-6)


@pytest.mark.parametrize("kw", [dict(char_order=0), dict(char_order=0, word_order=0), dict(char_order=-1, word_order=2),
                                dict(word_order=-1)], ids=str)
def test_empty_or_negative_orders_are_clear_errors(kw):
    with pytest.raises(InputError, match="order"):
        ChrfConfig(**kw)
