"""Domain / general mixing (llmlab.data.mix)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmlab.core.errors import InputError
from llmlab.data.mix import domain_share, mix_plan

texts = st.lists(st.text(alphabet="ab中", min_size=1, max_size=30), min_size=1, max_size=60)


@settings(max_examples=150, deadline=None)
@given(domain=texts, general=texts, share=st.floats(0.05, 0.95), by=st.sampled_from(["chars", "docs"]),
       seed=st.integers(0, 3))
def test_the_mix_reaches_the_share_using_each_document_once(domain, general, share, by, seed):
    plan = mix_plan(domain, general, share, by, seed)
    assert len(set(plan)) == len(plan)  # no document twice
    size = (lambda t: len(t)) if by == "chars" else (lambda t: 1)
    d = sum(size(domain[i]) for c, i in plan if c == "domain")
    g = sum(size(general[i]) for c, i in plan if c == "general")
    used = {c for c, _ in plan}
    assert used == {"domain", "general"}
    if sum(map(size, general)) >= sum(map(size, domain)) * (1 - share) / share:
        # every domain document, and general ones until the share is first reached: one fewer would miss it
        assert sorted(i for c, i in plan if c == "domain") == list(range(len(domain)))
        want = d * (1 - share) / share
        biggest = max(size(general[i]) for c, i in plan if c == "general")
        assert want - 1e-9 <= g < want + biggest
    else:  # all general text, and domain documents until the share is reached
        assert sorted(i for c, i in plan if c == "general") == list(range(len(general)))
        want = g * share / (1 - share)
        biggest = max(size(domain[i]) for c, i in plan if c == "domain")
        assert want - 1e-9 <= d < want + biggest
    assert domain_share(plan, domain, general, by) == pytest.approx(d / (d + g))


def test_a_share_met_exactly_takes_no_document_more_despite_float_rounding():
    # 2 x (1 - 1/3) / (1/3) is 4.000000000000001 in floats: one 4-character document meets it (found by hypothesis)
    plan = mix_plan(["aa"], ["aaaa", "aaaa"], 1 / 3, "chars", 0)
    assert sum(c == "general" for c, _ in plan) == 1
    assert domain_share(plan, ["aa"], ["aaaa", "aaaa"]) == pytest.approx(1 / 3)


def test_a_built_in_mix_is_close_to_its_share_and_shuffled():
    from llmlab.data.corpora import corpus_text

    domain, general = corpus_text("sentiment", "dev"), corpus_text("pfr1998", "train")
    plan = mix_plan(domain, general, 0.2, "chars", seed=1)
    assert domain_share(plan, domain, general) == pytest.approx(0.2, abs=0.002)
    positions = np.array([k for k, (c, _) in enumerate(plan) if c == "domain"])
    # shuffled: domain documents spread over the whole mix, not in a block
    assert positions.mean() / len(plan) == pytest.approx(0.5, abs=0.05)
    assert plan == mix_plan(domain, general, 0.2, "chars", seed=1) != mix_plan(domain, general, 0.2, "chars", seed=2)


@pytest.mark.parametrize("kw, msg", [
    (dict(share=0.0), r"share must be in \(0, 1\)"), (dict(share=1.0), r"share must be in \(0, 1\)"),
    (dict(by="tokens"), "by must be one of"), (dict(general=[""]), "both corpora need text"),
    (dict(domain=[]), "both corpora need text"),
])
def test_errors(kw, msg):
    args = dict(domain=["abc"], general=["de", "fg"], share=0.5, by="chars") | kw
    with pytest.raises(InputError, match=msg):
        mix_plan(**args)
