"""Concise Reasoning via Reinforcement Learning (Fatemi et al., arXiv 2504.05185): the two-phase recipe.

reward.py: the released code's optional linear length penalty, as the `length_penalty` reward kind
select.py: `reasonrl concise select`: per-problem solve rates from k samples and the tiny phase-2 set
bandit.py: the paper's length argument as a geometric-stopping bandit trained with algo/'s gae and PPO loss

The rest of the recipe is configuration (configs/concise_phase2.toml: PPO, lambda 0.95, per-sequence token-mean
loss, k1 KL in the reward via `rl.kl_in_reward`, +1 / -0.5 / -1 via `reward.*`), the length-bias diagnostics
every RL trainer logs (`algo.length_bias`), and `reasonrl eval --compare` (`eval.compare`).
"""
