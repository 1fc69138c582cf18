"""Orchestration: end-to-end runs that string the packages together and write reports."""

from llmlab.pipeline.presets import PRESETS, preset
from llmlab.pipeline.pretrain import RunConfig, run_pretraining

__all__ = ["PRESETS", "RunConfig", "preset", "run_pretraining"]
