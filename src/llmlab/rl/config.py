"""The reinforcement-learning run's config: plain data, importable without torch (the CLI builds flags
from it).

Four algorithms share one loop and differ only in settings, which `algo_defaults` names:

- ``grpo`` (DeepSeekMath, Shao et al. 2024): group-normalised advantages, the PPO clip 0.2 both ways,
  k3 KL to the starting policy with weight 0.04, each completion's token losses averaged first.
- ``dapo`` (Yu et al. 2025): clip-higher (0.2 down, 0.28 up), no KL term, one token-level average over
  the batch, dynamic sampling (only groups whose rewards differ), overlong reward shaping and
  filtering of truncated completions.
- ``vapo`` (Yue et al. 2025): PPO with a value model, pretrained on Monte-Carlo returns before the
  policy moves; decoupled GAE (lambda 1 for the value targets, a length-adaptive lambda for the
  policy), clip-higher, token-level loss, and an NLL term on the completions that earned the reward.
- ``ppo`` (RLHF as in Stiennon et al. 2020 and InstructGPT, Ouyang et al. 2022): a value model and GAE
  with lambda 0.95 for both the value targets and the policy, the clip 0.2 both ways, token-level loss,
  and the KL to the starting policy (0.05) in the reward rather than the loss: every completion token
  earns ``-kl_coef * (log pi_old - log pi_ref)`` and the last one the score as well.
- ``online-dpo`` (Guo et al. 2024; TRL's ``OnlineDPOTrainer``): no advantages and no clip; each prompt's
  best and worst of ``group_size`` answers (2 by default) become a comparison when their scores differ,
  and one DPO step (`llmlab.rl.dpo`'s loss, ``beta``, ``loss``, ``label_smoothing``, ``nll_coef``) is
  taken on the step's comparisons against the frozen starting policy (`llmlab.rl.online_dpo`).

A setting left at None takes the algorithm's value; one given explicitly wins (`resolved` fills them
in as the config is built, so config.json records what ran). `dataclasses.replace` keeps resolved
values: to switch algorithm, build a new config.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from llmlab.core.config import changed_settings, check_applies, config_from_dict, config_to_dict
from llmlab.core.errors import InputError
from llmlab.train.config import TrainConfig

ALGOS = ("grpo", "dapo", "vapo", "ppo", "online-dpo")
AGGREGATIONS = ("token", "sequence")
ENSEMBLES = ("mean", "min", "uwo")
UWO_LAMBDA = 0.5  # uwo's default weight of the members' variance
KL_PENALTIES = ("loss", "reward")
CRITIC_ALGOS = ("vapo", "ppo")  # those whose advantages are GAE from a value model
DPO_SETTINGS = ("beta", "loss", "label_smoothing", "nll_coef")  # online-dpo's own; the others leave them None

# the policy-gradient settings online-dpo has no use for (no advantages, ratio, clip, critic or KL term: beta is it)
PG_SETTINGS = ("clip_low", "clip_high", "kl_coef", "kl_penalty", "aggregation", "dynamic_sampling", "overlong_shaping",
               "overlong_filter", "lm_coef", "value_lr", "value_pretrain_steps", "lam_critic", "lam_policy")


def _names_apply(names: list[str]) -> str:
    """'clip_low applies', 'clip_low, kl_coef apply': the verb agrees with how many settings were given."""
    return f"{', '.join(names)} {'applies' if len(names) == 1 else 'apply'}"


# The loop: optimizer, schedule, clipping, seed, checkpoints. batch_size and seq_len are unused (a step's
# batch is prompts_per_step x group_size completions of at most max_new_tokens tokens).
RL_TRAIN = TrainConfig(steps=60, lr=3e-4, min_lr=0.0, warmup_steps=0, schedule="constant", weight_decay=0.0,
                       grad_clip=1.0, eval_every=0, checkpoint_every=20, log_every=1, seed=0)

# Settings the training loop does not honour (it runs fp32, one pass per minibatch): refused if changed.
UNUSED_TRAIN = {"precision": "fp32", "grad_accum": 1, "compile": False, "grad_checkpoint": False}


def algo_defaults(algo: str) -> dict:
    """Each algorithm's published settings (those a None field takes). A setting an algorithm does not
    list stays None because it does not use it; vapo's lam_policy None means its length-adaptive lambda.

    >>> algo_defaults("dapo")["clip_high"], algo_defaults("grpo")["aggregation"], algo_defaults("ppo")["kl_penalty"]
    (0.28, 'sequence', 'reward')
    >>> algo_defaults("online-dpo")["group_size"], algo_defaults("grpo")["group_size"]
    (2, 8)
    """
    if algo not in ALGOS:
        raise InputError(f"algo must be one of {ALGOS}, got {algo!r}")
    if algo == "online-dpo":  # one optimizer step on the step's comparisons
        return dict(group_size=2, minibatches=1, beta=0.1, loss="sigmoid", label_smoothing=0.0, nll_coef=0.0)
    return dict(group_size=8, minibatches=2) | {
        "grpo": dict(clip_low=0.2, clip_high=0.2, kl_coef=0.04, kl_penalty="loss", aggregation="sequence",
                     dynamic_sampling=False, overlong_shaping=False, overlong_filter=False, lm_coef=0.0,
                     value_pretrain_steps=0),
        "dapo": dict(clip_low=0.2, clip_high=0.28, kl_coef=0.0, kl_penalty="loss", aggregation="token",
                     dynamic_sampling=True, overlong_shaping=True, overlong_filter=True, lm_coef=0.0,
                     value_pretrain_steps=0),
        "vapo": dict(clip_low=0.2, clip_high=0.28, kl_coef=0.0, kl_penalty="loss", aggregation="token",
                     dynamic_sampling=False, overlong_shaping=False, overlong_filter=False, lm_coef=0.1,
                     value_pretrain_steps=20, lam_critic=1.0, lam_policy=None),
        "ppo": dict(clip_low=0.2, clip_high=0.2, kl_coef=0.05, kl_penalty="reward", aggregation="token",
                    dynamic_sampling=False, overlong_shaping=False, overlong_filter=False, lm_coef=0.0,
                    value_pretrain_steps=0, lam_critic=0.95, lam_policy=0.95),
    }[algo]


def check_reward_models(reward_model: str, ensemble: str, uwo_lambda: float | None) -> float | None:
    """InputError unless `reward_model` lists folders separated by single commas, each once, and `ensemble`
    (how several combine) is one of ENSEMBLES, with `uwo_lambda` (>= 0) only for "uwo"; returns the uwo
    lambda to use (UWO_LAMBDA when not given), or None for the other ensembles."""
    if ensemble not in ENSEMBLES:
        raise InputError(f"reward_ensemble must be one of {ENSEMBLES}, got {ensemble!r}")
    if ensemble != "uwo" and uwo_lambda is not None:
        raise InputError(f"uwo_lambda weighs the members' variance in the uwo ensemble, not {ensemble}: give "
                         "--reward-ensemble uwo or leave it out")
    if ensemble == "uwo":
        uwo_lambda = UWO_LAMBDA if uwo_lambda is None else uwo_lambda
        if not uwo_lambda >= 0:
            raise InputError(f"uwo_lambda must be >= 0, got {uwo_lambda}")
    folders = reward_model.split(",") if reward_model else []
    if not all(folders) or len(set(folders)) < len(folders):
        raise InputError(f"reward_model lists reward model folders separated by single commas, each once; "
                         f"got {reward_model!r}")
    return uwo_lambda


@dataclass(frozen=True)
class RLConfig:
    name: str = "rl"  # run directory name under the output root
    model: str = ""  # the chat model to improve (a folder written by llmlab sft)
    algo: str = "grpo"  # grpo | dapo | vapo | ppo | online-dpo: picks the defaults of the None settings (algo_defaults)
    train: TrainConfig = RL_TRAIN  # the loop: steps, lr, schedule, grad_clip, seed, checkpoints
    prompts_per_step: int = 8  # distinct prompts per step (each answered group_size times)
    group_size: int | None = None  # completions sampled per prompt (GRPO/DAPO's group; online-dpo: best vs worst)
    temperature: float = 1.0  # sampling temperature of the rollouts (and of the log-probs the loss uses)
    max_new_tokens: int = 8  # most tokens per completion; one that has not ended by then is truncated
    rollout_batch: int = 1  # prompts whose groups are sampled as one batch (1: one at a time; more: other draws)
    ppo_epochs: int = 1  # passes over each step's rollouts
    minibatches: int | None = None  # optimizer steps per pass (the rollouts, or online-dpo's pairs, split in this many)
    clip_low: float | None = None  # ratio clipped below at 1 - clip_low (None = the algorithm's)
    clip_high: float | None = None  # ratio clipped above at 1 + clip_high; > clip_low is clip-higher
    kl_coef: float | None = None  # weight of the KL to the starting policy (0 = no reference model)
    kl_penalty: str | None = None  # loss (k3 KL added to the loss) | reward (per-token reward, GAE algos: ppo)
    aggregation: str | None = None  # token (DAPO/VAPO/PPO: one mean over all tokens) | sequence (GRPO)
    scale_advantages: bool = True  # group advantages divided by the group's std (False: Dr. GRPO)
    dynamic_sampling: bool | None = None  # keep only groups whose rewards differ, drawing more prompts
    max_draws: int = 4  # dynamic sampling: most prompt batches drawn per step
    overlong_shaping: bool | None = None  # DAPO's soft length penalty added to the reward
    overlong_filter: bool | None = None  # truncated completions take no part in the loss
    overlong_max_len: int = 0  # the penalty reaches -1 at this length (0 = max_new_tokens)
    overlong_cache: int = 2  # the penalty grows over the last this-many tokens before overlong_max_len
    value_lr: float | None = None  # critic learning rate (vapo, ppo; None = 2 x lr, VAPO's ratio)
    value_pretrain_steps: int | None = None  # critic steps on the starting policy's returns first (vapo, ppo)
    lam_critic: float | None = None  # GAE lambda of the value targets (1 = Monte-Carlo returns)
    lam_policy: float | None = None  # GAE lambda of the advantages (vapo: None = length-adaptive, by lam_alpha)
    lam_alpha: float = 0.05  # VAPO: policy lambda = 1 - 1/(lam_alpha * length) in [0, 1] (0.05: 0 below 20 tokens)
    lam_adaptive: bool = False  # that length-adaptive policy lambda where the algorithm's is fixed (ppo; vapo's is it)
    gamma: float = 1.0  # discount of GAE (vapo, ppo)
    whiten_advantages: bool = True  # GAE advantages (vapo, ppo) shifted and scaled to mean 0, std 1 over the tokens
    lm_coef: float | None = None  # weight of the NLL of completions with reward 1 (VAPO's positive-example loss)
    eval_problems: int = 100  # arithmetic test problems answered greedily before and after (0 = skip)
    arithmetic_max_digits: int = 2  # operands have 2..this many digits (train prompts and test)
    arithmetic_ops: str = "+"  # operators of the arithmetic problems
    arithmetic_train: int = 2000  # arithmetic training problems the prompts are drawn from
    reward_model: str = ""  # reward model folder(s) (llmlab rm train), comma-separated: the reward ("" = exact answers)
    reward_ensemble: str = "mean"  # how several reward models' normalised scores combine: mean, min, or uwo
    uwo_lambda: float | None = None  # uwo: the members' mean less this x their variance (Coste et al.'s lambda)
    missing_eos_penalty: float = 0.0  # taken from the score of an answer that never wrote <|end|> (TRL's; 0 = none)
    beta: float | None = None  # online-dpo: the KL coefficient; implicit reward = beta x log(policy / reference)
    loss: str | None = None  # online-dpo: sigmoid (DPO), hinge (SLiC) or ipo (log-probs averaged per token)
    label_smoothing: float | None = None  # online-dpo, sigmoid loss: the share of labels taken as flipped
    nll_coef: float | None = None  # online-dpo: weight of the chosen answers' token NLL added to the loss (RPO)

    # the settings with a default of their own that reach the run only with an algorithm or another setting
    # (`check_applies`; those left None are the algorithms', refused by _check_policy, _check_online_dpo, _check_critic)
    APPLIES = {
        "gamma": (lambda c: c.uses_critic, "to the GAE of --algo vapo / ppo (their value model), not {cfg.algo}"),
        "whiten_advantages": (lambda c: c.uses_critic,
                              "to the GAE of --algo vapo / ppo (their value model), not {cfg.algo}"),
        "lam_alpha": (lambda c: c.uses_critic and c.lam_policy is None,
                      "to the length-adaptive policy lambda (vapo's, or --lam-adaptive), not a fixed --lam-policy "
                      "or --algo grpo / dapo / online-dpo"),
        "scale_advantages": (lambda c: c.algo in ("grpo", "dapo"),
                             "to the group advantages of --algo grpo / dapo, not {cfg.algo}"),
        "max_draws": (lambda c: bool(c.dynamic_sampling), "with dynamic sampling (--dynamic-sampling; dapo's)"),
        "overlong_cache": (lambda c: bool(c.overlong_shaping), "with overlong shaping (--overlong-shaping; dapo's)"),
        "overlong_max_len": (lambda c: bool(c.overlong_shaping), "with overlong shaping (--overlong-shaping; dapo's)"),
        "reward_ensemble": (lambda c: len(c.reward_models) > 1, "to several --reward-model folders"),
        "uwo_lambda": (lambda c: len(c.reward_models) > 1, "to several --reward-model folders"),
    }

    def __post_init__(self):
        changed = changed_settings(self)  # before the algorithm's settings and uwo's lambda are filled in
        if self.name in ("", ".", "..") or any(c in self.name for c in "/\\\0"):
            raise InputError(f"the run name must be a plain folder name, got {self.name!r}")
        if self.algo not in ALGOS:
            raise InputError(f"algo must be one of {ALGOS}, got {self.algo!r}")
        if self.lam_adaptive and self.lam_policy is not None:
            raise InputError("lam_adaptive computes the policy's lambda from each answer's length; it takes no "
                             f"lam_policy (got {self.lam_policy})")
        for k, v in algo_defaults(self.algo).items():
            if getattr(self, k) is None and not (k == "lam_policy" and self.lam_adaptive):
                object.__setattr__(self, k, v)
        if self.value_lr is None and self.uses_critic:
            object.__setattr__(self, "value_lr", 2 * self.train.lr)
        self._check_counts()
        if not self.temperature > 0:
            raise InputError(f"temperature must be > 0 (rollouts are sampled), got {self.temperature}")
        self._check_reward()
        if self.algo == "online-dpo":
            self._check_online_dpo()
        else:
            self._check_policy()
            self._check_critic()
        for k, v in UNUSED_TRAIN.items():
            if getattr(self.train, k) != v:
                raise InputError(f"reinforcement learning runs with {k}={v!r}, got {getattr(self.train, k)!r}")
        check_applies(self, changed)

    def _check_counts(self):
        for k in ("prompts_per_step", "max_new_tokens", "rollout_batch", "ppo_epochs", "minibatches", "max_draws",
                  "overlong_cache", "arithmetic_train"):
            if getattr(self, k) < 1:
                raise InputError(f"{k} must be >= 1, got {getattr(self, k)}")
        for k in ("overlong_max_len", "eval_problems"):
            if getattr(self, k) < 0:
                raise InputError(f"{k} must be >= 0, got {getattr(self, k)}")
        if self.group_size < 1 or (self.group_size < 2 and not self.uses_critic):
            why = ("a comparison needs two answers to one prompt" if self.algo == "online-dpo" else
                   "its advantages compare the completions of one prompt")
            raise InputError(f"group_size must be >= 2 for {self.algo} ({why}), got {self.group_size}"
                             if not self.uses_critic else f"group_size must be >= 1, got {self.group_size}")
        if self.algo == "online-dpo":
            if self.minibatches > self.prompts_per_step:
                raise InputError(f"minibatches ({self.minibatches}) exceeds the comparisons a step can make (one per "
                                 f"prompt: prompts_per_step = {self.prompts_per_step})")
        elif self.minibatches > self.prompts_per_step * self.group_size:
            raise InputError(f"minibatches ({self.minibatches}) exceeds the completions per step "
                             f"(prompts_per_step x group_size = {self.prompts_per_step * self.group_size})")
        if self.overlong_shaping and self.overlong_cache > self.overlong_len:
            raise InputError(f"overlong_cache ({self.overlong_cache}) exceeds overlong_max_len ({self.overlong_len})")
        if self.arithmetic_max_digits < 2:
            raise InputError(f"arithmetic_max_digits must be >= 2, got {self.arithmetic_max_digits}")
        if not self.arithmetic_ops or set(self.arithmetic_ops) - set("+-*"):
            raise InputError(f"arithmetic_ops must be a non-empty subset of '+-*', got {self.arithmetic_ops!r}")

    def _check_reward(self):
        """The reward-model settings, which every algorithm's scores go through (online-dpo's pairs too)."""
        if not self.missing_eos_penalty >= 0:
            raise InputError(f"missing_eos_penalty must be >= 0, got {self.missing_eos_penalty}")
        object.__setattr__(self, "uwo_lambda", check_reward_models(self.reward_model, self.reward_ensemble,
                                                                   self.uwo_lambda))

    def _check_policy(self):
        given = [k for k in DPO_SETTINGS if getattr(self, k) is not None]
        if given:
            raise InputError(f"{_names_apply(given)} to online-dpo's DPO loss, not {self.algo}")
        if not 0 <= self.clip_low < 1:
            raise InputError(f"clip_low must be in [0, 1), got {self.clip_low}")
        if not self.clip_high >= 0:
            raise InputError(f"clip_high must be >= 0, got {self.clip_high}")
        if not self.kl_coef >= 0:
            raise InputError(f"kl_coef must be >= 0, got {self.kl_coef}")
        if self.kl_penalty not in KL_PENALTIES:
            raise InputError(f"kl_penalty must be one of {KL_PENALTIES}, got {self.kl_penalty!r}")
        if self.kl_penalty == "reward" and not self.uses_critic:
            raise InputError(f"kl_penalty 'reward' puts the KL into per-token rewards, which only GAE advantages "
                             f"({', '.join(CRITIC_ALGOS)}) see; {self.algo}'s advantages take one score per "
                             "completion: use kl_penalty 'loss'")
        if self.aggregation not in AGGREGATIONS:
            raise InputError(f"aggregation must be one of {AGGREGATIONS}, got {self.aggregation!r}")
        if not self.lm_coef >= 0:
            raise InputError(f"lm_coef must be >= 0, got {self.lm_coef}")
        if self.lm_coef and self.reward_model:
            raise InputError("lm_coef trains on the answers the exact-answer check marks right, which a run rewarded "
                             "by a reward model must not see: give --lm-coef 0 with --reward-model")
        if self.dynamic_sampling and self.uses_critic:
            raise InputError(f"dynamic sampling keeps groups for group-relative advantages (grpo, dapo); "
                             f"{self.algo}'s advantages come from its value model")

    def _check_online_dpo(self):
        """Online DPO trains on comparisons by the DPO loss: the policy-gradient settings mean nothing there."""
        from llmlab.rl.dpo_config import check_dpo_loss

        given = [k for k in PG_SETTINGS if getattr(self, k) is not None]
        if self.lam_adaptive or not self.scale_advantages:
            given.append("lam_adaptive" if self.lam_adaptive else "scale_advantages")
        if given:
            raise InputError(f"{_names_apply(given)} to the policy-gradient algorithms, not online-dpo (no "
                             "advantages, ratio or critic; beta is its KL coefficient): leave them out")
        check_dpo_loss(self)

    def _check_critic(self):
        if not self.uses_critic:
            # Configs saved before lam_critic was the algorithm's carry its then default 1.0, which computed
            # nothing without a critic: read as unset, so those runs resume. Any other value is refused.
            if self.lam_critic == 1.0:
                object.__setattr__(self, "lam_critic", None)
            if (self.value_pretrain_steps or self.value_lr is not None or self.lam_policy is not None
                    or self.lam_critic is not None or self.lam_adaptive):
                raise InputError(f"value_lr, value_pretrain_steps, lam_critic, lam_policy and lam_adaptive apply to "
                                 f"the value model of {' and '.join(CRITIC_ALGOS)}, not {self.algo}")
            return
        if not 0 < self.value_lr <= 1:
            raise InputError(f"value_lr must be in (0, 1], got {self.value_lr}")
        if self.value_pretrain_steps < 0:
            raise InputError(f"value_pretrain_steps must be >= 0, got {self.value_pretrain_steps}")
        for k in ("lam_critic", "lam_policy"):
            if getattr(self, k) is not None and not 0 <= getattr(self, k) <= 1:
                raise InputError(f"{k} must be in [0, 1], got {getattr(self, k)}")
        if not self.lam_alpha > 0:
            raise InputError(f"lam_alpha must be > 0, got {self.lam_alpha}")
        if not 0 < self.gamma <= 1:
            raise InputError(f"gamma must be in (0, 1], got {self.gamma}")

    @property
    def overlong_len(self) -> int:
        """Where DAPO's overlong penalty reaches -1."""
        return self.overlong_max_len or self.max_new_tokens

    @property
    def reward_models(self) -> list[str]:
        """The reward model folders `reward_model` names (none: the exact-answer reward)."""
        return self.reward_model.split(",") if self.reward_model else []

    @property
    def uses_critic(self) -> bool:
        return self.algo in CRITIC_ALGOS

    @property
    def uses_reference(self) -> bool:
        """Whether the run keeps the starting policy, frozen: the KL term's, or online DPO's reference."""
        return self.algo == "online-dpo" or self.kl_coef > 0

    @property
    def corpus(self) -> str:
        """The prompts' source, under the name the run-directory checks use for a run's corpus."""
        return "arithmetic"

    def to_dict(self) -> dict:
        return config_to_dict(self)

    @classmethod
    def from_dict(cls, d: dict) -> RLConfig:
        d = dict(d)
        d["train"] = config_from_dict(TrainConfig, d.get("train", {}), "train")
        return config_from_dict(cls, d, "rl config")


def with_train(cfg: RLConfig, **train) -> RLConfig:
    """`cfg` with loop settings changed (its resolved algorithm settings kept)."""
    return dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, **train))
