"""Fine-tuning by reinforcement (topics 78, 82, 83): rewards, advantages and the policy-gradient losses
of GRPO, DAPO, VAPO and RLHF's PPO; rollouts, the critic and the training loop that uses them
(`RLTrainer`, configured by `RLConfig`; `llmlab rl` runs it on arithmetic).

Names are imported on first use (PEP 562), so the package's torch-free parts load without torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "algo_defaults": "llmlab.rl.config",
    "answer_reward": "llmlab.rl.rewards",
    "gae": "llmlab.rl.advantages",
    "group_advantages": "llmlab.rl.advantages",
    "informative_groups": "llmlab.rl.advantages",
    "kl_k3": "llmlab.rl.losses",
    "kl_shaped_rewards": "llmlab.rl.advantages",
    "length_adaptive_lambda": "llmlab.rl.advantages",
    "make_critic": "llmlab.rl.value",
    "masked_mean": "llmlab.rl.losses",
    "nll_loss": "llmlab.rl.losses",
    "overlong_penalty": "llmlab.rl.rewards",
    "policy_loss": "llmlab.rl.losses",
    "RLConfig": "llmlab.rl.config",
    "RLTrainer": "llmlab.rl.trainer",
    "rollout": "llmlab.rl.rollout",
    "Rollouts": "llmlab.rl.rollout",
    "sample_group": "llmlab.rl.rollout",
    "sequence_logprobs": "llmlab.rl.rollout",
    "Task": "llmlab.rl.trainer",
    "terminal_rewards": "llmlab.rl.advantages",
    "value_loss": "llmlab.rl.losses",
})
