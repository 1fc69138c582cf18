"""Unpaired preference data for KTO (`llmlab.rl.kto`): a prompt, one reply, and whether the reply is
desirable. A file of your own is JSONL in TRL's unpaired layout::

    {"prompt": "12+30=", "completion": "42", "label": true}
    {"prompt": "12+30=", "completion": "43", "label": false}

with ``prompt`` as in a comparison file (`llmlab.rl.preferences`) and an optional ``"split"`` kept the same
way. Comparisons become unpaired examples as TRL's ``unpair_preference_dataset`` makes them: each chosen
reply a desirable example, each rejected one an undesirable example, of the same prompt.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmlab.core.errors import InputError
from llmlab.core.io import jsonl_lines
from llmlab.rl.preferences import (
    Preference,
    Prompted,
    as_messages,
    check_fields,
    check_prompt_and_split,
    encode_record,
    split_records,
)


@dataclass(frozen=True)
class Example(Prompted):
    """One reply to `messages` (ending with a user turn), labelled desirable or not."""

    messages: tuple[tuple[str, str], ...]  # (role, content) turns
    completion: str
    label: bool  # True: desirable

    @staticmethod
    def of(prompt: str | list[dict], completion: str, label: bool) -> Example:
        return Example(as_messages(prompt), completion, label)

    def to_dict(self) -> dict:
        return {"prompt": self.prompt, "completion": self.completion, "label": self.label}


def unpair(prefs: list[Preference]) -> list[Example]:
    """Each comparison's chosen reply as a desirable example, then its rejected one as an undesirable one:
    comparison k becomes rows 2k and 2k + 1."""
    return [Example(p.messages, reply, label) for p in prefs for reply, label in ((p.chosen, True),
                                                                                  (p.rejected, False))]


def is_unpaired_file(path: str | Path) -> bool:
    """Whether a JSONL file is in the unpaired layout (its first record has a "completion"), rather than
    comparisons."""
    for _, r in jsonl_lines(path, "preference file"):
        return isinstance(r, dict) and "completion" in r
    raise InputError(f"{path}: no preference data")


def read_split_examples(path: str | Path) -> tuple[list[Example], list[Example]]:
    """Train and held-out examples of an unpaired file (its lines' split, or its last 5% held out, at least
    two: KTO needs two examples in each split, each borrowing the other's completion for its KL estimate);
    InputError naming the line of a malformed one, for a file whose examples all carry one label, or for a
    split of fewer than two examples."""
    rows = []
    for i, r in jsonl_lines(path, "preference file"):  # the file's line numbers, blank lines counted
        where = f"{path} line {i}"
        check_fields(r, where, ("prompt", "completion", "label"))
        if not isinstance(r["completion"], str) or not r["completion"]:
            raise InputError(f"{where}: 'completion' must be a non-empty string (the assistant's reply)")
        if not isinstance(r["label"], bool):
            raise InputError(f"{where}: 'label' must be true (desirable) or false (undesirable), got {r['label']!r}")
        check_prompt_and_split(r, where)
        rows.append((Example.of(r["prompt"], r["completion"], r["label"]), r.get("split")))
    if not rows:
        raise InputError(f"{path}: no examples")
    if len({e.label for e, _ in rows}) < 2:
        raise InputError(f"{path}: every example is labelled {rows[0][0].label}; KTO needs desirable and "
                         "undesirable examples")
    train, dev = split_records(path, rows, "examples")
    automatic = all(split is None for _, split in rows)
    if automatic and len(dev) < 2 <= len(train) - 1:  # one line held out (fewer than 40): hold out the last two
        train, dev = train[:-1], train[-1:] + dev
    short = [f"{len(x)} {name}" for name, x in (("train", train), ("dev", dev)) if len(x) < 2]
    if short:
        fix = ("give it at least 4 lines (without 'split' fields its last 5% are held out, at least 2)" if automatic
               else "mark at least 2 lines of each with 'split'")
        raise InputError(f"{path}: KTO needs at least 2 examples in each split (each takes another's completion "
                         f"for its KL estimate), got {' and '.join(short)}: {fix}")
    return train, dev


def encode_examples(tok, template, examples: list[Example], max_len: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) per example, the completion ending with the template's ``<|end|>``;
    InputError for one longer than `max_len` tokens (the model's context)."""
    return [encode_record(tok, template, e, (e.completion,), max_len, "example") for e in examples]
