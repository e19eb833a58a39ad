"""Your reward under torchrun (2 gloo ranks, forked; a hang fails after a timeout): each process scores its own rows
and the logged `reward/<name>` equals one process scoring the whole batch; a reward function that raises on one rank
only stops both ranks at the same step with the same first line (and that rank's frames), neither left waiting."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import _reward_dist_worker as w  # noqa: E402

from reasonrl.reward import build_reward  # noqa: E402
from reasonrl.reward.stats import reward_stat_means, reward_stat_sums  # noqa: E402

TIMEOUT_S = 300
REWARDS_PY = '''
import os

def digits(prompts, completions, **columns):
    return [sum(ch.isdigit() for ch in c) / len(c) for c in completions]

def rank1_fails_at_step_2(prompts, completions, **columns):
    # call 1 is the dry call, call 2 step 1, call 3 step 2 (GRPO without dynamic sampling: one call per step)
    rank1_fails_at_step_2.calls = getattr(rank1_fails_at_step_2, "calls", 0) + 1
    if rank1_fails_at_step_2.calls == 3 and os.environ["RANK"] == "1":
        return check(completions)
    return [0.0] * len(completions)

def check(completions):
    raise RuntimeError(f"rank 1 cannot score {len(completions)} completions")
'''


@pytest.fixture(scope="module")
def ranks(tmp_path_factory, free_port, tokenizer_dir, run_forked) -> list[dict]:
    out = tmp_path_factory.mktemp("reward_dist")
    (out / "rewards.py").write_text(REWARDS_PY)
    args = (w.WORLD, free_port(), str(out), str(tokenizer_dir), str(out / "rewards.py"))
    run_forked(w.run, args, nprocs=w.WORLD, timeout_s=TIMEOUT_S, what="the 2-process reward scenarios")
    return [{**json.loads((out / f"rank{r}.json").read_text()), "dir": out} for r in range(w.WORLD)]


def test_each_rank_scores_its_rows_and_the_logged_means_are_the_whole_batch(ranks):
    rewards_py = str(ranks[0]["dir"] / "rewards.py")
    whole = build_reward(w.stats_config(rewards_py))(w.responses(range(8)))
    assert ranks[0]["stats"]["scores"] + ranks[1]["stats"]["scores"] == pytest.approx(whole.scores.tolist())
    one_process = reward_stat_means(reward_stat_sums(whole.stats, 8))
    # digits: 1/9, 3/8, 0 | 1/9, 1, 1/2, 1/9, 1 -> mean 0.401; the verifier reads boxed answers: +1 at rows 0 and 6
    assert one_process["reward/verifier"] == pytest.approx((2 - 6) / 8)
    assert one_process["reward/digits"] == pytest.approx((3 / 9 + 3 / 8 + 2.5) / 8)
    for rank in ranks:
        assert rank["stats"]["means"] == pytest.approx(one_process)
    # a mean of the two ranks' means would weigh rank 0's 3 rows like rank 1's 5: not the whole batch's mean
    naive = (sum(ranks[0]["stats"]["scores"]) / 3 + sum(ranks[1]["stats"]["scores"]) / 5) / 2
    assert naive != pytest.approx(whole.scores.mean().item(), abs=1e-3)


def test_a_function_raising_on_one_rank_stops_both_with_the_same_first_line(ranks):
    a, b = ranks[0]["error"], ranks[1]["error"]
    kind = f"{ranks[0]['dir'] / 'rewards.py'}:rank1_fails_at_step_2"
    assert a["message"] == b["message"] == (f"reward '{kind}' raised at step 2: RuntimeError: rank 1 cannot score "
                                            f"2 completions")
    assert a["frames"] == b["frames"] and "in check" in a["frames"] and "reasonrl/" not in a["frames"]
    run = ranks[0]["dir"] / "run"
    metrics = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in metrics if "reward" in m] == [1]  # step 2 never trained nor logged
