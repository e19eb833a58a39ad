import pytest
import torch
from torch.testing import assert_close

from reasonrl.algo.rewards import outcome_reward, overlong_penalty, token_level_rewards

T_, F_ = True, False


def test_outcome_reward_defaults_are_dapo_plus_minus_one():
    r = outcome_reward(torch.tensor([T_, F_, T_]))
    assert r.dtype == torch.float32
    assert_close(r, torch.tensor([1.0, -1.0, 1.0]))


def test_outcome_reward_concise_rl_three_levels():
    # correct / wrong answer / no answer -> +1 / -0.5 / -1
    r = outcome_reward(torch.tensor([T_, F_, F_]), answered=torch.tensor([T_, T_, F_]), wrong_reward=-0.5)
    assert_close(r, torch.tensor([1.0, -0.5, -1.0]))
    # a distinct no-answer value, to see it is the one used for unanswered rows
    r = outcome_reward(
        torch.tensor([F_, F_]),
        answered=torch.tensor([T_, F_]),
        correct_reward=2.0,
        wrong_reward=0.0,
        no_answer_reward=-3.0,
    )
    assert_close(r, torch.tensor([0.0, -3.0]))
    with pytest.raises(AssertionError, match="not answered"):
        outcome_reward(torch.tensor([T_]), answered=torch.tensor([F_]))


def test_overlong_penalty_hand_values():
    # L_max = 20, L_cache = 4 -> ramp starts after 16 tokens
    # |y| = 10, 16 -> 0; 17 -> (16-17)/4 = -0.25; 18 -> -0.5; 20 -> (16-20)/4 = -1; 25 (> L_max) -> -1
    p = overlong_penalty(torch.tensor([10, 16, 17, 18, 20, 25]), max_len=20, cache_len=4)
    assert_close(p, torch.tensor([0.0, 0.0, -0.25, -0.5, -1.0, -1.0]))
    # DAPO's values: (16384 - 18432) / 4096 = -0.5
    assert_close(overlong_penalty(torch.tensor([18432]), max_len=20480, cache_len=4096), torch.tensor([-0.5]))
    with pytest.raises(AssertionError):
        overlong_penalty(torch.tensor([1]), max_len=4, cache_len=8)


def test_token_level_rewards_places_score_on_last_trained_token():
    # row 0: prompt, response, response, padding -> last True at 2
    # row 1: response, response, tool output (False), response -> last True at 3
    scores = torch.tensor([1.0, -1.0])
    mask = torch.tensor([[F_, T_, T_, F_], [T_, T_, F_, T_]])
    assert_close(token_level_rewards(scores, mask), torch.tensor([[0.0, 0, 1, 0], [0, 0, 0, -1]]))
    # minus 0.5 * kl on True positions only:
    # row 0: [0, -0.5*0.2, 1 - 0.5*0.3, 0]          = [0, -0.1, 0.85, 0]
    # row 1: [-0.5*0.5, -0.5*0.6, 0, -1 - 0.5*0.8]   = [-0.25, -0.3, 0, -1.4]
    kl = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    r = token_level_rewards(scores, mask, kl=kl, kl_coef=0.5)
    assert_close(r, torch.tensor([[0.0, -0.1, 0.85, 0], [-0.25, -0.3, 0, -1.4]]))


def test_token_level_rewards_matches_loop():
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(6, 9, generator=g) > 0.5
    mask[:, 4] = True
    scores = torch.randn(6, generator=g)
    expected = torch.zeros(6, 9)
    for i in range(6):
        expected[i, max(t for t in range(9) if mask[i, t])] = scores[i]
    assert_close(token_level_rewards(scores, mask), expected)


def test_token_level_rewards_rejects_bad_input():
    with pytest.raises(AssertionError, match="at least one True"):
        token_level_rewards(torch.tensor([1.0, 1.0]), torch.tensor([[T_, F_], [F_, F_]]))
    with pytest.raises(AssertionError, match="kl"):
        token_level_rewards(torch.tensor([1.0]), torch.tensor([[T_]]), kl_coef=0.1)
