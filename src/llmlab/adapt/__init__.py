"""Adapting a pretrained model: LoRA, supervised fine-tuning, quantization (topics 15, 33, 39-41, 43)."""
