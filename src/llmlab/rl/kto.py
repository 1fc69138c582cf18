"""Kahneman-Tversky optimisation (KTO; Ethayarajh et al. 2024), as TRL's ``KTOTrainer`` computes it:
preference learning from single replies marked desirable or undesirable, with no comparison needed.

The implicit reward is DPO's, r = log π(y|x) - log π_ref(y|x), a reply's log-probability summed over its
tokens and its ``<|end|>``. KTO measures it against a reference point z, an estimate of the KL divergence
of the policy from the reference, and passes the difference through a sigmoid, a value that saturates
for gains and losses alike (prospect theory's shape):

    desirable     w_d (1 - σ(β (r - z)))
    undesirable   w_u (1 - σ(β (z - r)))

averaged over the batch. A desirable reply is pushed above the reference point, an undesirable one below
it. z must not reward the policy for moving away from the reference as a whole, so it is computed from
replies the policy has no reason to favour: each prompt of the batch with *another* example's completion,

    z = max(0, mean over the batch of (log π(y'|x) - log π_ref(y'|x))),

held constant (no gradient): it only shifts where the sigmoid is steepest. As TRL does, the mismatched
completion of an example is its batch neighbour's, shifted by one, with the batches fixed in advance
(`kl_batches`): a seeded shuffle cut into runs of ``batch_size``, visited in order. The reference's
log-probabilities of every example's own and mismatched completion are then computed once, in a table,
as DPO's are (TRL's ``precompute_ref_log_probs``). ``nll_coef`` adds the desirable replies' mean token
NLL, as RPO does for DPO's chosen replies.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from llmlab.core.errors import InputError
from llmlab.core.modes import eval_mode
from llmlab.rl.dpo import DPOTrainer, completion_logprobs
from llmlab.train.config import TrainConfig

Triple = tuple[list[int], list[int], list[int]]  # prompt, its own completion, the mismatched completion


def kto_loss(logps: torch.Tensor, ref_logps: torch.Tensor, kl_logps: torch.Tensor, ref_kl_logps: torch.Tensor,
             desirable: torch.Tensor, beta: float, desirable_weight: float = 1.0,
             undesirable_weight: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-example losses (B,) and the reference point z (no gradient), from the completions' log-probabilities
    (B,) under the policy and the reference, the mismatched completions' (B,), and the labels (B,) bool.

    >>> z = torch.zeros(2)
    >>> kto_loss(z, z, z, z, torch.tensor([True, False]), beta=0.1)[0].tolist()  # the policy is the reference
    [0.5, 0.5]
    """
    z = (kl_logps - ref_kl_logps).mean().detach().clamp(min=0)
    r = logps - ref_logps  # (B,)
    gain = desirable_weight * (1 - F.sigmoid(beta * (r - z)))
    loss = undesirable_weight * (1 - F.sigmoid(beta * (z - r)))
    return torch.where(desirable, gain, loss), z


def kl_batches(n: int, batch_size: int, seed: int) -> list[list[int]]:
    """The examples' batches, fixed in advance: a seeded shuffle of range(n) cut into runs of `batch_size`;
    a last run of one joins the run before it (alone it has no other completion to borrow).

    >>> [len(b) for b in kl_batches(9, 4, seed=0)], sorted(sum(kl_batches(9, 4, seed=0), []))
    ([4, 5], [0, 1, 2, 3, 4, 5, 6, 7, 8])
    """
    if batch_size < 2 or n < 2:
        raise InputError(f"KTO needs at least 2 examples a batch and in each split (each example's prompt takes "
                         f"another's completion for the KL estimate); got a batch of {batch_size}, {n} examples")
    order = torch.randperm(n, generator=torch.Generator().manual_seed(seed)).tolist()
    runs = [order[i:i + batch_size] for i in range(0, n, batch_size)]
    if len(runs[-1]) == 1:
        last = runs.pop()
        runs[-1] += last
    return runs


def mismatched(batches: list[list[int]]) -> dict[int, int]:
    """Whose completion each example borrows for the KL estimate: its batch neighbour, shifted by one.

    >>> mismatched([[4, 0, 2], [1, 3]])
    {4: 2, 0: 4, 2: 0, 1: 3, 3: 1}
    """
    return {i: b[j - 1] for b in batches for j, i in enumerate(b)}


@dataclass
class KTOData:
    """A split's examples for KTO: each prompt with its completion and a mismatched one, the labels, the
    fixed batches, and which rows came from one comparison (chosen, rejected), if any."""

    triples: list[Triple]
    labels: torch.Tensor  # (N,) bool, True = desirable
    batches: list[list[int]]
    pairs: list[tuple[int, int]]  # (desirable row, undesirable row) of a comparison; [] for unpaired data

    @staticmethod
    def of(examples: list[tuple[list[int], list[int]]], labels: list[bool], batch_size: int, seed: int,
           pairs: list[tuple[int, int]] = ()) -> KTOData:
        batches = kl_batches(len(examples), batch_size, seed)
        other = mismatched(batches)
        triples = [(p, c, examples[other[i]][1]) for i, (p, c) in enumerate(examples)]
        return KTOData(triples, torch.tensor(labels, dtype=torch.bool), batches, list(pairs))


def batch_losses(model, triples: list[Triple], desirable: torch.Tensor, ref: torch.Tensor, pad_id: int,
                 beta: float, weights: tuple[float, float] = (1.0, 1.0)
                 ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Per-example KTO losses (B,) of `model` on one batch against the reference's table rows `ref` (B, 2),
    with the log-probabilities, implicit rewards, z and the desirable replies' mean token NLL (differentiable).
    The mismatched completions are read without gradient: z is a constant of the step."""
    prompts = [p for p, _, _ in triples]
    logp, mask = completion_logprobs(model, prompts, [c for _, c, _ in triples], pad_id)
    with torch.no_grad():
        kl_logp, _ = completion_logprobs(model, prompts, [k for _, _, k in triples], pad_id)
    ref = ref.to(logp.device)
    desirable = desirable.to(logp.device)
    logps = logp.sum(1)  # (B,)
    losses, z = kto_loss(logps, ref[:, 0], kl_logp.sum(1), ref[:, 1], desirable, beta, *weights)
    m = mask.to(logp.device) * desirable[:, None]  # (B, T) the desirable replies' tokens
    nll = -(logp * m).sum() / m.sum() if m.sum() > 0 else logp.sum() * 0
    return losses, {"logps": logps.detach(), "reward": beta * (logps - ref[:, 0]).detach(), "kl": z,
                    "desirable_nll": nll}


@torch.no_grad()
def reference_logps(model, data: KTOData, pad_id: int) -> torch.Tensor:
    """(N, 2) log-probabilities under `model` (eval mode) of each example's own completion and its mismatched
    one, computed in the data's batches as `batch_losses` computes them: before any step every reward is 0."""
    ref = torch.zeros(len(data.triples), 2)
    with eval_mode(model):
        for idx in data.batches:
            prompts = [data.triples[i][0] for i in idx]
            for col in (1, 2):
                logp, _ = completion_logprobs(model, prompts, [data.triples[i][col] for i in idx], pad_id)
                ref[idx, col - 1] = logp.sum(1).cpu()
    return ref


def kto_stats(parts: dict[str, torch.Tensor], desirable: torch.Tensor) -> dict[str, float]:
    """TRL's logged KTO figures: the KL estimate, the mean implicit reward of the desirable and of the
    undesirable replies (each left out where the batch has none), their margin, and the desirable replies' NLL."""
    r = parts["reward"].float().cpu()
    d = desirable.cpu()
    out = {"kl": float(parts["kl"])}
    for key, m in (("reward_desirable", d), ("reward_undesirable", ~d)):
        if m.any():
            out[key] = float(r[m].mean())
    if len(out) == 3:
        out["reward_margin"] = out["reward_desirable"] - out["reward_undesirable"]
    if "desirable_nll" in parts:
        out["desirable_nll"] = float(parts["desirable_nll"].detach())
    return out


class KTOTrainer(DPOTrainer):
    """The DPO run's engine (checkpoints, exact resume, schedule, token counts) on KTO's unpaired examples:
    batches are `train`'s fixed ones, visited in turn; `ref` (N, 2) holds the reference's log-probabilities
    of each example's own and mismatched completion (`reference_logps`)."""

    def __init__(self, policy, cfg: TrainConfig, train: KTOData, dev: KTOData, ref: torch.Tensor,
                 dev_ref: torch.Tensor, run_dir: str | Path, pad_id: int, beta: float, nll_coef: float = 0.0,
                 desirable_weight: float = 1.0, undesirable_weight: float = 1.0):
        super().__init__(policy, cfg, train.triples, dev.triples, ref, dev_ref, run_dir, pad_id, beta, "kto",
                         nll_coef=nll_coef)
        self.data, self.dev_data = train, dev
        self.weights = (desirable_weight, undesirable_weight)

    def batch(self, micro: int) -> tuple[list[int]]:
        k = self.step * self.cfg.grad_accum + micro
        return (self.data.batches[k % len(self.data.batches)],)

    def micro_step(self, idx: list[int]) -> torch.Tensor:
        triples = [self.pairs[i] for i in idx]
        self.count(sum(2 * len(p) + len(c) + len(k) for p, c, k in triples))
        desirable = self.data.labels[idx]
        losses, parts = batch_losses(self.model, triples, desirable, self.ref[idx], self.pad_id, self.beta,
                                     self.weights)
        loss = losses.mean()
        objective = loss + self.nll_coef * parts["desirable_nll"] if self.nll_coef else loss
        (objective / self.cfg.grad_accum).backward()
        self._stats = kto_stats(parts, desirable)
        return loss.detach()

    @torch.no_grad()
    def evaluate(self, max_batches: int | None, model=None) -> dict:
        """KTO loss, KL estimate and implicit rewards on the held-out examples, in their fixed batches; over
        them all, where they came from comparisons, also DPO's figures: how often the policy gives the
        chosen reply the higher log-probability, and the implicit-reward accuracy."""
        if not self.dev:
            return {}
        model = model or self.model
        batches = self.dev_data.batches[:max_batches] if max_batches else self.dev_data.batches
        n = len(self.dev)
        logps, rewards, losses, kls = torch.zeros(n), torch.zeros(n), [], []
        with eval_mode(model):
            for idx in batches:
                lo, pa = batch_losses(model, [self.dev[i] for i in idx], self.dev_data.labels[idx],
                                      self.dev_ref[idx], self.pad_id, self.beta, self.weights)
                logps[idx], rewards[idx] = pa["logps"].cpu(), pa["reward"].cpu()
                losses.append(lo)
                kls.append(float(pa["kl"]))
        seen = sum(batches, [])
        stats = kto_stats({"reward": rewards[seen], "kl": torch.tensor(sum(kls) / len(kls))},
                          self.dev_data.labels[seen])
        out = {"step": self.step, "val_loss": float(torch.cat(losses).mean()), "val_examples": len(seen),
               **{f"val_{k}".replace("reward_margin", "margin"): v for k, v in stats.items()}}
        if self.dev_data.pairs and len(seen) == n:
            c, r = (torch.tensor(x) for x in zip(*self.dev_data.pairs))
            out["val_accuracy"] = float((rewards[c] > rewards[r]).float().mean())
            out["val_policy_prefers_chosen"] = float((logps[c] > logps[r]).float().mean())
        return out


def unpaired_ids(records: list, ids: list) -> tuple[list[tuple[list[int], list[int]]], list[bool],
                                                    list[tuple[int, int]]]:
    """Examples (prompt ids, completion ids), labels and comparison rows from a split's records and their
    ids: comparisons ((prompt, chosen, rejected) ids) unpaired as `llmlab.rl.unpaired.unpair` does, rows 2k
    and 2k + 1; unpaired examples ((prompt, completion) ids) with their own labels and no comparisons."""
    if records and hasattr(records[0], "chosen"):
        examples = [x for p, c, r in ids for x in ((p, c), (p, r))]
        return examples, [k % 2 == 0 for k in range(len(examples))], [(2 * k, 2 * k + 1) for k in range(len(ids))]
    return list(ids), [e.label for e in records], []

