"""What a training step actually holds, measured: the bytes autograd saves for backward and the bytes of the
weights, gradients and optimizer state. The tests and bench/train.py check the estimate against these."""


def measure_saved_bytes(model, idx, targets, autocast_dtype=None) -> int:
    """Bytes of every distinct storage autograd saves for backward in one forward + loss, leaving out
    parameters and buffers (those are counted as weights)."""
    import torch

    from llmlab.train.objectives import causal_lm_loss

    owned = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    saved: dict[int, int] = {}

    def pack(t):
        s = t.untyped_storage()
        if s.data_ptr() not in owned:
            saved[s.data_ptr()] = s.nbytes()
        return t

    device = idx.device.type
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), \
            torch.autocast(device, dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
        causal_lm_loss(model(idx), targets)
    return sum(saved.values())


def measure_static_bytes(model, optimizer) -> dict[str, int]:
    """Bytes held by weights, gradients and optimizer state right after an optimizer step."""
    from llmlab.train.optim import state_bytes

    params = list(model.parameters())
    return {
        "weights": sum(p.untyped_storage().nbytes() for p in params),
        "gradients": sum(p.grad.untyped_storage().nbytes() for p in params if p.grad is not None),
        "optimizer states": state_bytes(optimizer),
    }
