"""Named run configs for `llmlab speedrun`.

- ``tiny``: seconds on a laptop; used by the tests. Character vocabulary capped at 1,500 (rarer
  characters become ``<unk>``) to keep the softmax small.
- ``small``: the ``make run`` default: about eleven minutes on 2 CPU cores (600 steps took 616 s of
  training and 648 s in all on the 2-core reference machine), all characters of the training split,
  a 4-layer 256-wide decoder. An 11-minute training limit guards the 15-minute budget on slower
  machines; the report says if it was hit.
"""

from __future__ import annotations

from llmlab.core.errors import InputError
from llmlab.models import ModelConfig
from llmlab.pipeline.pretrain import RunConfig
from llmlab.train import TrainConfig

PRESETS: dict[str, RunConfig] = {
    "tiny": RunConfig(
        name="tiny",
        vocab_size=1500,
        model=ModelConfig(dim=64, n_layer=2, n_head=4, n_kv_head=2, max_seq_len=64),
        train=TrainConfig(steps=400, batch_size=32, seq_len=64, lr=3e-3, min_lr=3e-4, warmup_steps=20,
                          eval_every=100, eval_batches=4, checkpoint_every=200, log_every=10),
        sample_tokens=30,
        final_eval_tokens=20000,
    ),
    "small": RunConfig(
        name="small",
        vocab_size=0,
        model=ModelConfig(dim=256, n_layer=4, n_head=4, n_kv_head=4, max_seq_len=256),
        train=TrainConfig(steps=600, batch_size=16, seq_len=256, lr=2e-3, min_lr=2e-4, warmup_steps=60,
                          eval_every=100, eval_batches=8, checkpoint_every=100, log_every=10,
                          max_minutes=11.0),
        sample_tokens=80,
    ),
}


def preset(name: str) -> RunConfig:
    if name not in PRESETS:
        raise InputError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}")
    return PRESETS[name]
