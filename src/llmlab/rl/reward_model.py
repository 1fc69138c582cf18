"""The reward model of RLHF (topic 78; Stiennon et al. 2020, Ouyang et al. 2022 "InstructGPT").

People compare two answers to one prompt more reliably than they grade one, so the reward model is
trained on *preferences*: pairs (chosen, rejected) for a prompt. It is the chat model from SFT with its
vocabulary head replaced by one linear output; the score of a prompt and answer is that output at the
answer's last token (the ``<|end|>`` that closes it), where the model has read everything. Training
follows the Bradley-Terry model, P(chosen beats rejected) = sigmoid(r_chosen - r_rejected), and
minimises its negative log-likelihood (`preference_loss`, TRL's RewardTrainer objective, with its
optional centring term).

The head has no bias and reads the last token as `LlamaForSequenceClassification` with one label
does, so a reward model exported to the LLaMA layout gives the same scores there. It starts at zero:
every pair ties (accuracy 1/2, loss log 2) until training separates them.

A score has no unit: only differences are learned. `save_reward_model` stores the mean and standard
deviation of the scores of the training answers, and `RewardScorer` returns scores normalised by them
(InstructGPT likewise shifts its reward model so that reference answers score 0 on average), so a KL
penalty or a learning rate set for one reward model suits another.
"""

from __future__ import annotations

import copy
import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from llmlab.core.errors import InputError
from llmlab.core.io import existing_folder
from llmlab.models.card import ModelCard
from llmlab.models.decoder import CausalLM
from llmlab.models.io import load_model_tokenizer, load_state, read_model_doc, read_weights, resolve_device, save_model
from llmlab.rl.config import ENSEMBLES, UWO_LAMBDA

REWARD_KEY = "reward_model"  # config.json's entry that marks a reward model folder


def make_reward_model(policy: CausalLM) -> CausalLM:
    """A deep copy of `policy` whose lm_head is a zero ``Linear(dim, 1, bias=False)``: ``rm(ids)`` is
    (B, T, 1). A tied head is untied (the copy's embedding stays)."""
    rm = copy.deepcopy(policy)
    rm.lm_head = nn.Linear(policy.config.dim, 1, bias=False, device=policy.embed_tokens.weight.device)
    nn.init.zeros_(rm.lm_head.weight)
    for p in rm.parameters():
        p.requires_grad_(True)
    return rm


def pad_rows(rows: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows right-padded into (B, T) ids, and each row's length (B,).

    >>> pad_rows([[5, 6, 7], [8]], pad_id=0)
    (tensor([[5, 6, 7],
            [8, 0, 0]]), tensor([3, 1]))
    """
    if not rows or min(map(len, rows)) < 1:
        raise InputError("every sequence to score needs at least one token")
    lengths = torch.tensor([len(r) for r in rows])
    x = torch.full((len(rows), int(lengths.max())), pad_id, dtype=torch.long)
    for b, r in enumerate(rows):
        x[b, : len(r)] = torch.tensor(r)
    return x, lengths


def sequence_scores(rm: CausalLM, ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The score (B,) of each right-padded row: the head's output at the row's last token (padding after
    it cannot reach it through causal attention)."""
    device = rm.lm_head.weight.device
    if int(lengths.max()) > rm.config.max_seq_len:
        raise InputError(f"a sequence of {int(lengths.max())} tokens exceeds the reward model's context of "
                         f"{rm.config.max_seq_len}")
    out = rm(ids.to(device))[..., 0]  # (B, T)
    return out.gather(1, (lengths.to(device) - 1)[:, None])[:, 0].float()


def preference_loss(chosen: torch.Tensor, rejected: torch.Tensor, margin: torch.Tensor | float = 0.0,
                    center_coef: float = 0.0) -> torch.Tensor:
    """Bradley-Terry negative log-likelihood of the preferences, ``-log sigmoid(r_c - r_r - margin)``
    averaged over pairs, plus ``center_coef`` x the mean of ``(r_c + r_r)^2``, which keeps the scores
    near 0 (TRL's `center_rewards_coefficient`; the loss alone sees only differences).

    >>> round(float(preference_loss(torch.zeros(3), torch.zeros(3))), 4)  # ties: log 2
    0.6931
    """
    loss = -F.logsigmoid(chosen - rejected - margin).mean()
    if center_coef:
        loss = loss + center_coef * ((chosen + rejected) ** 2).mean()
    return loss


def pair_accuracy(chosen: torch.Tensor, rejected: torch.Tensor) -> float:
    """Share of pairs the scores rank as the labels do; a tie counts one half.

    >>> pair_accuracy(torch.tensor([2.0, 0.0, 1.0]), torch.tensor([1.0, 1.0, 1.0]))
    0.5
    """
    if not len(chosen):
        raise InputError("no preference pairs to score")
    return float(((chosen > rejected).float() + 0.5 * (chosen == rejected).float()).mean())


# --- saving and loading ---------------------------------------------------------------------------

def save_reward_model(rm: CausalLM, directory: str | os.PathLike, tokenizer, tokenizer_config: dict | None,
                      mean: float, std: float, card: ModelCard | None = None) -> Path:
    """Write a reward model folder: a model folder whose config.json marks the scalar head and holds
    the normalisation (`mean`, `std` of the training answers' raw scores)."""
    if rm.lm_head.out_features != 1:
        raise InputError("this is not a reward model (its head has more than one output)")
    if not (std > 0 and mean == mean):
        raise InputError(f"a reward model needs a finite mean and a positive std of its scores, got {mean}, {std}")
    extra = {REWARD_KEY: {"head": "linear, 1 output, no bias, at the last token", "mean": mean, "std": std}}
    return save_model(rm, directory, tokenizer, card, extra=extra, tokenizer_config=tokenizer_config)


def load_reward_model(directory: str | os.PathLike, device: str | torch.device = "cpu"):
    """(reward model in eval mode, its tokenizer, its normalisation {"mean", "std"})."""
    d = existing_folder(directory, "reward model directory")
    cfg, doc = read_model_doc(d)
    norm = doc.get(REWARD_KEY)
    if not isinstance(norm, dict):
        raise InputError(f"{str(d)!r} holds a language model, not a reward model (train one with llmlab rm train)")
    if not all(isinstance(norm.get(k), (int, float)) for k in ("mean", "std")) or not norm["std"] > 0:
        raise InputError(f"{str(d / 'config.json')!r}: the reward model's mean and std (> 0) must be numbers")
    rm = make_reward_model(CausalLM(cfg))
    load_state(rm, read_weights(d / "model.safetensors"), str(d / "model.safetensors"))
    tok = load_model_tokenizer(d, cfg)
    if tok is None:
        raise InputError(f"reward model directory {str(d)!r} has no tokenizer.json")
    return rm.to(resolve_device(device)).eval(), tok, {"mean": float(norm["mean"]), "std": float(norm["std"])}


class RewardScorer:
    """Normalised scores of completions to prompts (token ids), in batches, without gradients:
    ``(raw - mean) / std``. Call it with prompts and completions (each completion's ids ending with
    the ``<|end|>`` the reward model was trained to read)."""

    def __init__(self, rm: CausalLM, pad_id: int, mean: float = 0.0, std: float = 1.0, batch_size: int = 64):
        self.rm, self.pad_id, self.mean, self.std, self.batch_size = rm.eval(), pad_id, mean, std, batch_size

    @torch.no_grad()
    def raw(self, sequences: list[list[int]]) -> torch.Tensor:
        out = [sequence_scores(self.rm, *pad_rows(sequences[i:i + self.batch_size], self.pad_id))
               for i in range(0, len(sequences), self.batch_size)]
        return torch.cat(out).cpu() if out else torch.zeros(0)

    def __call__(self, prompts: list[list[int]], completions: list[list[int]]) -> torch.Tensor:
        return (self.raw([p + c for p, c in zip(prompts, completions, strict=True)]) - self.mean) / self.std


class EnsembleScorer:
    """Several reward models' normalised scores of the same completions, combined per completion (Coste et
    al. 2024, "Reward model ensembles help mitigate overoptimization"): their mean; their minimum, the
    worst case of the ensemble; or "uwo", uncertainty-weighted, their mean less `lam` (None: UWO_LAMBDA)
    times their variance across the members (over k, not k - 1), which charges an answer for the members'
    disagreement about it.
    A policy that finds an answer one reward model overrates gains nothing from it under "min" unless every
    member overrates it, which models trained apart rarely do."""

    def __init__(self, scorers: list, how: str = "mean", lam: float | None = None):
        lam = UWO_LAMBDA if lam is None else lam
        if not scorers or how not in ENSEMBLES or not lam >= 0:
            raise InputError(f"an ensemble needs at least one scorer, how one of {ENSEMBLES} and a lam >= 0, "
                             f"got {len(scorers)}, {how!r}, {lam}")
        self.scorers, self.how, self.lam = scorers, how, lam

    def __call__(self, prompts: list[list[int]], completions: list[list[int]]) -> torch.Tensor:
        scores = torch.stack([s(prompts, completions) for s in self.scorers])
        if self.how == "min":
            return scores.amin(0)
        if self.how == "uwo":
            return scores.mean(0) - self.lam * scores.var(0, correction=0)
        return scores.mean(0)
