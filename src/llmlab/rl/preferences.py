"""Preference data for the reward model (topic 78): a prompt, the answer preferred, the answer not.

A file of your own is JSONL, one comparison per line, in TRL's explicit-prompt layout::

    {"prompt": "12+30=", "chosen": "42", "rejected": "43"}

where ``prompt`` is the user's message (or a list of chat messages ending with a user turn) and
``chosen`` / ``rejected`` are assistant replies.

Without a file, `sampled_preferences` labels the chat model's own answers, as InstructGPT's labellers
ranked samples of the SFT model: it samples answers to arithmetic train problems, and pairs every
wrong one with the right answer. The reward model so learns to tell apart the mistakes this policy
actually makes, which is what RL will need it to judge. The labeller here is a checker, not a person:
its labels are noise-free, so what the reward model gets wrong is its own error.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from pathlib import Path

import torch

from llmlab.core.errors import InputError
from llmlab.core.io import jsonl_lines


class Prompted:
    """What a record with `messages` (role, content) turns to be answered shares: the turns as chat messages,
    and its file's "prompt" field back (one user turn as a string, as the file may give it)."""

    messages: tuple[tuple[str, str], ...]

    @property
    def conversation(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]

    @property
    def prompt(self) -> str | list[dict]:
        m = self.conversation
        return m[0]["content"] if len(m) == 1 and m[0]["role"] == "user" else m


@dataclass(frozen=True)
class Preference(Prompted):
    """One comparison: `messages` to be answered (ending with a user turn), and two assistant replies."""

    messages: tuple[tuple[str, str], ...]  # (role, content) turns
    chosen: str
    rejected: str

    @staticmethod
    def of(prompt: str | list[dict], chosen: str, rejected: str) -> Preference:
        return Preference(as_messages(prompt), chosen, rejected)

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "chosen": self.chosen, "rejected": self.rejected}


def as_messages(prompt: str | list[dict]) -> tuple[tuple[str, str], ...]:
    """A file's "prompt" as (role, content) turns: a string is one user turn."""
    turns = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
    return tuple((m["role"], m["content"]) for m in turns)


def read_preferences(path: str | Path) -> list[Preference]:
    """Comparisons from a JSONL file; InputError naming the line of a malformed one."""
    return [p for p, _ in _read(path)]


def read_split_preferences(path: str | Path) -> tuple[list[Preference], list[Preference]]:
    """Train and held-out comparisons from a JSONL file. Lines that all carry ``"split": "train"`` or
    ``"dev"`` (a run's pairs.jsonl) keep that split, so another run on the file holds out the same ones;
    lines without one hold out the file's last 5% (at least one)."""
    return split_records(path, _read(path), "comparisons")


def split_records(path: str | Path, rows: list[tuple], what: str) -> tuple[list, list]:
    """(train, dev) of a file's (record, split) rows: the split each line names, or, where none names one,
    the last 5% (at least one) held out; InputError for a split on some lines only, or not both present."""
    splits = {s for _, s in rows}
    if splits == {None}:
        if len(rows) < 2:
            raise InputError(f"{path}: at least 2 {what} are needed (one is held out)")
        k = max(1, len(rows) // 20)
        return [p for p, _ in rows[:-k]], [p for p, _ in rows[-k:]]
    if None in splits or not splits <= {"train", "dev"} or len(splits) < 2:
        raise InputError(f"{path}: a 'split' must be on every line, 'train' or 'dev', with both present; or on none "
                         f"(the last 5% are then held out); found {sorted(map(str, splits))}")
    return [p for p, s in rows if s == "train"], [p for p, s in rows if s == "dev"]


def _read(path: str | Path) -> list[tuple[Preference, str | None]]:
    """Each line's comparison and its "split" (None where it has none)."""
    out = []
    for i, r in jsonl_lines(path, "preference file"):  # the file's line numbers, blank lines counted
        where = f"{path} line {i}"
        check_fields(r, where, ("prompt", "chosen", "rejected"))
        for k in ("chosen", "rejected"):
            if not isinstance(r[k], str) or not r[k]:
                raise InputError(f"{where}: {k!r} must be a non-empty string (the assistant's reply)")
        check_prompt_and_split(r, where)
        if r["chosen"] == r["rejected"]:
            raise InputError(f"{where}: chosen and rejected are the same reply, which states no preference")
        out.append((Preference.of(r["prompt"], r["chosen"], r["rejected"]), r.get("split")))
    if not out:
        raise InputError(f"{path}: no preference pairs")
    return out


def check_fields(r, where: str, fields: tuple[str, ...]) -> None:
    """InputError naming `where` unless the line's record is an object holding every one of `fields`."""
    if not isinstance(r, dict):
        raise InputError(f"{where}: expected an object with {', '.join(fields[:-1])} and {fields[-1]}")
    for k in fields:
        if k not in r:
            raise InputError(f"{where}: missing {k!r}")


def check_prompt_and_split(r: dict, where: str) -> None:
    """InputError naming `where` unless the record's "prompt" is a non-empty string or a list of chat
    messages, and its "split", if any, a string."""
    p = r["prompt"]
    ok = (isinstance(p, str) and p) or (isinstance(p, list) and p and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in p))
    if not ok:
        raise InputError(f"{where}: 'prompt' must be a non-empty string or a list of {{role, content}} messages")
    if not isinstance(r.get("split", ""), str):
        raise InputError(f"{where}: 'split' must be 'train' or 'dev'")


def encode_preferences(tok, template, prefs: list[Preference], max_len: int
                       ) -> list[tuple[list[int], list[int], list[int]]]:
    """(prompt ids, chosen ids, rejected ids) per comparison; each reply ends with the template's
    ``<|end|>``, the token whose output the reward model scores. InputError for a comparison whose
    prompt and reply exceed `max_len` tokens (the model's context)."""
    return [encode_record(tok, template, p, (p.chosen, p.rejected), max_len, "comparison") for p in prefs]


def encode_record(tok, template, record: Prompted, replies: tuple[str, ...], max_len: int, what: str
                  ) -> tuple[list[int], ...]:
    """(prompt ids, then each reply's ids ending with the template's ``<|end|>``) of a file's record;
    InputError naming it (as `what`) where its prompt and longest reply exceed `max_len` tokens."""
    end = template.ids(tok)[template.end]
    try:
        prompt = template.prompt_ids(tok, record.conversation)
    except InputError as e:
        raise InputError(f"{what} {record.to_dict()!r}: {e}") from None
    ids = [tok.encode(r) + [end] for r in replies]
    n = len(prompt) + max(map(len, ids))
    if n > max_len:
        raise InputError(f"{what} {record.to_dict()!r} is {n} tokens long, beyond the model's context of {max_len}")
    return (prompt, *ids)


def sampled_preferences(policy, tok, template, problems, samples: int, max_new_tokens: int, temperature: float,
                        generator: torch.Generator) -> list[Preference]:
    """For each arithmetic problem, `samples` answers of `policy`; each distinct wrong one becomes a
    comparison it loses to the right answer (problems answered right every time give none). Samples
that are not text (their decoded text encodes to other tokens) and empty ones are left out."""
    from llmlab.rl.rewards import answer_reward
    from llmlab.rl.rollout import sample_group

    end = template.ids(tok)[template.end]
    out = []
    for p in problems:
        msgs = [{"role": "user", "content": p.question}]
        ro = sample_group(policy, template.prompt_ids(tok, msgs), samples, max_new_tokens, temperature, end,
                          tok.pad_id, generator)
        wrong = {}
        for b in range(len(ro)):
            ids = ro.answer_ids(b, end)
            text = tok.decode(ids)
            # a sample whose text does not encode back to it (special tokens, <unk>) is no reply to compare
            if text.strip() and tok.encode(text) == ids and not answer_reward(text, p.answer):
                wrong.setdefault(text, None)
        out += [Preference.of(p.question, p.answer, w) for w in wrong]
    return out


def near_misses(answer: str, k: int, rng: random.Random) -> list[str]:
    """Up to `k` distinct answers that differ from `answer` in exactly one digit (a leading digit never
    becomes 0), drawn uniformly from all such answers: the slips a reward model must also tell apart.

    >>> sorted(near_misses("7", 20, random.Random(0)))
    ['0', '1', '2', '3', '4', '5', '6', '8', '9']
    """
    digits = [i for i, c in enumerate(answer) if c.isdigit()]
    lead = digits[0] if digits else None
    pool = [answer[:i] + d + answer[i + 1:] for i in digits for d in "0123456789"
            if d != answer[i] and not (d == "0" and i == lead and len(digits) > 1)]
    return rng.sample(pool, min(k, len(pool)))


def near_miss_preferences(problems, k: int, seed: int) -> list[Preference]:
    """For each arithmetic problem, its right answer preferred to `k` near misses (`near_misses`)."""
    rng = random.Random(seed)
    return [Preference.of(p.question, p.answer, m) for p in problems for m in near_misses(p.answer, k, rng)]
