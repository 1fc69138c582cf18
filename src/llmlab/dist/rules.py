"""What a dp x tp x pp layout asks of the model and the training settings, checked before anything runs.

`check_layout_settings` holds every rule that depends on the model or the batch, so ``llmlab pretrain``
refuses a bad combination before it spawns a process or reads a corpus; `DistributedTrainer` applies the
same function, and `parallelize_decoder` and `PipelineStage` the model's part of it, when built directly.
Configs in, InputError out: nothing here needs a process group.
"""

from __future__ import annotations

from llmlab.core.errors import InputError
from llmlab.dist.planner import Layout
from llmlab.models.config import ModelConfig
from llmlab.train.config import TrainConfig

SCHEDULES = ("gpipe", "1f1b")


def check_tensor_parallel(model: ModelConfig, tp: int) -> None:
    """InputError unless `parallelize_decoder` can shard `model` over `tp` ranks."""
    if model.n_experts:
        raise InputError("tensor parallelism does not shard mixture-of-experts layers; use n_experts=0")
    if model.position == "alibi":
        raise InputError("tensor parallelism needs per-head ALiBi slopes the decoder does not give; "
                         "use position='rope', 'learned', 'sinusoidal' or 'none'")
    if model.dropout:
        raise InputError(f"tensor parallelism needs dropout=0 (ranks would draw different residual masks), "
                         f"got {model.dropout}")
    for name, n in (("n_head", model.n_head), ("n_kv_head", model.n_kv_head), ("ffn hidden", model.hidden)):
        if n % tp:
            raise InputError(f"{name} ({n}) must be divisible by the tensor-parallel size ({tp})")


def check_pipeline(model: ModelConfig, pp: int) -> None:
    """InputError unless `model` can be cut into `pp` pipeline stages."""
    if model.n_experts:
        raise InputError("pipeline stages do not carry MoE routing losses; use n_experts=0")
    if not 1 <= pp <= model.n_layer:
        raise InputError(f"pipeline stages must be in [1, n_layer={model.n_layer}], got {pp}")


def check_layout_settings(model: ModelConfig, train: TrainConfig, layout: Layout, micro_batches: int = 0,
                          schedule: str = "1f1b") -> int:
    """InputError unless a run of `model` with `train` can use `layout`; returns the pipeline's micro-batches
    per step (`micro_batches`, 0 = one per stage).

    >>> check_layout_settings(ModelConfig(n_layer=4), TrainConfig(batch_size=8), Layout(dp=2, pp=2))
    2
    """
    if train.batch_size % layout.dp:
        raise InputError(f"batch_size {train.batch_size} (the global batch) must be divisible by dp {layout.dp}")
    if (layout.tp > 1 or layout.pp > 1) and (train.precision != "fp32" or train.compile or train.grad_checkpoint):
        raise InputError("tensor and pipeline parallel runs train in fp32, without compile or gradient "
                         "checkpointing (data-parallel runs take every option)")
    if schedule not in SCHEDULES:
        raise InputError(f"pipeline schedule must be 1f1b or gpipe, got {schedule!r}")
    micro = micro_batches or layout.pp
    if layout.pp > 1 and (train.batch_size // layout.dp) % micro:
        raise InputError(f"the per-replica batch {train.batch_size // layout.dp} (batch_size / dp) must be divisible "
                         f"by the {micro} pipeline micro-batches")
    if layout.tp > 1:
        check_tensor_parallel(model, layout.tp)
    if layout.pp > 1:
        check_pipeline(model, layout.pp)
    return micro
