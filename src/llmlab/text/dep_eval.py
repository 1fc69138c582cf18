"""Dependency parsing scores: attachment accuracy of predicted trees against gold ones.

- UAS (unlabeled attachment score): the share of words whose predicted head is the gold head;
- LAS (labeled): head and relation label both right;
- label accuracy: the relation label right, whatever the head;
- root accuracy: the share of sentences whose predicted root word (the one attached to 0) is the gold one;
- complete match: the share of sentences with every scored word's head right (and, labeled, every label).

Punctuation: CoNLL-X scoring left punctuation out, since where a comma hangs is mostly convention; the
scores here come both ways. A word is punctuation when its gold UPOS is PUNCT or, where the gold file
has no UPOS ("_"), when every character of it is a Unicode punctuation character (category P*).
Without punctuation, a sentence of punctuation only counts for root accuracy but not for complete match.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence

from llmlab.core.errors import InputError
from llmlab.text.conllu import DepSentence, Token


def is_punct(token: Token) -> bool:
    """The punctuation rule of the module docstring.

    >>> is_punct(Token(1, "，", upos="PUNCT")), is_punct(Token(1, "……")), is_punct(Token(1, "好"))
    (True, True, False)
    """
    if token.upos != "_":
        return token.upos == "PUNCT"
    return all(unicodedata.category(c).startswith("P") for c in token.form)


def _check(gold: Sequence[DepSentence], pred: Sequence[DepSentence]) -> None:
    if len(gold) != len(pred):
        raise InputError(f"gold has {len(gold)} sentences but the prediction has {len(pred)}")
    for i, (g, p) in enumerate(zip(gold, pred), 1):
        if g.words != p.words:
            raise InputError(f"sentence {i}: the gold and predicted words differ ({' '.join(g.words)!r} vs "
                             f"{' '.join(p.words)!r}): both files must hold the same words")
        if not g.parsed or not p.parsed:
            raise InputError(f"sentence {i}: the {'gold' if not g.parsed else 'predicted'} sentence has no heads")


def attachment_scores(gold: Sequence[DepSentence], pred: Sequence[DepSentence], punct: bool = True) -> dict:
    """UAS, LAS, label accuracy, root accuracy, complete match (unlabeled and labeled), word and sentence
    counts; `punct` False leaves punctuation words out (see the module docstring).

    >>> g = DepSentence([Token(1, "他", head=2, deprel="nsubj"), Token(2, "来", head=0, deprel="root"),
    ...                  Token(3, "。", upos="PUNCT", head=2, deprel="punct")])
    >>> p = g.with_arcs([2, 0, 1], ["obj", "root", "punct"])
    >>> s = attachment_scores([g], [p]); s["uas"], s["las"], s["label_acc"], s["root_acc"], s["complete"]
    (0.6666666666666666, 0.3333333333333333, 0.6666666666666666, 1.0, 0.0)
    >>> attachment_scores([g], [p], punct=False)["uas"]
    1.0
    """
    _check(gold, pred)
    words = heads = labels = both = roots = complete = complete_l = scored_sents = 0
    for g, p in zip(gold, pred):
        keep = [punct or not is_punct(t) for t in g.tokens]
        ok_h = [a.head == b.head for a, b in zip(g.tokens, p.tokens)]
        ok_l = [a.deprel == b.deprel for a, b in zip(g.tokens, p.tokens)]
        n = sum(keep)
        words += n
        heads += sum(h for h, k in zip(ok_h, keep) if k)
        labels += sum(lab for lab, k in zip(ok_l, keep) if k)
        both += sum(h and lab for h, lab, k in zip(ok_h, ok_l, keep) if k)
        roots += g.heads.index(0) == p.heads.index(0)
        if n:
            scored_sents += 1
            complete += all(h for h, k in zip(ok_h, keep) if k)
            complete_l += all(h and lab for h, lab, k in zip(ok_h, ok_l, keep) if k)

    def ratio(a, b):
        return a / b if b else 0.0

    return {"uas": ratio(heads, words), "las": ratio(both, words), "label_acc": ratio(labels, words),
            "root_acc": ratio(roots, len(gold)), "complete": ratio(complete, scored_sents),
            "complete_labeled": ratio(complete_l, scored_sents), "words": words, "sentences": len(gold)}


def previous_word_baseline(sentences: Sequence[DepSentence], label: str = "dep") -> list[DepSentence]:
    """Each word headed by the word before it, the first by the root: the chain a parser must beat.

    >>> previous_word_baseline([DepSentence([Token(1, "a"), Token(2, "b")])])[0].heads
    [0, 1]
    """
    return [s.with_arcs(range(len(s.tokens)), [label] * len(s.tokens)) for s in sentences]
