"""Losses: loss aggregation modes, PPO clipped surrogate (clip-higher), value loss, positive-example NLL.

Shapes: `B` sequences, `T` tokens. `mask` is bool `(B, T)`, True = a sampled response token that is trained
on. Every loss returns a scalar through `aggregate`, the one place the normalisation modes live.

Global counts: with `num_tokens` / `num_seqs` given, `aggregate` divides the local sum by them, so the
losses of several micro-batches or ranks *sum* to the loss of the whole batch. Gradient accumulation
sums, so micro-batches need nothing more; DDP averages gradients over ranks, so a DDP trainer passes
`num_tokens / world_size` (or multiplies the loss by the world size).
"""

import torch
from torch import Tensor

AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")


def aggregate(
    x: Tensor, mask: Tensor, *, agg: str, num_tokens: int | Tensor | None = None, num_seqs: int | Tensor | None = None
) -> Tensor:
    """Reduce a per-token quantity `(B, T)` to a scalar over the True positions of `mask`.

    token-mean:          sum_i sum_t x_it / N_tokens              (VAPO Eq. 7; DAPO Eq. 12)
    seq-mean-token-mean: sum_i (sum_t x_it / |o_i|) / N_seqs      (VAPO Eq. 6: GRPO / PPO sample-level)
    seq-mean-token-sum:  sum_i (sum_t x_it) / N_seqs              (no length normalisation, Dr. GRPO-like)

    `|o_i|` is the number of True positions of row i. `N_tokens` defaults to the local number of True
    positions, `N_seqs` to the local number of rows with at least one True position (an all-False row
    adds nothing). A count the mode does not use is ignored, so a trainer may always pass both. Given
    counts must be > 0; the defaults are clamped to >= 1 so an all-False batch gives 0, not NaN.
    """
    masked = torch.where(mask, x, 0.0)  # (B, T); where, not *, so NaN/inf at False positions cannot leak
    if agg == "token-mean":
        denom = mask.sum().clamp(min=1) if num_tokens is None else num_tokens
        return masked.sum() / denom
    seq_len = mask.sum(-1)  # (B,)
    denom = (seq_len > 0).sum().clamp(min=1) if num_seqs is None else num_seqs
    if agg == "seq-mean-token-mean":
        return (masked.sum(-1) / seq_len.clamp(min=1)).sum() / denom
    if agg == "seq-mean-token-sum":
        return masked.sum() / denom
    raise ValueError(f"unknown agg {agg!r}; expected one of {AGG_MODES}")


def _masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, x, 0.0).sum() / mask.sum().clamp(min=1)


def policy_loss(
    logp: Tensor,
    old_logp: Tensor,
    advantages: Tensor,
    mask: Tensor,
    *,
    clip_low: float = 0.2,
    clip_high: float = 0.2,
    dual_clip: float | None = None,
    agg: str = "token-mean",
    num_tokens: int | Tensor | None = None,
    num_seqs: int | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """PPO clipped surrogate with decoupled clip range (clip-higher).

    r_t = exp(logp_t - old_logp_t)
    L_t = -min(r_t * A_t, clip(r_t, 1 - clip_low, 1 + clip_high) * A_t)      (DAPO Eq. 10; VAPO Eq. 8)

    then `aggregate(L, mask, agg=...)`. DAPO and VAPO use clip_low = 0.2, clip_high = 0.28; the defaults
    are symmetric PPO. `dual_clip = c > 1` additionally bounds the loss of a negative-advantage token by
    `-c * A_t` (Ye et al. 2020; verl's reference DAPO script uses c = 10); the papers do not use it, so
    it is off by default. The log-ratio is clamped to [-20, 20] so `exp` cannot overflow.

    Args:
        logp: `(B, T)` log-probs of the sampled tokens under the current policy (with grad).
        old_logp: `(B, T)` log-probs under the policy that sampled them.
        advantages: `(B, T)`; broadcast a per-sequence `(B,)` advantage with `adv[:, None]` first.
        mask: `(B, T)` bool.

    Returns:
        `(loss, stats)`; stats are detached token means over this batch's True positions: `clipfrac_low`
        (r < 1 - clip_low with A < 0, the clipped term active), `clipfrac_high` (r > 1 + clip_high with
        A > 0), `clipfrac_dual` (only with `dual_clip`), `approx_kl` (k3 estimate of KL(old || new):
        r - 1 - log r), `ratio_mean`, `ratio_max`.
    """
    assert logp.shape == old_logp.shape == advantages.shape == mask.shape, (
        f"shapes differ: logp {tuple(logp.shape)}, old_logp {tuple(old_logp.shape)}, "
        f"advantages {tuple(advantages.shape)}, mask {tuple(mask.shape)}"
    )
    log_ratio = torch.where(mask, logp - old_logp, 0.0).clamp(-20.0, 20.0)  # (B, T)
    ratio = log_ratio.exp()  # (B, T)
    unclipped = -advantages * ratio  # (B, T)
    clipped = -advantages * ratio.clamp(1 - clip_low, 1 + clip_high)  # (B, T)
    per_token = torch.maximum(unclipped, clipped)  # (B, T)
    stats = {}
    if dual_clip is not None:
        assert dual_clip > 1, f"dual_clip must be > 1, got {dual_clip}"
        bound = -advantages * dual_clip  # (B, T)
        dual_active = (advantages < 0) & (per_token > bound)  # (B, T)
        per_token = torch.where(dual_active, bound, per_token)
        stats["clipfrac_dual"] = _masked_mean(dual_active.float(), mask)
    loss = aggregate(per_token, mask, agg=agg, num_tokens=num_tokens, num_seqs=num_seqs)

    with torch.no_grad():
        is_clipped = clipped > unclipped  # (B, T)
        stats["clipfrac_low"] = _masked_mean((is_clipped & (ratio < 1 - clip_low)).float(), mask)
        stats["clipfrac_high"] = _masked_mean((is_clipped & (ratio > 1 + clip_high)).float(), mask)
        stats["approx_kl"] = _masked_mean(ratio - 1 - log_ratio, mask)
        stats["ratio_mean"] = _masked_mean(ratio, mask)
        stats["ratio_max"] = torch.where(mask, ratio, 0.0).max()
    return loss, {k: v.detach() for k, v in stats.items()}


def explained_variance(values: Tensor, returns: Tensor, mask: Tensor) -> Tensor:
    """`1 - Var(R - V) / Var(R)` over the True positions (1 = perfect critic, 0 = predicts the mean).

    Population variances (the normaliser cancels). NaN when Var(R) = 0 (e.g. every return equal), where
    the ratio is undefined. Detached scalar.
    """
    with torch.no_grad():
        err = returns - values  # (B, T)
        var_err = _masked_mean((err - _masked_mean(err, mask)).square(), mask)
        var_ret = _masked_mean((returns - _masked_mean(returns, mask)).square(), mask)
        return torch.where(var_ret > 0, 1 - var_err / var_ret, torch.nan)


def value_loss(
    values: Tensor,
    old_values: Tensor,
    returns: Tensor,
    mask: Tensor,
    *,
    clip: float | None = None,
    agg: str = "token-mean",
    num_tokens: int | Tensor | None = None,
    num_seqs: int | Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """Critic loss `0.5 * (V - R)^2`, optionally with PPO value clipping.

    With `clip = c`:  V_clip = V_old + clip(V - V_old, -c, c),  L = 0.5 * max((V - R)^2, (V_clip - R)^2)
    (PPO2 baselines; verl `cliprange_value` 0.5). VAPO does not say whether it clips the value loss, so
    `clip=None` (no clipping) is the default.

    Args:
        values: `(B, T)` current critic predictions (with grad).
        old_values: `(B, T)` predictions at rollout time (used only with `clip`).
        returns: `(B, T)` targets, e.g. from `advantages.gae`.
        mask: `(B, T)` bool.

    Returns:
        `(loss, stats)`; stats (detached, over this batch's True positions): `explained_var`,
        `value_mean`, and `clipfrac` (fraction where the clipped error is the larger) with `clip`.
    """
    assert values.shape == old_values.shape == returns.shape == mask.shape, (
        f"shapes differ: values {tuple(values.shape)}, old_values {tuple(old_values.shape)}, "
        f"returns {tuple(returns.shape)}, mask {tuple(mask.shape)}"
    )
    sq_err = (values - returns).square()  # (B, T)
    stats = {}
    if clip is not None:
        v_clip = old_values + (values - old_values).clamp(-clip, clip)  # (B, T)
        sq_err_clip = (v_clip - returns).square()  # (B, T)
        stats["clipfrac"] = _masked_mean((sq_err_clip > sq_err).float(), mask).detach()
        sq_err = torch.maximum(sq_err, sq_err_clip)
    loss = 0.5 * aggregate(sq_err, mask, agg=agg, num_tokens=num_tokens, num_seqs=num_seqs)
    stats["explained_var"] = explained_variance(values, returns, mask)
    stats["value_mean"] = _masked_mean(values, mask).detach()
    return loss, stats


def positive_nll(logp: Tensor, mask: Tensor, correct: Tensor, *, num_tokens: int | Tensor | None = None) -> Tensor:
    """Positive-example LM loss (self-imitation) over the correct samples of the batch.

    L_NLL = -(1 / sum_{o_i in T} |o_i|) * sum_{o_i in T} sum_t logp_it        (VAPO Eq. 9)

    with T the set of correct samples; VAPO adds `0.1 * L_NLL` to the PPO loss (Eq. 10). `num_tokens` is
    the global number of trained tokens *in correct samples* (not the policy loss's count). With no
    correct sample the loss is 0, still attached to the graph (zero gradient, no NaN).

    Args:
        logp: `(B, T)` log-probs of the sampled tokens under the current policy.
        mask: `(B, T)` bool.
        correct: `(B,)` bool, True where the sample's answer is correct.
    """
    keep = mask & correct[:, None]  # (B, T)
    return aggregate(-logp, keep, agg="token-mean", num_tokens=num_tokens)
