"""Training on a dp x tp x pp mesh: llmlab's Trainer with the model sharded and the step distributed.

A distributed run computes what the single-process run of the same config computes. The batch of
`TrainConfig` is the global batch: every rank draws the same (seed, step) windows, and data-parallel
replica r keeps rows [r*B/dp, (r+1)*B/dp). Tensor parallelism shards each block over its group
(`llmlab.dist.tensor_parallel`), pipeline parallelism gives each stage a run of layers and streams
micro-batches through them (`llmlab.dist.pipeline_parallel`); gradients are then averaged over the
data-parallel group (`llmlab.dist.data_parallel`), clipped by the norm of the *whole* model's gradient
(squares summed over tensor shards and pipeline stages), and every rank steps its own parameters.
Dropout is the exception: each replica, and each pipeline stage of it, seeds torch's RNG from (seed,
step, its stream) and draws its own masks (`llmlab.train.trainer.step_seed`; stage 0 of replica 0 draws
what one process with its rows would), while the tensor ranks of one stage share its seed (tensor
parallelism refuses dropout). A run with dropout and dp or pp > 1 therefore draws other masks than one
process, and its losses differ from that process's by that noise.

Rank 0 logs and writes the run's outputs. Checkpoints are per shard: with tp = pp = 1 the replica on
rank 0 writes the usual ``checkpoints/`` (so a data-parallel run resumes on one process and the other
way round); otherwise the first replica of each shard writes ``checkpoints/tp{t}-pp{p}/``, and a resume
loads the newest step that every shard has. Evaluation and the saved model use the full model,
gathered onto rank 0.

Mixture-of-experts layers route each replica's rows on their own: expert capacity and the load-balancing
loss are per replica, so with dp > 1 they match the single-process run only when no token is dropped
(`moe_capacity_factor` 0) and the balancing loss is off; the router z-loss, a mean over tokens, matches.
"""

from __future__ import annotations

import contextlib
import math
from pathlib import Path

import torch
import torch.distributed as dist
from torch import nn

from llmlab.core.errors import InputError
from llmlab.dist.data_parallel import shard_rows
from llmlab.dist.mesh import Mesh
from llmlab.dist.rules import check_layout_settings
from llmlab.train.checkpoint import (
    check_layout,
    checkpoint_step,
    list_checkpoints,
    prune_checkpoints,
    resuming_from,
    verify_checkpoint,
    warn_incomplete,
)
from llmlab.train.config import TrainConfig
from llmlab.train.trainer import Trainer


class DistributedTrainer(Trainer):
    """`Trainer` over a `Mesh`. Every rank builds the same full model (same seed) and passes it in."""

    def __init__(self, model, cfg: TrainConfig, train_tokens: torch.Tensor, val_tokens: torch.Tensor | None,
                 run_dir: str | Path, mesh: Mesh, micro_batches: int = 0, schedule: str = "1f1b"):
        lay = mesh.layout
        self.micro_batches = check_layout_settings(model.config, cfg, lay, micro_batches, schedule)
        self.mesh, self.schedule = mesh, schedule
        self.full_config = model.config
        if lay.tp > 1:
            from llmlab.dist.tensor_parallel import parallelize_decoder

            parallelize_decoder(model, mesh.tp_group)
        if lay.pp > 1:
            from llmlab.dist.pipeline_parallel import PipelineStage

            model = PipelineStage(model, mesh.pp_rank, lay.pp)  # this rank's layers only
        super().__init__(model, cfg, train_tokens, val_tokens, run_dir)
        self.writes = mesh.writes
        # its own dropout masks per replica and stage (the stages' layers drew the same ones); tensor ranks share them
        self.dropout_stream = mesh.dp_rank * lay.pp + mesh.pp_rank
        if lay.tp > 1 or lay.pp > 1:
            self.ckpt_dir = self.run_dir / "checkpoints" / f"tp{mesh.tp_rank}-pp{mesh.pp_rank}"
        from llmlab.dist.tensor_parallel import shard_dims

        split = shard_dims(self.model)  # parameters tensor parallelism slices: their squares sum over the group
        self.sharded = {id(p) for name, p in self.model.named_parameters() if name in split}
        # the last stage's copy of a tied embedding: the same parameter as stage 0's, counted there
        self.duplicate = {id(model.lm_head.weight)} if lay.pp > 1 and model.tied_copy and model.last else set()
        self.sync = None
        if lay.dp > 1:
            from llmlab.dist.data_parallel import GradientSync

            # an expert no token reached keeps grad None, as in one process (where AdamW then skips it
            # instead of decaying it and moving it by its momentum)
            self.sync = GradientSync(self.model, group=mesh.dp_group,  # also broadcasts rank 0's weights
                                     find_unused=self.full_config.n_experts > 0)

    # -- the step ---------------------------------------------------------------------------------

    def forward_backward(self) -> float:
        """This replica's rows of every micro-batch, through the pipeline or the (sharded) model; then the
        gradients averaged over replicas. Returns the global batch's mean loss."""
        cfg, mesh = self.cfg, self.mesh
        pipelined = mesh.layout.pp > 1  # several backwards per micro-batch: sync once, after the last
        total = torch.zeros(())
        for micro in range(cfg.grad_accum):
            x, y = (shard_rows(t, mesh.dp_rank, mesh.layout.dp) for t in self.batch(micro))  # (B/dp, T)
            last = micro == cfg.grad_accum - 1
            with self.sync.no_sync() if self.sync and (pipelined or not last) else contextlib.nullcontext():
                if pipelined:
                    from llmlab.dist.pipeline_parallel import pipeline_step

                    result = pipeline_step(self.model, x, y, self.micro_batches, self.schedule, mesh.pp_group)
                    loss = torch.tensor(result.loss)
                else:
                    loss = self.micro_step(x, y)
            total += loss.float() / cfg.grad_accum
        if pipelined and cfg.grad_accum > 1:  # each pipeline_step's gradients are a whole batch's mean
            for p in self.model.parameters():
                if p.grad is not None:
                    p.grad /= cfg.grad_accum
        if self.sync:
            self.sync.finish()  # gradients are now the mean over replicas, as over the global batch
        return self._global_loss(total)

    def clip(self, params: list[torch.Tensor]) -> float:
        """Clip by the whole model's gradient norm (squares summed over tensor shards and stages)."""
        sharded = torch.zeros((), dtype=torch.float64)
        replicated = torch.zeros((), dtype=torch.float64)
        for p in params:
            if id(p) in self.duplicate:
                continue
            sq = p.grad.detach().double().pow(2).sum()
            if id(p) in self.sharded:
                sharded += sq
            else:
                replicated += sq
        if self.mesh.layout.tp > 1:
            dist.all_reduce(sharded, group=self.mesh.tp_group)
        total = sharded + replicated
        if self.mesh.layout.pp > 1:
            dist.all_reduce(total, group=self.mesh.pp_group)
        norm = float(total.sqrt())
        limit = self.cfg.grad_clip if self.cfg.grad_clip > 0 else math.inf
        if norm > limit:
            for p in params:
                p.grad.mul_(limit / (norm + 1e-6))
        return norm

    def _global_loss(self, local: torch.Tensor) -> float:
        """The step's loss over the global batch: the last stage's mean, averaged over replicas."""
        t = local.clone() if self.mesh.is_last_stage else torch.zeros(())
        if self.mesh.layout.pp > 1:
            dist.all_reduce(t, group=self.mesh.pp_group)
        if self.mesh.layout.dp > 1:
            dist.all_reduce(t, group=self.mesh.dp_group)
            t /= self.mesh.layout.dp
        return float(t)

    def should_stop(self, interrupted: bool) -> str:
        """Every rank must stop at the same step: rank 0's clock and any rank's interrupt decide."""
        why = torch.tensor([float(interrupted), float(self.cfg.out_of_time(self.session_seconds))])
        dist.broadcast(why[1:], src=0)
        dist.all_reduce(why[:1], op=dist.ReduceOp.MAX)
        return "interrupted" if why[0] else "time limit" if why[1] else ""

    # -- the full model: evaluation, checkpoints, saving --------------------------------------------

    def full_state(self) -> dict[str, torch.Tensor] | None:
        """The whole model's parameters on rank 0, under `CausalLM` names (None elsewhere); collective."""
        if self.mesh.layout.tp > 1:
            from llmlab.dist.tensor_parallel import unsharded

            state = unsharded(self.model, self.mesh.tp_group)
        else:
            state = {k: p.detach() for k, p in self.model.named_parameters()}
        if self.mesh.layout.pp > 1:  # stage names -> model names, then every stage's part onto stage 0
            stage = self.model
            state = {stage.global_name(k): v for k, v in state.items()
                     if not (stage.tied_copy and stage.last and k == "lm_head.weight")}
            parts = [None] * self.mesh.layout.pp if self.mesh.is_first_stage else None
            dist.gather_object(state, parts, dst=dist.get_global_rank(self.mesh.pp_group, 0),
                               group=self.mesh.pp_group)
            state = {k: v for part in parts or [] for k, v in part.items()}
        return {k: v.detach().clone() for k, v in state.items()} if self.mesh.writes else None

    def full_model(self) -> nn.Module | None:
        """An unsharded model with the current weights on rank 0 (None elsewhere); collective."""
        from llmlab.models import CausalLM

        state = self.full_state()
        if state is None:
            return None
        model = CausalLM(self.full_config).to(self.device)
        missing, unexpected = model.load_state_dict(state, strict=False)
        tied = {"lm_head.weight"} if self.full_config.tie_embeddings else set()
        if unexpected or set(missing) - tied:
            raise RuntimeError(f"gathered state does not match the model: missing {missing}, unexpected {unexpected}")
        return model

    def evaluate(self, max_batches: int | None) -> dict:
        if self.val_tokens is None:
            return {}
        model = self.model if self.mesh.layout.tp == self.mesh.layout.pp == 1 else self.full_model()  # collective
        return super().evaluate(max_batches, model) if self.mesh.writes else {}

    def checkpoint_extra(self) -> dict:
        return {**super().checkpoint_extra(), "layout": str(self.mesh.layout)}

    def save(self) -> Path | None:
        """Every shard writes this step; only then does each prune its older checkpoints, keeping the newest
        `keep_checkpoints` of the steps *all* shards hold. (Pruning inside each shard's save left shard 0 =
        {4} beside shard 1 = {2} when a crash came between their saves of step 4: nothing to resume.)"""
        path = super().save(keep=0) if self.mesh.saves_shard else None
        dist.barrier()  # a checkpoint exists only once every shard has written it
        shared = set.intersection(*self._shard_steps().values())
        if self.mesh.saves_shard:
            prune_checkpoints(self.ckpt_dir, self.cfg.keep_checkpoints, shared)
        return path

    def _shard_steps(self) -> dict[str, set[int]]:
        """The checkpointed steps of each shard's folder, by folder name; collective."""
        mine = (self.ckpt_dir.name, {checkpoint_step(p) for p in list_checkpoints(self.ckpt_dir)})
        parts = [None] * dist.get_world_size()
        dist.all_gather_object(parts, mine if self.mesh.saves_shard else None)
        return dict(part for part in parts if part is not None)

    def maybe_resume(self) -> bool:
        """Resume every rank from the newest step that all shards saved (none: start fresh)."""
        check_layout(self.run_dir / "checkpoints", self.mesh.layout.tp, self.mesh.layout.pp)
        if self.mesh.saves_shard:
            warn_incomplete(self.ckpt_dir)
        shards = self._shard_steps()
        shared = set.intersection(*shards.values())
        if not shared:
            if all(shards.values()):  # every shard has checkpoints, of other steps: resuming any would mix steps
                held = "; ".join(f"{name}: {', '.join(map(str, sorted(steps)))}" for name, steps in sorted(shards.items()))
                raise InputError(f"the checkpoint shards in {str(self.run_dir / 'checkpoints')!r} have no step in "
                                 f"common ({held}): a run stopped between the shards' saves left them apart; pass "
                                 "--fresh to start over")
            if self.writes:  # a shard has no checkpoint yet (stopped during the first save): nothing to resume,
                self._truncate_metrics(0)  # and what an earlier session logged is redone
            return False
        step = max(shared)
        ckpt = self.ckpt_dir / f"step-{step:08d}"
        # replicas are identical, so dp may change; the shards must be the same
        with resuming_from(ckpt):
            saved = verify_checkpoint(ckpt)["extra"].get("layout", "dp1 x tp1 x pp1")
        if saved.split(" x ")[1:] != str(self.mesh.layout).split(" x ")[1:]:
            raise InputError(f"checkpoint {ckpt} was written by layout {saved}, this run is "
                             f"{self.mesh.layout}; resume with the same --tp and --pp")
        self.restore(ckpt)
        return True
