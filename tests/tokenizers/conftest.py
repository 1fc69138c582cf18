"""Small corpora shared by the tokenizer tests: Chinese news, English prose, code, emoji."""

from __future__ import annotations

import pytest

CODE = '''def fib(n: int) -> int:
    """Return the n-th Fibonacci number."""
    a, b = 0, 1
    for _ in range(n):
        a, b = b, a + b  # tuple swap
    return a

if __name__ == "__main__":
\tprint({"x": [1, 2, 3], 'y': None}, fib(30) ** 2 != 0x1F)
'''

# Texts every tokenizer is checked on (ids against Hugging Face, round trips).
SAMPLES = {
    "chinese": "迈向充满希望的新世纪——一九九八年新年讲话。中国人民将满怀信心地迎接新的挑战！",
    "english": "The quick brown fox doesn't jump over the lazy dog; it's 12345 times lazier.",
    "code": CODE,
    "emoji": "Robots 🤖 love tea 🍵, flags 🇨🇳 and families 👨‍👩‍👧!",
    "whitespace": "  two  spaces,\ttab,\n\nnewlines\r\n and trailing   ",
    "korean": "안녕하세요 세계",
    "mixed": "GPT-4 在2024年发布了新版本, with 128k context 和 更低的价格。",
    "one_char": "中",
    "empty": "",
}


def english_text(n_chars: int = 40_000) -> list[str]:
    """English prose lines from Python's own reference documentation (shipped with the stdlib)."""
    from pydoc_data.topics import topics

    text = "\n".join(topics[k] for k in sorted(topics))[:n_chars]
    return [line for line in text.splitlines() if line.strip()]


@pytest.fixture(scope="session")
def corpus() -> list[str]:
    from llmlab.data.corpora import pfr1998_text

    return pfr1998_text("train")[:400] + english_text() + CODE.splitlines()


@pytest.fixture(scope="session")
def samples() -> dict[str, str]:
    return dict(SAMPLES)
