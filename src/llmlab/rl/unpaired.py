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
from llmlab.rl.preferences import Preference, as_messages, check_prompt_and_split, split_records


@dataclass(frozen=True)
class Example:
    """One reply to `messages` (ending with a user turn), labelled desirable or not."""

    messages: tuple[tuple[str, str], ...]  # (role, content) turns
    completion: str
    label: bool  # True: desirable

    @staticmethod
    def of(prompt: str | list[dict], completion: str, label: bool) -> Example:
        return Example(as_messages(prompt), completion, label)

    @property
    def conversation(self) -> list[dict]:
        return [{"role": r, "content": c} for r, c in self.messages]

    def to_dict(self) -> dict:
        m = self.conversation
        prompt = m[0]["content"] if len(m) == 1 and m[0]["role"] == "user" else m
        return {"prompt": prompt, "completion": self.completion, "label": self.label}


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
    """Train and held-out examples of an unpaired file (its lines' split, or its last 5% held out);
    InputError naming the line of a malformed one, or for a file whose examples all carry one label."""
    rows = []
    for i, r in jsonl_lines(path, "preference file"):  # the file's line numbers, blank lines counted
        where = f"{path} line {i}"
        if not isinstance(r, dict):
            raise InputError(f"{where}: expected an object with prompt, completion and label")
        for k in ("prompt", "completion", "label"):
            if k not in r:
                raise InputError(f"{where}: missing {k!r}")
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
    return split_records(path, rows, "examples")


def encode_examples(tok, template, examples: list[Example], max_len: int) -> list[tuple[list[int], list[int]]]:
    """(prompt ids, completion ids) per example, the completion ending with the template's ``<|end|>``;
    InputError for one longer than `max_len` tokens (the model's context)."""
    end = template.ids(tok)[template.end]
    out = []
    for e in examples:
        try:
            prompt = template.prompt_ids(tok, e.conversation)
        except InputError as err:
            raise InputError(f"example {e.to_dict()!r}: {err}") from None
        completion = tok.encode(e.completion) + [end]
        if len(prompt) + len(completion) > max_len:
            raise InputError(f"example {e.to_dict()!r} is {len(prompt) + len(completion)} tokens long, beyond the "
                             f"model's context of {max_len}")
        out.append((prompt, completion))
    return out
