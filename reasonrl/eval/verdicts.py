"""Verdicts with power: a paired comparison over problems or seeds, its bootstrap interval, and what it says about
a paper's claim.

    cmp = paired_comparison(baseline, method, expect="greater")     # per-problem (or per-seed) values, paired
    cmp.diff, cmp.ci_low, cmp.ci_high, cmp.verdict                  # mean(method - baseline) and its 95% interval
    claim("VAPO", "VAPO beats PPO on held-out accuracy", cmp, paper_value=...)   # one row of a benchmark's `claims`

The verdict reads the interval of the mean paired difference d = mean(b - a):
- `expect = "greater"` (the paper says b > a): `reproduced` when ci_low > 0, `not reproduced` when ci_high < 0,
  else `inconclusive` (the interval crosses zero);
- `expect = "less"`: the mirror image;
- `expect = "equal"` (the paper says b keeps a's level, e.g. accuracy kept while length falls): `reproduced` when
  the interval lies inside [-margin, margin], `not reproduced` when it lies wholly outside it, else `inconclusive`;
- `expect = "at_least"` (the paper says b keeps or beats a's level, "maintaining or improving accuracy"): a
  non-inferiority claim, `reproduced` when ci_low >= -margin (a rise counts), `not reproduced` when
  ci_high < -margin (b is worse by more than the margin), else `inconclusive`.

`bootstrap_correlation` is the same for a trend: Pearson r of a covariate (log compute) with a metric's mean
curve over checkpoints, its interval from resampling training seeds and the items inside them, the verdict on r
against 0.

The interval is the percentile bootstrap over pairs (resampling whole pairs keeps their correlation), seeded, so
the same inputs give the same interval. With one pair there is nothing to resample: the interval is the point.
With few pairs the percentile interval shrinks toward the range of the differences: from 3 pairs it is about
their min to max, so "reproduced" means the three agree in sign, which happens by chance 1 time in 4 when there is
no effect (5 pairs: 1 in 16; a t-interval would be wider). Claims paired by a handful of seeds are weak evidence
either way, and their docs say how many pairs they have.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

Expect = Literal["greater", "less", "equal", "at_least"]
VERDICTS = ("reproduced", "not reproduced", "inconclusive")


@dataclass(frozen=True)
class Comparison:
    """A paired comparison of b against a: the mean difference, its bootstrap interval and the verdict."""

    diff: float  # mean(b - a)
    ci_low: float
    ci_high: float
    mean_a: float
    mean_b: float
    num_pairs: int
    expect: Expect
    margin: float
    verdict: str


def bootstrap_interval(diffs: Sequence[float], *, level: float = 0.95, num_boot: int = 10_000,
                       seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `diffs` (resampling with replacement, `num_boot` times).

    diffs [1, 1, 1]: every resample has mean 1 -> (1.0, 1.0). One value: (d, d)."""
    d = np.asarray(diffs, dtype=np.float64)
    assert d.ndim == 1 and d.size >= 1, "need at least one paired difference"
    assert np.isfinite(d).all(), "paired differences must be finite"
    if d.size == 1:
        return float(d[0]), float(d[0])
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, size=(num_boot, d.size))].mean(axis=1)  # (num_boot,)
    tail = (1.0 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def verdict(ci_low: float, ci_high: float, *, expect: Expect, margin: float = 0.0) -> str:
    """The verdict of an interval for the claim `expect` (module docstring).

    (0.1, 0.3) greater -> reproduced; (-0.1, 0.3) greater -> inconclusive; (-0.3, -0.1) greater -> not reproduced;
    (-0.02, 0.03) equal with margin 0.05 -> reproduced; (0.06, 0.2) equal, margin 0.05 -> not reproduced;
    (0.06, 0.2) at_least, margin 0.05 -> reproduced; (-0.2, -0.06) at_least -> not reproduced."""
    assert ci_low <= ci_high, f"interval ({ci_low}, {ci_high}) is empty"
    if expect == "greater":
        return "reproduced" if ci_low > 0 else "not reproduced" if ci_high < 0 else "inconclusive"
    if expect == "less":
        return "reproduced" if ci_high < 0 else "not reproduced" if ci_low > 0 else "inconclusive"
    assert expect in ("equal", "at_least"), f"expect must be greater, less, equal or at_least, got {expect!r}"
    assert margin > 0, f"an {expect} claim needs a margin > 0 (the largest drop that still counts as kept)"
    if expect == "at_least":
        return "reproduced" if ci_low >= -margin else "not reproduced" if ci_high < -margin else "inconclusive"
    if -margin <= ci_low and ci_high <= margin:
        return "reproduced"
    if ci_low > margin or ci_high < -margin:
        return "not reproduced"
    return "inconclusive"


def paired_comparison(a: Sequence[float], b: Sequence[float], *, expect: Expect = "greater", margin: float = 0.0,
                      level: float = 0.95, num_boot: int = 10_000, seed: int = 0) -> Comparison:
    """b against a, pair by pair (the same problems or the same seeds in the same order): mean(b - a), its
    bootstrap interval at `level`, and the verdict for `expect` (module docstring)."""
    a_, b_ = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    assert a_.shape == b_.shape and a_.ndim == 1, f"paired values need equal 1-D shapes, got {a_.shape} / {b_.shape}"
    diffs = b_ - a_
    low, high = bootstrap_interval(diffs, level=level, num_boot=num_boot, seed=seed)
    return Comparison(diff=float(diffs.mean()), ci_low=low, ci_high=high, mean_a=float(a_.mean()),
                      mean_b=float(b_.mean()), num_pairs=int(diffs.size), expect=expect, margin=margin,
                      verdict=verdict(low, high, expect=expect, margin=margin))


def _pearson_rows(x: np.ndarray, curves: np.ndarray) -> np.ndarray:
    """Pearson r of `x` (C,) with every row of `curves` (B, C); NaN where a row is constant."""
    dx = x - x.mean()  # (C,)
    dy = curves - curves.mean(axis=1, keepdims=True)  # (B, C)
    syy = (dy * dy).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(syy > 0, (dy @ dx) / np.sqrt(syy * (dx @ dx)), np.nan)


def bootstrap_correlation(x: Sequence[float], values, *, expect: Expect = "greater", level: float = 0.95,
                          num_boot: int = 10_000, seed: int = 0) -> Comparison | None:
    """Pearson r of `x` (C checkpoints, e.g. log compute) with the mean curve of `values` (G groups, e.g. training
    seeds, x N units, e.g. probe items, x C checkpoints; the same units measured at every checkpoint), and its
    percentile-bootstrap interval: each resample draws G groups with replacement and, inside each drawn group, N
    units with replacement (so seed-to-seed and item-to-item variation both widen it). A resample whose curve is
    constant has no r and counts as r = 0 (no evidence of a trend). None when the curve itself is constant.

    The Comparison reads r against 0: diff = mean_b = r, mean_a = 0, num_pairs = G x N units, the verdict that
    of `expect` on the interval (greater: a rising trend). x [0, 1, 2], one group, units [0, 1, 1] and [0, 0, 1]:
    the curve [0, 1/2, 1] has r = 1; a resample of one unit twice has r = 0.866 (probability 1/2), so the 95%
    interval is (0.866, 1.0)."""
    xs = np.asarray(x, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    assert v.ndim == 3 and xs.shape == (v.shape[2],), f"values (G, N, C) with C = len(x), got {v.shape} / {xs.shape}"
    assert np.isfinite(v).all() and np.isfinite(xs).all(), "values and x must be finite"
    assert expect in ("greater", "less"), f"a trend claim is greater or less than r = 0, got {expect!r}"
    r0 = float(_pearson_rows(xs, v.mean(axis=(0, 1))[None])[0])
    if math.isnan(r0):
        return None
    num_groups, num_units, _ = v.shape
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, num_groups, size=(num_boot, num_groups))  # which group fills each slot
    curves = np.zeros((num_boot, v.shape[2]))
    uniform = np.full(num_units, 1.0 / num_units)
    for slot in range(num_groups):
        for g in range(num_groups):
            rows = picks[:, slot] == g
            if rows.any():  # fresh unit draws per slot, as counts: curve = counts @ values / N
                counts = rng.multinomial(num_units, uniform, size=int(rows.sum()))  # (k, N)
                curves[rows] += counts @ v[g] / num_units
    rs = np.nan_to_num(_pearson_rows(xs, curves / num_groups), nan=0.0)
    tail = (1.0 - level) / 2
    low, high = float(np.quantile(rs, tail)), float(np.quantile(rs, 1.0 - tail))
    return Comparison(diff=r0, ci_low=low, ci_high=high, mean_a=0.0, mean_b=r0, num_pairs=num_groups * num_units,
                      expect=expect, margin=0.0, verdict=verdict(low, high, expect=expect))


def claim(paper: str, text: str, cmp: Comparison, *, paper_value: float | str | None = None,
          ours: float | None = None, setting: str = "") -> dict:
    """One entry of a benchmark's `claims` list: {paper, claim, ours, paper_value, ci_low, ci_high, verdict, ...}.
    `ours` defaults to the mean paired difference; pass another figure (a ratio, say) when the claim is stated so,
    with the interval still that of the difference."""
    value = cmp.diff if ours is None else ours
    assert value is None or math.isfinite(value), f"claim {text!r}: our value must be finite"
    return {"paper": paper, "claim": text, "ours": value, "paper_value": paper_value, "ci_low": cmp.ci_low,
            "ci_high": cmp.ci_high, "verdict": cmp.verdict, "num_pairs": cmp.num_pairs, "expect": cmp.expect,
            "mean_a": cmp.mean_a, "mean_b": cmp.mean_b, "setting": setting}
