"""Model families and their configs, exact parameter counting, saving and loading.

Names are imported on first use (PEP 562), so importing a config module does not load torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "CausalLM": "llmlab.models.decoder",
    "ModelConfig": "llmlab.models.config",
    "count_parameters": "llmlab.models.params",
    "load_model": "llmlab.models.io",
    "parameter_breakdown": "llmlab.models.params",
    "save_model": "llmlab.models.io",
})
