"""Pipeline parallelism (topic 49): the decoder's layers split into contiguous stages, one per rank.

Stage 0 also holds the token embedding, the last stage the final norm, the output head and the loss.
A batch is cut into m micro-batches; activations travel forward and their gradients backward between
neighbouring stages with point-to-point send/recv. Two schedules of the same work:

- GPipe: every stage runs the m forwards, then the m backwards. Each stage keeps the activations of
  all m micro-batches until their backward: memory grows with m.
- 1F1B: stage s runs p - s - 1 warm-up forwards, then alternates one forward and one backward, then
  drains the remaining backwards. A micro-batch's activations are freed as soon as its backward has
  run, so at most p - s (<= p) are held at once, whatever m is: that is why 1F1B is preferred.

Both leave the same bubble: with p stages of equal cost, each stage idles while the pipeline fills
and drains, a fraction (p - 1) / (m + p - 1) of the step (`bubble_fraction_theory`). `pipeline_step`
records a timeline of every forward and backward per rank, so `bubble_fraction` measures it.

Tied embeddings: stage 0's embedding and the last stage's head are separate copies of one matrix;
after the backward the two stages exchange and add their gradients (the tied weight's gradient is the
sum), so both copies stay equal under any deterministic optimizer.

Use (every rank of `group` the same batch; `group` may be one pipeline of a larger mesh):

    stage = PipelineStage(CausalLM(cfg), dist.get_rank(group), dist.get_world_size(group))
    result = pipeline_step(stage, idx, targets, n_micro=8, schedule="1f1b", group=group)
    optimizer.step()  # over stage.parameters()
"""

from __future__ import annotations

import itertools
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn

from llmlab.core.errors import InputError
from llmlab.dist.planner import bubble_fraction as bubble_fraction_theory  # noqa: F401  (p-1)/(m+p-1), re-exported
from llmlab.dist.planner import stage_layers
from llmlab.dist.rules import SCHEDULES, check_pipeline
from llmlab.models.decoder import embed, position_inputs
from llmlab.train.objectives import causal_lm_loss
_TIED_TAG = 1 << 20  # p2p tag of the tied-embedding gradient exchange (micro-batch tags are below it)


# ---- schedule arithmetic (pure Python) ------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One forward ("F") or backward ("B") of micro-batch `micro`, in seconds from the step's start."""

    kind: str
    micro: int
    start: float
    end: float


def stage_bounds(n_layer: int, p: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) layer ranges of p stages (`planner.stage_layers`: the first stages take one
    extra when uneven).

    >>> stage_bounds(5, 2)
    [(0, 3), (3, 5)]
    """
    if not 1 <= p <= n_layer:
        raise InputError(f"pipeline stages must be in [1, n_layer={n_layer}], got {p}")
    ends = list(itertools.accumulate(stage_layers(n_layer, p)))
    return list(zip([0, *ends[:-1]], ends))


def schedule_ops(schedule: str, p: int, stage: int, m: int) -> list[tuple[str, int]]:
    """The order in which `stage` runs the forwards and backwards of m micro-batches.

    >>> schedule_ops("gpipe", 2, 0, 2)
    [('F', 0), ('F', 1), ('B', 0), ('B', 1)]
    >>> schedule_ops("1f1b", 2, 0, 3)
    [('F', 0), ('F', 1), ('B', 0), ('F', 2), ('B', 1), ('B', 2)]
    """
    if schedule not in SCHEDULES:
        raise InputError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    if schedule == "gpipe":
        return [("F", i) for i in range(m)] + [("B", i) for i in range(m)]
    warmup = min(p - stage - 1, m)
    ops = [("F", i) for i in range(warmup)]
    for i in range(m - warmup):  # steady state: one forward, one backward
        ops += [("F", warmup + i), ("B", i)]
    return ops + [("B", i) for i in range(m - warmup, m)]


def peak_in_flight(ops: list[tuple[str, int]]) -> int:
    """Most micro-batches whose activations are held at once (forward run, backward not yet).

    >>> peak_in_flight(schedule_ops("gpipe", 4, 0, 8)), peak_in_flight(schedule_ops("1f1b", 4, 0, 8))
    (8, 4)
    """
    held = peak = 0
    for kind, _ in ops:
        held += 1 if kind == "F" else -1
        peak = max(peak, held)
    return peak


def simulate(schedule: str, p: int, m: int, t_f: float = 1.0, t_b: float = 2.0) -> list[list[Event]]:
    """Ideal timelines (one per stage) with forwards costing t_f, backwards t_b and free communication.

    F(s, i) waits for F(s-1, i); B(s, i) for B(s+1, i); each stage runs its ops in schedule order.
    """
    ops = [schedule_ops(schedule, p, s, m) for s in range(p)]
    done: dict[tuple[str, int, int], float] = {}
    free, nxt = [0.0] * p, [0] * p
    timelines: list[list[Event]] = [[] for _ in range(p)]
    while any(nxt[s] < len(ops[s]) for s in range(p)):
        progressed = False
        for s in range(p):
            if nxt[s] == len(ops[s]):
                continue
            kind, i = ops[s][nxt[s]]
            dep = ("F", s - 1, i) if kind == "F" and s > 0 else ("B", s + 1, i) if kind == "B" and s < p - 1 else None
            if dep is not None and dep not in done:
                continue
            start = max(free[s], done[dep] if dep else 0.0)
            free[s] = done[(kind, s, i)] = start + (t_f if kind == "F" else t_b)
            timelines[s].append(Event(kind, i, start, free[s]))
            nxt[s], progressed = nxt[s] + 1, True
        assert progressed, "schedule deadlocked"
    return timelines


def bubble_fraction(timelines: list[list[Event]], step_times: list[float] | None = None) -> float:
    """Measured idle fraction: 1 - (time spent computing) / (time the stages were in the step).

    `step_times[r]`: rank r's wall time of the step (`PipelineResult.step_time`); ranks' clocks are
    not compared, each measures its own window. None: every stage's window is the last end (a shared
    clock, as in `simulate`).

    >>> round(bubble_fraction(simulate("1f1b", p=4, m=8)), 4) == round(bubble_fraction_theory(4, 8), 4)
    True
    """
    if step_times is None:
        step_times = [max(e.end for tl in timelines for e in tl)] * len(timelines)
    busy = sum(e.end - e.start for tl in timelines for e in tl)
    return 1 - busy / sum(step_times)


# ---- stages and the executor (torch.distributed) ---------------------------------------------------


def _group_or_world(group):
    return dist.group.WORLD if group is None else group


class PipelineStage(nn.Module):
    """Layers [start, end) of a `CausalLM` (with the embedding on stage 0, norm + head on the last).

    Every rank builds the whole model (same seed or weights) and keeps its stage's modules; with tied
    embeddings the last stage holds its own copy of the matrix (see the module docstring).
    """

    def __init__(self, model: nn.Module, stage: int, n_stages: int):
        super().__init__()
        cfg = model.config
        check_pipeline(cfg, n_stages)
        if not 0 <= stage < n_stages:
            raise InputError(f"stage must be in [0, {n_stages}), got {stage}")
        self.config, self.stage, self.n_stages = cfg, stage, n_stages
        self.first, self.last = stage == 0, stage == n_stages - 1
        self.start, end = stage_bounds(cfg.n_layer, n_stages)[stage]
        self.layers = nn.ModuleList(model.layers[self.start:end])
        if cfg.position == "rope":
            self.rope = model.rope  # buffers only: every stage rotates its own queries and keys
        if self.first:
            self.embed_tokens = model.embed_tokens
            if cfg.position in ("learned", "sinusoidal"):
                self.embed_positions = model.embed_positions
        self.tied_copy = cfg.tie_embeddings and n_stages > 1 and (self.first or self.last)
        if self.last:
            self.norm, self.lm_head = model.norm, model.lm_head
            if self.tied_copy:  # untie: the head's own copy; gradients are summed with stage 0's
                self.lm_head = nn.Linear(cfg.dim, cfg.vocab_size, bias=False)
                self.lm_head.weight = nn.Parameter(model.lm_head.weight.detach().clone())

    def global_name(self, name: str) -> str:
        """A parameter's name in the whole `CausalLM`: "layers.0.mlp.up_proj.weight" on a stage starting
        at layer 3 is "layers.3.mlp.up_proj.weight"."""
        if name.startswith("layers."):
            _, i, rest = name.split(".", 2)
            return f"layers.{int(i) + self.start}.{rest}"
        return name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Token ids (B, T) on stage 0, activations (B, T, d) after it; logits (B, T, V) on the last."""
        if self.first:
            x = embed(self, x)  # (B, T, d)
        cos, sin, mask = position_inputs(self, x, 0, None)
        for i, block in enumerate(self.layers):
            x = block(x, cos, sin, None, self.start + i, mask)  # (B, T, d)
        return self.lm_head(self.norm(x)) if self.last else x  # (B, T, V) or (B, T, d)


@dataclass
class PipelineResult:
    loss: float  # the whole batch's mean loss, on every rank of the group
    timeline: list[Event]  # this rank's forwards and backwards, seconds from the step's start
    peak_in_flight: int  # most micro-batches whose activations this stage held at once
    step_time: float  # seconds from the step's start (all ranks leave a barrier) to its end here


class _P2P:
    """Sends and receives to the neighbouring stages of `group`, by group rank."""

    def __init__(self, group, device: torch.device):
        self.group, self.device = _group_or_world(group), device
        self.pending: list = []  # (work, tensor): a sent tensor must live until its send completes

    def send(self, t: torch.Tensor, to: int, tag: int) -> None:
        t = t.contiguous()
        # drop finished sends now, so their buffers do not outlive the 1F1B memory bound
        self.pending = [(w, buf) for w, buf in self.pending if not w.is_completed()]
        self.pending.append((dist.isend(t, dist.get_global_rank(self.group, to), group=self.group, tag=tag), t))

    def recv(self, shape, dtype, frm: int, tag: int) -> torch.Tensor:
        t = torch.empty(shape, dtype=dtype, device=self.device)
        dist.recv(t, dist.get_global_rank(self.group, frm), group=self.group, tag=tag)
        return t

    def wait(self) -> None:
        for work, _ in self.pending:
            work.wait()
        self.pending.clear()


def pipeline_step(stage: PipelineStage, idx: torch.Tensor, targets: torch.Tensor, n_micro: int,
                  schedule: str = "1f1b", group=None, ignore_index: int = -100) -> PipelineResult:
    """One forward + backward of the batch (idx, targets) (B, T) through the pipeline over `group`.

    Every rank of the group calls it with the same batch (stage 0 reads idx, the last stage targets).
    Gradients accumulate into the stage's parameters (zero them before, step the optimizer after), and
    equal those of the whole model on the whole batch: each micro-batch's summed loss is divided by the
    batch's count of counted targets, so the sum over micro-batches is the batch's mean loss.
    """
    p, s = dist.get_world_size(group), dist.get_rank(group)
    if (stage.stage, stage.n_stages) != (s, p):
        raise InputError(f"this rank is stage {s} of {p} in its group, but was given stage "
                         f"{stage.stage} of {stage.n_stages}")
    B, T = idx.shape
    if n_micro < 1 or B % n_micro:
        raise InputError(f"batch size {B} must be divisible by the number of micro-batches, got {n_micro}")
    xs, ys = idx.chunk(n_micro), targets.chunk(n_micro)
    n_counted = (targets != ignore_index).sum().clamp(min=1)
    param = next(stage.parameters())
    act_shape, dtype = (B // n_micro, T, stage.config.dim), param.dtype
    io, saved, timeline, peak = _P2P(group, param.device), {}, [], 0
    loss = torch.zeros((), device=param.device)
    tied_before = _tied_grad(stage)
    dist.barrier(group=group)
    t0 = time.perf_counter()
    for kind, i in schedule_ops(schedule, p, s, n_micro):
        if kind == "F":
            x = xs[i] if stage.first else io.recv(act_shape, dtype, s - 1, i).requires_grad_()  # (b, T, d)
            start = time.perf_counter()
            out = stage(x)
            if stage.last:
                out = causal_lm_loss(out, ys[i], ignore_index, reduction="sum") / n_counted
                loss += out.detach()
            else:
                io.send(out.detach(), s + 1, i)
            saved[i] = (x, out)
            peak = max(peak, len(saved))
        else:
            x, out = saved.pop(i)  # freed after this backward: the memory 1F1B bounds
            grad = None if stage.last else io.recv(out.shape, dtype, s + 1, i)  # (b, T, d)
            start = time.perf_counter()
            torch.autograd.backward(out, grad)
            if not stage.first:
                io.send(x.grad, s - 1, i)
        timeline.append(Event(kind, i, start - t0, time.perf_counter() - t0))
    io.wait()
    if stage.tied_copy:
        _sum_tied_grads(stage, io, tied_before)
    dist.broadcast(loss, dist.get_global_rank(io.group, p - 1), group=io.group)  # also ends the step together
    return PipelineResult(float(loss), timeline, peak, time.perf_counter() - t0)


def _tied_weight(stage: PipelineStage) -> torch.Tensor:
    return stage.embed_tokens.weight if stage.first else stage.lm_head.weight


def _tied_grad(stage: PipelineStage) -> torch.Tensor | None:
    """A copy of the tied matrix's gradient before a step (None: untied, or no gradient yet)."""
    grad = _tied_weight(stage).grad if stage.tied_copy else None
    return None if grad is None else grad.detach().clone()


def _sum_tied_grads(stage: PipelineStage, io: _P2P, before: torch.Tensor | None) -> None:
    """Stage 0 (embedding) and the last stage (head) swap what this step added to their gradients of
    the tied matrix and add it: with gradient accumulation, the gradient already held (`before`, the
    earlier steps' sum, exchanged then) must not be sent again."""
    w = _tied_weight(stage)
    peer = stage.n_stages - 1 if stage.first else 0
    mine = w.grad if w.grad is not None else torch.zeros_like(w)
    io.send((mine if before is None else mine - before).detach().clone(), peer, _TIED_TAG)
    theirs = io.recv(w.shape, w.dtype, peer, _TIED_TAG)
    io.wait()
    w.grad = mine + theirs


def gather_timelines(timeline: list[Event], group=None) -> list[list[Event]]:
    """Every rank's timeline, by group rank (for `bubble_fraction`)."""
    out: list = [None] * dist.get_world_size(group)
    dist.all_gather_object(out, timeline, group=group)
    return out


def torch_pipeline_step(stage: PipelineStage, idx: torch.Tensor, targets: torch.Tensor, n_micro: int,
                        schedule: str = "1f1b", group=None) -> float:
    """The same step run by PyTorch's own `torch.distributed.pipelining` (PipelineStage + ScheduleGPipe or
    Schedule1F1B) on the same stage module, for comparison; returns the batch's mean loss on every rank.

    PyTorch averages the per-micro-batch mean losses, which equals the batch mean only when every
    micro-batch counts the same number of targets (no ignored ones); `pipeline_step` has no such limit.
    """
    from torch.distributed import pipelining

    if schedule not in SCHEDULES:
        raise InputError(f"schedule must be one of {SCHEDULES}, got {schedule!r}")
    p, s = dist.get_world_size(group), dist.get_rank(group)
    device = next(stage.parameters()).device
    torch_stage = pipelining.PipelineStage(stage, s, p, device, group=group)
    cls = pipelining.ScheduleGPipe if schedule == "gpipe" else pipelining.Schedule1F1B
    runner = cls(torch_stage, n_micro, loss_fn=causal_lm_loss)  # grads are scaled by 1 / n_micro
    losses: list[torch.Tensor] = []
    tied_before = _tied_grad(stage)
    if stage.first:
        runner.step(idx)
    elif stage.last:
        runner.step(target=targets, losses=losses)
    else:
        runner.step()
    if stage.tied_copy:
        _sum_tied_grads(stage, _P2P(group, device), tied_before)
    loss = torch.stack(losses).mean().detach() if stage.last else torch.zeros((), device=device)
    dist.broadcast(loss, dist.get_global_rank(_group_or_world(group), p - 1), group=_group_or_world(group))
    return float(loss)
