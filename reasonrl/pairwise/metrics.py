"""Pairwise-RL's judge metrics (arXiv 2504.04950; notes in ../shared/papers/seed-papers.md B.3): the
position-debiased score, swap consistency and expected calibration error. Pure: sequences or tensors in,
float (or tensor) out; no model is touched here.

    s(A, B)      = 1/2 [p(A > B) + 1 - p(B > A)]                          debiased_score
    consistency  = mean 1[(p_ab > 1/2 and p_ba < 1/2) or (p_ab < 1/2 and p_ba > 1/2)]   swap_consistency
    ECE          = sum_b (n_b / N) |mean label_b - mean prob_b|           expected_calibration_error

The paper's own formulas were not available to us (notes B.3 [I]); these are the standard definitions the
notes reconstruct, with equal-width bins (the last bin closed at 1).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Values = Sequence[float] | torch.Tensor


def _as_tensor(x: Values | float) -> torch.Tensor:
    return torch.as_tensor(x, dtype=torch.float64).detach().cpu()


def debiased_score(p_ab: Values | float, p_ba: Values | float) -> torch.Tensor | float:
    """s(A, B) = 1/2 (p(A > B) + 1 - p(B > A)): the judge asked in both orders, position bias averaged out
    (notes B.3: "position-debiased score"). Floats in -> float out; sequences or tensors -> float64 tensor."""
    if isinstance(p_ab, float | int) and isinstance(p_ba, float | int):
        return 0.5 * (p_ab + 1.0 - p_ba)
    return 0.5 * (_as_tensor(p_ab) + 1.0 - _as_tensor(p_ba))


def swap_consistency(p_ab: Values, p_ba: Values) -> float:
    """Fraction of pairs whose verdict survives swapping the two responses: p_ab > 1/2 and p_ba < 1/2, or
    p_ab < 1/2 and p_ba > 1/2 (an undecided 1/2 on either side is inconsistent)."""
    ab, ba = _as_tensor(p_ab), _as_tensor(p_ba)
    assert ab.shape == ba.shape and ab.dim() == 1 and ab.numel() > 0, "p_ab and p_ba: equal non-empty 1-D"
    agree = ((ab > 0.5) & (ba < 0.5)) | ((ab < 0.5) & (ba > 0.5))
    return agree.double().mean().item()


def calibration_bins(probs: Values, labels: Values, num_bins: int = 10) -> list[tuple[int, float, float]]:
    """Equal-width bins on [0, 1] as (count, mean prob, mean label); bin b holds [b/B, (b+1)/B), the last
    bin [1 - 1/B, 1] (closed at 1). Empty bins give (0, nan, nan). The reliability plot draws these."""
    p, y = _as_tensor(probs), _as_tensor(labels)
    assert p.shape == y.shape and p.dim() == 1 and p.numel() > 0, "probs and labels: equal non-empty 1-D"
    assert num_bins >= 1, f"num_bins must be >= 1, got {num_bins}"
    assert bool(((p >= 0) & (p <= 1)).all()), "probs must lie in [0, 1]"
    index = (p * num_bins).floor().long().clamp(max=num_bins - 1)  # p = 1 falls in the last bin
    out = []
    for b in range(num_bins):
        sel = index == b
        n = int(sel.sum())
        out.append((n, p[sel].mean().item(), y[sel].mean().item()) if n else (0, float("nan"), float("nan")))
    return out


def expected_calibration_error(probs: Values, labels: Values, num_bins: int = 10) -> float:
    """ECE = sum over equal-width bins of (n_b / N) |mean label_b - mean prob_b| (Naeini et al. 2015; the
    calibration measure notes B.3 compare a pairwise judge and a Bradley-Terry model with)."""
    bins = calibration_bins(probs, labels, num_bins)
    total = sum(n for n, _, _ in bins)
    return sum(n / total * abs(lab - prob) for n, prob, lab in bins if n)


def pair_accuracy(p_ab: Values, p_ba: Values) -> float:
    """Accuracy over both presentation orders when A is the preferred response: the mean of 1[p_ab > 1/2] and
    1[p_ba < 1/2] (a judge that always answers YES scores 1/2)."""
    ab, ba = _as_tensor(p_ab), _as_tensor(p_ba)
    return 0.5 * ((ab > 0.5).double().mean().item() + (ba < 0.5).double().mean().item())
