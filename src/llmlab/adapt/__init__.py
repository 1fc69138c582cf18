"""Adapting a pretrained model: supervised fine-tuning with a chat template, LoRA, soft prompts and deep
prompts, weight quantization and FP8 formats, and linear probes (topics 15, 30, 31, 33, 39-41, 43).

Names are imported on first use (PEP 562), so `SFTConfig` (which the CLI builds flags from) loads without torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "ChatTemplate": "llmlab.adapt.chat",
    "LoRAConfig": "llmlab.adapt.lora",
    "PromptConfig": "llmlab.adapt.prompt_config",
    "QuantConfig": "llmlab.adapt.quantize",
    "SFTConfig": "llmlab.adapt.sft_config",
    "add_chat_tokens": "llmlab.adapt.chat",
    "apply_lora": "llmlab.adapt.lora",
    "apply_prompt_tuning": "llmlab.adapt.prompt_tuning",
    "fp8_round": "llmlab.adapt.fp8",
    "load_adapter": "llmlab.adapt.lora",
    "load_prompt": "llmlab.adapt.prompt_tuning",
    "load_quantized": "llmlab.adapt.quantize",
    "merge_lora": "llmlab.adapt.lora",
    "probe": "llmlab.adapt.probe",
    "quantize_model": "llmlab.adapt.quantize",
    "remove_prompt": "llmlab.adapt.prompt_tuning",
    "save_adapter": "llmlab.adapt.lora",
    "save_prompt": "llmlab.adapt.prompt_tuning",
    "save_quantized": "llmlab.adapt.quantize",
})
