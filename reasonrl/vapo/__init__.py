"""VAPO (Yue et al., arXiv 2504.05118): the mechanism study behind its critic and GAE choices.

VAPO itself is configuration of the PPO trainer (train/ppo.py, configs/vapo.toml). This package holds what the
paper's arguments need beyond that, imported only by benchmarks/vapo_mechanism.py and its tests:

chain.py: a long-horizon sparse-reward chain with known true values, where the project's own `gae`, `value_loss`
and `length_adaptive_lambda` measure (a) the early-token advantage bias of an untrained critic with and without
value pretraining, (b) the terminal-reward decay of a critic trained with lambda 0.95 vs 1, and (c) the bias and
variance of length-adaptive lambda against fixed 0.95 and 1.
"""
