"""CoNLL-U reading and writing: the Universal Dependencies file format for dependency trees.

A sentence is a block of lines ended by a blank line. Lines starting with ``#`` are comments (``# text =
...``, ``# sent_id = ...``): they are kept with the sentence, in order, and written back. Every other line
has ten tab-separated fields: ID, FORM, LEMMA, UPOS, XPOS, FEATS, HEAD, DEPREL, DEPS, MISC (``_`` for an
empty one). Word lines have an integer ID 1, 2, ... in order; HEAD is the ID of the word's head, 0 for
the root.

Two kinds of line are not syntactic words, and the parsers never see them: multiword-token ranges
(ID ``3-4``: the surface token that words 3 and 4 come from, such as Spanish "del" = "de" + "el") and
empty nodes (ID ``5.1``: enhanced-dependency nodes). The reader keeps them aside, verbatim, with the
position of the word they come before (`DepSentence.extra`), and the writer puts them back there: a
file read and written again is unchanged, yet `DepSentence.tokens` holds the words alone.

A sentence read with heads must be a tree: every HEAD an ID of the sentence or 0, no cycle, exactly one
word attached to 0 (as UD requires, and as the decoders of `llmlab.text.dep_decode` produce). A
sentence with every HEAD ``_`` is unparsed input (for `llmlab parse parse`); a mix of the two is an
error. Every error names the file and line.

>>> rows = ["1\\t他\\t_\\tPRON\\tr\\t_\\t2\\tnsubj\\t_\\t_", "2\\t来\\t_\\tVERB\\tv\\t_\\t0\\troot\\t_\\t_"]
>>> s = parse_conllu("# text = 他来\\n" + "\\n".join(rows) + "\\n")
>>> s[0].words, s[0].heads, s[0].rels, s[0].comments
(['他', '来'], [2, 0], ['nsubj', 'root'], ['# text = 他来'])
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from llmlab.core.errors import InputError
from llmlab.core.io import atomic_write_text, read_text, split_lines

FIELDS = ("id", "form", "lemma", "upos", "xpos", "feats", "head", "deprel", "deps", "misc")


@dataclass(frozen=True)
class Token:
    """One syntactic word: the ten CoNLL-U fields, ``_`` for empty ones; `head` None when unparsed."""

    id: int  # 1-based position in the sentence
    form: str  # the word
    lemma: str = "_"
    upos: str = "_"  # universal POS tag
    xpos: str = "_"  # language-specific POS tag (the PKU tag in llmlab's treebank)
    feats: str = "_"
    head: int | None = None  # ID of the head word, 0 for the root, None when not parsed
    deprel: str = "_"  # relation to the head
    deps: str = "_"
    misc: str = "_"


@dataclass
class DepSentence:
    """A sentence's words, its comment lines and its non-word lines (kept for writing back)."""

    tokens: list[Token]
    comments: list[str] = field(default_factory=list)  # whole lines, "#" included
    extra: list[tuple[int, str]] = field(default_factory=list)  # (index of the word it precedes, raw line)

    @property
    def words(self) -> list[str]:
        return [t.form for t in self.tokens]

    @property
    def heads(self) -> list[int | None]:
        return [t.head for t in self.tokens]

    @property
    def rels(self) -> list[str]:
        return [t.deprel for t in self.tokens]

    def tags(self, column: str) -> list[str]:
        """The "upos" or "xpos" column."""
        return [getattr(t, column) for t in self.tokens]

    @property
    def parsed(self) -> bool:
        return bool(self.tokens) and self.tokens[0].head is not None

    def with_arcs(self, heads: Iterable[int], rels: Iterable[str]) -> DepSentence:
        """A copy with these heads and relations. The enhanced graph goes: DEPS becomes ``_`` and the
        empty nodes (ID ``5.1``, nodes of that graph alone) are dropped, since arcs of the old tree
        there would contradict the new one; multiword-token lines stay.

        >>> s = parse_conllu("1\\t他\\t_\\t_\\t_\\t_\\t2\\tnsubj\\t2:nsubj\\t_\\n"
        ...                  "1.1\\t说\\t_\\t_\\t_\\t_\\t_\\t_\\t0:root\\t_\\n"
        ...                  "2\\t来\\t_\\t_\\t_\\t_\\t0\\troot\\t0:root\\t_\\n")[0]
        >>> t = s.with_arcs([0, 1], ["root", "dep"])
        >>> [w.deps for w in t.tokens], t.extra
        (['_', '_'], [])
        """
        toks = [replace(t, head=int(h), deprel=r, deps="_") for t, h, r in zip(self.tokens, heads, rels)]
        kept = [(i, line) for i, line in self.extra if "." not in line.split("\t", 1)[0]]  # multiword tokens
        return DepSentence(toks, list(self.comments), kept)


def tree_error(heads: list[int]) -> str | None:
    """Why `heads` (1-based, 0 = root) is not a single-rooted tree, or None.

    >>> tree_error([2, 0]), tree_error([2, 1]), tree_error([0, 0]), tree_error([3, 0])
    (None, 'no word is attached to the root (0)', 'words 1, 2 are all attached to the root (0); a tree has one', \
'word 1 has head 3, beyond the 2 words')
    """
    n = len(heads)
    for i, h in enumerate(heads, 1):
        if not 0 <= h <= n:
            return f"word {i} has head {h}, beyond the {n} words"
        if h == i:
            return f"word {i} is its own head"
    roots = [i for i, h in enumerate(heads, 1) if h == 0]
    if not roots:
        return "no word is attached to the root (0)"
    if len(roots) > 1:
        return f"words {', '.join(map(str, roots))} are all attached to the root (0); a tree has one"
    for i in range(1, n + 1):  # follow heads up: a walk longer than n words is a cycle
        seen, j = 0, i
        while j != 0 and seen <= n:
            j, seen = heads[j - 1], seen + 1
        if j != 0:
            return f"word {i} is on a cycle (its heads never reach the root)"
    return None


def _token(cols: list[str], expected: int, where: str) -> Token:
    if len(cols) != 10:
        raise InputError(f"{where}: {len(cols)} tab-separated fields, a CoNLL-U line has 10")
    if cols[0] != str(expected):
        raise InputError(f"{where}: word ID {cols[0]!r}, expected {expected} (IDs count 1, 2, ... in order)")
    if not cols[1]:
        raise InputError(f"{where}: empty FORM")
    head: int | None = None
    if cols[6] != "_":
        if not (cols[6].isascii() and cols[6].isdigit()):
            raise InputError(f"{where}: HEAD {cols[6]!r} is not a word ID, 0 or _")
        head = int(cols[6])
    return Token(expected, cols[1], cols[2], cols[3], cols[4], cols[5], head, cols[7], cols[8], cols[9])


def _finish(block: list[tuple[int, str]], what: str) -> DepSentence:
    tokens, comments, extra = [], [], []
    for lineno, line in block:
        where = f"{what} line {lineno}"
        if line.startswith("#"):
            if tokens or extra:
                raise InputError(f"{where}: comment after the words began (comments come first)")
            comments.append(line)
            continue
        cols = line.split("\t")
        if "-" in cols[0] or "." in cols[0]:  # multiword token range or empty node: kept aside, verbatim
            extra.append((len(tokens), line))
            continue
        tokens.append(_token(cols, len(tokens) + 1, where))
    first = block[0][0]
    if not tokens:
        raise InputError(f"{what} line {first}: a sentence without words")
    heads = [t.head for t in tokens]
    if any(h is None for h in heads):
        if any(h is not None for h in heads):
            raise InputError(f"{what} sentence at line {first}: some words have a HEAD and some '_' (all or none)")
    else:
        why = tree_error(heads)  # type: ignore[arg-type]
        if why:
            raise InputError(f"{what} sentence at line {first}: not a tree: {why}")
    return DepSentence(tokens, comments, extra)


def parse_conllu(text: str, what: str = "CoNLL-U input") -> list[DepSentence]:
    """The sentences of a CoNLL-U document (see the module docstring for the rules)."""
    out, block = [], []
    for lineno, line in enumerate(split_lines(text), 1):
        if line.strip():
            block.append((lineno, line))
        elif block:
            out.append(_finish(block, what))
            block = []
    if block:  # a last sentence without its blank line
        out.append(_finish(block, what))
    return out


def read_conllu(path: str | os.PathLike, what: str = "CoNLL-U file") -> list[DepSentence]:
    sents = parse_conllu(read_text(path, what), f"{what} {str(path)!r}")
    if not sents:
        raise InputError(f"{what} {str(path)!r} holds no sentences")
    return sents


def format_conllu(sentences: Iterable[DepSentence]) -> str:
    """CoNLL-U text: comments, then word lines (non-word lines back in their places), a blank line after each.

    >>> format_conllu([DepSentence([Token(1, "好", head=0, deprel="root")], ["# text = 好"])]).split("\\n")
    ['# text = 好', '1\\t好\\t_\\t_\\t_\\t_\\t0\\troot\\t_\\t_', '', '']
    """
    lines = []
    for s in sentences:
        lines += s.comments
        extra = sorted(s.extra, key=lambda e: e[0])
        k = 0
        for i, t in enumerate(s.tokens):
            while k < len(extra) and extra[k][0] <= i:
                lines.append(extra[k][1])
                k += 1
            head = "_" if t.head is None else str(t.head)
            lines.append("\t".join([str(t.id), t.form, t.lemma, t.upos, t.xpos, t.feats, head, t.deprel, t.deps,
                                    t.misc]))
        lines += [line for _, line in extra[k:]]
        lines.append("")
    return "".join(line + "\n" for line in lines)


def write_conllu(path: str | os.PathLike, sentences: Iterable[DepSentence]) -> None:
    """`format_conllu` written atomically."""
    atomic_write_text(path, format_conllu(sentences))


def from_words(words: list[str], tags: list[str] | None = None, column: str = "upos") -> DepSentence:
    """An unparsed sentence of these words, the tags (if any) in `column` ("upos" or "xpos")."""
    toks = []
    for i, w in enumerate(words, 1):
        if not w or any(c in w for c in "\t\n\r"):
            raise InputError(f"word {i} ({w!r}) is empty or holds a tab or line break, which CoNLL-U cannot hold")
        tag = {column: tags[i - 1]} if tags else {}
        toks.append(Token(i, w, **tag))
    return DepSentence(toks)


def joined_text(words: list[str]) -> str:
    """A sentence's text when only its words are known (segmented Chinese loses where the spaces were): the
    words joined without spaces, except one space where joining would run two words into one unit
    (`llmlab.text.base.unit_spans`: letters and digits of any width or script written with spaces, a
    decimal, a grapheme cluster), which no segmenter may cut.

    >>> joined_text(["我", "用", "Python", "3", "写", "。"]), joined_text(["New", "York", "的"])
    ('我用Python 3写。', 'New York的')
    >>> joined_text(["直径", "１０", "ｎｍ", "。"]), joined_text(["3", ".5", "倍"])
    ('直径１０ ｎｍ。', '3 .5倍')
    """
    from llmlab.text.base import unit_spans

    out = words[:1]
    for prev, w in zip(words, words[1:]):
        cut = len(prev)
        out += [" ", w] if any(a < cut < b for a, b in unit_spans(prev + w)) else [w]
    return "".join(out)


def space_after(words: list[str], text: str) -> list[bool] | None:
    """For each word, whether `text` has whitespace after it (False for the last word), when `text` is the
    words in order with only whitespace around them; None when it is not.

    >>> space_after(["他", "来", "了"], " 他来 了 "), space_after(["a", "b"], "ab c")
    ([False, True, False], None)
    """
    pos, out = 0, []
    for w in words:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        if not text.startswith(w, pos):
            return None
        pos += len(w)
        out.append(pos < len(text) and text[pos].isspace())
    if text[pos:].strip():
        return None
    return out[:-1] + [False] if out else out


def _misc_space_after(misc: str, space: bool) -> str:
    """MISC with SpaceAfter=No present exactly when there is no space.

    >>> _misc_space_after("_", False), _misc_space_after("SpaceAfter=No|Gloss=x", True)
    ('SpaceAfter=No', 'Gloss=x')
    """
    items = [m for m in misc.split("|") if m not in ("_", "") and not m.startswith("SpaceAfter=")]
    items = items if space else ["SpaceAfter=No", *items]
    return "|".join(items) or "_"


def text_of(s: DepSentence) -> str | None:
    """The sentence's ``# text = ...`` comment's text, or None."""
    return next((c.split("=", 1)[1].strip() for c in s.comments if c.split("=", 1)[0].strip() == "# text"), None)


def with_text(s: DepSentence, text: str | None = None) -> DepSentence:
    """A copy with a ``# text = ...`` comment and SpaceAfter=No on the words it has no space after, so the
    text equals the words joined per SpaceAfter (UD's rule). The text is the sentence's own comment's if it
    has one, else `text`, else the words joined per their SpaceAfter. A sentence with multiword tokens, or
    whose text does not hold its words, keeps its MISC as it is.

    >>> t = with_text(from_words(["他", "来", "了"]), "他来 了")
    >>> t.comments, [w.misc for w in t.tokens]
    (['# text = 他来 了'], ['SpaceAfter=No', '_', '_'])
    """
    own = text_of(s)
    comments = list(s.comments)
    ranges = any("-" in line.split("\t", 1)[0] for _, line in s.extra)  # multiword tokens (empty nodes are not)
    if own is None:
        if text is None and ranges:  # the surface text is the multiword tokens', which this does not rebuild
            return DepSentence(list(s.tokens), comments, list(s.extra))
        if text is None:
            text = "".join(t.form + ("" if "SpaceAfter=No" in t.misc.split("|") else " ") for t in s.tokens)
        own = " ".join(text.split())  # one line: a comment cannot hold a line break
        comments.append(f"# text = {own}")
    spaces = space_after(s.words, own)
    tokens = list(s.tokens) if spaces is None or ranges else [
        replace(t, misc=_misc_space_after(t.misc, sp)) if i < len(s.tokens) - 1 else t
        for i, (t, sp) in enumerate(zip(s.tokens, spaces))]
    return DepSentence(tokens, comments, list(s.extra))
