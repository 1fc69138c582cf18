"""The Porter stemmer (Porter 1980) with the extensions NLTK applies by default, the stemmer rouge-score
uses (``nltk.stem.porter.PorterStemmer()``), so stemmed ROUGE gives rouge-score's numbers.

A word is a string of consonants (c) and vowels (v); its measure m counts the "vc" pairs of its c/v
pattern; each step strips or rewrites one suffix when the remaining stem passes a condition.
"""

from __future__ import annotations

from collections.abc import Callable

_VOWELS = frozenset("aeiou")
# NLTK's table of irregular forms: word -> stem
_IRREGULAR = {
    "sky": "sky", "skies": "sky", "dying": "die", "lying": "lie", "tying": "tie", "news": "news",
    "innings": "inning", "inning": "inning", "outings": "outing", "outing": "outing",
    "cannings": "canning", "canning": "canning", "howe": "howe", "proceed": "proceed",
    "exceed": "exceed", "succeed": "succeed",
}  # fmt: skip

Rule = tuple[str, str, "Callable[[str], bool] | None"]


def consonant_flags(word: str) -> list[bool]:
    """True where a letter is a consonant; y is a consonant unless it follows one.

    >>> consonant_flags("toy"), consonant_flags("syzygy")
    ([True, False, True], [True, False, True, False, True, False])
    """
    flags: list[bool] = []
    for i, ch in enumerate(word):
        flags.append(ch not in _VOWELS and (ch != "y" or i == 0 or not flags[i - 1]))
    return flags


def measure(stem: str) -> int:
    """m in [C](VC){m}[V].

    >>> measure("tree"), measure("trouble"), measure("troubles")
    (0, 1, 2)
    """
    cv = "".join("c" if c else "v" for c in consonant_flags(stem))
    return cv.count("vc")


def _has_vowel(stem: str) -> bool:
    return not all(consonant_flags(stem))


def _is_cons(word: str, i: int) -> bool:
    return consonant_flags(word[: i + 1])[i]


def _ends_double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _is_cons(word, len(word) - 1)


def _ends_cvc(word: str) -> bool:
    """*o: ends consonant-vowel-consonant, the last not w, x or y (NLTK: also a 2-letter vc word)."""
    if len(word) >= 3:
        f = consonant_flags(word)
        if f[-3] and not f[-2] and f[-1] and word[-1] not in "wxy":
            return True
    if len(word) == 2:
        f = consonant_flags(word)
        return not f[0] and f[1]
    return False


def _m_gt0(stem: str) -> bool:
    return measure(stem) > 0


def _m_gt1(stem: str) -> bool:
    return measure(stem) > 1


def apply_rules(word: str, rules: list[Rule]) -> str:
    """The first rule whose suffix matches decides: replace it when the stem passes, else stop.

    The suffix "*d" matches a double consonant ending (both letters are removed from the stem).

    >>> apply_rules("caresses", [("sses", "ss", None), ("s", "", None)])
    'caress'
    """
    for suffix, repl, cond in rules:
        if suffix == "*d" and _ends_double_consonant(word):
            stem = word[:-2]
        elif word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
        else:
            continue
        return stem + repl if cond is None or cond(stem) else word
    return word


def _step1a(word: str) -> str:
    if word.endswith("ies") and len(word) == 4:
        return word[:-3] + "ie"
    return apply_rules(word, [("sses", "ss", None), ("ies", "i", None), ("ss", "ss", None), ("s", "", None)])


def _step1b(word: str) -> str:
    if word.endswith("ied"):
        return word[:-3] + ("ie" if len(word) == 4 else "i")
    if word.endswith("eed"):
        stem = word[:-3]
        return stem + "ee" if measure(stem) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            stem = word[: -len(suffix)]
            break
    else:
        return word
    return apply_rules(stem, [
        ("at", "ate", None), ("bl", "ble", None), ("iz", "ize", None),
        ("*d", stem[-1], lambda s: stem[-1] not in "lsz"),
        ("", "e", lambda s: measure(s) == 1 and _ends_cvc(s)),
    ])  # fmt: skip


def _step1c(word: str) -> str:
    return apply_rules(word, [("y", "i", lambda s: len(s) > 1 and _is_cons(s, len(s) - 1))])


_STEP2 = [
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
    ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"), ("ization", "ize"),
    ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"), ("fulness", "ful"),
    ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"), ("biliti", "ble"), ("fulli", "ful"),
]  # fmt: skip


def _step2(word: str) -> str:
    if word.endswith("alli") and _m_gt0(word[:-4]):
        return _step2(word[:-4] + "al")  # NLTK applies alli -> al first, then step 2 again
    rules: list[Rule] = [(s, r, _m_gt0) for s, r in _STEP2]
    rules.append(("logi", "log", lambda s: _m_gt0(word[:-3])))  # the l stays with the stem
    return apply_rules(word, rules)


def _step3(word: str) -> str:
    pairs = [("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"), ("ful", ""),
             ("ness", "")]
    return apply_rules(word, [(s, r, _m_gt0) for s, r in pairs])


_STEP4 = ("al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent", "ion", "ou", "ism",
          "ate", "iti", "ous", "ive", "ize")


def _step4(word: str) -> str:
    rules: list[Rule] = [
        (s, "", (lambda st: measure(st) > 1 and st[-1:] in ("s", "t")) if s == "ion" else _m_gt1) for s in _STEP4
    ]
    return apply_rules(word, rules)


def _step5(word: str) -> str:
    if word.endswith("e"):
        stem = word[:-1]
        m = measure(stem)
        if m > 1 or (m == 1 and not _ends_cvc(stem)):
            word = stem
    return apply_rules(word, [("ll", "l", lambda s: measure(word[:-1]) > 1)])


def porter_stem(word: str) -> str:
    """The stem of `word` (lowercased), as NLTK's default PorterStemmer gives it.

    >>> [porter_stem(w) for w in ["caresses", "ponies", "relational", "hopping", "generalizations", "dying"]]
    ['caress', 'poni', 'relat', 'hop', 'gener', 'die']
    """
    stem = word.lower()
    if stem in _IRREGULAR:
        return _IRREGULAR[stem]
    if len(word) <= 2:
        return stem
    for step in (_step1a, _step1b, _step1c, _step2, _step3, _step4, _step5):
        stem = step(stem)
    return stem
