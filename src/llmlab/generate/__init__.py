"""Decoding: sampling filters and autoregressive generation with a KV cache, one prompt at a time or prompts
of different lengths in left-padded batches (`generate_batch`), or in a running batch that sequences join
and leave between steps (`RunningBatch`, continuous batching for the server); retrieval-augmented generation (BM25
retrieval, grounded answers); a tool-using loop (a calculator the model can call).

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
    "RunningBatch": "llmlab.generate.continuous",
    "agent_step": "llmlab.generate.agent",
    "answer": "llmlab.generate.rag",
    "build_prompt": "llmlab.generate.rag",
    "calculator": "llmlab.generate.agent",
    "grounding": "llmlab.generate.rag",
    "generate": "llmlab.generate.autoregressive",
    "generate_batch": "llmlab.generate.batch",
    "run_agent": "llmlab.generate.agent",
    "stream": "llmlab.generate.autoregressive",
    "sample_next": "llmlab.generate.sampling",
    "top_k_filter": "llmlab.generate.sampling",
    "top_p_filter": "llmlab.generate.sampling",
})
