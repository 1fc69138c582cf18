"""Decoding strategies side by side (topics 6, 59-61): how much each repeats itself, how diverse its
outputs are, and how likely the model finds them.

Greedy and beam search pick what the model finds most likely, and a small model's most likely text
loops ("the parrot"); penalties, n-gram bans and sampling trade some of that likelihood for variety.
`compare_decoding` runs the same prompts through each strategy and measures, per strategy:

- rep-4: the mean share of an output's 4-grams that repeat an earlier one (`evaluate.diversity.rep_n`);
- distinct-2: distinct bigrams over all bigrams of all outputs (`evaluate.diversity.distinct_n`);
- NLL: the mean negative log-probability per new token under the model (lower = what the model prefers);
- tokens: the mean output length (EOS ends an output early), and the wall time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from llmlab.core.errors import InputError
from llmlab.evaluate.diversity import distinct_n, rep_n
from llmlab.generate.autoregressive import generate
from llmlab.generate.config import GenerationConfig
from llmlab.models.scoring import text_start, token_logprobs

REP_N = 4  # the n of the repetition column
STRATEGIES: dict[str, dict] = {
    "greedy": dict(temperature=0),
    "greedy, repetition penalty 1.3": dict(temperature=0, repetition_penalty=1.3),
    "greedy, frequency + presence 0.5": dict(temperature=0, frequency_penalty=0.5, presence_penalty=0.5),
    "greedy, no repeated 3-gram": dict(temperature=0, no_repeat_ngram_size=3),
    "beam 4": dict(num_beams=4),
    "beam 4, no repeated 3-gram": dict(num_beams=4, no_repeat_ngram_size=3),
    "temperature 0.8": dict(temperature=0.8),
    "top-k 50": dict(temperature=1.0, top_k=50),
    "top-p 0.9": dict(temperature=1.0, top_p=0.9),
}


@dataclass(frozen=True)
class DecodingRow:
    strategy: str
    rep: float  # mean rep-4 (REP_N) of the outputs
    distinct2: float  # distinct-2 over all outputs
    nll: float  # mean negative log-probability per new token
    tokens: float  # mean new tokens per output
    seconds: float  # wall time of the strategy's decoding
    outputs: list[str]  # the decoded continuations, one per prompt


def compare_decoding(model, tok, prompts: list[str], max_new_tokens: int = 60, seed: int = 0,
                     strategies: dict[str, dict] | None = None, suppress_tokens: tuple[int, ...] = (),
                     bad_words_ids: tuple[tuple[int, ...], ...] = ()) -> list[DecodingRow]:
    """One row per strategy (name -> `GenerationConfig` settings) over the same `prompts`; the bans
    (`GenerationConfig`'s fields of those names) apply to every strategy."""
    if not prompts:
        raise InputError("no prompts to compare decoding strategies on")
    rows = []
    for name, settings in (strategies or STRATEGIES).items():
        cfg = GenerationConfig(max_new_tokens=max_new_tokens, seed=seed, suppress_tokens=suppress_tokens,
                               bad_words_ids=bad_words_ids, **settings)
        t0 = time.perf_counter()
        news = [(ids, generate(model, ids, cfg, eos_id=tok.eos_id))
                for ids in (text_start(tok) + tok.encode(p) for p in prompts)]
        seconds = time.perf_counter() - t0
        logps = [lp for ids, new in news if new for lp in token_logprobs(model, ids + new)[-len(new):]]
        outputs = [tok.decode(new) for _, new in news]
        rows.append(DecodingRow(name, sum(rep_n(o, REP_N) for o in outputs) / len(outputs), distinct_n(outputs, 2),
                                -sum(logps) / len(logps) if logps else 0.0,
                                sum(len(new) for _, new in news) / len(news), seconds, outputs))
    return rows


def format_table(rows: list[DecodingRow]) -> str:
    """The rows as a markdown table."""
    lines = [f"| strategy | rep-{REP_N} | distinct-2 | NLL/token | tokens | seconds |", "|---|---|---|---|---|---|"]
    lines += [f"| {r.strategy} | {r.rep:.3f} | {r.distinct2:.3f} | {r.nll:.3f} | {r.tokens:.1f} | {r.seconds:.2f} |"
              for r in rows]
    return "\n".join(lines)
