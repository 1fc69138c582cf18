"""Fine-tuning by reinforcement (topics 78, 82, 83): rewards, advantages and the policy-gradient losses
of GRPO, DAPO and VAPO.

Names are imported on first use (PEP 562), so the package's torch-free parts load without torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "answer_reward": "llmlab.rl.rewards",
    "gae": "llmlab.rl.advantages",
    "group_advantages": "llmlab.rl.advantages",
    "informative_groups": "llmlab.rl.advantages",
    "kl_k3": "llmlab.rl.losses",
    "length_adaptive_lambda": "llmlab.rl.advantages",
    "masked_mean": "llmlab.rl.losses",
    "nll_loss": "llmlab.rl.losses",
    "overlong_penalty": "llmlab.rl.rewards",
    "policy_loss": "llmlab.rl.losses",
    "terminal_rewards": "llmlab.rl.advantages",
    "value_loss": "llmlab.rl.losses",
})
