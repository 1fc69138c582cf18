"""Retrieval-augmented generation (topic 3): answer from retrieved passages, then check the answer
against them.

A model that answers from its weights alone makes things up where it knows nothing; one that is shown
the relevant passages can copy from them, and whatever it did not copy can be measured. `answer`
retrieves the best passages (`BM25Index.search`), packs them numbered into a prompt that leaves room
for the answer in the model's context (`build_prompt`), generates, and scores how much of the answer
the passages support (`grounding`: the share of its character n-grams found in them, per sentence too).

>>> from llmlab.generate.retrieval import BM25Index
>>> index = BM25Index.build(["北京是中国的首都。", "上海是中国最大的城市。", "长城在北京以北。"])
>>> print(format_prompt("中国的首都是哪里？", index.search("中国的首都", k=2)))
参考资料：
[1] 北京是中国的首都。
[2] 上海是中国最大的城市。
问题：中国的首都是哪里？
回答：
>>> g = grounding("北京是中国的首都。巴黎很美。", index.search("中国的首都", k=2))  # 7 bigrams found, 3 not
>>> g.score, [(s.text, s.support) for s in g.sentences], g.is_grounded(0.5)
(0.7, [('北京是中国的首都。', 1.0), ('巴黎很美。', 0.0)], True)
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from llmlab.core.errors import InputError
from llmlab.generate.config import GenerationConfig
from llmlab.generate.passages import sentence_ends, unit_runs
from llmlab.generate.retrieval import BM25Index, Hit

log = logging.getLogger(__name__)

TEMPLATE = "参考资料：\n{passages}问题：{question}\n回答："  # passages, each "[n] text\n", then the question
PASSAGE = "[{n}] {text}\n"


@dataclass(frozen=True)
class Prompt:
    text: str  # the prompt as the model reads it
    hits: tuple[Hit, ...]  # the passages it holds, best first: hits[0] is [1]
    n_tokens: int  # its length in the tokenizer's tokens


def format_prompt(question: str, hits: Sequence[Hit], template: str = TEMPLATE) -> str:
    passages = "".join(PASSAGE.format(n=i, text=h.text) for i, h in enumerate(hits, 1))
    return template.format(passages=passages, question=question)


def build_prompt(question: str, hits: Sequence[Hit], tokenizer, budget: int, template: str = TEMPLATE) -> Prompt:
    """The question and as many of `hits` (best first) as fit in `budget` tokens of `tokenizer`.

    Passages go whole or not at all, and the lowest-ranked go first: a passage is in only if every
    better one is. The count is the whole prompt encoded (with BPE the pieces' counts need not add up).
    """
    hits = list(hits)
    while True:
        text = format_prompt(question, hits, template)
        n = len(tokenizer.encode(text))
        if n <= budget:
            return Prompt(text, tuple(hits), n)
        if not hits:
            raise InputError(f"the question alone makes a prompt of {n} tokens, over the budget of {budget} "
                             "(the model's context less room for the answer)")
        log.info("passage [%d] does not fit in %d prompt tokens: dropped", len(hits), budget)
        hits.pop()


def check_grounding(n: int = 2, threshold: float = 0.5) -> None:
    """Refuse an n-gram size or a grounding threshold that `grounding` and `Grounding.is_grounded` cannot
    use; a caller checks them before retrieving and generating (``llmlab rag ask``, before the model loads)."""
    if n < 1:
        raise InputError(f"n must be >= 1, got {n}")
    if not 0 <= threshold <= 1:
        raise InputError(f"grounding threshold must be in [0, 1], got {threshold}")


@dataclass(frozen=True)
class SentenceSupport:
    text: str  # one sentence of the answer
    support: float  # the share of its n-grams found in the passages
    n_grams: int  # how many n-grams it has


@dataclass(frozen=True)
class Grounding:
    score: float  # the share of the answer's n-grams found in the passages (0 for an answer without words)
    sentences: tuple[SentenceSupport, ...]  # per sentence, in order (sentences without words left out)
    n: int  # the n of the n-grams

    def is_grounded(self, threshold: float = 0.5) -> bool:
        """Whether at least `threshold` of the answer's n-grams come from the passages."""
        check_grounding(threshold=threshold)
        return self.score >= threshold

    def unsupported(self, threshold: float = 0.5) -> list[str]:
        """The sentences with less than `threshold` support: where to look for a made-up claim."""
        return [s.text for s in self.sentences if s.support < threshold]


def ngrams(runs: list[list[str]], n: int) -> list[tuple[str, ...]]:
    """The n-grams of each run of units; a run shorter than n counts as one gram of its own length.

    >>> ngrams([["a", "b", "c"], ["d"]], 2)
    [('a', 'b'), ('b', 'c'), ('d',)]
    """
    return [tuple(r[i: i + n]) for r in runs for i in range(max(len(r) - n + 1, 1))]


def grounding(answer: str, hits: Sequence[Hit | str], n: int = 2) -> Grounding:
    """How much of `answer` the passages (`hits`, or their texts) support: of each sentence's
    n-grams of units (a CJK character, or a lowercased word or number: `unit_runs`), the share that
    occur in some passage. Counting characters makes Chinese work without a segmenter; counting words
    elsewhere keeps English bigrams such as "th" from matching everything. The score weighs sentences
    by their number of n-grams, so appending an unsupported sentence can only lower it."""
    check_grounding(n)
    known: set[tuple[str, ...]] = set()
    for h in hits:
        runs = unit_runs(h if isinstance(h, str) else h.text)
        for m in range(1, n + 1):  # shorter grams too: an answer's short runs are checked at their length
            known.update(g for g in ngrams(runs, m) if len(g) == m)
    sentences, found, total = [], 0, 0
    for start, end in zip([0, *sentence_ends(answer)], [*sentence_ends(answer), len(answer)]):
        grams = ngrams(unit_runs(answer[start:end]), n)
        if grams:
            hit = sum(g in known for g in grams)
            sentences.append(SentenceSupport(answer[start:end].strip(), hit / len(grams), len(grams)))
            found, total = found + hit, total + len(grams)
    return Grounding(found / total if total else 0.0, tuple(sentences), n)


@dataclass(frozen=True)
class Answer:
    question: str
    text: str  # the model's answer
    citations: tuple[Hit, ...]  # the passages the prompt held, best first: [1] is citations[0]
    grounding: Grounding  # of the answer against those passages
    prompt: str  # what the model was given

    def to_dict(self, threshold: float = 0.5) -> dict:
        """Plain data for JSON, with ``grounded`` at `threshold`."""
        return {"question": self.question, "answer": self.text, "grounding": self.grounding.score,
                "grounded": self.grounding.is_grounded(threshold),
                "sentences": [asdict(s) for s in self.grounding.sentences],
                "citations": [{"n": i, **asdict(h)} for i, h in enumerate(self.citations, 1)], "prompt": self.prompt}


def answer(model, tokenizer, question: str, index: BM25Index, k: int = 5, gen_config: GenerationConfig | None = None,
           n: int = 2, template: str = TEMPLATE) -> Answer:
    """Retrieve `k` passages for `question`, prompt `model` (an llmlab CausalLM) with those that fit its
    context after ``gen_config.max_new_tokens``, generate, and ground the answer in the passages shown."""
    from llmlab.generate.autoregressive import generate
    from llmlab.models.scoring import text_start

    if not question.strip():  # nothing to retrieve for: the model would answer a bare template
        raise InputError("the question is empty: give the text to retrieve passages for and answer")
    cfg = gen_config or GenerationConfig()
    start = text_start(tokenizer)
    budget = model.config.max_seq_len - cfg.max_new_tokens - len(start)
    if budget < 1:
        raise InputError(f"max_new_tokens={cfg.max_new_tokens} fills the model's context of "
                         f"{model.config.max_seq_len} tokens: no room is left for a prompt (give --max-new-tokens "
                         f"at most a quarter of the context, {model.config.max_seq_len // 4}, to leave the "
                         f"question and passages room)")
    prompt = build_prompt(question, index.search(question, k), tokenizer, budget, template)
    ids = generate(model, start + tokenizer.encode(prompt.text), cfg, eos_id=tokenizer.eos_id)
    text = tokenizer.decode(ids)
    return Answer(question, text, prompt.hits, grounding(text, prompt.hits, n), prompt.text)
