"""Two gloo ranks vs one process for the RL spine: whitening with whole-batch statistics, and processes that hold
different numbers of rows (dynamic sampling stops on different counts) still pair their collectives and make the
one-process update. The ranks are forked (tests/train/_rl_dist_worker.py); a hang fails after a timeout."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))
import _rl_dist_worker as w  # noqa: E402

from reasonrl.train import ppo, rl, step_metrics  # noqa: E402

TIMEOUT_S = 300


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, free_port, run_forked) -> list[dict]:
    out = tmp_path_factory.mktemp("rl_dist")
    run_forked(w.run, (w.WORLD, free_port(), str(out)), nprocs=w.WORLD, timeout_s=TIMEOUT_S,
               what="the 2-process RL scenarios")
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(w.WORLD)]


def test_whitening_over_two_processes_equals_one_process(ranks):
    batch, values = w.whiten_inputs()
    whole = ppo.compute_advantages(batch, values, w.whiten_config(), pretraining=False).advantages
    split = torch.cat([ranks[0]["adv"], ranks[1]["adv"]])
    torch.testing.assert_close(split, whole, atol=1e-6, rtol=1e-6)
    assert whole[batch.mask].std() == pytest.approx(1.0, abs=1e-5)  # whitened for real
    # each rank whitening its own rows would differ (the bug): rank 1's 3 rows alone
    own = ppo.compute_advantages(batch.rows(torch.tensor([5, 6, 7])), values[5:], w.whiten_config(),
                                 pretraining=False).advantages
    assert (own - whole[5:]).abs().max() > 0.05


def _one_process_update(batches: list[rl.Batch], seed: int) -> dict:
    cfg = w.sampling_config()
    batch = rl.concat(batches, 0)
    model = w.tiny_policy()
    stats = rl.policy_update(model, torch.optim.SGD(model.parameters(), lr=0.5), batch, cfg, seed=seed)
    return {"w": model.state_dict(), "loss": stats["policy_loss"]}


def test_rank_with_fewer_groups_finishes_and_matches_one_process(ranks):
    a, b = ranks[0]["fewer"], ranks[1]["fewer"]
    # rank 0 was full after round 1 and stopped sampling; rank 1 kept one group (round 2) of the 3 rounds
    assert a["batch"].size == 2 * w.G and b["batch"].size == 1 * w.G
    assert a["rounds"] == b["rounds"] == 3
    assert a["cursor"] == b["cursor"] == 3 * 4  # both read the same 3 rounds of 4 prompts from the stream
    assert a["batch"].mask.any(1).all() and b["batch"].mask.any(1).all()
    assert a["shared_passes"] > 0 and b["shared_passes"] > 0  # prompts teacher-forced once, outside DDP's hooks
    ref = _one_process_update([a["batch"], b["batch"]], seed=5)
    moved = max((ref["w"][k] - w.tiny_policy().state_dict()[k]).abs().max().item() for k in ref["w"])
    assert moved > 1e-3
    for k in ref["w"]:
        torch.testing.assert_close(a["w"][k], b["w"][k], atol=0, rtol=0)  # the averaged gradients kept them equal
        torch.testing.assert_close(a["w"][k], ref["w"][k], atol=1e-6, rtol=1e-5)


def test_update_without_prompt_sharing_goes_through_ddp_and_agrees(ranks):
    """`rl.share_prompt = false`: the plain pass through DDP's forward and gradient hooks; same update as the
    shared pass outside DDP (same rows, same seed)."""
    for rank in ranks:
        assert rank["unshared"]["shared_passes"] == 0
        for k, v in rank["unshared"]["w"].items():
            torch.testing.assert_close(v, rank["fewer"]["w"][k], atol=1e-6, rtol=1e-5)


def test_critic_update_with_shared_prompts_over_two_processes_equals_one_process(ranks):
    a, b = ranks[0]["critic"], ranks[1]["critic"]
    assert a["shared_passes"] > 0 and b["shared_passes"] > 0
    ref = w.critic_step(w.critic_inputs())
    start = w.tiny_policy().state_dict()  # the critic's backbone starts from these weights
    moved = max((ref["w"][k] - start[k]).abs().max().item() for k in start if k in ref["w"])
    assert moved > 1e-3
    # each rank logs its own rows' share of the global token mean, times the world size: they average to it
    assert (a["loss"] + b["loss"]) / 2 == pytest.approx(ref["loss"], rel=1e-5)
    for k in ref["w"]:
        torch.testing.assert_close(a["w"][k], b["w"][k], atol=0, rtol=0)
        torch.testing.assert_close(a["w"][k], ref["w"][k], atol=1e-6, rtol=1e-5)


def test_reward_stats_are_global_response_weighted_means(ranks):
    # "fewer": rank 0 sampled one round (2 prompts x 4 = 8 responses, stat 1), rank 1 three rounds (24, stat 2):
    # r = (8 * 1 + 24 * 2) / 32 = 1.75 on both ranks; "only0" is averaged over the 8 responses that had it: 1.0
    for rank in ranks:
        assert rank["fewer"]["reward_means"] == {"reward/only0": 1.0, "reward/r": 1.75}


def test_rank_with_no_group_trains_on_nothing_and_matches_one_process(ranks):
    a, b = ranks[0]["none"], ranks[1]["none"]
    assert a["rounds"] == b["rounds"] == 3 and a["cursor"] == b["cursor"] == 12
    assert b["batch"].size == w.G and not b["batch"].mask.any()  # a masked group: it trains on nothing
    ref = _one_process_update([a["batch"]], seed=6)  # so the update is rank 0's groups alone
    # and the step's statistics are those of rank 0's responses: rank 1's stand-in group is not a response
    whole = {**step_metrics.rollout_stats(a["batch"]), **step_metrics.length_bias_stats(a["batch"])}
    assert whole["num_responses"] == 2 * w.G
    assert a["stats"] == pytest.approx(whole, nan_ok=True) and b["stats"] == pytest.approx(whole, nan_ok=True)
    for k in ref["w"]:
        torch.testing.assert_close(a["w"][k], b["w"][k], atol=0, rtol=0)
        torch.testing.assert_close(a["w"][k], ref["w"][k], atol=1e-6, rtol=1e-5)


def test_more_minibatches_than_a_rank_has_rows_for(ranks):
    """Minibatches of 4 over 8 + 4 rows: 3 per epoch on both ranks; rank 1 runs out after 2 and trains the
    third on a masked row, so both make the same forward / backward / all-reduce calls."""
    a, b = ranks[0]["small_mb"], ranks[1]["small_mb"]
    assert a["minibatches"] == [3, 3, 2] * 2 and b["minibatches"] == [2, 2, 0] * 2
    moved = max((a["w"][k] - w.tiny_policy().state_dict()[k]).abs().max().item() for k in a["w"])
    assert moved > 1e-3 and all(torch.isfinite(v).all() for v in a["w"].values())
    for k in a["w"]:
        torch.testing.assert_close(a["w"][k], b["w"][k], atol=0, rtol=0)
