"""Model cards (topics 8, 9): every saved model says what it is, how big, trained on what, and under
which licence, as a README.md with YAML front matter (the Hugging Face convention)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from llmlab.core.errors import InputError


@dataclass(frozen=True)
class ModelCard:
    name: str  # the model's name
    family: str = "causal-decoder"  # causal-decoder | prefix-decoder | encoder | encoder-decoder
    modality: str = "text"  # input/output modality
    parameters: int = 0  # exact parameter count
    license: str = "mit"  # licence of the weights
    training_data: str = ""  # corpora and splits used
    tokenizer: str = ""  # tokenizer kind and vocabulary size
    intended_use: str = "Teaching and small reproducible experiments; not for production use."
    limitations: str = "Tiny model trained briefly on a small corpus: fluent-looking text, no factual reliability."
    metrics: dict = field(default_factory=dict)  # name -> value, e.g. {"val_ppl": 12.3}

    def __post_init__(self):
        families = ("causal-decoder", "prefix-decoder", "encoder", "encoder-decoder")
        if self.family not in families:
            raise InputError(f"family must be one of {families}, got {self.family!r}")

    def to_markdown(self) -> str:
        from llmlab.models.params import human_count

        metrics = "\n".join(f"| {k} | {v:.4g} |" if isinstance(v, float) else f"| {k} | {v} |"
                            for k, v in self.metrics.items()) or "| (none) | |"
        return (
            "---\n"
            f"license: {self.license}\nlibrary_name: llmlab\npipeline_tag: text-generation\n"
            f"tags: [{self.family}, {self.modality}]\n"
            "---\n\n"
            f"# {self.name}\n\n"
            f"- Family: {self.family}\n- Modality: {self.modality}\n"
            f"- Parameters: {self.parameters:,} ({human_count(self.parameters)})\n"
            f"- Tokenizer: {self.tokenizer}\n- Training data: {self.training_data}\n"
            f"- Licence: {self.license}\n\n"
            f"## Intended use\n\n{self.intended_use}\n\n## Limitations\n\n{self.limitations}\n\n"
            f"## Metrics\n\n| metric | value |\n|---|---|\n{metrics}\n"
        )

    def to_dict(self) -> dict:
        return asdict(self)
