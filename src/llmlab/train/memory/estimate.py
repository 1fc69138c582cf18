"""The rows `llmlab memory` prints: weights, gradients and optimizer states per device (ZeRO shards them,
LoRA trains only its adapters), the activation rows, the temporary logits and the total; the source
document's rule of thumb beside it; bytes in binary units."""

from __future__ import annotations

from llmlab.models.config import ModelConfig
from llmlab.models.params import count_parameters
from llmlab.train.memory.activations import activation_rows
from llmlab.train.memory.config import STATE_COPIES, MemoryConfig


def lora_parameters(model: ModelConfig, rank: int) -> int:
    """Adapter parameters for rank-r LoRA on q_proj (d -> d) and v_proj (d -> kv): r * (in + out) each."""
    kv = model.n_kv_head * model.head_dim
    return model.n_layer * rank * ((model.dim + model.dim) + (model.dim + kv))


def static_rows(P: int, mem: MemoryConfig, lora: int = 0) -> list[tuple[str, int, str]]:
    """Weights, gradients and optimizer states per device for `P` parameters under the precision,
    optimizer and ZeRO stage of `mem`; with `lora` adapter parameters only those train.

    >>> [b for _, b, _ in static_rows(1000, MemoryConfig(precision="fp32", optimizer="adamw"))]
    [4000, 4000, 8000]
    """
    T = lora or P
    N, z = mem.n_devices, mem.zero_stage
    w = 2 if mem.precision == "mixed" else 4
    k = STATE_COPIES[mem.optimizer]
    master = 4 if mem.precision == "mixed" else 0
    shard = {"optimizer": z >= 1, "gradients": z >= 2, "weights": z >= 3}

    def div(x: int, on: bool) -> int:
        return -(-x // N) if on else x

    return [
        ("weights", div((P + lora) * w, shard["weights"]),  # ZeRO-3 shards the base and the adapters together
         (f"({P:,} params + LoRA {lora:,}) x {w} B" if lora else f"{P:,} params x {w} B")
         + (" / N" if shard["weights"] else "")),
        ("gradients", div(T * w, shard["gradients"]),
         f"{T:,} trainable x {w} B" + (" / N" if shard["gradients"] else "")),
        ("optimizer states", div(T * (4 * k + master), shard["optimizer"]),
         f"{T:,} x ({k} x 4 B {mem.optimizer} state" + (" + 4 B fp32 master" if master else "") + ")"
         + (" / N" if shard["optimizer"] else "")),
    ]


def estimate_memory(model: ModelConfig, mem: MemoryConfig) -> list[tuple[str, int, str]]:
    """Rows of (part, bytes per device, formula). The last row is the total."""
    P = count_parameters(model)
    temp = 2 * mem.batch_size * mem.seq_len * model.vocab_size * 4
    rows = [
        *static_rows(P, mem, lora_parameters(model, mem.lora_rank) if mem.lora_rank else 0),
        *activation_rows(model, mem),
        ("temporary (logits + grad)", temp, "2 x B*S*V x 4 B"),
    ]
    total = sum(b for name, b, _ in rows if not name.startswith("activations (per "))
    rows.append(("total per device", total, "sum of the rows above (per-layer rows excluded)"))
    return rows


def rule_of_thumb(params: int) -> dict[str, int]:
    """The source document's fp32 rule: 4P weights + 8P Adam states (no gradients, no activations),
    beside the full static count, which adds 4P of gradients.

    >>> r = rule_of_thumb(1_000_000_000)
    >>> r["document"] / 1e9, r["full_static"] / 1e9
    (12.0, 16.0)
    """
    return {"document": 12 * params, "full_static": 16 * params}


def format_bytes(n: float) -> str:
    """Bytes in binary units.

    >>> format_bytes(3 * 2**30), format_bytes(1536)
    ('3.00 GiB', '1.50 KiB')
    """
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if abs(n) >= size:
            return f"{n / size:.2f} {unit}"
    return f"{int(n)} B"
