"""The controlled judge simulation (reasonrl.pairwise.simulate) on hand values: a pure position bias, ties, the
three debiasing modes, and what a sibling anchor does to the order of a prompt's rewards."""

import math

import pytest
import torch

from reasonrl.pairwise.simulate import SimJudge, judge_prob, order_accuracy, pair_score, simulate


def sig(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def t(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)


def test_pure_position_bias_cancels_under_debias_at_equal_quality():
    judge = SimJudge(k=1.0, bias=1.0)
    # equal quality: one order says sigmoid(b) = 0.731059 for whichever response comes first
    assert judge_prob(t(0.0), t(0.0), judge).item() == pytest.approx(sig(1.0), abs=1e-12)
    assert pair_score(t(0.0), t(0.0), judge, "none").item() == pytest.approx(0.731059, abs=1e-6)
    # both orders: 1/2 [sigmoid(b) + 1 - sigmoid(b)] = 1/2 exactly, in probability and in logit space
    assert pair_score(t(0.0), t(0.0), judge, "prob").item() == pytest.approx(0.5, abs=1e-15)
    assert pair_score(t(0.0), t(0.0), judge, "logit").item() == pytest.approx(0.5, abs=1e-15)


def test_debias_modes_at_a_quality_difference():
    judge = SimJudge(k=1.0, bias=1.0)
    # z = k (u_y - u_a) = 1: target sigmoid(1) = 0.731059
    assert pair_score(t(1.0), t(0.0), judge, "none").item() == pytest.approx(sig(2.0), abs=1e-12)  # 0.880797
    # prob: 1/2 [sigmoid(1 + 1) + 1 - sigmoid(-1 + 1)] = 1/2 [0.880797 + 0.5] = 0.690399: right side, shrunk
    assert pair_score(t(1.0), t(0.0), judge, "prob").item() == pytest.approx(0.5 * (sig(2.0) + 0.5), abs=1e-12)
    # logit: 1/2 [(1 + 1) - (-1 + 1)] = 1 -> sigmoid(1): the bias cancels exactly
    assert pair_score(t(1.0), t(0.0), judge, "logit").item() == pytest.approx(sig(1.0), abs=1e-12)


def test_ties_and_noise():
    always_tie = SimJudge(k=3.0, bias=2.0, noise=1.0, ties=1.0)
    for mode in ("none", "prob", "logit"):
        assert torch.equal(pair_score(t(2.0, -1.0), t(0.0, 0.0), always_tie, mode), t(0.5, 0.5))
    g = torch.Generator().manual_seed(0)
    p = judge_prob(torch.zeros(20000, dtype=torch.float64), torch.zeros(20000, dtype=torch.float64),
                   SimJudge(noise=1.0, ties=0.25), g)
    assert (p == 0.5).double().mean().item() == pytest.approx(0.25, abs=0.015)
    assert p[p != 0.5].std().item() > 0.1  # the noise moves the answers


def test_order_accuracy_by_hand():
    q = t(1.0, 2.0, 3.0).view(1, 3)
    assert order_accuracy(t(1.0, 2.0, 3.0).view(1, 3), q) == 1.0
    assert order_accuracy(t(3.0, 2.0, 1.0).view(1, 3), q) == 0.0
    # a tie between the first two: 1/2 + 1 + 1 over 3 pairs
    assert order_accuracy(t(1.0, 1.0, 3.0).view(1, 3), q) == pytest.approx(2.5 / 3)


def test_sibling_anchor_scrambles_the_order_a_reference_anchor_keeps():
    judge = SimJudge(k=1.0)
    u = t(0.0, 1.0, 2.0).view(1, 3)
    # reference anchor (0.5 for every sample): s increases with u
    ref = pair_score(u.flatten(), torch.full((3,), 0.5, dtype=torch.float64), judge, "prob").view(1, 3)
    assert order_accuracy(ref, u) == 1.0
    # sibling anchors [1, 2, 0]: s = sigmoid([-1, -1, 2]) -> samples 0 and 1 tie: (0.5 + 1 + 1) / 3
    sib = pair_score(u.flatten(), u.roll(-1, dims=1).flatten(), judge, "prob").view(1, 3)
    assert order_accuracy(sib, u) == pytest.approx(2.5 / 3)
    clean = SimJudge(k=2.0)
    assert simulate(clean, anchor="reference", debias="none", num_prompts=64)["order_acc"] == 1.0
    sim = simulate(clean, anchor="sibling", debias="none", num_prompts=64, seed=5)
    u = torch.randn(64, 4, generator=torch.Generator().manual_seed(5), dtype=torch.float64)  # simulate's qualities
    s = torch.sigmoid(2.0 * (u - u.roll(-1, dims=1)))  # each sample against the next one of its prompt
    assert sim["order_acc"] == pytest.approx(order_accuracy(s, u), abs=1e-12)
    assert 0.6 < sim["order_acc"] < 0.9  # far from a reference anchor's 1, and from the 1/2 of no signal


def test_simulate_errors_against_the_target():
    bias_only = SimJudge(k=2.0, bias=1.0)
    none = simulate(bias_only, anchor="reference", debias="none", num_prompts=64)
    prob = simulate(bias_only, anchor="reference", debias="prob", num_prompts=64)
    logit = simulate(bias_only, anchor="reference", debias="logit", num_prompts=64)
    assert none["mean_error"] > 0.05  # the first slot's edge, uncorrected
    assert logit["rmse"] < 1e-12  # b alone cancels exactly in logit space
    assert 0 < prob["rmse"] < none["rmse"]  # the probability average removes most of it, not all (it shrinks)
    assert abs(prob["mean_error"]) < none["mean_error"] / 3 and none["judge_bias"] == 1.0
    unbiased = simulate(SimJudge(k=2.0), anchor="reference", debias="none", num_prompts=64)
    assert unbiased["rmse"] < 1e-12 and unbiased["mean_error"] == 0.0
    # noise: two independent queries averaged have less error than one
    noisy = SimJudge(k=2.0, noise=1.0)
    assert simulate(noisy, anchor="reference", debias="prob", num_prompts=256)["rmse"] < \
        simulate(noisy, anchor="reference", debias="none", num_prompts=256)["rmse"]
    # the same seed scores the same samples: a run is reproducible
    assert simulate(noisy, anchor="sibling", debias="prob", seed=3) == simulate(noisy, anchor="sibling", debias="prob",
                                                                                seed=3)
