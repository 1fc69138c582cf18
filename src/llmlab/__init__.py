"""llmlab: the fundamentals of large language models, runnable."""

__version__ = "0.1.0"
