"""A module's training mode set for one piece of work, put back afterwards."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator


@contextlib.contextmanager
def eval_mode(module) -> Iterator:
    """`module` (a torch `nn.Module`) in eval mode for the block: no dropout, norms in inference form.
    Its earlier mode is restored after, also when the block raises; yields the module.

    >>> from torch import nn
    >>> net = nn.Dropout(0.5)
    >>> with eval_mode(net):
    ...     net.training
    False
    >>> net.training
    True
    """
    was = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was)
