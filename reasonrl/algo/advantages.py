"""Advantage estimators: GAE (PPO / VAPO), length-adaptive lambda, GRPO group advantages, whitening.

Shapes: `B` sequences, `T` tokens, `G` group size. `mask` is bool `(B, T)`, True = a sampled response token
that is trained on; prompt, padding and tool-output tokens are False.
"""

import torch
from torch import Tensor


@torch.no_grad()
def gae(rewards: Tensor, values: Tensor, mask: Tensor, *, gamma: float, lam: float | Tensor) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation over the response tokens of each row.

    delta_t = r_t + gamma * V(s_{t'}) - V(s_t)
    A_t     = delta_t + gamma * lam * A_{t'}       (Schulman et al. 2016, GAE; VAPO preliminaries)
    R_t     = A_t + V(s_t)

    where t' is the next position after t with `mask` True in the same row. The recursion runs over the
    True positions only: a False span inside a response (tool output, SWiRL) is transparent, so the
    token before it bootstraps from the first value after it and is discounted by gamma once, not once
    per skipped token. Rewards and values at False positions are ignored, and V = 0 after the last True
    position. Advantages and returns are 0 where `mask` is False. Computed without gradient.

    Args:
        rewards: `(B, T)` float per-token rewards (see `rewards.token_level_rewards`).
        values: `(B, T)` float V(s_t), the critic's value before emitting token t.
        mask: `(B, T)` bool.
        gamma: discount (VAPO and DAPO use 1.0).
        lam: GAE lambda, a float or a `(B,)` tensor of per-sequence lambdas (VAPO length-adaptive GAE).

    Returns:
        `(advantages, returns)`, both `(B, T)`.
    """
    assert rewards.shape == values.shape == mask.shape, (
        f"shapes differ: rewards {tuple(rewards.shape)}, values {tuple(values.shape)}, mask {tuple(mask.shape)}"
    )
    discount = gamma * torch.as_tensor(lam, dtype=values.dtype, device=values.device)  # () or (B,)
    assert discount.dim() == 0 or discount.shape == values.shape[:1], f"lam must be a float or (B,), got {lam}"
    next_value = values.new_zeros(values.shape[0])  # (B,)
    next_adv = values.new_zeros(values.shape[0])  # (B,)
    advs = []
    for t in reversed(range(values.shape[1])):
        valid = mask[:, t]  # (B,)
        delta = rewards[:, t] + gamma * next_value - values[:, t]  # (B,)
        adv = delta + discount * next_adv  # (B,)
        # at a False position both carries pass through unchanged
        next_adv = torch.where(valid, adv, next_adv)
        next_value = torch.where(valid, values[:, t], next_value)
        advs.append(torch.where(valid, adv, 0.0))
    advantages = torch.stack(advs[::-1], dim=1)  # (B, T)
    returns = torch.where(mask, advantages + values, 0.0)  # (B, T)
    return advantages, returns


def decoupled_gae(
    rewards: Tensor,
    values: Tensor,
    mask: Tensor,
    *,
    gamma: float,
    lam_policy: float | Tensor,
    lam_critic: float = 1.0,
) -> tuple[Tensor, Tensor]:
    """Decoupled GAE: policy advantages from `lam_policy`, critic returns from `lam_critic`.

    A = gae(..., lam=lam_policy).advantages;  R = gae(..., lam=lam_critic).returns
    (VAPO §4.1 and §5.1, from VC-PPO: lam_critic = 1.0 gives unbiased Monte-Carlo-like value targets;
    VAPO sets lam_policy per sequence with `length_adaptive_lambda`.)

    Returns:
        `(advantages, returns)`, both `(B, T)`, 0 where `mask` is False.
    """
    advantages, _ = gae(rewards, values, mask, gamma=gamma, lam=lam_policy)
    _, returns = gae(rewards, values, mask, gamma=gamma, lam=lam_critic)
    return advantages, returns


def length_adaptive_lambda(lengths: Tensor, *, alpha: float = 0.05) -> Tensor:
    """Per-sequence GAE lambda for the policy: `lam = 1 - 1 / (alpha * l)` (VAPO §4.2, Eq. 5).

    Chosen so the effective horizon `1 / (1 - lam)` equals `alpha * l` (Eq. 4); l = 100 -> 0.8,
    l = 1000 -> 0.98. The paper is silent for l < 1/alpha (20 tokens at alpha = 0.05), where the formula
    gives lam <= 0 (or -inf at l = 0); we clamp to [0, 1], as NeMo RL does.

    Args:
        lengths: `(B,)` response lengths in tokens (int or float), e.g. `mask.sum(-1)`.

    Returns:
        `(B,)` float lambdas in [0, 1].
    """
    horizon = alpha * (lengths if lengths.is_floating_point() else lengths.float())  # (B,) alpha * l
    return (1 - 1 / horizon.clamp(min=1.0)).clamp(0.0, 1.0)  # (B,)


def group_advantages(
    rewards: Tensor, group_size: int, *, normalize_std: bool = True, unbiased: bool = True, eps: float = 1e-6
) -> Tensor:
    """GRPO outcome advantage: `A_i = (r_i - mean_group(r)) / (std_group(r) + eps)`.

    GRPO (Shao et al. 2024), as used in DAPO's objective (the A-hat defined with Eq. 8-12). Groups are
    contiguous: rows `[k*G, (k+1)*G)` are the G samples of prompt k. `normalize_std=False` gives
    `r_i - mean_group(r)` (Dr. GRPO; nanochat). The papers write `std({R_i})` without saying which std;
    verl uses `torch.std` (unbiased, /(G-1)), so that is the default [S]; `unbiased=False` gives the
    population (/G) std. A group whose rewards are all equal gets A = 0.

    Args:
        rewards: `(B,)` scalar reward per sequence, `B` a multiple of `group_size`.

    Returns:
        `(B,)` advantages; broadcast onto tokens with `adv[:, None]` and the mask.
    """
    assert rewards.dim() == 1 and rewards.shape[0] % group_size == 0, (
        f"rewards {tuple(rewards.shape)} must be (B,) with B a multiple of group_size={group_size}"
    )
    assert not (normalize_std and unbiased and group_size < 2), "the unbiased std needs group_size >= 2"
    r = rewards.reshape(-1, group_size)  # (B/G, G)
    adv = r - r.mean(-1, keepdim=True)  # (B/G, G)
    if normalize_std:
        adv = adv / (r.std(-1, keepdim=True, correction=int(unbiased)) + eps)  # (B/G, G)
    return adv.reshape(-1)  # (B,)


def masked_moments(x: Tensor, mask: Tensor) -> Tensor:
    """`(count, sum, sum of squares)` of `x` over the True positions of `mask`, as a float64 `(3,)` tensor.

    Sums, so the moments of a batch split over processes are the sum of each part's (`dist.all_reduce_sum`);
    float64 keeps `sum_sq - sum^2 / n` in `whiten` free of cancellation for advantages of any scale.
    """
    v = torch.where(mask, x, 0.0).double()  # (B, T)
    return torch.stack([mask.sum().double(), v.sum(), v.square().sum()])  # (3,)


def whiten(x: Tensor, mask: Tensor, *, shift_mean: bool = True, unbiased: bool = True, eps: float = 1e-8,
           moments: Tensor | None = None) -> Tensor:
    """PPO advantage normalisation over the valid tokens: `(x - mean) / sqrt(var + eps)`.

    mean and var are taken over the True positions of the whole `(B, T)` tensor, so call it on the full
    rollout batch before splitting it into micro-batches. When the batch is split over processes, pass
    `moments`, the `masked_moments` summed over all of them: then every process whitens with the statistics
    of the whole batch (var = (sum_sq - n mean^2) / (n - 1)), as one process holding it would.
    `shift_mean=False` keeps the mean: `(x - mean) / sqrt(var + eps) + mean`. No paper specifies the variance
    (VAPO does not even say whether it whitens); verl uses the unbiased masked variance, so that is the
    default [S], and `unbiased=False` gives the population one.

    Returns:
        `(B, T)`, 0 where `mask` is False.
    """
    num, total, total_sq = (masked_moments(x, mask) if moments is None else moments.double()).unbind()
    mean = total / num  # ()
    var = (total_sq - num * mean * mean).clamp(min=0.0) / (num - int(unbiased))  # ()
    out = ((x - mean) * torch.rsqrt(var + eps)).to(x.dtype)  # (B, T)
    if not shift_mean:
        out = out + mean.to(x.dtype)
    return torch.where(mask, out, 0.0)  # (B, T)
