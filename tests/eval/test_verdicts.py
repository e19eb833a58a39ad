"""Paired comparisons and verdicts (reasonrl/eval/verdicts.py) against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

from reasonrl.eval.verdicts import bootstrap_correlation, bootstrap_interval, claim, paired_comparison, verdict


def test_bootstrap_constant_differences_give_a_point_interval():
    # every resample of [2, 2, 2] has mean 2
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert bootstrap_interval([0.5]) == (0.5, 0.5)


def test_bootstrap_interval_matches_the_resampled_means():
    d = [0.0, 1.0]  # resample means are k/2 for k ~ Binomial(2, 1/2): 0 w.p. 1/4, 0.5 w.p. 1/2, 1 w.p. 1/4
    low, high = bootstrap_interval(d, level=0.95, num_boot=20_000, seed=1)
    assert (low, high) == (0.0, 1.0)  # the 2.5% and 97.5% quantiles fall on the extreme atoms
    low, high = bootstrap_interval(d, level=0.4, num_boot=20_000, seed=1)
    assert (low, high) == (0.5, 0.5)  # the 30% and 70% quantiles both fall on the middle atom (25%..75%)


def test_bootstrap_is_seeded_and_brackets_the_mean():
    rng = np.random.default_rng(0)
    d = rng.normal(0.3, 1.0, size=200)
    a, b = bootstrap_interval(d, seed=3), bootstrap_interval(d, seed=3)
    assert a == b
    se = d.std(ddof=1) / np.sqrt(d.size)
    assert a[0] < d.mean() < a[1]
    assert abs((a[1] - a[0]) - 2 * 1.96 * se) < 0.25 * 2 * 1.96 * se  # about +-1.96 standard errors


@pytest.mark.parametrize("low, high, expect, margin, want", [
    (0.1, 0.3, "greater", 0.0, "reproduced"),
    (-0.1, 0.3, "greater", 0.0, "inconclusive"),
    (-0.3, -0.1, "greater", 0.0, "not reproduced"),
    (0.0, 0.3, "greater", 0.0, "inconclusive"),  # touching zero is not excluding it
    (-0.3, -0.1, "less", 0.0, "reproduced"),
    (0.1, 0.3, "less", 0.0, "not reproduced"),
    (-0.1, 0.1, "less", 0.0, "inconclusive"),
    (-0.02, 0.03, "equal", 0.05, "reproduced"),
    (0.06, 0.2, "equal", 0.05, "not reproduced"),
    (-0.2, -0.06, "equal", 0.05, "not reproduced"),
    (0.01, 0.08, "equal", 0.05, "inconclusive"),
    (0.06, 0.2, "at_least", 0.05, "reproduced"),  # a rise keeps the level: non-inferiority
    (-0.05, 0.02, "at_least", 0.05, "reproduced"),  # a drop of at most the margin still counts as kept
    (-0.08, 0.02, "at_least", 0.05, "inconclusive"),
    (-0.2, -0.06, "at_least", 0.05, "not reproduced"),
])
def test_verdict_table(low, high, expect, margin, want):
    assert verdict(low, high, expect=expect, margin=margin) == want


def test_equal_needs_a_margin():
    with pytest.raises(AssertionError, match="margin"):
        verdict(-0.1, 0.1, expect="equal")
    with pytest.raises(AssertionError, match="margin"):
        verdict(-0.1, 0.1, expect="at_least")


def test_correlation_hand_values():
    # x [0, 1, 2]; one group, units [0, 1, 1] and [0, 0, 1]: the mean curve [0, 1/2, 1] is linear in x, r = 1.
    # r([0, 1, 1]) = cov / sqrt(var x var y) = 1 / sqrt(2 * 2/3) = 0.866, and so is r([0, 0, 1]).
    # Resamples of the 2 units: the same unit twice (probability 1/2) -> 0.866, one of each -> 1.
    cmp = bootstrap_correlation([0.0, 1.0, 2.0], [[[0, 1, 1], [0, 0, 1]]], num_boot=4000)
    assert cmp.diff == pytest.approx(1.0) and cmp.mean_b == cmp.diff and cmp.mean_a == 0.0 and cmp.num_pairs == 2
    assert cmp.ci_low == pytest.approx(3 ** 0.5 / 2) and cmp.ci_high == pytest.approx(1.0)
    assert cmp.verdict == "reproduced"
    falling = bootstrap_correlation([0.0, 1.0, 2.0], [[[1, 1, 0], [1, 0, 0]]], num_boot=4000)
    assert falling.diff == pytest.approx(-1.0) and falling.verdict == "not reproduced"
    assert bootstrap_correlation([0.0, 1.0, 2.0], [[[1, 0, 0], [1, 0, 0]]], expect="less").verdict == "reproduced"


def test_correlation_resamples_the_groups():
    # two training seeds with one item each: A [0, 0, 1] (r 0.866), B [1, 0, 0] (r -0.866); the mean curve
    # [1/2, 0, 1/2] has r = 0. Resampled seeds: A twice (1/4) -> 0.866, B twice (1/4) -> -0.866, one of each -> 0.
    cmp = bootstrap_correlation([0.0, 1.0, 2.0], [[[0, 0, 1]], [[1, 0, 0]]], num_boot=4000)
    assert cmp.diff == pytest.approx(0.0, abs=1e-12) and cmp.num_pairs == 2
    assert cmp.ci_low == pytest.approx(-(3 ** 0.5) / 2) and cmp.ci_high == pytest.approx(3 ** 0.5 / 2)
    assert cmp.verdict == "inconclusive"


def test_correlation_of_a_flat_curve_is_none_and_flat_resamples_count_as_zero():
    assert bootstrap_correlation([0.0, 1.0, 2.0], [[[0, 0, 0], [1, 1, 1]]]) is None
    # units [0, 1, 1] and [1, 1, 1]: the curve [1/2, 1, 1] rises (r 0.866); resampling [1, 1, 1] twice (1/4) is
    # flat, r undefined -> 0, so the interval reaches 0 and the verdict stays open
    cmp = bootstrap_correlation([0.0, 1.0, 2.0], [[[0, 1, 1], [1, 1, 1]]], num_boot=4000)
    assert cmp.diff == pytest.approx(3 ** 0.5 / 2) and cmp.ci_low == 0.0 and cmp.verdict == "inconclusive"


def test_paired_comparison_hand_values():
    a = [0.0, 1.0, 0.0, 1.0]
    b = [1.0, 1.0, 1.0, 2.0]  # differences [1, 0, 1, 1]: mean 0.75, every resample mean in [0, 1]
    cmp = paired_comparison(a, b, expect="greater")
    assert cmp.diff == 0.75 and cmp.mean_a == 0.5 and cmp.mean_b == 1.25 and cmp.num_pairs == 4
    assert 0.0 <= cmp.ci_low <= 0.75 <= cmp.ci_high <= 1.0
    assert cmp.verdict == ("reproduced" if cmp.ci_low > 0 else "inconclusive")
    # the order of the arguments is the direction: a against b is the mirror image
    rev = paired_comparison(b, a, expect="greater")
    assert rev.diff == -0.75 and rev.ci_low == pytest.approx(-cmp.ci_high) and rev.verdict != "reproduced"


def test_paired_comparison_uses_pairs_not_marginals():
    # b = a + 0.1 on every problem; the problems themselves vary a lot. Paired: the interval is the point 0.1.
    a = [0.0, 10.0, -5.0, 3.0, 7.0]
    b = [x + 0.1 for x in a]
    cmp = paired_comparison(a, b, expect="greater")
    assert cmp.ci_low == pytest.approx(0.1) and cmp.ci_high == pytest.approx(0.1)
    assert cmp.verdict == "reproduced"


def test_claim_row():
    cmp = paired_comparison([1.0, 2.0], [0.5, 1.5], expect="less")
    row = claim("Concise RL", "phase 2 shortens responses", cmp, paper_value=0.46, ours=0.69, setting="tiny LM")
    assert row["paper"] == "Concise RL" and row["ours"] == 0.69 and row["paper_value"] == 0.46
    assert row["ci_low"] == row["ci_high"] == -0.5 and row["verdict"] == "reproduced"
    assert set(row) >= {"paper", "claim", "ours", "paper_value", "ci_low", "ci_high", "verdict"}
    assert claim("p", "c", cmp)["ours"] == -0.5  # default: the mean difference
