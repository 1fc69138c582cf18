"""Personal data in text: find it, scrub it before training. No torch.

A pattern only proposes a candidate; numbers are then validated, and only valid ones are matches:

- ``EMAIL``: ASCII ``local@domain.tld`` with a letters-only top-level domain of 2-63 letters.
- ``ID_CN``: an 18-character PRC resident identity number: 17 digits and a check digit (0-9 or X)
  that satisfies ISO 7064 MOD 11-2, with a real birth date (digits 7-14, YYYYMMDD) between
  1900-01-01 and today. The old 15-digit form has no check digit and is not looked for.
- ``CARD``: a payment card number: 13-19 digits, written solid or in groups of 4 (4-6-5 and 4-6-4
  for American Express and Diners) joined by one space or dash throughout; it must pass the Luhn
  check and begin with 2-6 (the payment-card industry identifiers, ISO/IEC 7812).
- ``IP``: an IPv4 address (four decimal octets 0-255, no leading zeros), not part of a longer dotted
  number such as the version 1.2.3.4.5 and not glued to letters (v1.2.3.4); or an IPv6 address that
  Python's `ipaddress` accepts, with at least two groups and a digit.
- ``PHONE``: a Chinese mobile number 1[3-9]x xxxx xxxx (separators space or dash optional, prefix
  +86 or 0086 optional); an international number: + country code and 8-15 digits in all; a North
  American number (xxx) xxx-xxxx, xxx-xxx-xxxx or xxx.xxx.xxxx, area code and exchange 2-9xx.

No number is found inside a longer run of digits (a run of digit groups may hold several numbers).
Identity, card and Chinese mobile numbers may be written in any Unicode decimal digits (full-width
１３８１２３４５６７８ in Chinese text is a phone number too).

Where matches overlap, the kind first in `KINDS` wins: EMAIL, ID_CN, CARD, IP, PHONE (an email holds
digits, and an identity number can pass the Luhn check; both are stricter tests than a phone
pattern); among one kind the earlier, then the longer match wins.
"""

from __future__ import annotations

import bisect
import datetime
import ipaddress
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from llmlab.core.errors import InputError

KINDS = ("EMAIL", "ID_CN", "CARD", "IP", "PHONE")  # also the priority order for overlaps


@dataclass(frozen=True)
class PiiMatch:
    kind: str  # one of KINDS
    start: int  # text[start:end] is the match
    end: int
    text: str


# ----------------------------------------------------------------------------- validators

_ID_WEIGHTS = [pow(2, 17 - i, 11) for i in range(17)]  # ISO 7064 MOD 11-2 weights, 7 9 10 5 ...


def cn_id_valid(number: str) -> bool:
    """True for an 18-character PRC resident identity number with the right ISO 7064 MOD 11-2 check
    digit and a real birth date from 1900-01-01 to today (the region code is not checked).

    >>> cn_id_valid("11010519491231002X"), cn_id_valid("110105194912310021")
    (True, False)
    """
    if len(number) != 18 or not number[:17].isdecimal() or not (number[17].isdecimal() or number[17] in "Xx"):
        return False
    total = sum(w * int(d) for w, d in zip(_ID_WEIGHTS, number))
    if (12 - total % 11) % 11 != (10 if number[17] in "Xx" else int(number[17])):
        return False
    try:
        born = datetime.date(int(number[6:10]), int(number[10:12]), int(number[12:14]))
    except ValueError:
        return False
    return datetime.date(1900, 1, 1) <= born <= datetime.date.today()


def luhn_valid(digits: str) -> bool:
    """True when the decimal digits pass the Luhn check (double every second digit from the right).

    >>> luhn_valid("4111111111111111"), luhn_valid("4111111111111112")
    (True, False)
    """
    if not digits or not digits.isdecimal():
        return False
    total = 0
    for i, d in enumerate(int(c) for c in reversed(digits)):
        total += d if i % 2 == 0 else (2 * d if d < 5 else 2 * d - 9)
    return total % 10 == 0


def _digits(s: str) -> str:
    return "".join(c for c in s if c.isdecimal())


def _card_ok(s: str) -> bool:
    d = _digits(s)
    return 13 <= len(d) <= 19 and 2 <= int(d[0]) <= 6 and luhn_valid(d)


def _ipv6_ok(s: str) -> bool:
    try:
        ipaddress.IPv6Address(s)
    except ValueError:
        return False
    return sum(1 for g in s.split(":") if g) >= 2 and any(c.isdigit() for c in s)


def _cn_mobile_ok(s: str) -> bool:
    d = _digits(s)[-11:]
    return int(d[0]) == 1 and int(d[1]) >= 3


def _international_ok(s: str) -> bool:
    return 8 <= len(_digits(s)) <= 15


# ----------------------------------------------------------------------------- patterns

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_A, _Z = r"(?<!\d)", r"(?!\d)"  # not inside a longer run of digits
_CN_PREFIX = rf"(?:(?:\(\+86\)|\+86|\(0086\)|{_A}0086)[ -]?|{_A})"  # +86, 0086, maybe in brackets, or none
_PATTERNS: dict[str, list[tuple[re.Pattern, Callable[[str], bool] | None]]] = {
    "EMAIL": [
        (
            re.compile(
                r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9_%+-]+(?:\.[A-Za-z0-9_%+-]+)*@"
                r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}(?![A-Za-z0-9-]|\.[A-Za-z0-9])"
            ),
            None,
        )
    ],
    "ID_CN": [(re.compile(r"(?<!\d)\d{17}[\dXx](?![\dXx])"), cn_id_valid)],
    "CARD": [
        (re.compile(rf"{_A}\d{{13,19}}{_Z}"), _card_ok),
        (re.compile(rf"{_A}\d{{4}}([ -])\d{{4}}\1\d{{4}}\1\d{{1,4}}(?:\1\d{{1,3}})?{_Z}"), _card_ok),
        (re.compile(rf"{_A}\d{{4}}([ -])\d{{6}}\1\d{{4,5}}{_Z}"), _card_ok),
    ],
    "IP": [
        (re.compile(rf"(?<![A-Za-z0-9_])(?<![0-9]\.)(?:{_OCTET}\.){{3}}{_OCTET}(?![0-9])(?!\.[0-9])"), None),
        (re.compile(r"(?<![0-9A-Za-z_:.])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![0-9A-Za-z_:])"), _ipv6_ok),
    ],
    "PHONE": [
        (re.compile(rf"{_CN_PREFIX}\d{{3}}([ -]?)\d{{4}}\1\d{{4}}{_Z}"), _cn_mobile_ok),
        (re.compile(rf"(?<![A-Za-z_+)])\+[1-9](?:[ -]?\d){{6,14}}{_Z}"), _international_ok),
        (re.compile(rf"(?:\([2-9]\d{{2}}\) ?|{_A}[2-9]\d{{2}}([-.]))[2-9]\d{{2}}(?(1)\1|-)\d{{4}}{_Z}"), None),
    ],
}


# ----------------------------------------------------------------------------- finding and scrubbing


def check_kinds(kinds: str | Iterable[str]) -> set[str]:
    """The set of `kinds` asked for (one name or several); InputError naming any that is not in KINDS."""
    wanted = {kinds} if isinstance(kinds, str) else set(kinds)
    unknown = sorted(wanted - set(KINDS))
    if unknown:
        raise InputError(f"unknown PII kind(s) {unknown}; kinds are {list(KINDS)}")
    return wanted


def find_pii(text: str, kinds: str | Iterable[str] = KINDS) -> list[PiiMatch]:
    """The personal data of the given `kinds` in `text`, in order, never overlapping (see the module
    docstring for each kind and the priority between kinds).

    >>> [(m.kind, m.text) for m in find_pii("邮箱 li.lei@example.com，电话 +86 138-1234-5678")]
    [('EMAIL', 'li.lei@example.com'), ('PHONE', '+86 138-1234-5678')]
    >>> find_pii("version 1.2.3.4.5, card 4111 1111 1111 1112, id 110105194912310021")
    []
    """
    wanted = check_kinds(kinds)
    candidates = []
    for rank, kind in enumerate(KINDS):
        if kind not in wanted:
            continue
        for pattern, valid in _PATTERNS[kind]:
            for m in pattern.finditer(text):
                if valid is None or valid(m.group()):
                    candidates.append((rank, m.start(), -m.end(), kind))
    starts: list[int] = []  # of the accepted matches, sorted; they never overlap, so ends sort alike
    ends: list[int] = []
    found = []
    for _, start, neg_end, kind in sorted(candidates):
        end = -neg_end
        i = bisect.bisect_right(starts, start)
        if (i > 0 and ends[i - 1] > start) or (i < len(starts) and starts[i] < end):
            continue
        starts.insert(i, start)
        ends.insert(i, end)
        found.append(PiiMatch(kind, start, end, text[start:end]))
    return sorted(found, key=lambda m: m.start)


def scrub_pii(text: str, kinds: str | Iterable[str] = KINDS, template: str = "<{kind}>") -> tuple[str, Counter]:
    """`text` with every match of `find_pii` replaced by `template` (``{kind}`` is the kind), and how
    many matches of each kind there were. Nothing outside the matches changes.

    >>> scrub_pii("mail a@b.org or b@c.org, call 13812345678")
    ('mail <EMAIL> or <EMAIL>, call <PHONE>', Counter({'EMAIL': 2, 'PHONE': 1}))
    """
    try:
        replacement = {kind: template.format(kind=kind) for kind in KINDS}
    except (KeyError, IndexError, ValueError) as e:
        raise InputError(f"template {template!r} must be a format string using only {{kind}}: {e}") from None
    pieces, counts, at = [], Counter(), 0
    for m in find_pii(text, kinds):
        pieces += [text[at : m.start], replacement[m.kind]]
        counts[m.kind] += 1
        at = m.end
    pieces.append(text[at:])
    return "".join(pieces), counts
