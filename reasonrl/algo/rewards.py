"""Reward shaping: outcome reward from correctness, DAPO soft overlong punishment, per-token reward placement.

Shapes: `B` sequences, `T` tokens. `mask` is bool `(B, T)`, True = a sampled response token that is trained on.
"""

import torch
from torch import Tensor


def outcome_reward(
    correct: Tensor,
    *,
    answered: Tensor | None = None,
    correct_reward: float = 1.0,
    wrong_reward: float = -1.0,
    no_answer_reward: float = -1.0,
) -> Tensor:
    """Scalar outcome reward per sequence from verifier results.

    r = correct_reward    if correct
        wrong_reward      if answered and not correct
        no_answer_reward  if not answered

    Defaults are DAPO's +1 / -1 (VAPO only says "binary"); Concise RL uses
    `correct_reward=1.0, wrong_reward=-0.5, no_answer_reward=-1.0` with `answered` from the answer
    extractor. `answered=None` means every sequence gave an answer.

    Args:
        correct: `(B,)` bool.
        answered: `(B,)` bool or None; a correct sequence must be answered.

    Returns:
        `(B,)` float32 rewards.
    """
    reward = torch.full(correct.shape, wrong_reward, dtype=torch.float32, device=correct.device)  # (B,)
    if answered is not None:
        assert not (correct & ~answered).any(), "a sequence is marked correct but not answered"
        reward = torch.where(answered, reward, no_answer_reward)
    return torch.where(correct, correct_reward, reward)  # (B,)


def overlong_penalty(lengths: Tensor, *, max_len: int, cache_len: int) -> Tensor:
    """DAPO soft overlong punishment, added to the outcome reward (DAPO §3.4, Eq. 13).

    R_length(y) = 0                                   if |y| <= L_max - L_cache
                = ((L_max - L_cache) - |y|) / L_cache   if L_max - L_cache < |y| <= L_max
                = -1                                  if |y| > L_max

    i.e. a linear ramp from 0 to -1 over the last `cache_len` tokens, then -1. DAPO: L_max = 20480,
    L_cache = 4096. (When generation is capped at L_max the -1 branch is reached only at |y| = L_max.)

    Args:
        lengths: `(B,)` response lengths in tokens.

    Returns:
        `(B,)` float32 penalties in [-1, 0].
    """
    assert 0 < cache_len <= max_len, f"need 0 < cache_len <= max_len, got cache_len={cache_len}, max_len={max_len}"
    ramp = ((max_len - cache_len) - lengths.float()) / cache_len  # (B,)
    return ramp.clamp(-1.0, 0.0)  # (B,)


def token_level_rewards(scores: Tensor, mask: Tensor, *, kl: Tensor | None = None, kl_coef: float = 0.0) -> Tensor:
    """Per-token rewards for GAE: the sequence score on its last trained token, minus a KL penalty.

    r_it = score_i * [t = last True position of row i] - kl_coef * kl_it * mask_it

    The sparse terminal reward of the token-level MDP (VAPO preliminaries), with the per-token KL penalty
    of standard RLHF PPO (Ouyang et al. 2022; `kl` e.g. `kl.kl_k1(old_logp, ref_logp)`). VAPO lists no
    KL coefficient and DAPO removes KL, so `kl_coef` defaults to 0.

    Args:
        scores: `(B,)` float sequence rewards (outcome reward plus any shaping).
        mask: `(B, T)` bool; every row needs at least one True position.
        kl: `(B, T)` per-token KL estimate, required when `kl_coef != 0`.

    Returns:
        `(B, T)` float rewards, 0 at False positions.
    """
    assert mask.any(-1).all(), "every row needs at least one True position to receive its score"
    positions = torch.arange(1, mask.shape[1] + 1, device=mask.device)  # (T,)
    last = (mask * positions).argmax(-1)  # (B,) index of the last True position
    rewards = torch.zeros(mask.shape, dtype=scores.dtype, device=scores.device)  # (B, T)
    rewards.scatter_(1, last[:, None], scores[:, None])
    if kl_coef != 0.0:
        assert kl is not None, "kl_coef != 0 needs the per-token kl"
        rewards = rewards - kl_coef * torch.where(mask, kl, 0.0)
    return rewards  # (B, T)
