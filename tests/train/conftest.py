"""Shared helpers of the training tests."""

import pytest


@pytest.fixture
def crash_at():
    """crash_at(trainer, step): run trainer.fit() until it dies starting step `step` + 1 (a power cut), so a
    resume test can restart from the last checkpoint before it."""
    def run(trainer, step):
        real_step = trainer.train_step

        def step_then_crash():
            if trainer.step == step:
                raise RuntimeError("power cut")
            return real_step()

        trainer.train_step = step_then_crash
        with pytest.raises(RuntimeError, match="power cut"):
            trainer.fit()
    return run
