"""Turning next-token logits into a sampled token and its log-probabilities: pure tensor functions.

Two log-probabilities are returned for every choice (see `choose_tokens`):

- `logp`: log-prob under the plain model distribution at temperature T, `log_softmax(logits / T)`, with no
  truncation. This is what a trainer recomputes with a teacher-forced forward pass
  (`reasonrl.model.logprobs.sequence_logprobs`), so it is the PPO/GRPO `old_logp`.
- `sampling_logp`: log-prob under the distribution the token was actually drawn from: logits / T with banned
  tokens, top-k and top-p removed, renormalised. Equal to `logp` when nothing is truncated.

Greedy decoding (T = 0) takes the argmax of the truncated scores and reports log-probs at T = 1.
"""

from __future__ import annotations

import torch

NEG_INF = float("-inf")


def top_k_mask(scores: torch.Tensor, k: int) -> torch.Tensor:
    """True where a token falls outside the `k` highest scores of its row (ties at the k-th score are kept)."""
    kth = torch.topk(scores, k, dim=-1).values[:, -1:]  # (B, 1)
    return scores < kth


def top_p_mask(scores: torch.Tensor, p: float) -> torch.Tensor:
    """True where a token falls outside the nucleus: the smallest set of top tokens whose probability reaches `p`.

    A token is kept when the probability mass strictly before it (in descending order) is below `p`, so the most
    likely token is always kept.
    """
    sorted_scores, order = torch.sort(scores, dim=-1, descending=True)
    probs = torch.softmax(sorted_scores, dim=-1)
    mass_before = torch.cumsum(probs, dim=-1) - probs  # (B, V)
    drop_sorted = mass_before >= p
    return torch.zeros_like(drop_sorted).scatter_(-1, order, drop_sorted)


def truncate(
    scores: torch.Tensor, *, top_k: int = 0, top_p: float = 1.0, banned: torch.Tensor | None = None
) -> torch.Tensor:
    """`scores` with banned tokens, then tokens outside top-k, then outside top-p set to -inf (a new tensor)."""
    out = scores.clone()
    if banned is not None:
        out.masked_fill_(banned, NEG_INF)
    if 0 < top_k < out.shape[-1]:
        out.masked_fill_(top_k_mask(out, top_k), NEG_INF)
    if top_p < 1.0:
        out.masked_fill_(top_p_mask(out, top_p), NEG_INF)
    return out


def draw(probs: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """One token per row of `probs (B, V)` (rows sum to 1) by inverting the CDF with one uniform number per row.

    One random number per row instead of one per vocabulary entry (the Gumbel / exponential race) or
    `torch.multinomial`: on CPU those draws cost more than the model's forward pass once V is in the tens of
    thousands. A token of probability 0 is never drawn, even when `u * total` rounds up to the total.
    """
    cdf = probs.cumsum(dim=-1)
    u = torch.rand(probs.shape[0], 1, device=probs.device, generator=generator) * cdf[:, -1:]
    picked = torch.searchsorted(cdf, u, right=True)[:, 0].clamp_(max=probs.shape[-1] - 1)
    zero = probs.gather(-1, picked[:, None])[:, 0] == 0
    if zero.any():  # rounding put u past the last token with probability > 0: take that token
        ids = torch.arange(probs.shape[-1], device=probs.device)
        last_valid = torch.where(probs > 0, ids, 0).amax(dim=-1)
        picked = torch.where(zero, last_valid, picked)
    return picked


def choose_tokens(
    logits: torch.Tensor,
    *,
    temperature: float,
    top_k: int = 0,
    top_p: float = 1.0,
    banned: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Pick one token per row of `logits (B, V)`; return `(tokens (B,), logp (B,), sampling_logp (B,))`.

    `temperature == 0` is greedy. `banned (B, V)` bool marks tokens that may not be chosen.
    """
    z = logits.float()
    if temperature > 0:
        z = z / temperature
    lse = torch.logsumexp(z, dim=-1)  # (B,)
    truncated = banned is not None or 0 < top_k < z.shape[-1] or top_p < 1.0
    scores = truncate(z, top_k=top_k, top_p=top_p, banned=banned) if truncated else z
    scores_lse = torch.logsumexp(scores, dim=-1) if truncated else lse
    if temperature == 0:
        tokens = scores.argmax(dim=-1)
    else:
        tokens = draw((scores - scores_lse[:, None]).exp_(), generator)
    picked = tokens[:, None]
    logp = z.gather(-1, picked)[:, 0] - lse
    sampling_logp = scores.gather(-1, picked)[:, 0] - scores_lse if truncated else logp
    return tokens, logp, sampling_logp
