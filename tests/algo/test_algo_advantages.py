import math

import pytest
import torch
from torch.testing import assert_close

from reasonrl.algo.advantages import (
    decoupled_gae,
    gae,
    group_advantages,
    length_adaptive_lambda,
    masked_moments,
    whiten,
)

T_, F_ = True, False


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# --- gae ---------------------------------------------------------------------------------------------


def test_gae_hand_values_gamma_and_lambda():
    # r = [0, 0, 1], V = [0.5, 0.5, 0.5], V after the last token = 0, gamma = 0.5, lam = 0.5 (gamma*lam = 0.25)
    # delta_2 = 1 + 0.5*0   - 0.5 =  0.5     A_2 = 0.5
    # delta_1 = 0 + 0.5*0.5 - 0.5 = -0.25    A_1 = -0.25 + 0.25*0.5      = -0.125
    # delta_0 = 0 + 0.5*0.5 - 0.5 = -0.25    A_0 = -0.25 + 0.25*(-0.125) = -0.28125
    # returns = A + V = [0.21875, 0.375, 1.0]
    adv, ret = gae(_t([[0, 0, 1]]), _t([[0.5, 0.5, 0.5]]), torch.tensor([[T_, T_, T_]]), gamma=0.5, lam=0.5)
    assert_close(adv, _t([[-0.28125, -0.125, 0.5]]))
    assert_close(ret, _t([[0.21875, 0.375, 1.0]]))


def test_gae_gamma_one():
    # gamma = 1, lam = 0.5, r = [0, 0, 1], V = 0.5 everywhere: delta = [0, 0, 0.5]
    # A_2 = 0.5, A_1 = 0.5*0.5 = 0.25, A_0 = 0.5*0.25 = 0.125; returns = [0.625, 0.75, 1.0]
    adv, ret = gae(_t([[0, 0, 1]]), _t([[0.5, 0.5, 0.5]]), torch.tensor([[T_, T_, T_]]), gamma=1.0, lam=0.5)
    assert_close(adv, _t([[0.125, 0.25, 0.5]]))
    assert_close(ret, _t([[0.625, 0.75, 1.0]]))


def test_gae_ignores_prompt_and_padding_positions():
    # mask [F, T, T, F]: the 9s at False positions must not be used (prompt value, padding value/reward)
    # gamma = lam = 1: delta_2 = 1 + 0 - 0.5 = 0.5 (V after the last True = 0, not 9), A_2 = 0.5
    #                  delta_1 = 0 + 0.5 - 0.5 = 0,  A_1 = 0 + 0.5 = 0.5
    # returns = A + V = [0, 1, 1, 0]; both are 0 at False positions
    adv, ret = gae(_t([[9, 0, 1, 9]]), _t([[9, 0.5, 0.5, 9]]), torch.tensor([[F_, T_, T_, F_]]), gamma=1.0, lam=1.0)
    assert_close(adv, _t([[0, 0.5, 0.5, 0]]))
    assert_close(ret, _t([[0, 1, 1, 0]]))


def test_gae_tool_output_span_is_transparent():
    # mask [T, F, F, T]: positions 1-2 are tool output; gamma = lam = 0.5
    # A_3 = 1 + 0 - 0.5 = 0.5
    # position 0 bootstraps from V_3 (not V_1 = 7) and is discounted once:
    # delta_0 = 0 + 0.5*0.5 - 0.5 = -0.25, A_0 = -0.25 + 0.25*0.5 = -0.125; returns = [0.375, 0, 0, 1.0]
    mask = torch.tensor([[T_, F_, F_, T_]])
    adv, ret = gae(_t([[0, 3, 3, 1]]), _t([[0.5, 7, 7, 0.5]]), mask, gamma=0.5, lam=0.5)
    assert_close(adv, _t([[-0.125, 0, 0, 0.5]]))
    assert_close(ret, _t([[0.375, 0, 0, 1.0]]))
    # same as the compacted row without the tool span
    adv_c, _ = gae(_t([[0, 1]]), _t([[0.5, 0.5]]), torch.tensor([[T_, T_]]), gamma=0.5, lam=0.5)
    assert_close(adv[mask], adv_c.flatten())


def test_gae_per_sequence_lambda():
    # V = 0 so delta = r = [0, 0, 1] and A_t = lam^(2-t):
    # lam = 0.5 -> [0.25, 0.5, 1];  lam = 1 -> [1, 1, 1]
    r = _t([[0, 0, 1], [0, 0, 1]])
    v = torch.zeros(2, 3)
    mask = torch.ones(2, 3, dtype=torch.bool)
    adv, _ = gae(r, v, mask, gamma=1.0, lam=torch.tensor([0.5, 1.0]))
    assert_close(adv, _t([[0.25, 0.5, 1], [1, 1, 1]]))


def _gae_reference(rewards, values, mask, gamma, lams):
    """Slow twin: per row, list the True positions and run the textbook recursion over them in Python floats."""
    adv = torch.zeros_like(values, dtype=torch.float64)
    for i in range(values.shape[0]):
        idx = [t for t in range(values.shape[1]) if mask[i, t]]
        next_v, next_a = 0.0, 0.0
        for t in reversed(idx):
            delta = rewards[i, t].item() + gamma * next_v - values[i, t].item()
            next_a = delta + gamma * lams[i] * next_a
            next_v = values[i, t].item()
            adv[i, t] = next_a
    return adv.float(), torch.where(mask, adv.float() + values, 0.0)


def test_gae_matches_loop_reference_random():
    g = torch.Generator().manual_seed(0)
    rewards = torch.randn(5, 9, generator=g)
    values = torch.randn(5, 9, generator=g)
    mask = torch.rand(5, 9, generator=g) > 0.3  # holes, prompt- and padding-like gaps
    mask[0] = False  # a row with no trained token
    lam = torch.rand(5, generator=g)
    adv, ret = gae(rewards, values, mask, gamma=0.9, lam=lam)
    ref_adv, ref_ret = _gae_reference(rewards, values, mask, 0.9, lam.tolist())
    assert_close(adv, ref_adv)
    assert_close(ret, ref_ret)
    assert (adv[~mask] == 0).all() and (ret[~mask] == 0).all()


def test_gae_has_no_grad():
    values = torch.tensor([[0.5, 0.5]], requires_grad=True)
    adv, ret = gae(_t([[0, 1]]), values, torch.ones(1, 2, dtype=torch.bool), gamma=1.0, lam=1.0)
    assert not adv.requires_grad and not ret.requires_grad


def test_decoupled_gae():
    # r = [0, 0, 1], V = 0.5, gamma = 1: policy lam = 0.5 -> A = [0.125, 0.25, 0.5] (as above);
    # critic lam = 1 -> A = [0.5, 0.5, 0.5], returns = A + V = [1, 1, 1] = the Monte-Carlo return
    adv, ret = decoupled_gae(
        _t([[0, 0, 1]]), _t([[0.5] * 3]), torch.ones(1, 3, dtype=torch.bool), gamma=1.0, lam_policy=0.5
    )
    assert_close(adv, _t([[0.125, 0.25, 0.5]]))
    assert_close(ret, _t([[1.0, 1.0, 1.0]]))


# --- length_adaptive_lambda ---------------------------------------------------------------------------


def test_length_adaptive_lambda_hand_values():
    # lam = 1 - 1/(0.05 l): l=40 -> 1 - 1/2 = 0.5; l=100 -> 1 - 1/5 = 0.8; l=1000 -> 1 - 1/50 = 0.98
    # l=10 -> 1 - 1/0.5 = -1 -> clamped 0; l=0 -> 1 - 1/0 = -inf -> clamped 0
    lam = length_adaptive_lambda(torch.tensor([0, 10, 40, 100, 1000]))
    assert lam.dtype == torch.float32
    assert_close(lam, _t([0.0, 0.0, 0.5, 0.8, 0.98]))
    # alpha = 0.1, l = 40: 1 - 1/4 = 0.75
    assert_close(length_adaptive_lambda(torch.tensor([40.0]), alpha=0.1), _t([0.75]))


# --- group_advantages ---------------------------------------------------------------------------------


def test_group_advantages_hand_values():
    # group 0: r = [1, -1, -1, -1], mean = -0.5, r - mean = [1.5, -0.5, -0.5, -0.5]
    #   unbiased var = (2.25 + 3*0.25) / 3 = 1 -> std 1 -> A = [1.5, -0.5, -0.5, -0.5]
    #   population var = 3 / 4 -> std = sqrt(3)/2 -> A = [sqrt(3), -1/sqrt(3), -1/sqrt(3), -1/sqrt(3)]
    # group 1: all equal -> A = 0
    r = _t([1, -1, -1, -1, 1, 1, 1, 1])
    assert_close(group_advantages(r, 4), _t([1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0]))
    s3 = math.sqrt(3)
    assert_close(group_advantages(r, 4, unbiased=False), _t([s3, -1 / s3, -1 / s3, -1 / s3, 0, 0, 0, 0]))
    assert_close(group_advantages(r, 4, normalize_std=False), _t([1.5, -0.5, -0.5, -0.5, 0, 0, 0, 0]))
    # normalize_std=False really skips the division: group [2, 0] -> [1, -1] (std would be sqrt(2))
    assert_close(group_advantages(_t([2, 0]), 2, normalize_std=False), _t([1, -1]))
    assert_close(group_advantages(_t([2, 0]), 2), _t([1 / math.sqrt(2), -1 / math.sqrt(2)]))


def test_group_advantages_matches_loop():
    r = torch.randn(12, generator=torch.Generator().manual_seed(1))
    expected = torch.cat([(g - g.mean()) / (g.std() + 1e-6) for g in r.split(4)])
    assert_close(group_advantages(r, 4), expected)


def test_group_advantages_rejects_bad_shapes():
    with pytest.raises(AssertionError):
        group_advantages(torch.zeros(6), 4)
    with pytest.raises(AssertionError):
        group_advantages(torch.zeros(3), 1)


# --- whiten -------------------------------------------------------------------------------------------


def test_whiten_hand_values():
    # valid values [1, 3, 5]: mean 3, centred [-2, 0, 2]
    #   unbiased var = 8/2 = 4, std 2 -> [-1, 0, 1];   population var = 8/3 -> [-2, 0, 2] / sqrt(8/3) = +-1.2247449
    #   shift_mean=False adds the mean back: [2, 3, 4]
    x = _t([[1, 3, 99], [5, 99, 99]])
    mask = torch.tensor([[T_, T_, F_], [T_, F_, F_]])
    assert_close(whiten(x, mask), _t([[-1, 0, 0], [1, 0, 0]]))
    assert_close(whiten(x, mask, unbiased=False), _t([[-1.2247449, 0, 0], [1.2247449, 0, 0]]))
    assert_close(whiten(x, mask, shift_mean=False), _t([[2, 3, 0], [4, 0, 0]]))


def test_whiten_with_summed_moments_equals_the_whole_batch():
    # the batch of test_whiten_hand_values split in two "processes": rows 0 and 1
    # moments: row 0 -> (2, 1 + 3, 1 + 9) = (2, 4, 10); row 1 -> (1, 5, 25); summed (3, 9, 35)
    # mean 3, unbiased var (35 - 3 * 9) / 2 = 4: whitened [-1, 0] and [1], as on the whole batch
    x = _t([[1, 3, 99], [5, 99, 99]])
    mask = torch.tensor([[T_, T_, F_], [T_, F_, F_]])
    m0, m1 = masked_moments(x[:1], mask[:1]), masked_moments(x[1:], mask[1:])
    assert m0.tolist() == [2.0, 4.0, 10.0] and m1.tolist() == [1.0, 5.0, 25.0]
    total = m0 + m1
    assert_close(whiten(x[:1], mask[:1], moments=total), _t([[-1, 0, 0]]))
    assert_close(whiten(x[1:], mask[1:], moments=total), _t([[1, 0, 0]]))
    # each part on its own statistics is not the same thing: row 1 alone has one value and var 0/0
    assert not torch.allclose(whiten(x[:1], mask[:1]), _t([[-1, 0, 0]]))
