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
  the interval lies inside [-margin, margin], `not reproduced` when it lies wholly outside it, else `inconclusive`.

The interval is the percentile bootstrap over pairs (resampling whole pairs keeps their correlation), seeded, so
the same inputs give the same interval. With one pair there is nothing to resample: the interval is the point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np

Expect = Literal["greater", "less", "equal"]
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

    def as_dict(self) -> dict:
        return asdict(self)


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
    (-0.02, 0.03) equal with margin 0.05 -> reproduced; (0.06, 0.2) equal, margin 0.05 -> not reproduced."""
    assert ci_low <= ci_high, f"interval ({ci_low}, {ci_high}) is empty"
    if expect == "greater":
        return "reproduced" if ci_low > 0 else "not reproduced" if ci_high < 0 else "inconclusive"
    if expect == "less":
        return "reproduced" if ci_high < 0 else "not reproduced" if ci_low > 0 else "inconclusive"
    assert expect == "equal", f"expect must be greater, less or equal, got {expect!r}"
    assert margin > 0, "an equality claim needs a margin > 0 (the largest difference that still counts as equal)"
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
