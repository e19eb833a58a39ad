"""The chain behind benchmarks/vapo_mechanism.py: true values, exact bias, critic training, the three effects."""

import pytest
import torch

from reasonrl.vapo.chain import (
    ChainConfig,
    exact_bias,
    init_weights,
    policy_lambdas,
    run_chain,
    sample_chain,
    train_critics,
    true_advantages,
)


def test_exact_bias_of_a_flat_critic_is_the_reward_decayed_by_lambda_hand_values():
    # zero critic, p0 = 0.5, l = 4, lambda 0.95: every TD error is 0 but the last (0.5 - 0), so
    # bias(t) = 0.5 * 0.95^(3 - t) = 0.428687, 0.45125, 0.475, 0.5; a flat critic at 0.2: 0.3 * 0.95^(3 - t);
    # lambda 0: only the last token sees the reward
    cfg = ChainConfig()
    w = torch.tensor([[0.0] * 4, [0.2] * 4, [0.0] * 4])
    bias = exact_bias(w, torch.tensor([0.95, 0.95, 0.0]), cfg)
    assert bias[0].tolist() == pytest.approx([0.428687, 0.45125, 0.475, 0.5], abs=1e-6)
    assert bias[1].tolist() == pytest.approx([0.257212, 0.27075, 0.285, 0.3], abs=1e-6)
    assert bias[2].tolist() == pytest.approx([0.0, 0.0, 0.0, 0.5], abs=1e-7)


def test_true_advantage_matches_monte_carlo():
    # effect 1, q 0.5, l 4: a good action at any t raises p by 1 * 0.5 / 4, so E[r | a_t = 1] - E[r] = 0.125 = A*(t)
    cfg = ChainConfig(effect=1.0)
    g = torch.Generator().manual_seed(0)
    actions, z, r = sample_chain(40_000, 4, cfg, g)
    for t in range(4):
        good = actions[:, t] == 1
        assert float(r[good].mean() - r.mean()) == pytest.approx(0.125, abs=0.01), t
        assert true_advantages(actions, cfg)[good, t].unique().tolist() == [0.125]
    # the feature z is the state before the token: 0 at t = 0, (a_0 - q) / l at t = 1
    assert z[:, 0].abs().max() == 0 and torch.allclose(z[:, 1], (actions[:, 0] - 0.5) / 4)


def test_exact_bias_agrees_with_sampled_advantages():
    # an arbitrary critic (RM-like ramp, slope u = 0.3): the exact bias from expectations equals the mean sampled
    # error of gae's advantages within Monte-Carlo noise, for lambda 0.6 and 1
    from reasonrl.algo.advantages import gae
    from reasonrl.algo.rewards import token_level_rewards

    cfg = ChainConfig(rm_tau=3.0)
    length, n = 8, 40_000
    w = init_weights("rm", length, cfg)
    g = torch.Generator().manual_seed(1)
    actions, z, r = sample_chain(n, length, cfg, g)
    mask = torch.ones(n, length, dtype=torch.bool)
    for lam in (0.6, 1.0):
        adv, _ = gae(token_level_rewards(r, mask), w + 0.3 * z, mask, gamma=1.0, lam=lam)
        sampled = (adv - true_advantages(actions, cfg)).mean(0)
        exact = exact_bias(w[None], torch.tensor([lam]), cfg)[0]
        assert torch.allclose(sampled, exact, atol=0.012), (lam, sampled, exact)  # se of a mean of r: 0.0025


def test_policy_lambdas_follow_eq5_with_the_clamp():
    cfg = ChainConfig()
    assert policy_lambdas(100, cfg) == pytest.approx({"fixed": 0.95, "one": 1.0, "adaptive": 0.8})
    assert policy_lambdas(1000, cfg)["adaptive"] == pytest.approx(0.98)
    assert policy_lambdas(16, cfg)["adaptive"] == 0.0  # 1 - 1/0.8 < 0: clamped


def test_value_pretraining_fits_every_position_and_lambda_095_loses_the_reward_far_from_the_end():
    cfg = ChainConfig(batch=32)
    g = torch.Generator().manual_seed(0)
    short = train_critics(16, cfg, g)
    long = train_critics(256, cfg, g)
    # untrained: the inits themselves
    assert long["zero+untrained"][0].abs().max() == 0
    assert long["rm+untrained"][0][0] == 0 and long["rm+untrained"][0][-1] > 0.45
    # lambda 1 (Monte-Carlo targets): 50 steps at 0.1 bring every position to p0 = 0.5 up to the batch noise
    for name in ("zero+mc", "rm+mc"):
        assert (long[name][0] - 0.5).abs().max() < 0.08, name
    # lambda 0.95 from zero: V(0) of a 16-token chain is learned, that of a 256-token chain is not
    assert short["zero+td"][0][0] > 0.4
    assert long["zero+td"][0][0] < 0.05
    assert long["zero+td"][0][-1] > 0.4  # the last positions, which the reward reaches, are learned


def test_run_chain_shows_the_three_effects():
    cfg = ChainConfig(lengths=(16, 256), batch=32, eval_episodes=128)
    rows = {(r["length"], r["critic"], r["estimator"]): r for r in run_chain(cfg)}
    assert len(rows) == 2 * 6 * 3
    # (a) the RM-like critic's early-token bias under length-adaptive lambda, and value pretraining removing it
    untrained, pretrained = rows[(256, "rm+untrained", "adaptive")], rows[(256, "rm+mc", "adaptive")]
    assert untrained["early_bias"] > 0.05 and abs(pretrained["early_bias"]) < 0.1 * untrained["early_bias"]
    # (b) V(0) of the lambda-0.95 critic far below that of the lambda-1 critic at l = 256
    assert rows[(256, "zero+td", "fixed")]["v0"] < 0.2 * rows[(256, "zero+mc", "fixed")]["v0"]
    # (c) adaptive (lambda 0.92 at 256): far less variance than lambda 1; at l = 16 (lambda 0) less bias than 0.95
    assert rows[(256, "rm+mc", "adaptive")]["var"] < 0.1 * rows[(256, "rm+mc", "one")]["var"]
    assert rows[(16, "rm+mc", "adaptive")]["abs_bias"] < rows[(16, "rm+mc", "fixed")]["abs_bias"]
    # lambda-1 advantages of a fitted critic have the variance of the Bernoulli(0.5) reward, about 0.25
    assert rows[(256, "rm+mc", "one")]["var"] == pytest.approx(0.25, abs=0.03)


def test_config_rejects_a_solve_rate_that_can_leave_zero_one():
    with pytest.raises(AssertionError, match="leave"):
        ChainConfig(p0=0.9, effect=0.5, q=0.5)


def test_adam_on_the_per_position_critic_undoes_the_decay():
    # the caveat of the module docstring: Adam normalises each position's step, so the lambda-0.95 critic's early
    # positions climb towards E[r] on targets that barely differ from their values; SGD leaves them near 0
    g = torch.Generator().manual_seed(0)
    adam = train_critics(256, ChainConfig(batch=16, critic_steps=40, critic_lr=0.03, critic_optim="adam"), g)
    sgd = train_critics(256, ChainConfig(batch=16, critic_steps=40), g)
    assert sgd["zero+td"][0][0] < 0.05 < 0.2 < adam["zero+td"][0][0]

