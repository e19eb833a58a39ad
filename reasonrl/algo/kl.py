"""Per-token KL estimators, entropy and token log-probs from logits.

Shapes: `B` sequences, `T` tokens, `V` vocabulary. Every function is per token; masking and averaging
belong to `losses.aggregate` (or `rewards.token_level_rewards` for a KL penalty in the reward).
"""

import torch
from torch import Tensor


def kl_k1(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k1 estimator of KL(pi || pi_ref) from tokens sampled from pi: `logp - ref_logp`.

    Unbiased, high variance, can be negative per token (Schulman, "Approximating KL divergence", 2020).

    Args:
        logp: `(B, T)` log-probs of the sampled tokens under the policy.
        ref_logp: `(B, T)` log-probs of the same tokens under the reference policy.
    """
    return logp - ref_logp  # (B, T)


def kl_k2(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k2 estimator: `0.5 * (logp - ref_logp)^2`. Biased, low variance, >= 0 (Schulman 2020)."""
    return 0.5 * (logp - ref_logp).square()  # (B, T)


def kl_k3(logp: Tensor, ref_logp: Tensor) -> Tensor:
    """k3 estimator: `exp(ref_logp - logp) - (ref_logp - logp) - 1`. Unbiased, low variance, >= 0.

    Schulman 2020 with `r = pi_ref / pi` on tokens sampled from pi: `k3 = (r - 1) - log r`. No clamping
    (verl clamps the log-ratio to [-20, 20] and the result to [-10, 10]); clamp in the caller if needed.
    """
    log_r = ref_logp - logp  # (B, T)
    return log_r.exp() - log_r - 1  # (B, T)


def _chunks(x: Tensor, chunk_size: int) -> list[Tensor]:
    assert chunk_size > 0, f"chunk_size must be positive, got {chunk_size}"
    return list(x.reshape(-1, x.shape[-1]).split(chunk_size))


def token_logprobs_from_logits(logits: Tensor, targets: Tensor, *, chunk_size: int = 1024) -> Tensor:
    """Log-prob of each target token: `log_softmax(logits)[target] = logits[target] - logsumexp(logits)`.

    Never materialises the full `(B, T, V)` log-softmax: the work runs in chunks of `chunk_size` tokens,
    in float32 (a bf16 input is upcast one chunk at a time). Under autograd the float32 chunks that
    `logsumexp` saves for backward still add up to one float32 copy of bf16 logits. No max-shift copy is
    made, so the absolute error is about the float32 spacing at `logsumexp(logits)` (~2e-6 at 30).

    Args:
        logits: `(B, T, V)`; position t scores the token `targets[:, t]`.
        targets: `(B, T)` integer token ids.

    Returns:
        `(B, T)` float32 log-probs.
    """
    assert logits.shape[:-1] == targets.shape, f"logits {tuple(logits.shape)} vs targets {tuple(targets.shape)}"
    out = []
    for z, y in zip(_chunks(logits, chunk_size), targets.reshape(-1).split(chunk_size), strict=True):
        z = z.float()  # (n, V)
        out.append(z.gather(-1, y.unsqueeze(-1)).squeeze(-1) - z.logsumexp(-1))  # (n,)
    return torch.cat(out).reshape(targets.shape)  # (B, T)


def entropy_from_logits(logits: Tensor, *, chunk_size: int = 1024) -> Tensor:
    """Entropy of the next-token distribution: `H = logsumexp(z) - sum_v softmax(z)_v * z_v`.

    Computed on logits shifted by their row max, so large logits lose no precision, and stable for `-inf`
    logits (banned tokens): those have probability 0 and are replaced by 0 in the `p * z` term so neither
    the value nor the gradient is NaN. Chunked over tokens like `token_logprobs_from_logits`.

    Args:
        logits: `(B, T, V)`.

    Returns:
        `(B, T)` float32 entropies in nats.
    """
    out = []
    for z in _chunks(logits, chunk_size):
        z = z.float()  # (n, V)
        # H is shift-invariant; shifting by the row max keeps logsumexp - sum(p z) free of cancellation
        z = z - z.max(-1, keepdim=True).values.detach()  # (n, V), max 0
        p = z.softmax(-1)  # (n, V)
        z_finite = z.masked_fill(z == float("-inf"), 0.0)  # (n, V)
        out.append(z.logsumexp(-1) - (p * z_finite).sum(-1))  # (n,)
    return torch.cat(out).reshape(logits.shape[:-1])  # (B, T)


KL_ESTIMATORS = {"k1": kl_k1, "k2": kl_k2, "k3": kl_k3}
