"""The reinforcement-learning loop (topic 78, with DAPO's and VAPO's changes of topics 82, 83, and
RLHF's PPO as in InstructGPT).

One step:

1. **Sample.** Draw `prompts_per_step` prompts of the task and answer each `group_size` times with the
   current policy (`rollout`). DAPO's dynamic sampling keeps only the groups whose rewards differ (a
   group all right or all wrong has advantage 0 and teaches nothing) and draws more prompts until the
   batch holds `prompts_per_step` such groups, or `max_draws` batches were drawn.
2. **Score.** The task's reward of each completion (1 for the right answer), or a reward model's score
   of it (`Task.score`), plus DAPO's soft overlong penalty when shaping is on. The sampling policy's
   token log-probabilities are kept (PPO's old policy), and the frozen reference model's when the KL
   term is on. With ``kl_penalty`` "reward"
   (PPO) every completion token's reward is ``-kl_coef * (log pi_old - log pi_ref)``, the score added
   at the last token (`kl_shaped_rewards`); with "loss" the reward is the score alone.
3. **Advantages.** GRPO and DAPO: each reward against its group (`group_advantages`), on every token.
   VAPO and PPO: GAE from the critic's values, with lambda = `lam_critic` for the value targets and
   `lam_policy` for the policy (PPO 0.95 both; VAPO 1 and a length-adaptive lambda: decoupled GAE).
4. **Update.** `ppo_epochs` passes over the batch in `minibatches` minibatches: the clipped surrogate
   (`policy_loss`, clip range ``[1 - clip_low, 1 + clip_high]``, token- or sequence-mean), plus
   ``kl_coef`` x the k3 KL to the reference (``kl_penalty`` "loss"), plus VAPO's ``lm_coef`` x NLL of
   the completions that earned the reward and the critic's value loss; DAPO's overlong filtering
   leaves truncated completions out of the policy loss. Gradient norms are clipped, policy and critic apart.

VAPO (and PPO, if asked) first runs `value_pretrain_steps` critic-only steps on completions of the
starting policy.
Dropout is off throughout (the model stays in eval mode): the ratio of new to old probabilities must
compare the same function.

Online DPO (`llmlab.rl.online_dpo.OnlineDPOTrainer`) is this loop with its own `prepare` (each prompt's
best and worst answer as a comparison, and the reference's log-probabilities of them) and `minibatch`
(the DPO loss): sampling, scoring, schedule, checkpoints and resume are these.

Exact resume works as in `llmlab.train.trainer`: what a step draws (prompts, samples, minibatch order)
comes from generators seeded by (seed, step), and checkpoints hold the policy, the critic and the
optimizer; a run resumed from a checkpoint reproduces the uninterrupted run's metrics and weights.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from llmlab.core.errors import InputError
from llmlab.core.io import JsonlAppender, write_jsonl
from llmlab.core.progress import progress
from llmlab.models.io import model_state, resolve_device
from llmlab.rl.advantages import (
    gae,
    group_advantages,
    informative_groups,
    kl_shaped_rewards,
    length_adaptive_lambda,
    terminal_rewards,
    whiten,
)
from llmlab.rl.config import RLConfig
from llmlab.rl.losses import aggregate, kl_k3, masked_mean, nll_loss, policy_loss, value_loss
from llmlab.rl.rewards import overlong_penalty
from llmlab.rl.rollout import Rollouts, completion_outputs, entropy, rollout, token_logprobs_of
from llmlab.rl.value import completion_values, explained_variance, make_critic, pretrain_targets
from llmlab.train.checkpoint import latest_checkpoint, load_checkpoint, resuming_from, save_checkpoint
from llmlab.train.schedule import SCHEDULES
from llmlab.train.trainer import StopFlag, build_optimizer, read_metrics, step_seed

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Task:
    """What the policy is trained on: prompt ids, and the reward of a completion (its ids without the
    closing ``<|end|>``) to prompt `i`, in [0, 1]; 1 counts as a right answer.

    With `score` (a learned reward model, `llmlab.rl.reward_model.RewardScorer`) the policy is trained
    on ``score(prompts, completions)`` instead, each completion's ids as sampled (its ``<|end|>``
    included when it ended), while `reward` still says which answers are right (the accuracy figures
    and VAPO's positive-example loss): what the reward model believes and what is true stay apart."""

    prompts: list[list[int]]
    reward: Callable[[int, list[int]], float]
    score: Callable[[list[list[int]], list[list[int]]], torch.Tensor] | None = None


@dataclass
class Batch:
    """A step's rollouts and everything the update needs, per row (B) or per token (B, T), on the device."""

    ro: Rollouts
    correct: torch.Tensor  # (B,) the task's reward
    scores: torch.Tensor  # (B,) reward the advantages see (with the overlong penalty when shaping)
    mask: torch.Tensor  # (B, T) completion tokens
    loss_mask: torch.Tensor  # (B, T) tokens in the policy loss (truncated rows out when filtering)
    old_logp: torch.Tensor  # (B, T) under the policy that sampled
    advantages: torch.Tensor  # (B, T)
    ref_logp: torch.Tensor | None = None  # (B, T) under the reference model (KL term)
    returns: torch.Tensor | None = None  # (B, T) the critic's targets (VAPO, PPO)

    def __len__(self) -> int:
        return len(self.ro)


class _Weights:
    """Policy and critic as one state dict (prefixed names), so one checkpoint holds both atomically."""

    def __init__(self, **models):
        self.models = {k: m for k, m in models.items() if m is not None}

    def state_dict(self) -> dict:
        return {f"{k}.{n}": v for k, m in self.models.items() for n, v in model_state(m).items()}

    def load_state_dict(self, state: dict, strict: bool = False) -> None:
        for k, m in self.models.items():
            m.load_state_dict({n[len(k) + 1:]: v for n, v in state.items() if n.startswith(k + ".")}, strict=False)


class RLTrainer:
    """Trains `policy` on `task` by `cfg.algo`, writing metrics and checkpoints under `run_dir`."""

    def __init__(self, policy, cfg: RLConfig, task: Task, end_id: int, pad_id: int, run_dir: str | Path):
        if not task.prompts:
            raise InputError("the task has no prompts")
        self.cfg, self.task, self.end_id, self.pad_id = cfg, task, end_id, pad_id
        self.device = resolve_device(cfg.train.device)
        self.policy = policy.to(self.device).eval()  # eval: no dropout (see the module docstring)
        # the reference and the critic start from the policy as given (a resume restores the policy after)
        self.ref = _frozen(copy.deepcopy(self.policy)) if cfg.uses_reference else None
        self.critic = make_critic(self.policy).eval() if cfg.uses_critic else None
        self.optimizer = build_optimizer(self.policy, cfg.train)
        for g in self.optimizer.param_groups:
            g["role"] = "policy"
        if self.critic is not None:
            for g in build_optimizer(self.critic, cfg.train).param_groups:
                self.optimizer.add_param_group({**g, "lr": cfg.value_lr, "role": "critic"})
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metrics = JsonlAppender(self.run_dir / "metrics.jsonl")
        self.step = 0  # policy steps done
        self.value_step = 0  # critic pretraining steps done (VAPO)
        self.train_seconds = 0.0
        self.wall_seconds = 0.0  # wall-clock time of earlier sessions, up to their last checkpoint
        self.started = time.perf_counter()  # this session's start (a pipeline may set an earlier one)

    def total_wall_seconds(self) -> float:
        """Wall-clock time of the whole run so far: earlier sessions and this one."""
        return self.wall_seconds + time.perf_counter() - self.started

    @property
    def iteration(self) -> int:
        """Steps of either kind done: the checkpoint's number and the metrics' "step"."""
        return self.value_step + self.step

    @property
    def total_steps(self) -> int:
        return (self.cfg.value_pretrain_steps or 0) + self.cfg.train.steps

    # --- checkpoints ------------------------------------------------------------------------------

    def save(self) -> Path:
        extra = {"step": self.step, "value_step": self.value_step, "train_seconds": self.train_seconds,
                 "wall_seconds": self.total_wall_seconds()}
        return save_checkpoint(self.ckpt_dir, self.iteration, _Weights(policy=self.policy, critic=self.critic),
                               self.optimizer, extra=extra, keep=self.cfg.train.keep_checkpoints)

    def maybe_resume(self) -> bool:
        """Restore the newest checkpoint if there is one; metrics logged after it are dropped (redone)."""
        ckpt = latest_checkpoint(self.ckpt_dir)
        if ckpt is not None:
            with resuming_from(ckpt):
                state = load_checkpoint(ckpt, _Weights(policy=self.policy, critic=self.critic), self.optimizer)
            self.step, self.value_step = state["extra"]["step"], state["extra"]["value_step"]
            self.train_seconds = state["extra"].get("train_seconds", 0.0)
            self.wall_seconds = state["extra"].get("wall_seconds", self.train_seconds)
            log.info("resumed from %s (step %d)", ckpt, self.iteration)
        path = self.metrics.path  # records after the checkpoint will be redone; a line cut short goes too
        if path.exists():
            write_jsonl(path, [r for r in read_metrics(path) if r["step"] <= self.iteration])
        return ckpt is not None

    # --- sampling and scoring ---------------------------------------------------------------------

    def _generators(self, stream: int) -> torch.Generator:
        seed = step_seed(self.cfg.train.seed, self.iteration, stream)
        return torch.Generator(device=self.device if stream == 1 else "cpu").manual_seed(seed)

    def draw(self, pick: torch.Generator, sample: torch.Generator) -> tuple[Rollouts, torch.Tensor, torch.Tensor]:
        """One batch of prompts answered `group_size` times: rollouts, task rewards (B,), shaped scores (B,)."""
        cfg, n = self.cfg, len(self.task.prompts)
        P = cfg.prompts_per_step
        idx = (torch.randperm(n, generator=pick)[:P] if n >= P else torch.randint(0, n, (P,), generator=pick)).tolist()
        ro = rollout(self.policy, [self.task.prompts[i] for i in idx], idx, cfg.group_size, cfg.max_new_tokens,
                     cfg.temperature, self.end_id, self.pad_id, sample, cfg.rollout_batch)
        correct = torch.tensor([float(self.task.reward(ro.source[b], ro.answer_ids(b, self.end_id)))
                                for b in range(len(ro))])
        if self.task.score is None:
            scores = correct.clone()
        else:
            scores = self.task.score(ro.prompts, ro.sampled_ids()).float().cpu()
        if cfg.overlong_shaping:
            scores = scores + overlong_penalty(ro.lengths, cfg.overlong_len, cfg.overlong_cache)
        if cfg.missing_eos_penalty:  # a reward model reads an unended answer at a token it never learned to score
            scores = scores - cfg.missing_eos_penalty * ro.truncated.float()
        return ro, correct, scores

    def collect(self) -> tuple[Rollouts, torch.Tensor, torch.Tensor, dict]:
        """This step's rollouts and rewards; with dynamic sampling only informative groups, drawing more
        prompt batches while fewer than prompts_per_step are kept (at most max_draws batches).

        The statistics returned describe the first batch drawn, all of it: the kept groups are a biased
        sample (a policy right on most prompts keeps mostly its failures and lucky guesses)."""
        cfg, G = self.cfg, self.cfg.group_size
        pick, sample = self._generators(2), self._generators(1)
        ro, correct, scores = self.draw(pick, sample)
        stats = _rollout_stats(ro, correct, scores)
        if not cfg.dynamic_sampling:
            return ro, correct, scores, {**stats, "draws": 1, "kept_groups": len(ro) // G}
        parts, draws, kept = [], 1, 0
        while True:
            groups = informative_groups(scores, G).nonzero()[:, 0][: cfg.prompts_per_step - kept]
            rows = (groups[:, None] * G + torch.arange(G)).reshape(-1)
            parts.append((ro.select(rows), correct[rows], scores[rows]))
            kept += len(groups)
            if kept >= cfg.prompts_per_step or draws >= cfg.max_draws:
                break
            ro, correct, scores = self.draw(pick, sample)
            draws += 1
        if kept < cfg.prompts_per_step:
            log.debug("dynamic sampling: %d of %d groups informative after %d draws", kept, cfg.prompts_per_step, draws)
        ro = Rollouts.cat([p[0] for p in parts], self.pad_id)
        return (ro, torch.cat([p[1] for p in parts]), torch.cat([p[2] for p in parts]),
                {**stats, "draws": draws, "kept_groups": kept})

    @torch.no_grad()
    def prepare(self, ro: Rollouts, correct: torch.Tensor, scores: torch.Tensor) -> tuple[Batch, dict]:
        """Old and reference log-probabilities, advantages (and the critic's targets) of the rollouts."""
        cfg, dev = self.cfg, self.device
        mask = ro.mask.to(dev)
        logits = completion_outputs(self.policy, ro.prompts, ro.tokens, ro.mask)  # (B, T, V)
        old_logp = token_logprobs_of(logits, ro.tokens, cfg.temperature) * mask
        stats = {"entropy": entropy(logits, mask, cfg.temperature)}
        loss_mask = mask * (~ro.truncated.to(dev))[:, None] if cfg.overlong_filter else mask
        b = Batch(ro, correct.to(dev), scores.to(dev), mask, loss_mask, old_logp, torch.zeros_like(mask))
        if self.ref is not None:
            b.ref_logp = token_logprobs_of(completion_outputs(self.ref, ro.prompts, ro.tokens, ro.mask), ro.tokens,
                                           cfg.temperature) * mask
            stats["kl_ref"] = float(masked_mean(kl_k3(old_logp, b.ref_logp), mask))
        if self.critic is None:
            b.advantages = group_advantages(b.scores, cfg.group_size, cfg.scale_advantages)[:, None] * mask
            return b, stats
        values = completion_values(self.critic, ro.prompts, ro.tokens, ro.mask)  # (B, T)
        rewards = terminal_rewards(b.scores, mask)
        if self.ref is not None and cfg.kl_penalty == "reward":
            rewards = kl_shaped_rewards(b.scores, old_logp, b.ref_logp, mask, cfg.kl_coef)
            penalty = cfg.kl_coef * ((old_logp - b.ref_logp) * mask).sum(dim=1)  # (B,) each completion's charge
            stats["kl_penalty"] = float(penalty.mean())
        b.returns = gae(rewards, values, mask, cfg.gamma, cfg.lam_critic)[1]
        lam = (torch.full((len(ro),), cfg.lam_policy, device=dev) if cfg.lam_policy is not None
               else length_adaptive_lambda(ro.lengths, cfg.lam_alpha).to(dev))  # (B,)
        b.advantages = gae(rewards, values, mask, cfg.gamma, lam)[0]
        if cfg.whiten_advantages:
            b.advantages = whiten(b.advantages, mask)
        stats.update(explained_variance=explained_variance(values, b.returns, mask), lam_actor=float(lam.mean()))
        return b, stats

    # --- updates ----------------------------------------------------------------------------------

    def _set_lr(self, policy_lr: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = policy_lr if g["role"] == "policy" else self.cfg.value_lr * policy_lr / self.cfg.train.lr

    def _apply(self, loss: torch.Tensor) -> float:
        """Backward, clip policy and critic gradients apart, step; the policy's gradient norm (0 when it has
        none). Parameters the loss does not reach keep no gradient, and the optimizer leaves them alone."""
        if not torch.isfinite(loss):
            raise InputError(f"training diverged: the loss is {float(loss)} at step {self.iteration}; lower the "
                             "learning rate and start over with --fresh")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        limit = self.cfg.train.grad_clip or float("inf")
        norms = [float(torch.nn.utils.clip_grad_norm_([p for p in m.parameters() if p.grad is not None], limit))
                 for m in (self.policy, self.critic) if m is not None]
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norms[0]

    def minibatch(self, b: Batch, rows: torch.Tensor, policy: bool = True) -> dict:
        """One optimizer step on rows of the batch: the policy's losses (unless only the critic trains)
        and the critic's value loss; their statistics.

        A loss with no tokens in these rows (the overlong filter can leave a minibatch without any) is left
        out with its statistics, not counted as 0, and the model it trains gets no gradient: the optimizer
        skips a parameter without one, where a zero gradient would still move it on AdamW's momentum. Rows
        with no token in any loss take no step at all and give no statistics ({})."""
        cfg, ro = self.cfg, b.ro.select(rows)
        rows = rows.to(self.device)
        lmask = b.loss_mask[rows]
        positive = b.mask[rows] * (b.correct[rows] >= 1)[:, None] if cfg.lm_coef else torch.zeros_like(lmask)
        terms, out = [], {}
        if policy and (lmask.any() or positive.any()):
            logp = token_logprobs_of(completion_outputs(self.policy, ro.prompts, ro.tokens, ro.mask), ro.tokens,
                                     cfg.temperature) * b.mask[rows]
            if lmask.any():
                loss, out = policy_loss(logp, b.old_logp[rows], b.advantages[rows], lmask, cfg.clip_low,
                                        cfg.clip_high, cfg.aggregation)
                out["policy_loss"] = float(loss.detach())
                terms.append(loss)
                if self.ref is not None and cfg.kl_penalty == "loss":
                    terms.append(cfg.kl_coef * aggregate(kl_k3(logp, b.ref_logp[rows]), lmask, cfg.aggregation))
            if positive.any():
                terms.append(cfg.lm_coef * nll_loss(logp, positive))
        trains_policy = bool(terms)
        if self.critic is not None and b.mask[rows].any():
            values = completion_values(self.critic, ro.prompts, ro.tokens, ro.mask)
            vl = value_loss(values, b.returns[rows], b.mask[rows])
            terms.append(vl)
            out["value_loss"] = float(vl.detach())
        if not terms:
            return {}
        norm = self._apply(sum(terms[1:], terms[0]))
        if trains_policy:  # the policy's gradient norm; none where it had no gradient
            out["grad_norm"] = norm
        return out

    def update(self, b: Batch, policy: bool = True) -> dict:
        """`ppo_epochs` passes over the batch in `minibatches` minibatches; each statistic's mean over the
        minibatches that gave it (a minibatch with no token in a loss gives none of its statistics)."""
        g = self._generators(3)
        stats: list[dict] = []
        for _ in range(self.cfg.ppo_epochs):
            for rows in torch.randperm(len(b), generator=g).chunk(self.cfg.minibatches):
                stats.append(self.minibatch(b, rows, policy))
        keys = dict.fromkeys(k for s in stats for k in s)
        return {k: sum(s[k] for s in stats if k in s) / sum(k in s for s in stats) for k in keys}

    # --- steps ------------------------------------------------------------------------------------

    def policy_step(self) -> dict:
        cfg = self.cfg
        lr = SCHEDULES[cfg.train.schedule](self.step, cfg.train.lr, cfg.train.warmup_steps, cfg.train.steps,
                                           cfg.train.min_lr)
        self._set_lr(lr)
        ro, correct, scores, info = self.collect()
        record = {"phase": "policy", **info, "lr": lr, "trained_samples": len(ro)}
        if len(ro):
            b, stats = self.prepare(ro, correct, scores)
            record.update(**stats, **(self.update(b) if len(b) else {}))
        self.step += 1
        return record

    def value_pretrain_step(self) -> dict:
        """A critic-only step on the starting policy's completions, toward their Monte-Carlo returns."""
        cfg = self.cfg
        for g in self.optimizer.param_groups:
            g["lr"] = cfg.value_lr
        ro, correct, scores = self.draw(self._generators(2), self._generators(1))
        mask = ro.mask.to(self.device)
        with torch.no_grad():
            values = completion_values(self.critic, ro.prompts, ro.tokens, ro.mask)
        returns = pretrain_targets(terminal_rewards(scores.to(self.device), mask), mask, cfg.gamma)
        b = Batch(ro, correct.to(self.device), scores.to(self.device), mask, mask, torch.zeros_like(mask),
                  torch.zeros_like(mask), returns=returns)
        record = {"phase": "value", **_rollout_stats(ro, correct, scores),
                  "explained_variance": explained_variance(values, returns, mask)}
        record.update(self.update(b, policy=False))
        self.value_step += 1
        return record

    def fit(self) -> dict:
        """Train to the configured steps (or until interrupted / the time limit); the last record."""
        cfg = self.cfg.train
        flag, last, session = StopFlag(), {}, 0.0
        bar = progress(total=self.total_steps, initial=self.iteration, desc=self.cfg.algo, unit="step")
        with flag.catching_sigint():
            while self.iteration < self.total_steps:
                t0 = time.perf_counter()
                torch.manual_seed(step_seed(cfg.seed, self.iteration, 0))
                pre = self.value_step < (self.cfg.value_pretrain_steps or 0)
                last = self.value_pretrain_step() if pre else self.policy_step()
                took = time.perf_counter() - t0
                self.train_seconds += took
                session += took
                last = {"step": self.iteration, **last, "seconds": round(took, 3)}
                if self.iteration % cfg.log_every == 0 or self.iteration == self.total_steps:
                    self.metrics.write(last)
                bar.update(1)
                bar.set_postfix(reward=f"{last.get('reward', float('nan')):.3f}")
                if self.iteration < self.total_steps and (flag.stop or cfg.out_of_time(session)):
                    why = "interrupted" if flag.stop else "time limit"
                    log.warning("stopping at step %d (%s)", self.iteration, why)
                    break
                if cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0:
                    self.save()
        bar.close()
        self.save()
        if flag.stop:
            raise KeyboardInterrupt
        return last


def _rollout_stats(ro: Rollouts, correct: torch.Tensor, scores: torch.Tensor) -> dict:
    return {"reward": float(scores.mean()), "accuracy": float((correct >= 1).float().mean()),
            "response_length": float(ro.lengths.float().mean()), "truncated": float(ro.truncated.float().mean()),
            "samples": len(ro)}


def _frozen(model):
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()

