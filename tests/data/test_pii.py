"""PII detection and scrubbing; identity and card checks against python-stdnum."""

import datetime
import ipaddress
import random
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from stdnum import luhn
from stdnum.cn import ric
from stdnum.exceptions import ValidationError

from llmlab.core.errors import InputError
from llmlab.data.corpora import pfr1998_text
from llmlab.data.pii import KINDS, PiiMatch, cn_id_valid, find_pii, luhn_valid, scrub_pii

REGIONS = ["110101", "110105", "310104", "360426", "440305", "510104", "650102", "330106"]


def kinds_and_texts(text, kinds=KINDS):
    return [(m.kind, m.text) for m in find_pii(text, kinds)]


# ----------------------------------------------------------------------------- validators against stdnum


def make_id(rng: random.Random) -> str:
    while True:
        born = datetime.date(1920, 1, 1) + datetime.timedelta(days=rng.randrange(35000))
        body = rng.choice(REGIONS) + born.strftime("%Y%m%d") + f"{rng.randrange(1000):03d}"
        number = body + ric.calc_check_digit(body + "0")
        if ric.is_valid(number):  # the region existed that year
            return number


def reference_id(number: str) -> bool:
    """stdnum's checksum and birth date, plus our plausibility window (stdnum also checks the region)."""
    if len(number) != 18 or not number[:17].isdigit() or ric.calc_check_digit(number) != number[-1].upper():
        return False
    try:
        born = ric.get_birth_date(number)
    except ValidationError:
        return False
    return datetime.date(1900, 1, 1) <= born <= datetime.date.today()


@pytest.mark.parametrize("seed", range(5))
def test_cn_id_valid_against_stdnum(seed):
    rng = random.Random(seed)
    for _ in range(200):
        number = make_id(rng)
        assert cn_id_valid(number) and ric.is_valid(number)
        if number.endswith("X"):
            assert cn_id_valid(number[:-1] + "x") and ric.is_valid(number[:-1] + "x")
        # any single substitution breaks ISO 7064 MOD 11-2
        i = rng.randrange(18)
        wrong = rng.choice(("0123456789X" if i == 17 else "0123456789").replace(number[i], ""))
        bad = number[:i] + wrong + number[i + 1 :]
        assert not cn_id_valid(bad) and not ric.is_valid(bad)
        # adjacent swaps, and random numbers with or without a right check digit
        j = rng.randrange(17)
        swapped = number[:j] + number[j + 1] + number[j] + number[j + 2 :]
        noise = "".join(rng.choice("0123456789") for _ in range(17))
        for candidate in (swapped, noise + rng.choice("0123456789X"), noise + ric.calc_check_digit(noise + "0")):
            assert cn_id_valid(candidate) == reference_id(candidate), candidate


def test_cn_id_birth_dates():
    def with_date(date: str) -> str:
        body = "110101" + date + "123"
        return body + ric.calc_check_digit(body + "0")

    assert cn_id_valid(with_date("19000101")) and cn_id_valid(with_date("20000229"))
    assert not cn_id_valid(with_date("18991231"))  # before 1900
    assert not cn_id_valid(with_date("19990229"))  # no such day
    assert not cn_id_valid(with_date("19801301"))
    assert not cn_id_valid(with_date((datetime.date.today() + datetime.timedelta(days=1)).strftime("%Y%m%d")))
    assert not cn_id_valid("11010519491231002") and not cn_id_valid("11010519491231002XX")
    assert not cn_id_valid("1101051949123100X2")


@pytest.mark.parametrize("seed", range(5))
def test_luhn_valid_against_stdnum(seed):
    rng = random.Random(seed)
    for _ in range(500):
        body = "".join(rng.choice("0123456789") for _ in range(rng.randint(0, 24)))
        good = body + luhn.calc_check_digit(body) if body else "0"
        assert luhn_valid(good) and luhn.is_valid(good)
        i = rng.randrange(len(good))
        bad = good[:i] + str((int(good[i]) + rng.randint(1, 9)) % 10) + good[i + 1 :]
        assert not luhn_valid(bad) and not luhn.is_valid(bad)
        noise = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 20)))
        assert luhn_valid(noise) == luhn.is_valid(noise)
    assert not luhn_valid("") and not luhn_valid("4111 1111 1111 1111")


# ----------------------------------------------------------------------------- ID_CN and CARD in text


def make_card(rng: random.Random, length: int = 16) -> str:
    body = rng.choice(["4", "51", "37", "62", "6011", "2221"])
    body += "".join(rng.choice("0123456789") for _ in range(length - 1 - len(body)))
    return body + luhn.calc_check_digit(body)


def grouped(number: str, sep: str) -> str:
    return sep.join(number[i : i + 4] for i in range(0, len(number), 4))


@pytest.mark.parametrize("seed", range(3))
def test_ids_and_cards_in_text(seed):
    rng = random.Random(seed)
    for _ in range(100):
        number = make_id(rng)
        assert kinds_and_texts(f"身份证号{number}，") == [("ID_CN", number)]
        bad = number[:-1] + ("0" if number[-1] != "0" else "1")
        assert kinds_and_texts(f"身份证号{bad}，", ["ID_CN"]) == []
        card = make_card(rng, rng.randint(13, 19))
        for shown in {card, grouped(card, " "), grouped(card, "-")}:
            assert kinds_and_texts(f"卡号:{shown}.") == [("CARD", shown)]
        wrong = card[:-1] + str((int(card[-1]) + 1) % 10)
        assert kinds_and_texts(f"card {wrong} or {grouped(wrong, ' ')}") == []
        assert kinds_and_texts(f"run 9{card}1") == []  # inside a longer digit run


def test_card_forms():
    amex = "378282246310005"
    assert kinds_and_texts(f"amex {amex[:4]} {amex[4:10]} {amex[10:]}") == [("CARD", "3782 822463 10005")]
    assert kinds_and_texts("two 4111111111111111 5500000000000004") == [
        ("CARD", "4111111111111111"),
        ("CARD", "5500000000000004"),
    ]
    assert kinds_and_texts("mixed 4111 1111-1111 1111") == []  # one separator throughout
    assert kinds_and_texts("zeros 0000000000000000, eights 8888888888888888") == []  # not a card industry
    assert kinds_and_texts("全角４１１１１１１１１１１１１１１１") == [("CARD", "４１１１１１１１１１１１１１１１")]


def test_id_that_passes_luhn_is_an_id():
    rng = random.Random(0)
    both = next(n for n in iter(lambda: make_id(rng), None) if luhn.is_valid(n) and n[0] in "23456")
    assert kinds_and_texts(both) == [("ID_CN", both)]
    assert kinds_and_texts(both, ["CARD"]) == [("CARD", both)]


# ----------------------------------------------------------------------------- EMAIL, PHONE, IP


@pytest.mark.parametrize(
    "text, expected",
    [
        ("write to a@b.co", ["a@b.co"]),
        ("first.last+tag@mail.example.com.", ["first.last+tag@mail.example.com"]),
        ("邮箱li_lei-2@163.com，谢谢", ["li_lei-2@163.com"]),
        ("<x%y@a-b.cn>", ["x%y@a-b.cn"]),
        ("13812345678@qq.com", ["13812345678@qq.com"]),  # an email, not a phone
        ("name@company", []),
        ("a@b.c", []),
        ("@handle and user@@example.com", []),
        ("a..b@example.com", []),
        ("x@-bad.com", []),
        ("user@example.com1", []),
    ],
)
def test_emails(text, expected):
    assert [t for _, t in kinds_and_texts(text)] == expected
    assert all(k == "EMAIL" for k, _ in kinds_and_texts(text))


PHONES = [
    "13812345678",
    "199 1234 5678",
    "138-1234-5678",
    "+86 138 1234 5678",
    "+86-13812345678",
    "0086 13812345678",
    "(+86)13812345678",
    "+8613812345678",
    "１３８１２３４５６７８",
    "+1 212 555 1234",
    "+44 20 7946 0958",
    "+33 1 23 45 67 89",
    "(212) 555-1234",
    "212-555-1234",
    "212.555.1234",
]


@pytest.mark.parametrize("phone", PHONES)
def test_phones(phone):
    for text in (phone, f"电话{phone}。", f"call {phone}, thanks"):
        assert kinds_and_texts(text) == [("PHONE", phone)]


@pytest.mark.parametrize(
    "text",
    [
        "913812345678",  # a phone inside a longer digit run
        "138123456789",
        "order 2138123456780",
        "12812345678",  # 12x is no mobile prefix
        "1998-01-01",
        "1998/01/01 and 1998.01.01 and 19980101",
        "2023-10-05 14:30:00",
        "12:30:45 and 23:59",
        "1998年1月1日",
        "ISBN 978-7-111-12345-6",
        "x+12345678=y",
        "112-555-1234 and 212-155-1234",  # area code and exchange start with 2-9
        "212-555.1234",
        "3.1415926535",
        "19980101-01-001-001",
    ],
)
def test_not_phones_or_ips(text):
    assert kinds_and_texts(text) == []


def test_two_phones_side_by_side():
    assert kinds_and_texts("13812345678 13912345678") == [("PHONE", "13812345678"), ("PHONE", "13912345678")]


@pytest.mark.parametrize(
    "text, expected",
    [
        ("server 192.168.1.1", ["192.168.1.1"]),
        ("0.0.0.0 and 255.255.255.255.", ["0.0.0.0", "255.255.255.255"]),
        ("IP:10.0.0.1，", ["10.0.0.1"]),
        ("ipv6 fe80::1 and 2001:db8::8a2e:370:7334", ["fe80::1", "2001:db8::8a2e:370:7334"]),
        ("full 2001:0db8:0000:0000:0000:ff00:0042:8329", ["2001:0db8:0000:0000:0000:ff00:0042:8329"]),
        ("version 1.2.3.4.5", []),
        ("256.1.1.1 and 1.2.3.256", []),
        ("01.02.03.04", []),
        ("v1.2.3.4", []),
        ("std::vector and a::b and ::1", []),
        ("12:30:45", []),
    ],
)
def test_ips(text, expected):
    assert kinds_and_texts(text) == [("IP", e) for e in expected]


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(st.integers(0, 300), st.just("01"), st.just("00")), min_size=4, max_size=4))
def test_dotted_quads_match_ipaddress(parts):
    text = ".".join(map(str, parts))
    try:
        ipaddress.IPv4Address(text)
        valid = True
    except ValueError:
        valid = False
    assert kinds_and_texts(f"at {text} now", ["IP"]) == ([("IP", text)] if valid else [])


# ----------------------------------------------------------------------------- kinds, priority, errors


def test_kinds_select_and_priority():
    text = "mail 13812345678@qq.com or call 13812345678"
    assert kinds_and_texts(text) == [("EMAIL", "13812345678@qq.com"), ("PHONE", "13812345678")]
    assert kinds_and_texts(text, "PHONE") == [("PHONE", "13812345678"), ("PHONE", "13812345678")]
    assert kinds_and_texts(text, ["IP"]) == []
    m = find_pii("x 13812345678")[0]
    assert m == PiiMatch("PHONE", 2, 13, "13812345678")


def test_errors():
    with pytest.raises(InputError, match=r"unknown PII kind\(s\) \['NAME'\]"):
        find_pii("x", ["EMAIL", "NAME"])
    with pytest.raises(InputError, match="unknown PII kind"):
        find_pii("x", "email")
    for template in ("{name}", "{0}", "{kind"):
        with pytest.raises(InputError, match="must be a format string using only {kind}"):
            scrub_pii("x", template=template)


def test_pfr1998_has_no_ids_cards_emails_or_ips():
    found = [m for line in pfr1998_text("dev") for m in find_pii(line, ["ID_CN", "CARD", "EMAIL", "IP"])]
    print(found)
    assert found == []


# ----------------------------------------------------------------------------- scrubbing

PII_PIECES = [*PHONES, "a@b.co", "li.lei@163.com", "192.168.0.1", "fe80::1", "4111 1111 1111 1111"]
PII_PIECES += ["11010519491231002X", "5500-0000-0000-0004"]
FILLER = st.text(alphabet=st.sampled_from(list("ab 中文,.:@-+()\n0123456789")), max_size=12)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.one_of(FILLER, st.sampled_from(PII_PIECES)), max_size=8).map("".join))
def test_scrub_changes_nothing_outside_the_matches(text):
    matches = find_pii(text)
    assert all(text[m.start : m.end] == m.text and m.kind in KINDS for m in matches)
    assert all(a.end <= b.start for a, b in zip(matches, matches[1:]))
    outside = [text[a:b] for a, b in zip([0] + [m.end for m in matches], [m.start for m in matches] + [len(text)])]
    cut, counts = scrub_pii(text, template="")
    assert cut == "".join(outside)
    assert counts == Counter(m.kind for m in matches)
    marked, counts2 = scrub_pii(text, template="\x00{kind}\x00")
    assert counts2 == counts
    assert marked.split("\x00")[::2] == outside and marked.split("\x00")[1::2] == [m.kind for m in matches]


def test_scrub_example():
    text = "张三，身份证11010519491231002X，手机+86 138-1234-5678，邮箱zs@example.cn，卡4111-1111-1111-1111。"
    scrubbed, counts = scrub_pii(text)
    assert scrubbed == "张三，身份证<ID_CN>，手机<PHONE>，邮箱<EMAIL>，卡<CARD>。"
    assert counts == Counter({"ID_CN": 1, "PHONE": 1, "EMAIL": 1, "CARD": 1})
    assert scrub_pii(scrubbed) == (scrubbed, Counter())  # the placeholders hold no personal data
    assert scrub_pii(text, ["EMAIL"], "[{kind}]")[0] == text.replace("zs@example.cn", "[EMAIL]")
