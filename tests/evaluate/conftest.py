"""Sentence generators shared by the evaluate tests: noisy English, real Chinese, mixed Unicode."""

import random

import pytest

_WORDS_TEXT = ("the a cat dog sat mat running runs ran happily happiness organization organize generalizations "
         "caresses ponies ties feed agreed plastered motoring sing conflated troubled sized hopping tanned "
         "falling hissing fizzed failing filing happy sky relational conditional rational valenci digitizer "
         "radically differently analogously vietnamization predication operator feudalism decisiveness "
         "hopefulness callousness formality sensitivity sensibility triplicate formative formalize "
         "electrical hopeful goodness revival allowance inference airliner gyroscopic adjustable defensible "
         "irritant replacement adjustment dependent adoption homologous communism activate effective "
         "bowdlerize probate rate cease controlling roll dying lying news innings proceed exceed yes "
         "it's don't U.S. e-mail co-operate Mr. 3.14 1,000 2-3 42 x-1 O'Neil")
WORDS = _WORDS_TEXT.split()
PUNCT = list(".,;:!?-'\"()[]{}<>/&@#$%^*+=_~`|\\") + ["&quot;", "&amp;", "&lt;", "&gt;", "<skipped>", "...",
                                                      "«", "»", "—", "€", "£", "©", "，", "。", "、", "！"]


class Gen:
    def __init__(self, seed: int = 0):
        self.rng = random.Random(seed)
        self._zh = None

    def english(self, lo: int = 0, hi: int = 25) -> str:
        r = self.rng
        out = []
        for _ in range(r.randint(lo, hi)):
            x = r.random()
            if x < 0.75:
                w = r.choice(WORDS)
                out.append(w.capitalize() if r.random() < 0.15 else w)
            elif x < 0.9:
                out.append(r.choice(PUNCT))
            else:
                out.append(str(r.choice([r.randint(0, 99), r.random() * 100, -r.randint(1, 9999)])))
        sep = [" ", " ", " ", "", "  ", "\t"]
        return "".join(w + r.choice(sep) for w in out).rstrip(" ") if out else ""

    def zh_sentences(self) -> list[str]:
        if self._zh is None:
            from llmlab.data.corpora import pfr1998_text

            self._zh = [s for s in pfr1998_text("dev") if s.strip()][:3000]
        return self._zh

    def chinese(self) -> str:
        s = self.rng.choice(self.zh_sentences())
        if self.rng.random() < 0.5 and len(s) > 4:  # perturb: drop a span, swap in mixed text
            i = self.rng.randrange(len(s) - 2)
            s = s[:i] + self.rng.choice(["", "GPT-4模型", " 3.5% ", "中文", self.english(1, 3)]) + s[i + 2:]
        return s

    def unicode(self) -> str:
        alphabet = "abcXYZ 01.,-中文字ñé€«»!?\u3000\u2013\u2060\U00020001ẞ\t"
        return "".join(self.rng.choice(alphabet) for _ in range(self.rng.randint(0, 30)))

    def sentence(self) -> str:
        x = self.rng.random()
        return self.english() if x < 0.5 else self.chinese() if x < 0.85 else self.unicode()

    def noisy_copy(self, s: str) -> str:
        """A hypothesis made from a reference: drop, repeat and swap words so scores are spread out."""
        words = s.split(" ") if " " in s else list(s)
        out = []
        for w in words:
            x = self.rng.random()
            if x < 0.15:
                continue
            out.append(w)
            if x > 0.93:
                out.append(self.rng.choice(words))
        joiner = " " if " " in s else ""
        return joiner.join(out)


@pytest.fixture
def gen():
    return Gen(0)
