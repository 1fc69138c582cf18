"""Decoding: sampling filters and autoregressive generation with a KV cache; retrieval-augmented
generation (BM25 retrieval, grounded answers).

Names are imported on first use (PEP 562), so importing a config module does not load torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "Answer": "llmlab.generate.rag",
    "BM25Index": "llmlab.generate.retrieval",
    "GenerationConfig": "llmlab.generate.config",
    "Grounding": "llmlab.generate.rag",
    "Hit": "llmlab.generate.retrieval",
    "IndexConfig": "llmlab.generate.retrieval",
    "answer": "llmlab.generate.rag",
    "build_prompt": "llmlab.generate.rag",
    "grounding": "llmlab.generate.rag",
    "generate": "llmlab.generate.autoregressive",
    "stream": "llmlab.generate.autoregressive",
    "sample_next": "llmlab.generate.sampling",
    "top_k_filter": "llmlab.generate.sampling",
    "top_p_filter": "llmlab.generate.sampling",
})
