"""The training loop: AdamW, warmup + cosine, clipping, accumulation, periodic evaluation, JSONL
metrics, progress, and checkpoints that resume exactly.

Exact resume rests on one idea: everything a step consumes is a function of (seed, step). The batch
for step s is drawn with a generator seeded from (seed, s), the learning rate is `schedule(s)`, and
torch's RNG (dropout) is seeded from (seed, s, stream) as the step starts (`step_seed`; the stream is
0 in one process, each data-parallel replica and pipeline stage draws its own masks). A run resumed at step s therefore
sees the same batches, rates and random numbers as one that never stopped.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import math
import os
import signal
import threading
import time
from pathlib import Path

import torch

from llmlab.core.errors import InputError
from llmlab.core.io import JsonlAppender, write_jsonl
from llmlab.core.modes import eval_mode
from llmlab.core.progress import progress
from llmlab.models.io import resolve_device
from llmlab.train.checkpoint import check_layout, latest_checkpoint, load_checkpoint, resuming_from, save_checkpoint
from llmlab.train.config import TrainConfig
from llmlab.train.distill import distillation_loss
from llmlab.train.objectives import causal_lm_loss, moe_aux_loss
from llmlab.train.optim import OPTIMIZERS
from llmlab.train.precision import DynamicLossScaler, warn_if_cpu_bf16_emulated
from llmlab.train.schedule import SCHEDULES

log = logging.getLogger(__name__)


def get_batch(tokens: torch.Tensor, batch_size: int, seq_len: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows of a 1-D token stream: inputs (B, T) and next-token targets (B, T)."""
    n = tokens.numel() - seq_len - 1
    if n < 1:
        raise InputError(f"the token stream ({tokens.numel()} tokens) is shorter than seq_len + 2 = {seq_len + 2}")
    g = torch.Generator().manual_seed(seed)
    starts = torch.randint(0, n + 1, (batch_size,), generator=g)
    idx = starts[:, None] + torch.arange(seq_len + 1)  # (B, T+1)
    window = tokens[idx]
    return window[:, :-1], window[:, 1:]


def _record(line: str) -> dict | None:
    """A metrics line's record; None for a line cut short (a session killed while appending it).

    >>> _record('{"step": 3, "loss": 2.5}'), _record('{"step": 4, "lo')
    ({'step': 3, 'loss': 2.5}, None)
    """
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return record if isinstance(record, dict) and "step" in record else None


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """The records of a run's metrics file (none if there is no file yet), without a line cut short: a
    session killed while appending leaves one, and resuming drops it (`Trainer.restore`), so reading
    before resuming must not stop at it."""
    p = Path(path)
    if not p.exists():
        return []
    return [r for ln in p.read_text(encoding="utf-8").splitlines() if ln and (r := _record(ln)) is not None]


def perplexity(loss: float) -> float:
    """exp(loss), capped at exp(700) where it would overflow (a diverged model).

    >>> perplexity(0.0), perplexity(1e6) == perplexity(700.0)
    (1.0, True)
    """
    return math.exp(min(loss, 700.0))


def step_seed(seed: int, step: int, stream: int = 0) -> int:
    """Seed of torch's RNG for training step `step` of dropout stream `stream` (a 63-bit hash): 0 in one
    process, one per data-parallel replica and pipeline stage in a distributed run.

    >>> step_seed(0, 5) == step_seed(0, 5), step_seed(0, 5) == step_seed(0, 6), step_seed(0, 5) == step_seed(0, 5, 1)
    (True, False, False)
    """
    digest = hashlib.blake2b(f"{seed}/{step}/{stream}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


@torch.no_grad()
def evaluate_loss(model, tokens: torch.Tensor, seq_len: int, batch_size: int = 16,
                  max_batches: int | None = None) -> tuple[float, int]:
    """Mean next-token NLL (nats) over consecutive windows of `tokens`, and the tokens scored.

    Every target token is scored once; the first token of each window has no context beyond it.
    """
    device = next(model.parameters()).device
    total, count = 0.0, 0
    starts = list(range(0, max(tokens.numel() - 1, 0), seq_len))
    if max_batches is not None:
        starts = starts[: max_batches * batch_size]
    with eval_mode(model):
        for i in range(0, len(starts), batch_size):
            for s in starts[i:i + batch_size]:  # windows can be ragged at the end; score one by one
                x = tokens[s:s + seq_len][None].to(device)
                y = tokens[s + 1:s + seq_len + 1][None].to(device)
                x = x[:, : y.shape[1]]
                total += float(causal_lm_loss(model(x), y, reduction="sum"))
                count += y.numel()
    if count == 0:
        raise InputError("validation data is too short to evaluate (need at least 2 tokens)")
    return total / count, count


class StopFlag:
    """Set by Ctrl-C so the loop can stop at a step boundary and save, instead of dying mid-step."""

    def __init__(self):
        self.stop = False

    @contextlib.contextmanager
    def catching_sigint(self):
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def handler(signum, frame):
            if self.stop:  # second Ctrl-C: give up at once
                raise KeyboardInterrupt
            self.stop = True
            log.warning("interrupt: finishing this step, saving a checkpoint, then stopping")

        old = signal.signal(signal.SIGINT, handler)
        try:
            yield
        finally:
            signal.signal(signal.SIGINT, old)


def build_optimizer(model, cfg: TrainConfig) -> torch.optim.Optimizer:
    """The configured optimizer from `llmlab.train.optim`; norms and biases get no weight decay."""
    decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    name, cls = cfg.optimizer, OPTIMIZERS[cfg.optimizer]
    if name in ("adam", "adamw"):
        return cls(groups, lr=cfg.lr, betas=(cfg.beta1, cfg.beta2))
    if name == "rmsprop":
        return cls(groups, lr=cfg.lr, alpha=cfg.beta2)
    if name in ("momentum", "nesterov"):
        return cls(groups, lr=cfg.lr, momentum=cfg.beta1, nesterov=name == "nesterov")
    return cls(groups, lr=cfg.lr)


class Trainer:
    """Trains `model` on a token stream, writing metrics and checkpoints under `run_dir`.

    If `run_dir` holds a checkpoint, training resumes from it. A subclass may train on other batches by
    overriding `batch` (and `micro_step`, which takes what `batch` returns), passing train_tokens=None.
    """

    counts_tokens = False  # True: micro-steps `count` their tokens (examples of their own lengths)
    # False: `fit` trains the model in eval mode, dropout off, as TRL trains DPO, KTO and reward models: their
    # losses compare log-probabilities with a reference computed without dropout, or scores of two answers, and
    # random masks would make the policy differ from its reference before any step. Eval mode also lifts MoE
    # capacity limits (as in the reference's forward) and turns gradient checkpointing off (so it is refused).
    dropout_in_training = True
    _counted = 0

    def __init__(self, model, cfg: TrainConfig, train_tokens: torch.Tensor | None, val_tokens: torch.Tensor | None,
                 run_dir: str | Path, teacher=None):
        if cfg.seq_len > model.config.max_seq_len:
            raise InputError(f"seq_len {cfg.seq_len} exceeds the model's max_seq_len {model.config.max_seq_len}")
        if cfg.kd_alpha and teacher is None:
            raise InputError(f"kd_alpha {cfg.kd_alpha} weighs a distillation term, which needs a teacher model")
        if cfg.grad_checkpoint and not self.dropout_in_training:
            raise InputError(f"{type(self).__name__} trains in eval mode (no dropout), where the model does not "
                             "checkpoint activations: leave grad_checkpoint off")
        self.cfg = cfg
        self.device = resolve_device(cfg.device)
        self.model = model.to(self.device)
        # frozen, never saved in checkpoints (a resumed run loads it again); see llmlab.train.distill
        self.teacher = None if teacher is None else teacher.to(self.device).eval().requires_grad_(False)
        self._kd_parts: list[tuple[float, float]] = []  # (ce, kd) of this step's micro-batches
        # None when a subclass's `batch` draws the data itself (supervised fine-tuning's padded conversations)
        self.train_tokens = None if train_tokens is None else train_tokens.long()
        self.val_tokens = None if val_tokens is None else val_tokens.long()
        # checked here, before a pipeline touches the run folder, not when the first batch or evaluation needs them
        if self.train_tokens is not None and self.train_tokens.numel() < cfg.seq_len + 2:
            raise InputError(f"the training token stream ({self.train_tokens.numel()} tokens) is shorter than "
                             f"seq_len + 2 = {cfg.seq_len + 2}: use more text or a shorter seq_len")
        if self.val_tokens is not None and self.val_tokens.numel() < 2:
            raise InputError(f"the validation token stream ({self.val_tokens.numel()} tokens) is too short to "
                             "evaluate: it needs at least 2")
        self.run_dir = Path(run_dir)
        self.ckpt_dir = self.run_dir / "checkpoints"
        self.metrics = JsonlAppender(self.run_dir / "metrics.jsonl")
        self.model.gradient_checkpointing = cfg.grad_checkpoint
        # the compiled wrapper shares parameters with `model`; checkpoints save the plain module
        self.forward = torch.compile(self.model) if cfg.compile else self.model
        self.optimizer = build_optimizer(self.model, cfg)
        self.scaler = DynamicLossScaler() if cfg.precision == "fp16" else None
        if cfg.precision == "bf16" and self.device.type == "cpu":
            warn_if_cpu_bf16_emulated()
        self.step = 0
        self.train_seconds = 0.0  # accumulated over resumed sessions
        self.tokens_seen = 0  # tokens trained on, over resumed sessions (`step_tokens` each step)
        self.session_seconds = 0.0  # of this fit() only: max_minutes limits each invocation
        self.wall_seconds = 0.0  # wall-clock time of earlier sessions, up to their last checkpoint
        self.started = time.perf_counter()  # this session's start (a pipeline may set an earlier one)
        self.stopped_early = False
        self.writes = True  # logs metrics and shows progress (in a distributed run, rank 0 only)
        self.dropout_stream = 0  # `step_seed`'s stream: each data-parallel replica and pipeline stage has its own

    def maybe_resume(self) -> bool:
        check_layout(self.run_dir / "checkpoints", tp=1, pp=1)  # a sharded run's checkpoints: refuse
        ckpt = latest_checkpoint(self.ckpt_dir)
        if ckpt is None:
            if self.writes:  # records of a session killed before its first checkpoint: all redone
                self._truncate_metrics(0)
            return False
        self.restore(ckpt)
        return True

    def restore(self, ckpt: Path) -> None:
        """Weights, optimizer, RNG and loop state from checkpoint `ckpt`; metrics logged after it are dropped."""
        with resuming_from(ckpt):  # a bad checkpoint's error says what deleting it resumes from
            state = load_checkpoint(ckpt, self.model, self.optimizer)
        self.step = state["step"]
        self.train_seconds = state["extra"].get("train_seconds", 0.0)
        # checkpoints written before the count was kept: every step a full batch of windows
        self.tokens_seen = state["extra"].get("tokens_seen", self.step * self.window_tokens())
        self.wall_seconds = state["extra"].get("wall_seconds", self.train_seconds)
        if self.scaler is not None and "scaler" in state["extra"]:
            self.scaler.load_state_dict(state["extra"]["scaler"])
        if self.writes:
            self._truncate_metrics(self.step)
        log.info("resumed from %s (step %d)", ckpt, self.step)

    def _truncate_metrics(self, step: int) -> None:
        """Drop records a previous session logged after its last checkpoint (they will be redone), and a
        last line a killed session left half written."""
        path = self.metrics.path
        if path.exists():
            write_jsonl(path, [r for r in read_metrics(path) if r["step"] <= step])

    def train_step(self) -> dict:
        """One optimizer step: set the rate, forward and backward every micro-batch, clip, step."""
        cfg = self.cfg
        lr = SCHEDULES[cfg.schedule](self.step, cfg.lr, cfg.warmup_steps, cfg.steps, cfg.min_lr)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        torch.manual_seed(step_seed(cfg.seed, self.step, self.dropout_stream))
        self._kd_parts.clear()
        loss = self.forward_backward()
        params = [p for p in self.model.parameters() if p.grad is not None]
        overflow = self.scaler.unscale_(params) if self.scaler else False
        norm = self.clip(params)
        if not overflow:
            self.optimizer.step()
        if self.scaler:
            self.scaler.update(overflow)
        self.optimizer.zero_grad(set_to_none=True)
        self.step += 1
        self.tokens_seen += self.step_tokens()
        record = {"step": self.step, "loss": loss, "lr": lr, "grad_norm": norm, "tokens": self.tokens_seen}
        if self._kd_parts:  # a distilling step: the mean data loss and KL over its micro-batches
            record.update(ce=sum(c for c, _ in self._kd_parts) / len(self._kd_parts),
                          kd=sum(k for _, k in self._kd_parts) / len(self._kd_parts))
        if self.scaler:
            record.update(loss_scale=self.scaler.scale, skipped=overflow)
        return record

    def batch(self, micro: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Micro-batch `micro` of this step: inputs and targets (B, T), a function of (seed, step, micro)."""
        cfg = self.cfg
        x, y = get_batch(self.train_tokens, cfg.batch_size, cfg.seq_len,
                         seed=(cfg.seed * 1_000_003 + self.step) * 64 + micro)
        return x.to(self.device), y.to(self.device)

    def micro_step(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Forward and backward of one micro-batch, its gradient scaled by 1 / grad_accum; its loss."""
        with self._autocast():
            logits = self.forward(x)
        loss = causal_lm_loss(logits, y) if self.teacher is None else self._distill(x, logits, y)
        aux = moe_aux_loss(self.model)
        objective = (loss if aux is None else loss + aux) / self.cfg.grad_accum
        (self.scaler.scale_loss(objective) if self.scaler else objective).backward()
        return loss.detach()

    def _distill(self, x: torch.Tensor, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The distillation objective of one micro-batch against the teacher's logits; its parts are kept
        for the step's record."""
        with torch.no_grad(), self._autocast():
            teacher_logits = self.teacher(x)  # (B, T, V), eval mode: no dropout, no RNG drawn
        loss, ce, kd = distillation_loss(logits, teacher_logits, y, self.cfg.kd_alpha, self.cfg.kd_temperature)
        self._kd_parts.append((float(ce.detach()), float(kd.detach())))
        return loss

    def window_tokens(self) -> int:
        """A step's tokens when it is `batch_size` x `grad_accum` windows of `seq_len` (pretraining)."""
        return self.cfg.batch_size * self.cfg.grad_accum * self.cfg.seq_len

    def step_tokens(self) -> int:
        """The tokens the step just taken trained on: its windows, or for trainers on examples of their own
        lengths (SFT, reward model, DPO: `counts_tokens`) what their micro-steps `count`ed."""
        if not self.counts_tokens:
            return self.window_tokens()
        n, self._counted = self._counted, 0
        return n

    def count(self, tokens: int) -> None:
        """Add a micro-batch's tokens to this step's (trainers with `counts_tokens`)."""
        self._counted += int(tokens)

    def forward_backward(self) -> float:
        """Accumulate the step's gradients; return its mean loss."""
        return sum(float(self.micro_step(*self.batch(m))) for m in range(self.cfg.grad_accum)) / self.cfg.grad_accum

    def clip(self, params: list[torch.Tensor]) -> float:
        """Clip the global gradient norm to grad_clip; return the norm before clipping."""
        limit = self.cfg.grad_clip if self.cfg.grad_clip > 0 else float("inf")
        return float(torch.nn.utils.clip_grad_norm_(params, limit))

    def _autocast(self):
        if self.cfg.precision == "fp32":
            return contextlib.nullcontext()
        dtype = torch.bfloat16 if self.cfg.precision == "bf16" else torch.float16
        return torch.autocast(self.device.type, dtype=dtype)

    def evaluate(self, max_batches: int | None, model=None) -> dict:
        """Validation loss and perplexity of `model` (default: the one training)."""
        if self.val_tokens is None:
            return {}
        loss, n = evaluate_loss(model or self.model, self.val_tokens, self.cfg.seq_len, self.cfg.batch_size,
                                max_batches)
        return {"step": self.step, "val_loss": loss, "val_ppl": perplexity(loss), "val_tokens": n}

    def checkpoint_extra(self) -> dict:
        """Loop state saved beside the weights (JSON)."""
        extra = {"train_seconds": self.train_seconds, "wall_seconds": self.total_wall_seconds(),
                 "tokens_seen": self.tokens_seen}
        if self.scaler is not None:
            extra["scaler"] = self.scaler.state_dict()
        return extra

    def total_wall_seconds(self) -> float:
        """Wall-clock time of the whole run so far: earlier sessions and this one."""
        return self.wall_seconds + time.perf_counter() - self.started

    def save(self, keep: int | None = None) -> Path:
        """Checkpoint this step, keeping the newest `keep` (default: the config's keep_checkpoints; 0 = all)."""
        keep = self.cfg.keep_checkpoints if keep is None else keep
        return save_checkpoint(self.ckpt_dir, self.step, self.model, self.optimizer, extra=self.checkpoint_extra(),
                               keep=keep)

    def should_stop(self, interrupted: bool) -> str:
        """Why to stop after this step ("" to go on): an interrupt, or the time limit."""
        if interrupted:
            return "interrupted"
        if self.cfg.out_of_time(self.session_seconds):
            return "time limit"
        return ""

    def fit(self) -> dict:
        """Train to `cfg.steps` (or until stopped); return the last train and eval records."""
        cfg = self.cfg
        self.model.train(self.dropout_in_training)
        flag = StopFlag()
        last, last_eval = {}, {}
        self.session_seconds = 0.0
        bar = progress(total=cfg.steps, initial=self.step, desc="train", unit="step", disable=not self.writes)
        with flag.catching_sigint():
            while self.step < cfg.steps:
                t0, seen = time.perf_counter(), self.tokens_seen
                last = self.train_step()
                if not math.isfinite(last["loss"]):  # nothing after this is worth computing or saving
                    raise InputError(f"training diverged: the loss is {last['loss']} at step {self.step}; "
                                     "lower the learning rate (or the init std) and start over with --fresh")
                self.train_seconds += time.perf_counter() - t0
                self.session_seconds += time.perf_counter() - t0
                last.update(elapsed_s=round(self.train_seconds, 3),
                            tok_per_s=round((self.tokens_seen - seen) / max(time.perf_counter() - t0, 1e-9), 1))
                bar.update(1)
                bar.set_postfix(loss=f"{last['loss']:.3f}", lr=f"{last['lr']:.2e}")
                if self.writes and (self.step % cfg.log_every == 0 or self.step == cfg.steps):
                    self.metrics.write(last)
                if cfg.eval_every and self.step % cfg.eval_every == 0 and self.step < cfg.steps:
                    last_eval = self.evaluate(cfg.eval_batches)
                    if last_eval and self.writes:
                        self.metrics.write(last_eval)
                        log.info("step %d: val loss %.4f", self.step, last_eval["val_loss"])
                why = self.should_stop(flag.stop) if self.step < cfg.steps else ""  # the last step ends it anyway
                if why:
                    self.stopped_early = True
                    log.warning("stopping at step %d (%s)", self.step, why)
                    break
                if cfg.checkpoint_every and self.step % cfg.checkpoint_every == 0:
                    self.save()
        bar.close()
        self.save()
        if flag.stop:
            raise KeyboardInterrupt
        return {"train": last, "eval": last_eval, "stopped_early": self.stopped_early}
