import pytest
import torch

from reasonrl.algo.filters import dynamic_sampling_group_mask, dynamic_sampling_mask

T_, F_ = True, False


def test_dynamic_sampling_hand_values():
    # G = 4, #correct per group = [2, 4, 0, 1] -> keep [yes (0<2<4), no (all correct), no (none), yes]
    correct = torch.tensor([T_, T_, F_, F_, T_, T_, T_, T_, F_, F_, F_, F_, F_, T_, F_, F_])
    assert dynamic_sampling_group_mask(correct, 4).tolist() == [T_, F_, F_, T_]
    assert dynamic_sampling_mask(correct, 4).tolist() == [T_] * 4 + [F_] * 8 + [T_] * 4


def test_dynamic_sampling_matches_loop():
    correct = torch.rand(24, generator=torch.Generator().manual_seed(0)) > 0.6
    expected = [0 < sum(correct[i : i + 3].tolist()) < 3 for i in range(0, 24, 3)]
    assert dynamic_sampling_group_mask(correct, 3).tolist() == expected


def test_dynamic_sampling_rejects_partial_groups():
    with pytest.raises(AssertionError):
        dynamic_sampling_mask(torch.zeros(5, dtype=torch.bool), 4)


def test_varied_reward_mask_keeps_groups_with_unequal_rewards():
    from reasonrl.algo.filters import varied_reward_mask

    # groups of 2: [1, 1] equal -> drop; [-1, -0.5] differ -> keep; [0, 0] equal -> drop
    r = torch.tensor([1.0, 1.0, -1.0, -0.5, 0.0, 0.0])
    assert varied_reward_mask(r, 2).tolist() == [False, False, True, True, False, False]
