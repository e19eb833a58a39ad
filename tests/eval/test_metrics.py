"""mean@n, unbiased pass@k and the run summary against hand-computed numbers."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from reasonrl.eval.metrics import mean_at_n, pass_at_k, summarize


@pytest.mark.parametrize(
    ("n", "c", "k", "expected"),
    [
        (5, 2, 2, 0.7),  # 1 - C(3,2)/C(5,2) = 1 - 3/10
        (3, 1, 2, 2 / 3),  # 1 - C(2,2)/C(3,2) = 1 - 1/3
        (4, 2, 2, 5 / 6),  # 1 - C(2,2)/C(4,2) = 1 - 1/6
        (10, 1, 1, 0.1),  # pass@1 = c/n
        (10, 7, 1, 0.7),
        (100, 1, 10, 0.1),  # 1 - C(99,10)/C(100,10) = 1 - 90/100
        (10, 0, 5, 0.0),  # nothing correct
        (10, 10, 1, 1.0),
        (4, 2, 3, 1.0),  # n - c = 2 < k = 3: every 3-subset holds a correct sample
        (1, 1, 1, 1.0),
    ],
)
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_matches_exact_binomials():
    for n in range(1, 25):
        for c in range(n + 1):
            for k in range(1, n + 1):
                exact = 1 - Fraction(math.comb(n - c, k), math.comb(n, k))
                assert pass_at_k(n, c, k) == pytest.approx(float(exact), abs=1e-12), (n, c, k)


def test_pass_at_k_is_stable_for_large_n():
    # C(2000, 100) ~ 1e170 would overflow a float ratio computed naively; the product form does not.
    exact = 1 - Fraction(math.comb(1900, 100), math.comb(2000, 100))
    assert pass_at_k(2000, 100, 100) == pytest.approx(float(exact), rel=1e-12)
    assert pass_at_k(np.int64(5), np.int64(2), np.int64(2)) == pytest.approx(0.7)


@pytest.mark.parametrize(("n", "c", "k"), [(3, 1, 4), (3, 1, 0), (3, 4, 1), (3, -1, 1)])
def test_pass_at_k_rejects_bad_arguments(n, c, k):
    with pytest.raises(ValueError):
        pass_at_k(n, c, k)


def test_pass_at_k_rejects_floats():
    with pytest.raises(TypeError):
        pass_at_k(5.0, 2, 2)


def test_mean_at_n():
    assert mean_at_n([[True, False, False, True], [False] * 4, [True] * 4]) == pytest.approx(0.5)  # (1/2 + 0 + 1)/3
    assert mean_at_n([[True], [True, False, False, False]]) == pytest.approx(0.625)  # (1 + 1/4)/2: problem-weighted
    assert mean_at_n(np.array([[1, 0], [1, 1]], dtype=bool)) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        mean_at_n([])
    with pytest.raises(ValueError, match="problem 1 has no samples"):
        mean_at_n([[True], []])


def _records():
    # p1: correct T F F T, lengths 10 20 30 40, one without an answer
    # p2: all wrong, lengths 5, two without an answer
    # p3: all correct, lengths 1 2 3 4
    rows = []
    for pid, correct, lengths, has in [
        ("p1", [1, 0, 0, 1], [10, 20, 30, 40], [1, 1, 0, 1]),
        ("p2", [0, 0, 0, 0], [5, 5, 5, 5], [1, 0, 0, 1]),
        ("p3", [1, 1, 1, 1], [1, 2, 3, 4], [1, 1, 1, 1]),
    ]:
        for ok, n, h in zip(correct, lengths, has, strict=True):
            rows.append({"problem_id": pid, "correct": bool(ok), "length": n, "has_answer": bool(h)})
    return rows


def test_summarize_by_hand():
    s = summarize(_records(), ks=(1, 2, 4))
    assert s["mean@n"] == pytest.approx(0.5)  # (2/4 + 0 + 4/4) / 3
    assert s["pass@1"] == pytest.approx(0.5)
    assert s["pass@2"] == pytest.approx(11 / 18)  # (5/6 + 0 + 1) / 3
    assert s["pass@4"] == pytest.approx(2 / 3)  # (1 + 0 + 1) / 3
    assert s["mean_length"] == pytest.approx(130 / 12)  # (100 + 20 + 10) / 12
    assert s["mean_length_correct"] == pytest.approx(10.0)  # (10 + 40 + 1 + 2 + 3 + 4) / 6
    assert s["mean_length_wrong"] == pytest.approx(70 / 6)  # (20 + 30 + 5*4) / 6
    assert s["no_answer_rate"] == pytest.approx(0.25)  # 3 / 12
    assert (s["num_problems"], s["num_samples"], s["num_correct"], s["num_no_answer"]) == (3, 12, 6, 3)


def test_summarize_edge_cases():
    s = summarize([{"problem_id": 0, "correct": False, "length": 7, "has_answer": False}], ks=(1,))
    assert s["mean_length_correct"] is None and s["mean_length_wrong"] == 7.0 and s["pass@1"] == 0.0
    with pytest.raises(ValueError, match="pass@8 needs >= 8 samples per problem; problem 'p1' has 4"):
        summarize(_records(), ks=(8,))
    with pytest.raises(ValueError, match=r"record 0 lacks \['length'\]"):
        summarize([{"problem_id": 0, "correct": True, "has_answer": True}])
    with pytest.raises(ValueError, match="no records"):
        summarize([])
