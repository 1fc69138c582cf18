"""A datasheet for a corpus: what is measurable about it, measured, and the questions only its makers
can answer, asked (after Gebru et al., "Datasheets for Datasets", 2018; topic 24).

`profile_corpus` measures a list of documents: sizes and length quantiles, the mix of scripts, how
many documents repeat an earlier one exactly or nearly (`llmlab.data.dedup`), how many fail each
quality rule (`llmlab.data.clean`) and how much personal data they hold (`llmlab.data.pii`).
`datasheet_markdown` writes the profile into the seven sections of a datasheet, leaving the
questions about motivation, collection, uses, distribution and maintenance for a person to answer.

>>> p = profile_corpus(["今天天气很好。", "今天天气很好。", "Mail me: a@b.org"], near=False)
>>> p.documents, p.exact_duplicates, p.pii
(3, 1, {'EMAIL': 1})
>>> sorted(p.scripts)[:3]
['han', 'latin', 'punctuation']
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import regex

from llmlab.core.errors import InputError
from llmlab.core.progress import progress
from llmlab.data.clean import QualityConfig, quality_reasons
from llmlab.data.dedup import exact_duplicates, near_duplicates
from llmlab.data.pii import find_pii

# Scripts a character is counted under, first match wins; anything else is "other".
SCRIPTS = (
    ("han", regex.compile(r"\p{Han}")),
    ("kana", regex.compile(r"[\p{Hiragana}\p{Katakana}]")),
    ("hangul", regex.compile(r"\p{Hangul}")),
    ("latin", regex.compile(r"\p{Latin}")),
    ("cyrillic", regex.compile(r"\p{Cyrillic}")),
    ("digit", regex.compile(r"\p{Nd}")),
    ("punctuation", regex.compile(r"\p{P}")),
    ("symbol", regex.compile(r"\p{S}")),
    ("space", regex.compile(r"\s")),
)
QUANTILES = (("min", 0.0), ("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))


def script_of(ch: str) -> str:
    """The script `ch` is counted under.

    >>> [script_of(c) for c in "中a1。 😀"]
    ['han', 'latin', 'digit', 'punctuation', 'space', 'symbol']
    """
    return next((name for name, pattern in SCRIPTS if pattern.match(ch)), "other")


def script_mix(texts: Sequence[str]) -> dict[str, float]:
    """Share of all characters per script, largest first (scripts with none left out).

    >>> script_mix(["ab中", "中中。"])
    {'han': 0.5, 'latin': 0.3333333333333333, 'punctuation': 0.16666666666666666}
    """
    chars: Counter[str] = Counter()
    for t in texts:
        chars.update(t)
    total = sum(chars.values())
    if not total:
        return {}
    by_script: Counter[str] = Counter()
    for ch, n in chars.items():
        by_script[script_of(ch)] += n
    return {s: n / total for s, n in by_script.most_common()}


@dataclass(frozen=True)
class Profile:
    documents: int
    characters: int
    utf8_bytes: int
    empty: int  # documents with no characters but whitespace
    lengths: dict[str, int]  # characters per document at the QUANTILES
    scripts: dict[str, float]  # share of characters per script
    exact_duplicates: int  # documents equal to an earlier one (after the dedup module's normalisation)
    near_duplicates: int | None  # further documents removed as near-duplicates; None: not measured
    quality: dict[str, int] = field(default_factory=dict)  # documents failing each quality rule
    quality_kept: int = 0  # documents failing none
    pii: dict[str, int] = field(default_factory=dict)  # personal-data matches per kind


def profile_corpus(texts: Sequence[str], near: bool = True, threshold: float = 0.8,
                   quality: QualityConfig | None = None) -> Profile:
    """Measure a corpus (`near`: also count near-duplicates at Jaccard `threshold`)."""
    texts = list(texts)
    if not texts:
        raise InputError("the corpus has no documents to describe")
    lengths = np.array([len(t) for t in texts])
    keep = np.asarray(exact_duplicates(texts).keep)
    near_count = None
    if near:
        kept = [t for t, k in zip(texts, keep) if k]
        near_count = int(len(kept) - np.count_nonzero(near_duplicates(kept, threshold=threshold).keep))
    quality = quality or QualityConfig()
    failures: Counter[str] = Counter()
    pii: Counter[str] = Counter()
    passed = 0
    for t in progress(texts, desc="profile"):
        reasons = quality_reasons(t, quality)
        failures.update(reasons)
        passed += not reasons
        pii.update(m.kind for m in find_pii(t))
    return Profile(
        documents=len(texts),
        characters=int(lengths.sum()),
        utf8_bytes=sum(len(t.encode("utf-8", "surrogatepass")) for t in texts),
        empty=sum(not t.strip() for t in texts),
        lengths={name: int(np.quantile(lengths, q, method="lower")) for name, q in QUANTILES},
        scripts=script_mix(texts),
        exact_duplicates=int(len(texts) - np.count_nonzero(keep)),
        near_duplicates=near_count,
        quality=dict(failures.most_common()),
        quality_kept=passed,
        pii=dict(sorted(pii.items())),
    )


# The datasheet's sections and the questions a person must answer in each (Gebru et al.'s seven
# sections, in our words). Composition and preprocessing also get the measured profile.
QUESTIONS = (
    ("Motivation", ("Why was the corpus made, and for what task?", "Who made it, and on whose behalf?",
                    "Who paid for it?")),
    ("Composition", ("What does one document stand for (a sentence, an article, a web page)?",
                     "Is anything missing from documents, and why?",
                     "Does it hold confidential or personal data (see the counts below), and what was done?")),
    ("Collection process", ("How were the documents obtained (crawl, licence, API, people writing them)?",
                            "Who collected them, and how were they paid?",
                            "Was there an ethical review, and by whom?")),
    ("Preprocessing, cleaning and labelling", ("Which steps were applied (llmlab data clean, dedup, ...)?",
                                               "Is the raw data kept, and where?",
                                               "Which software, at which version, did the work?")),
    ("Uses", ("What has the corpus been used for?", "What should it not be used for?")),
    ("Distribution", ("How is it distributed, and under which licence?",
                      "Do third parties hold rights over any of it?")),
    ("Maintenance", ("Who maintains it, and how are they reached?", "Will it be updated, how often, by whom?")),
)


def _pct(x: float) -> str:
    """A share as a percentage, small ones to two significant digits rather than "0.0%".

    >>> _pct(0.5), _pct(0.0004), _pct(0.0)
    ('50.0%', '0.04%', '0.0%')
    """
    return f"{x:.1%}" if x == 0 or x >= 0.001 else f"{100 * x:.2g}%"


def _profile_lines(p: Profile) -> list[str]:
    share = lambda n: f"{n} ({_pct(n / p.documents)})"  # noqa: E731
    lines = [
        "| measure | value |", "|---|---|",
        f"| documents | {p.documents} |",
        f"| characters | {p.characters} ({p.utf8_bytes} bytes of UTF-8) |",
        f"| empty documents | {share(p.empty)} |",
        "| characters per document | " + ", ".join(f"{k} {v}" for k, v in p.lengths.items()) + " |",
        "| scripts (share of characters) | " + ", ".join(f"{k} {_pct(v)}" for k, v in p.scripts.items()) + " |",
        f"| exact duplicates | {share(p.exact_duplicates)} |",
    ]
    if p.near_duplicates is not None:
        lines.append(f"| near-duplicates (after exact) | {share(p.near_duplicates)} |")
    lines.append(f"| pass every quality rule | {share(p.quality_kept)} |")
    lines += [f"| fail `{rule}` | {share(n)} |" for rule, n in p.quality.items()]
    pii = ", ".join(f"{k} {v}" for k, v in p.pii.items()) or "none found"
    lines.append(f"| personal data (matches) | {pii} |")
    return lines


def datasheet_markdown(profile: Profile, name: str) -> str:
    """The datasheet of corpus `name` as Markdown: measured profile, then the open questions."""
    out = [f"# Datasheet: {name}", "",
           "Measured by `llmlab data datasheet`; the questions are for the corpus's makers to answer.", ""]
    for section, questions in QUESTIONS:
        out += [f"## {section}", ""]
        if section == "Composition":
            out += [*_profile_lines(profile), ""]
        out += [f"- {q}\n  _to answer_" for q in questions] + [""]
    return "\n".join(out)
