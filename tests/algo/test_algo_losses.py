import math

import pytest
import torch
from torch.testing import assert_close

from reasonrl.algo.losses import AGG_MODES, aggregate, explained_variance, policy_loss, positive_nll, value_loss

T_, F_ = True, False


def _t(rows):
    return torch.tensor(rows, dtype=torch.float32)


# --- aggregate ----------------------------------------------------------------------------------------

X = _t([[1, 2, 3], [4, 5, 6], [7, 8, 9]])
MASK = torch.tensor([[T_, T_, F_], [T_, F_, F_], [F_, F_, F_]])  # row 2 has no trained token


def test_aggregate_hand_values():
    # trained values: row 0 [1, 2], row 1 [4], row 2 none (excluded from the sequence count)
    # token-mean          = (1 + 2 + 4) / 3       = 7/3
    # seq-mean-token-mean = ((1+2)/2 + 4/1) / 2   = (1.5 + 4) / 2 = 2.75
    # seq-mean-token-sum  = ((1+2) + 4) / 2       = 3.5
    assert_close(aggregate(X, MASK, agg="token-mean"), torch.tensor(7 / 3))
    assert_close(aggregate(X, MASK, agg="seq-mean-token-mean"), torch.tensor(2.75))
    assert_close(aggregate(X, MASK, agg="seq-mean-token-sum"), torch.tensor(3.5))


def test_aggregate_global_counts():
    # token-mean with num_tokens = 7: 7 / 7 = 1;  seq-mean-token-mean with num_seqs = 4: 5.5 / 4 = 1.375
    # the count a mode does not use is ignored
    assert_close(aggregate(X, MASK, agg="token-mean", num_tokens=7, num_seqs=100), torch.tensor(1.0))
    assert_close(aggregate(X, MASK, agg="seq-mean-token-mean", num_tokens=100, num_seqs=4), torch.tensor(1.375))
    assert_close(aggregate(X, MASK, agg="seq-mean-token-sum", num_seqs=torch.tensor(7)), torch.tensor(1.0))


def test_aggregate_nan_at_false_positions_does_not_leak():
    x = X.clone()
    x[0, 2] = float("nan")
    x[2] = float("inf")
    x.requires_grad_(True)
    for agg in AGG_MODES:
        out = aggregate(x, MASK, agg=agg)
        assert torch.isfinite(out)
        (grad,) = torch.autograd.grad(out, x)
        assert torch.isfinite(grad).all() and (grad[~MASK] == 0).all()


def test_aggregate_all_false_is_zero_and_unknown_mode_raises():
    mask = torch.zeros(2, 3, dtype=torch.bool)
    for agg in AGG_MODES:
        assert aggregate(X[:2], mask, agg=agg).item() == 0.0
    with pytest.raises(ValueError, match="unknown agg"):
        aggregate(X, MASK, agg="token-sum")


def _random_batch(seed, b=6, t=7):
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(b, t, generator=g) > 0.4
    mask[:, 0] = True
    return torch.randn(b, t, generator=g), mask


def test_aggregate_two_ranks_sum_to_whole_batch():
    x, mask = _random_batch(2)
    num_tokens, num_seqs = mask.sum(), (mask.sum(-1) > 0).sum()
    for agg in AGG_MODES:
        whole = aggregate(x, mask, agg=agg)
        ranks = [
            aggregate(x[s], mask[s], agg=agg, num_tokens=num_tokens, num_seqs=num_seqs)
            for s in (slice(0, 2), slice(2, 6))
        ]
        assert_close(ranks[0] + ranks[1], whole)


# --- policy_loss --------------------------------------------------------------------------------------


def _ratios_to_logp(ratios, old=-1.0):
    old_logp = torch.full((1, len(ratios)), old)
    return old_logp + torch.tensor([ratios]).log(), old_logp


def test_policy_loss_clip_higher_hand_values():
    # clip_low = 0.2, clip_high = 0.28 -> clip range [0.8, 1.28]; per token L = max(-A r, -A clip(r))
    # t0: r=1.5, A= 1: max(-1.5, -1.28) = -1.28   clipped, high side
    # t1: r=0.5, A=-1: max( 0.5,  0.8 ) =  0.8    clipped, low side
    # t2: r=1.1, A=-1: max( 1.1,  1.1 ) =  1.1    inside the range
    # t3: r=0.7, A= 1: max(-0.7, -0.8 ) = -0.7    below the range but A > 0: not clipped
    # t4: masked, logp = -inf (padding): ignored
    # token-mean = (-1.28 + 0.8 + 1.1 - 0.7) / 4 = -0.08 / 4 = -0.02
    logp, old_logp = _ratios_to_logp([1.5, 0.5, 1.1, 0.7, 1.0])
    logp[0, 4] = float("-inf")
    logp.requires_grad_(True)
    adv = _t([[1, -1, -1, 1, 5]])
    mask = torch.tensor([[T_, T_, T_, T_, F_]])
    loss, stats = policy_loss(logp, old_logp, adv, mask, clip_low=0.2, clip_high=0.28)
    assert_close(loss, torch.tensor(-0.02))
    assert_close(stats["clipfrac_high"], torch.tensor(0.25))
    assert_close(stats["clipfrac_low"], torch.tensor(0.25))
    # ratio mean = (1.5 + 0.5 + 1.1 + 0.7) / 4 = 0.95, max = 1.5
    assert_close(stats["ratio_mean"], torch.tensor(0.95))
    assert_close(stats["ratio_max"], torch.tensor(1.5))
    # approx_kl = mean(r - 1 - ln r) = (0.0945349 + 0.1931472 + 0.0046898 + 0.0566749) / 4 = 0.0872617
    assert_close(stats["approx_kl"], torch.tensor(0.0872617))
    assert all(not v.requires_grad for v in stats.values())
    # dL/dlogp = -A r / 4 on unclipped tokens, 0 on clipped and masked: [0, 0, 1.1/4, -0.7/4, 0]
    (grad,) = torch.autograd.grad(loss, logp)
    assert_close(grad, _t([[0, 0, 0.275, -0.175, 0]]))


def test_policy_loss_default_clip_is_symmetric():
    # r = 1.25, A = 1: default clip_high 0.2 -> min(1.25, 1.2) * 1 -> L = -1.2 (clipped high)
    #                  clip_high 0.28 -> 1.25 < 1.28 -> L = -1.25 (not clipped)
    logp, old_logp = _ratios_to_logp([1.25])
    mask, adv = torch.tensor([[T_]]), _t([[1.0]])
    loss, stats = policy_loss(logp, old_logp, adv, mask)
    assert_close(loss, torch.tensor(-1.2))
    assert stats["clipfrac_high"].item() == 1.0
    loss, stats = policy_loss(logp, old_logp, adv, mask, clip_high=0.28)
    assert_close(loss, torch.tensor(-1.25))
    assert stats["clipfrac_high"].item() == 0.0


def test_policy_loss_dual_clip():
    # A = -1, c = 3: t0 r=5: max(5, 1.2) = 5 > 3 -> 3 (dual clip); t1 r=2: max(2, 1.2) = 2 <= 3 -> 2
    # with dual clip (3 + 2)/2 = 2.5, clipfrac_dual = 1/2; without (5 + 2)/2 = 3.5
    logp, old_logp = _ratios_to_logp([5.0, 2.0])
    adv, mask = _t([[-1, -1]]), torch.ones(1, 2, dtype=torch.bool)
    loss, stats = policy_loss(logp, old_logp, adv, mask, dual_clip=3.0)
    assert_close(loss, torch.tensor(2.5))
    assert_close(stats["clipfrac_dual"], torch.tensor(0.5))
    loss, stats = policy_loss(logp, old_logp, adv, mask)
    assert_close(loss, torch.tensor(3.5))
    assert "clipfrac_dual" not in stats


def test_policy_loss_agg_modes():
    # ratio 1 everywhere so L = -A; trained A: row 0 [1, 2], row 1 [4]
    # token-mean -(1+2+4)/3 = -7/3; seq-mean-token-mean -(1.5+4)/2 = -2.75; seq-mean-token-sum -(3+4)/2 = -3.5
    # token-mean with num_tokens = 7: -7/7 = -1
    logp = torch.zeros(2, 3)
    adv = _t([[1, 2, 0], [4, 0, 0]])
    mask = torch.tensor([[T_, T_, F_], [T_, F_, F_]])
    expected = {"token-mean": -7 / 3, "seq-mean-token-mean": -2.75, "seq-mean-token-sum": -3.5}
    for agg, value in expected.items():
        assert_close(policy_loss(logp, logp, adv, mask, agg=agg)[0], torch.tensor(value))
    assert_close(policy_loss(logp, logp, adv, mask, num_tokens=7)[0], torch.tensor(-1.0))


def test_policy_loss_two_ranks_equal_whole_batch_with_grads():
    g = torch.Generator().manual_seed(3)
    adv, mask = _random_batch(4)
    old_logp = -torch.rand(6, 7, generator=g)
    logp = (old_logp + 0.3 * torch.randn(6, 7, generator=g)).requires_grad_(True)
    num_tokens, num_seqs = mask.sum(), (mask.sum(-1) > 0).sum()
    for agg in AGG_MODES:
        kw = dict(clip_low=0.2, clip_high=0.28, agg=agg)
        whole, _ = policy_loss(logp, old_logp, adv, mask, **kw)
        (grad_whole,) = torch.autograd.grad(whole, logp)
        parts = [
            policy_loss(logp[s], old_logp[s], adv[s], mask[s], num_tokens=num_tokens, num_seqs=num_seqs, **kw)[0]
            for s in (slice(0, 3), slice(3, 6))
        ]
        (grad_parts,) = torch.autograd.grad(parts[0] + parts[1], logp)
        assert_close(parts[0] + parts[1], whole)
        assert_close(grad_parts, grad_whole)


def test_policy_loss_rejects_per_sequence_advantages():
    with pytest.raises(AssertionError):
        policy_loss(torch.zeros(2, 2), torch.zeros(2, 2), torch.zeros(2), torch.ones(2, 2, dtype=torch.bool))


# --- value_loss / explained_variance ------------------------------------------------------------------

# t0: V=1, V_old=0.5, R=0: (V-R)^2 = 1; V_clip = 0.5 + 0.2 = 0.7 -> 0.49; max = 1
# t1: V=1, V_old=0,   R=1: (V-R)^2 = 0; V_clip = 0 + 0.2 = 0.2   -> 0.64; max = 0.64 (clip active)
# t2: V=2, V_old=2,   R=4: 4 both
# t3: masked
VALUES = _t([[1, 1, 2, 50]])
OLD_VALUES = _t([[0.5, 0, 2, 0]])
RETURNS = _t([[0, 1, 4, 0]])
VMASK = torch.tensor([[T_, T_, T_, F_]])


def test_value_loss_hand_values():
    values = VALUES.clone().requires_grad_(True)
    # no clip: 0.5 * (1 + 0 + 4) / 3 = 0.8333333;  dL/dV = (V - R) / 3 = [1/3, 0, -2/3, 0]
    loss, stats = value_loss(values, OLD_VALUES, RETURNS, VMASK)
    assert_close(loss, torch.tensor(5 / 6))
    assert "clipfrac" not in stats
    (grad,) = torch.autograd.grad(loss, values)
    assert_close(grad, _t([[1 / 3, 0, -2 / 3, 0]]))
    # clip 0.2: 0.5 * (1 + 0.64 + 4) / 3 = 0.94; clipfrac = 1/3
    loss, stats = value_loss(values, OLD_VALUES, RETURNS, VMASK, clip=0.2)
    assert_close(loss, torch.tensor(0.94))
    assert_close(stats["clipfrac"], torch.tensor(1 / 3))
    # value_mean = (1 + 1 + 2) / 3
    assert_close(stats["value_mean"], torch.tensor(4 / 3))
    # seq-mean-token-sum, one row: 0.5 * (1 + 0 + 4) / 1 = 2.5
    assert_close(value_loss(values, OLD_VALUES, RETURNS, VMASK, agg="seq-mean-token-sum")[0], torch.tensor(2.5))


def test_explained_variance_hand_values():
    # R = [0, 1, 4], V = [1, 1, 2]: err = R - V = [-1, 0, 2], mean 1/3
    # Var(err) = ((4/3)^2 + (1/3)^2 + (5/3)^2) / 3 = (42/9) / 3 = 14/9
    # Var(R)   = ((5/3)^2 + (2/3)^2 + (7/3)^2) / 3 = (78/9) / 3 = 26/9
    # EV = 1 - 14/26 = 12/26
    assert_close(explained_variance(VALUES, RETURNS, VMASK), torch.tensor(12 / 26))
    assert_close(value_loss(VALUES, OLD_VALUES, RETURNS, VMASK)[1]["explained_var"], torch.tensor(12 / 26))
    # perfect critic -> 1; constant returns -> undefined (NaN)
    assert_close(explained_variance(RETURNS, RETURNS, VMASK), torch.tensor(1.0))
    assert math.isnan(explained_variance(VALUES, torch.ones(1, 4), VMASK).item())


# --- positive_nll -------------------------------------------------------------------------------------


def test_positive_nll_hand_values():
    # row 0 trained logp [-1, -2] (third token padding, -inf), row 1 [-3, -4, -5]
    logp = _t([[-1, -2, float("-inf")], [-3, -4, -5]]).requires_grad_(True)
    mask = torch.tensor([[T_, T_, F_], [T_, T_, T_]])
    # only row 0 correct: (1 + 2) / 2 = 1.5;  both: (1+2+3+4+5)/5 = 3;  global count 6: 3/6 = 0.5
    assert_close(positive_nll(logp, mask, torch.tensor([T_, F_])), torch.tensor(1.5))
    assert_close(positive_nll(logp, mask, torch.tensor([T_, T_])), torch.tensor(3.0))
    assert_close(positive_nll(logp, mask, torch.tensor([T_, F_]), num_tokens=6), torch.tensor(0.5))
    # dL/dlogp = -1/2 on row 0's trained tokens, 0 elsewhere
    (grad,) = torch.autograd.grad(positive_nll(logp, mask, torch.tensor([T_, F_])), logp)
    assert_close(grad, _t([[-0.5, -0.5, 0], [0, 0, 0]]))


def test_positive_nll_no_correct_sample_is_zero_and_differentiable():
    logp = _t([[-1, float("-inf")], [-3, -4]]).requires_grad_(True)
    mask = torch.tensor([[T_, F_], [T_, T_]])
    loss = positive_nll(logp, mask, torch.tensor([F_, F_]))
    assert loss.item() == 0.0 and loss.requires_grad
    (grad,) = torch.autograd.grad(loss, logp)
    assert (grad == 0).all()


def test_policy_loss_zero_advantage_is_not_counted_as_clipped():
    # A = 0, r = 1.5: both terms are 0 (no gradient either way), so the token is not "clipped"
    logp, old_logp = _ratios_to_logp([1.5])
    loss, stats = policy_loss(logp, old_logp, _t([[0.0]]), torch.tensor([[T_]]))
    assert loss.item() == 0.0 and stats["clipfrac_high"].item() == 0.0
