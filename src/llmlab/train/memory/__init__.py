"""Training-memory estimator (topic 40) and the measurements that validate it.

For a model with P parameters (T of them trainable) the per-device bytes are:

    weights      P * w                      w = 4 (fp32, amp) or 2 (mixed: 16-bit working weights)
    gradients    T * g                      g = 4 (fp32, amp) or 2 (mixed)
    optimizer    T * (4k + m)               k fp32 state copies (Adam 2, momentum 1, SGD 0);
                                            m = 4 for the fp32 master copy under `mixed`, else 0
    activations  layers + head (+ bias)     what autograd saves for backward (see below)
    temporary    2 * B*S*V * 4              logits and their gradient, alive around the loss

ZeRO divides across N devices: stage 1 the optimizer states, stage 2 also the gradients, stage 3
also the weights. LoRA freezes the base weights: only adapter parameters have gradients and states, and
autograd keeps fewer activations (a frozen Linear keeps no copy of its input).

The source document's rule, 4P + 8P + activations, leaves out the gradients (another 4P in fp32).

What each part owns: `config` the settings (`MemoryConfig`, torch-free: `llmlab memory` builds its flags from it),
`activations` what autograd saves for backward and its formulas, `estimate` the rows `llmlab memory` prints
(weights, gradients, optimizer states, the activation rows, the total) and byte formatting, `measure` what a
training step actually holds, which the tests and bench/train.py check the estimate against.
"""

from llmlab.train.memory.activations import (
    Terms,
    activation_bytes,
    alibi_bias_bytes,
    index_bytes,
    moe_assignments,
)
from llmlab.train.memory.config import PRECISIONS, STATE_COPIES, MemoryConfig
from llmlab.train.memory.estimate import estimate_memory, format_bytes, lora_parameters, rule_of_thumb, static_rows
from llmlab.train.memory.measure import measure_saved_bytes, measure_static_bytes

__all__ = [
    "PRECISIONS", "STATE_COPIES", "MemoryConfig", "Terms", "activation_bytes", "alibi_bias_bytes", "estimate_memory",
    "format_bytes", "index_bytes", "lora_parameters", "measure_saved_bytes", "measure_static_bytes",
    "moe_assignments", "rule_of_thumb", "static_rows",
]
