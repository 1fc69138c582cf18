"""Fine-tuning by reinforcement (topics 78, 82, 83): rewards, advantages and the policy-gradient losses
of GRPO, DAPO, VAPO and RLHF's PPO; rollouts, the critic and the training loop that uses them
(`RLTrainer`, configured by `RLConfig`; `llmlab rl` runs it on arithmetic), and online DPO on that loop
(`OnlineDPOTrainer`, `llmlab rl --algo online-dpo`); and RLHF's reward model,
trained on comparisons (`RewardTrainer`, configured by `RewardConfig`; `llmlab rm train`).

Names are imported on first use (PEP 562), so the package's torch-free parts load without torch.
"""

from llmlab.core.lazy import lazy_exports

__getattr__, __all__ = lazy_exports(__name__, {
    "algo_defaults": "llmlab.rl.config",
    "answer_reward": "llmlab.rl.rewards",
    "best_worst_pairs": "llmlab.rl.online_dpo",
    "EnsembleScorer": "llmlab.rl.reward_model",
    "gae": "llmlab.rl.advantages",
    "group_advantages": "llmlab.rl.advantages",
    "informative_groups": "llmlab.rl.advantages",
    "kl_k3": "llmlab.rl.losses",
    "kl_shaped_rewards": "llmlab.rl.advantages",
    "length_adaptive_lambda": "llmlab.rl.advantages",
    "load_reward_model": "llmlab.rl.reward_model",
    "make_critic": "llmlab.rl.value",
    "make_reward_model": "llmlab.rl.reward_model",
    "masked_mean": "llmlab.rl.losses",
    "nll_loss": "llmlab.rl.losses",
    "OnlineDPOTrainer": "llmlab.rl.online_dpo",
    "overlong_penalty": "llmlab.rl.rewards",
    "pair_accuracy": "llmlab.rl.reward_model",
    "policy_loss": "llmlab.rl.losses",
    "Preference": "llmlab.rl.preferences",
    "preference_loss": "llmlab.rl.reward_model",
    "read_preferences": "llmlab.rl.preferences",
    "read_split_preferences": "llmlab.rl.preferences",
    "RewardConfig": "llmlab.rl.reward_config",
    "RewardScorer": "llmlab.rl.reward_model",
    "RewardTrainer": "llmlab.rl.reward_trainer",
    "RLConfig": "llmlab.rl.config",
    "RLTrainer": "llmlab.rl.trainer",
    "rollout": "llmlab.rl.rollout",
    "Rollouts": "llmlab.rl.rollout",
    "sample_group": "llmlab.rl.rollout",
    "sampled_preferences": "llmlab.rl.preferences",
    "save_reward_model": "llmlab.rl.reward_model",
    "sequence_logprobs": "llmlab.rl.rollout",
    "Task": "llmlab.rl.trainer",
    "terminal_rewards": "llmlab.rl.advantages",
    "value_loss": "llmlab.rl.losses",
})
