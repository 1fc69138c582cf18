"""Model families and their configs, exact parameter counting, saving and loading."""

from llmlab.models.config import ModelConfig
from llmlab.models.decoder import CausalLM
from llmlab.models.io import load_model, save_model
from llmlab.models.params import count_parameters, parameter_breakdown

__all__ = ["CausalLM", "ModelConfig", "count_parameters", "load_model", "parameter_breakdown", "save_model"]
