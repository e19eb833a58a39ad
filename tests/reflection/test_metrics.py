"""Reflection metrics (paper Table 3) and correlations with compute (Tables 6-7): hand-computed values."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reasonrl.errors import UserError
from reasonrl.reflection.metrics import (
    correlations_with_compute,
    inference_compute,
    pearson,
    reflection_metrics,
    train_compute,
)


def _rec(correct, reflective, seed):
    return {"correct": correct, "reflective": reflective, "seed": seed}


def test_reflection_metrics_hand_values():
    # seed 0: (c, r) = TT, TF, FT, FF -> acc 2/4, rate 2/4, explicit acc 1/4, implicit acc 1/4
    # seed 1: TT, TT, FF, TF          -> acc 3/4, rate 2/4, explicit acc 2/4, implicit acc 1/4
    # mean over seeds: acc 0.625, rate 0.5, explicit 0.375, implicit 0.25
    recs = [_rec(True, True, 0), _rec(True, False, 0), _rec(False, True, 0), _rec(False, False, 0),
            _rec(True, True, 1), _rec(True, True, 1), _rec(False, False, 1), _rec(True, False, 1)]
    m = reflection_metrics(recs)
    assert m["accuracy"] == 0.625
    assert m["explicit_reflection_rate"] == 0.5
    assert m["explicit_reflection_accuracy"] == 0.375
    assert m["implicit_reflection_accuracy"] == 0.25
    assert m["num_seeds"] == 2 and m["num_records"] == 8
    assert m["per_seed"][1] == {"accuracy": 0.75, "explicit_reflection_rate": 0.5,
                                "explicit_reflection_accuracy": 0.5, "implicit_reflection_accuracy": 0.25}


def test_seeds_are_averaged_not_pooled():
    # seed 0 has 1 item (correct), seed 1 has 3 (none correct): mean of (1, 0) = 0.5, pooled would be 0.25
    recs = [_rec(True, False, 0), _rec(False, False, 1), _rec(False, True, 1), _rec(False, False, 1)]
    m = reflection_metrics(recs)
    assert m["accuracy"] == 0.5 and m["implicit_reflection_accuracy"] == 0.5
    assert m["explicit_reflection_rate"] == pytest.approx((0 + 1 / 3) / 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.booleans(), st.integers(0, 2)), min_size=1, max_size=40))
def test_accuracy_identity_holds_exactly(rows):
    m = reflection_metrics([_rec(c, r, s) for c, r, s in rows])
    assert m["accuracy"] == m["explicit_reflection_accuracy"] + m["implicit_reflection_accuracy"]  # exact
    seeds = {s for _, _, s in rows}
    plain = sum(sum(c for c, _, s2 in rows if s2 == s) / sum(1 for *_, s2 in rows if s2 == s) for s in seeds)
    assert m["accuracy"] == pytest.approx(plain / len(seeds), abs=1e-12)
    assert 0.0 <= m["explicit_reflection_accuracy"] <= m["explicit_reflection_rate"] <= 1.0


def test_reflection_metrics_user_errors():
    with pytest.raises(UserError, match="no records"):
        reflection_metrics([])
    with pytest.raises(UserError, match=r"records\[1\]: missing key 'seed'"):
        reflection_metrics([_rec(True, True, 0), {"correct": True, "reflective": False}])
    with pytest.raises(UserError, match="true or false"):
        reflection_metrics([{"correct": 1, "reflective": False, "seed": 0}])


def test_pearson_hand_value():
    # xs = 1, 2, 3; ys = 2, 4, 7: dx = -1, 0, 1; dy = -7/3, -1/3, 8/3
    # sum dx dy = 7/3 + 8/3 = 5; sum dx^2 = 2; sum dy^2 = (49 + 1 + 64) / 9 = 114/9
    # r = 5 / sqrt(2 * 114 / 9) = 15 / sqrt(228) = 0.99339...
    assert pearson([1, 2, 3], [2, 4, 7]) == pytest.approx(15 / math.sqrt(228), abs=1e-12)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert math.isnan(pearson([1, 2, 3], [5, 5, 5]))  # undefined for a constant metric
    with pytest.raises(ValueError):
        pearson([1], [2])
    with pytest.raises(ValueError):
        pearson([1, 2], [1, 2, 3])


def test_compute():
    assert train_compute(7e9, 4e12) == pytest.approx(1.68e23)  # 6 * 7e9 * 4e12
    assert inference_compute(7e9, 100) == pytest.approx(1.4e12)  # 2 * 7e9 * 100


def test_correlations_with_compute_hand_values():
    # params 1e9, tokens 1e9, 1e10, 1e11: log10(6 N D) = 18.78, 19.78, 20.78 (evenly spaced, dx = -1, 0, 1)
    table = [
        {"params": 1e9, "tokens": 1e9, "accuracy": 0.0, "explicit_reflection_rate": 0.3,
         "explicit_reflection_accuracy": 0.0, "implicit_reflection_accuracy": 0.1},
        {"params": 1e9, "tokens": 1e10, "accuracy": 0.2, "explicit_reflection_rate": 0.2,
         "explicit_reflection_accuracy": 0.1, "implicit_reflection_accuracy": 0.3},
        {"params": 1e9, "tokens": 1e11, "accuracy": 0.4, "explicit_reflection_rate": 0.1,
         "explicit_reflection_accuracy": 0.2, "implicit_reflection_accuracy": 0.2},
    ]
    out = correlations_with_compute(table)
    assert out["accuracy"] == pytest.approx(1.0)  # linear in log compute
    assert out["explicit_reflection_rate"] == pytest.approx(-1.0)
    assert out["explicit_reflection_accuracy"] == pytest.approx(1.0)
    # implicit: dy = -0.1, 0.1, 0 -> sum dx dy = 0.1, sum dy^2 = 0.02 -> r = 0.1 / sqrt(2 * 0.02) = 0.5
    assert out["implicit_reflection_accuracy"] == pytest.approx(0.5)
    assert out["num_checkpoints_correcting"] == 2  # accuracy > 0 at two checkpoints
    # r depends on log compute, not on tokens: the same rows with params and tokens swapped give the same r
    swapped = [{**row, "params": row["tokens"], "tokens": row["params"]} for row in table]
    assert correlations_with_compute(swapped) == pytest.approx(out)


def test_correlation_uses_log_compute_not_compute():
    # compute 6e18, 6e19, 6e20 with accuracy linear in log10(compute): r = 1. Against raw compute (units of 1e18):
    # mean 222, dx = -216, -162, 378; dy = -0.1, 0, 0.1; r = 0.1 * 594 / sqrt(215784 * 0.02) = 59.4 / 65.69 = 0.904
    table = [{"params": 1.0, "tokens": t, "accuracy": a} for t, a in ((1e18, 0.1), (1e19, 0.2), (1e20, 0.3))]
    assert correlations_with_compute(table, metrics=["accuracy"])["accuracy"] == pytest.approx(1.0)
    assert pearson([6e18, 6e19, 6e20], [0.1, 0.2, 0.3]) == pytest.approx(59.4 / math.sqrt(215784 * 0.02))
    with pytest.raises(UserError, match="row 0: missing key 'tokens'"):
        correlations_with_compute([{"params": 1, "accuracy": 0.1}], metrics=["accuracy"])
