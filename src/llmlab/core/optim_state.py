"""An optimizer's state as plain parts, its tensors for a safetensors file and the rest for a JSON
document, and back: how checkpoints hold it without pickle (`llmlab.train.checkpoint`, and the text
taggers' epoch checkpoints in `llmlab.text.neural`). torch is imported by the caller's objects only."""

from __future__ import annotations

from typing import Any


def flatten_optimizer(opt: Any) -> tuple[dict[str, Any], dict]:
    """``opt.state_dict()`` as (tensors keyed ``"<param index>.<name>"``, the JSON-able rest)."""
    import torch

    sd = opt.state_dict()
    tensors, scalars = {}, {}
    for idx, state in sd["state"].items():
        for name, value in state.items():
            key = f"{idx}.{name}"
            if torch.is_tensor(value):
                tensors[key] = value.detach().contiguous().cpu()
            else:
                scalars[key] = value
    return tensors, {"param_groups": sd["param_groups"], "scalars": scalars}


def unflatten_optimizer(tensors: dict[str, Any], meta: dict) -> dict:
    """The state dict `flatten_optimizer`'s parts came from, for ``opt.load_state_dict``."""
    state: dict[int, dict] = {}
    for key, value in list(tensors.items()) + list(meta["scalars"].items()):
        idx, name = key.split(".", 1)
        state.setdefault(int(idx), {})[name] = value
    return {"state": state, "param_groups": meta["param_groups"]}


__all__ = ["flatten_optimizer", "unflatten_optimizer"]
