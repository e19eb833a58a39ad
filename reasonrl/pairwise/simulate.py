"""A controlled judge: what swap debiasing and the anchor do to the pairwise reward's error, with everything known.

The LM judges of benchmarks/pairwise.py mix what they learned with position bias, noise and indecision, so their
PPO results are hard to read. Here the judge is a formula with those three knobs (notes B.3 / B.7 [I]):

    P(first > second) = sigmoid(k (u_first - u_second) + b + eps),   eps ~ N(0, noise^2), fresh per query
    and with probability `ties` the judge cannot decide and answers exactly 1/2

with u the true quality of a response, k the judge's sharpness and b its position bias (the first slot's edge).
The pairwise reward of a policy sample y against an anchor y* is then one of

    none:  s = p(y > y*)                                        (one order: y in the first slot)
    prob:  s = 1/2 [p(y > y*) + 1 - p(y* > y)]                  (the swap debiasing of reasonrl.pairwise.reward)
    logit: s = sigmoid(1/2 [logit p(y > y*) - logit p(y* > y)]) (the same two queries averaged in logit space)

and its target, the reward of an exact unbiased judge against the same anchor, is sigmoid(k (u_y - u_*)).
With b alone (no noise, no ties) `logit` recovers the target exactly, `prob` gives exactly 1/2 when u_y = u_*
and the right sign otherwise but shrinks the magnitude (1/2 [sigmoid(z + b) + sigmoid(z - b)] for z = k(u_y - u_*)),
and `none` is off by sigmoid(z + b) - sigmoid(z).

Anchors: `reference`, one fixed answer per prompt of quality `ref_quality` (notes B.3: a ground-truth anchor), or
`sibling`, the next sample of the same prompt (self-play; `reward.sibling_anchors` with k = 1), whose quality is
as random as the sample's own. What policy gradient uses is how the rewards of one prompt's samples are ordered,
so besides the error against the target the simulation reports `order_acc`: over pairs of samples of one prompt,
the share that the rewards order as their true qualities do.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import torch

Debias = Literal["none", "prob", "logit"]
Anchor = Literal["reference", "sibling"]
DEBIAS: tuple[str, ...] = ("none", "prob", "logit")
ANCHORS: tuple[str, ...] = ("reference", "sibling")


@dataclass(frozen=True)
class SimJudge:
    """The synthetic judge's knobs."""

    k: float = 2.0
    """Sharpness: the logit per unit of true-quality difference."""
    bias: float = 0.0
    """Position bias b: added to the logit of every query (the first slot's edge)."""
    noise: float = 0.0
    """Standard deviation of the Gaussian logit noise, drawn afresh for every query (both orders independent)."""
    ties: float = 0.0
    """Probability that a query is answered with exactly 1/2 (the judge cannot decide)."""


def judge_prob(u_first: torch.Tensor, u_second: torch.Tensor, judge: SimJudge,
               gen: torch.Generator | None = None) -> torch.Tensor:
    """P(first > second) per pair (module docstring); `gen` draws the noise and the ties."""
    logit = judge.k * (u_first - u_second) + judge.bias  # (N,)
    if judge.noise > 0:
        logit = logit + judge.noise * torch.randn(logit.shape, generator=gen, dtype=logit.dtype)
    p = torch.sigmoid(logit)
    if judge.ties > 0:
        p = torch.where(torch.rand(p.shape, generator=gen, dtype=p.dtype) < judge.ties, torch.full_like(p, 0.5), p)
    return p


def pair_score(u_y: torch.Tensor, u_anchor: torch.Tensor, judge: SimJudge, debias: Debias,
               gen: torch.Generator | None = None) -> torch.Tensor:
    """s(y, y*) per pair under `debias` (module docstring): one judge query, or both orders combined."""
    p_ya = judge_prob(u_y, u_anchor, judge, gen)
    if debias == "none":
        return p_ya
    p_ay = judge_prob(u_anchor, u_y, judge, gen)
    if debias == "prob":
        return 0.5 * (p_ya + 1.0 - p_ay)
    assert debias == "logit", f"debias must be one of {DEBIAS}, got {debias!r}"
    return torch.sigmoid(0.5 * (torch.logit(p_ya) - torch.logit(p_ay)))


def order_accuracy(rewards: torch.Tensor, quality: torch.Tensor) -> float:
    """Over every pair of samples of one prompt with different true quality, the share whose rewards order them the
    same way (a reward tie counts 1/2). rewards, quality: (P, S)."""
    dr = rewards[:, :, None] - rewards[:, None, :]  # (P, S, S)
    dq = quality[:, :, None] - quality[:, None, :]
    pairs = dq > 0
    agree = torch.where(dr > 0, 1.0, torch.where(dr == 0, 0.5, 0.0))
    return float(agree[pairs].mean()) if pairs.any() else float("nan")


def simulate(judge: SimJudge, *, anchor: Anchor, debias: Debias, num_prompts: int = 256, num_samples: int = 4,
             ref_quality: float = 0.5, seed: int = 0) -> dict:
    """One run: `num_prompts` prompts x `num_samples` policy samples of true quality u ~ N(0, 1), each scored against
    its anchor. Returns the reward's `mean_error` = mean(s - target), `rmse`, `mean_abs_error` and `order_acc`,
    plus the settings (`judge_k`, `judge_bias`, ...). The qualities depend on `seed` only, so runs of one seed
    that differ in debias or anchor score the same samples (paired)."""
    assert num_samples >= 2, "order accuracy and the sibling anchor need at least 2 samples per prompt"
    assert anchor in ANCHORS, f"anchor must be one of {ANCHORS}, got {anchor!r}"
    quality_gen = torch.Generator().manual_seed(seed)
    u = torch.randn(num_prompts, num_samples, generator=quality_gen, dtype=torch.float64)  # (P, S)
    if anchor == "reference":
        u_anchor = torch.full_like(u, ref_quality)
    else:
        u_anchor = u.roll(-1, dims=1)  # sample i of a prompt is judged against sample i + 1 (cyclically)
    judge_gen = torch.Generator().manual_seed(seed + 1_000_003)
    s = pair_score(u.flatten(), u_anchor.flatten(), judge, debias, judge_gen).view_as(u)
    target = torch.sigmoid(judge.k * (u - u_anchor))
    err = s - target
    return {"mean_error": float(err.mean()), "rmse": float(err.pow(2).mean().sqrt()),
            "mean_abs_error": float(err.abs().mean()), "order_acc": order_accuracy(s, u), "anchor": anchor,
            "debias": debias, "seed": seed, **{f"judge_{k}": v for k, v in asdict(judge).items()}}
