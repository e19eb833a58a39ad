"""The three Pairwise-RL metrics on hand-computed values (sequences and tensors in, float out)."""

import pytest
import torch

from reasonrl.pairwise import debiased_score, expected_calibration_error, swap_consistency
from reasonrl.pairwise.metrics import calibration_bins, pair_accuracy


def test_debiased_score_hand_values():
    # 1/2 (0.8 + 1 - 0.3) = 0.75;  1/2 (0.6 + 1 - 0.6) = 0.5 (a judge that says "A" whatever the order)
    assert debiased_score(0.8, 0.3) == pytest.approx(0.75)
    assert debiased_score(0.6, 0.6) == pytest.approx(0.5)
    out = debiased_score(torch.tensor([0.8, 0.6, 0.1]), [0.3, 0.6, 0.7])
    # third pair: 1/2 (0.1 + 1 - 0.7) = 0.2
    assert torch.allclose(out, torch.tensor([0.75, 0.5, 0.2], dtype=torch.float64))
    # s(A, B) + s(B, A) = 1 for any judge
    assert debiased_score(0.9, 0.4) + debiased_score(0.4, 0.9) == pytest.approx(1.0)


def test_swap_consistency_hand_values():
    # pair 1: 0.8 > 1/2, 0.3 < 1/2 -> consistent; pair 2: 0.7 and 0.6 both > 1/2 (position bias) -> not;
    # pair 3: 0.2 < 1/2, 0.9 > 1/2 -> consistent; pair 4: an undecided 0.5 -> not.  2 / 4 = 0.5
    assert swap_consistency([0.8, 0.7, 0.2, 0.5], torch.tensor([0.3, 0.6, 0.9, 0.4])) == pytest.approx(0.5)
    assert isinstance(swap_consistency([0.9], [0.1]), float)


def test_ece_hand_values_and_last_bin_closed():
    # probs 0.1, 0.15 (bin 1), 0.8 (bin 8), 1.0 (bin 9: the last bin is closed at 1); labels 0, 1, 1, 1
    # bin 1: n=2, mean prob 0.125, mean label 0.5 -> 2/4 * 0.375 = 0.1875
    # bin 8: n=1, |1 - 0.8| = 0.2 -> 0.05;  bin 9: n=1, |1 - 1.0| = 0 -> 0.  ECE = 0.2375
    assert expected_calibration_error([0.1, 0.15, 0.8, 1.0], [0, 1, 1, 1]) == pytest.approx(0.2375)
    # two bins: [0, 0.5) holds 0.1, 0.15; [0.5, 1] holds 0.8, 1.0 -> 1/2 * 0.375 + 1/2 * |1 - 0.9| = 0.2375
    assert expected_calibration_error(torch.tensor([0.1, 0.15, 0.8, 1.0]), [0, 1, 1, 1], num_bins=2) == \
        pytest.approx(0.2375)
    bins = calibration_bins([0.1, 0.15, 0.8, 1.0], [0, 1, 1, 1])
    assert [n for n, _, _ in bins] == [0, 2, 0, 0, 0, 0, 0, 0, 1, 1]


def test_pair_accuracy_counts_both_orders():
    # A is chosen: order 1 right on pairs 1, 3 (0.9, 0.6 > 1/2); order 2 right on pair 1 only (0.2 < 1/2)
    # -> 1/2 (2/3 + 1/3) = 0.5
    assert pair_accuracy([0.9, 0.4, 0.6], [0.2, 0.7, 0.8]) == pytest.approx(0.5)
