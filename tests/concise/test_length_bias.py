"""Length-bias diagnostics (`algo.length_bias`) on a hand batch, split over two "ranks", and KL in the reward."""

import math

import pytest
import torch

from reasonrl.algo.length_bias import finish_length_bias, length_bias_sums, quartile_edges, seq_mean_advantage
from reasonrl.config import load_config
from reasonrl.errors import UserError
from reasonrl.train import rl, step_metrics
from reasonrl.train.ppo import compute_advantages

# four responses of lengths 2, 4, 3, 1; 9.0 marks untrained positions, which must not count
MASK = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 1, 1, 0], [1, 0, 0, 0]], dtype=torch.bool)
ADV = torch.tensor([[0.2, 0.4, 9.0, 9.0], [-1.0, -1.0, 0.0, 0.4], [0.3, -0.3, 0.6, 9.0], [0.5, 9.0, 9.0, 9.0]])
LENGTHS = MASK.sum(-1)
CORRECT = torch.tensor([True, False, False, True])
SCORES = torch.tensor([1.0, -0.5, -1.0, 1.0])


def test_hand_batch():
    # (1/T) sum_t A_t: (0.2 + 0.4)/2 = 0.3; (-1 - 1 + 0 + 0.4)/4 = -0.4; (0.3 - 0.3 + 0.6)/3 = 0.2; 0.5/1 = 0.5
    assert torch.allclose(seq_mean_advantage(ADV, MASK), torch.tensor([0.3, -0.4, 0.2, 0.5]))
    # sorted lengths 1, 2, 3, 4; linear quantiles at positions 0.75, 1.5, 2.25 -> 1.75, 2.5, 3.25
    edges = quartile_edges(LENGTHS)
    assert torch.allclose(edges, torch.tensor([1.75, 2.5, 3.25]))
    out = finish_length_bias({k: float(v) for k, v in length_bias_sums(LENGTHS, CORRECT, SCORES, ADV, MASK,
                                                                        edges=edges).items()})
    # correct lengths 2, 1 -> 1.5; wrong 4, 3 -> 3.5; rewards < 0: -0.5, -1 -> 2/4
    assert out["len_correct"] == pytest.approx(1.5) and out["len_wrong"] == pytest.approx(3.5)
    assert out["frac_negative"] == pytest.approx(0.5)
    # quartiles: length 1 -> q1 (0.5), 2 -> q2 (0.3), 3 -> q3 (0.2), 4 -> q4 (-0.4)
    assert [out[f"adv_len_q{q}"] for q in (1, 2, 3, 4)] == pytest.approx([0.5, 0.3, 0.2, -0.4])


def test_ties_fall_in_the_lower_quartile_and_empty_ones_are_nan():
    lengths = torch.tensor([2, 2, 2, 2])  # every edge is 2: all four responses are in q1
    mask = torch.ones(4, 2, dtype=torch.bool)
    adv = torch.tensor([[1.0, 0.0], [0.0, 0.0], [0.0, 0.0], [0.0, 1.0]])  # per response 0.5, 0, 0, 0.5 -> 0.25
    out = finish_length_bias({k: float(v) for k, v in length_bias_sums(
        lengths, torch.zeros(4, dtype=torch.bool), torch.ones(4), adv, mask, edges=quartile_edges(lengths)).items()})
    assert out["adv_len_q1"] == pytest.approx(0.25)
    assert all(math.isnan(out[f"adv_len_q{q}"]) for q in (2, 3, 4)) and math.isnan(out["len_correct"])
    assert out["frac_negative"] == 0.0


def test_two_ranks_summed_equal_the_whole_batch():
    # what `step_metrics.length_bias_stats` does under torchrun: global edges, per-rank sums added before dividing
    edges = quartile_edges(LENGTHS)
    parts = [length_bias_sums(LENGTHS[i], CORRECT[i], SCORES[i], ADV[i], MASK[i], edges=edges)
             for i in (slice(0, 1), slice(1, 4))]
    summed = finish_length_bias({k: float(parts[0][k] + parts[1][k]) for k in parts[0]})
    whole = finish_length_bias({k: float(v) for k, v in length_bias_sums(LENGTHS, CORRECT, SCORES, ADV, MASK,
                                                                          edges=edges).items()})
    assert summed == pytest.approx(whole)
    batch = rl.Batch(input_ids=torch.zeros(4, 4, dtype=torch.long), attention_mask=torch.ones(4, 4), mask=MASK,
                     old_logp=torch.zeros(4, 4), scores=SCORES, correct=CORRECT, lengths=LENGTHS, advantages=ADV)
    assert step_metrics.length_bias_stats(batch) == pytest.approx(whole)  # the trainers' call, one process


def _one_row_batch() -> rl.Batch:
    mask = torch.ones(1, 3, dtype=torch.bool)
    return rl.Batch(input_ids=torch.zeros(1, 3, dtype=torch.long), attention_mask=torch.ones(1, 3), mask=mask,
                    old_logp=torch.tensor([[-1.0, -2.0, -0.5]]), scores=torch.tensor([1.0]),
                    correct=torch.tensor([True]), lengths=torch.tensor([3]),
                    ref_logp=torch.tensor([[-1.5, -1.0, -0.5]]))


@pytest.mark.parametrize("in_reward", [True, False])
def test_kl_in_reward_enters_gae(in_reward):
    # k1 KL = old_logp - ref_logp = [0.5, -1, 0]; kl_coef 0.5 -> token rewards [-0.25, 0.5, 0] + score 1 at the end
    # = [-0.25, 0.5, 1]; V = 0, gamma = lambda = 1, no whitening: A_t = sum of rewards from t = [1.25, 1.5, 1.0].
    # Without kl_in_reward the KL goes to the loss instead, and A = [1, 1, 1].
    cfg = load_config(None, ["--rl.kl_coef=0.5", "--rl.kl_estimator=k1", f"--rl.kl_in_reward={str(in_reward).lower()}",
                             "--rl.whiten_advantages=false", "--rl.lam_policy=1.0", "--rl.lam_critic=1.0"])
    batch = compute_advantages(_one_row_batch(), torch.zeros(1, 3), cfg, pretraining=False)
    expect = [1.25, 1.5, 1.0] if in_reward else [1.0, 1.0, 1.0]
    assert batch.advantages[0].tolist() == pytest.approx(expect)
    assert batch.returns[0].tolist() == pytest.approx(expect)  # V = 0: returns = advantages


def test_kl_in_reward_needs_ppo_and_a_coefficient():
    with pytest.raises(UserError, match="rl.kl_in_reward needs"):
        load_config(None, ["--rl.kl_in_reward=true", "--rl.kl_coef=0.01", "--rl.algo=grpo"])
    with pytest.raises(UserError, match="rl.kl_in_reward needs"):
        load_config(None, ["--rl.kl_in_reward=true"])
