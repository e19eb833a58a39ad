"""Pairwise-RL (arXiv 2504.04950): a generative pairwise reward model and PPO against an anchor response.

- `metrics`: debiased_score, swap_consistency, expected_calibration_error (pure).
- `judges`: the `prob_better(prompt, a, b)` interface: generative YES/NO judge, Bradley-Terry, oracle.
- `world`: the synthetic preference set (hidden quality, noisy labels, a prompt-dependent offset).
- `rm_train`: `reasonrl rm-train` (swap augmentation, accuracy / consistency / ECE, reliability plot).
- `reward`: the `pairwise` reward kind, s(y, y*) against a configurable anchor, for the PPO / GRPO trainers.

Imported only by cli.py, benchmarks/pairwise.py and tests/pairwise (the reward kind by import path).
"""

from reasonrl.pairwise.metrics import debiased_score, expected_calibration_error, swap_consistency

__all__ = ["debiased_score", "expected_calibration_error", "swap_consistency"]
