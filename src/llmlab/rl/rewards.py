"""Rewards for fine-tuning by reinforcement (topics 78, 82): checkable outcomes rather than a learned
reward model, as DeepSeek-R1, DAPO and VAPO train on maths with verifiable answers.

- `answer_reward`: 1 for a completion that is the answer (`llmlab.evaluate.tasks.exact_match`), else 0.
- `overlong_penalty`: DAPO's soft overlong punishment. Cutting every too-long answer to reward -1
  punishes sound reasoning that merely ran long, which is noise to the policy; instead a completion is
  free up to ``max_len - cache`` tokens, loses reward linearly over the last ``cache`` tokens of the
  budget, and gets -1 beyond ``max_len``. (DAPO's other half, overlong *filtering*, drops truncated
  completions from the loss; the trainer does that with the rollout's truncation flags.)
"""

from __future__ import annotations

import torch

from llmlab.core.errors import InputError


def answer_reward(completion: str, answer: str) -> float:
    """1.0 when `completion` is `answer` (after exact_match's normalisation: case, spaces, punctuation), else 0.0.

    >>> answer_reward(" 42", "42"), answer_reward("41", "42")
    (1.0, 0.0)
    """
    from llmlab.evaluate.tasks import exact_match

    return 1.0 if exact_match(completion, answer) else 0.0


def overlong_penalty(lengths: torch.Tensor, max_len: int, cache: int) -> torch.Tensor:
    """The length penalty (<= 0) of completions of `lengths` tokens: 0 up to ``max_len - cache``, then
    ``(max_len - cache - length) / cache`` down to -1 at `max_len`, and -1 beyond.

    >>> overlong_penalty(torch.tensor([10, 16, 18, 20, 21]), max_len=20, cache=4).tolist()
    [0.0, 0.0, -0.5, -1.0, -1.0]
    """
    if max_len < 1 or not 0 < cache <= max_len:
        raise InputError(f"overlong shaping needs max_len >= 1 and 0 < cache <= max_len, got {max_len}, {cache}")
    lengths = torch.as_tensor(lengths, dtype=torch.float32)
    free = max_len - cache
    return ((free - lengths) / cache).clamp(-1.0, 0.0)
