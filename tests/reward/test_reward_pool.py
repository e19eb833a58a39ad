"""`reward.workers` (reasonrl/reward/pool.py): a plain reward function in spawned worker processes, one call per
completion, each within `reward.timeout_s`. A slow function with a tiny timeout and a raising one, each with
`reward.on_error` a number (scored and counted) and "fail" (stopped); a hung worker does not hang the run; no
worker outlives its reward."""

from __future__ import annotations

import multiprocessing
import time

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.reward import Responses, build_reward
from reasonrl.reward.base import RewardCallError

SLOW_PY = '''
import time

def slow(prompts, completions, **kw):
    # "hang" sleeps far beyond any timeout; anything else answers at once
    if completions[0] == "hang":
        time.sleep(60)
    return [float(len(c)) for c in completions]

def picky(prompts, completions, answer, **kw):
    if completions[0] == "bad":
        raise RuntimeError(f"cannot read {completions[0]!r}")
    return [1.0 if a in c else 0.0 for c, a in zip(completions, answer)]

def verl_len(data_source, solution_str, ground_truth, extra_info=None):
    return len(solution_str) + (100 if ground_truth == "4" else 0)
'''


def _responses(texts: list[str]) -> Responses:
    n = len(texts)
    records = [{"prompt": f"p{i}", "answer": str(i % 5)} for i in range(n)]
    return Responses(records=records, prompts=[r["prompt"] for r in records], texts=texts,
                     lengths=torch.ones(n, dtype=torch.long), truncated=torch.zeros(n, dtype=torch.bool),
                     group=torch.arange(n))


@pytest.fixture
def slow_py(tmp_path, monkeypatch):
    (tmp_path / "slow.py").write_text(SLOW_PY)
    monkeypatch.chdir(tmp_path)


def _reward(kind: str, *overrides: str):
    return build_reward(load_config(None, [f"--reward.kind={kind}", "--reward.workers=2", *overrides]))


def test_the_pool_scores_as_this_process_does(slow_py):
    texts = ["a", "bb", "ccc", "dddd 4", "e"]  # 5 calls in waves of 2
    for kind in ("slow.py:slow", "slow.py:picky", "slow.py:verl_len"):
        here = build_reward(load_config(None, [f"--reward.kind={kind}"]))(_responses(texts)).scores
        reward = _reward(kind)
        pooled = reward(_responses(texts)).scores
        reward.close()
        assert pooled.tolist() == here.tolist(), kind
    assert here.tolist() == [1.0, 2.0, 3.0, 6.0, 101.0]  # verl_len: len + 100 where the answer is "4"


def test_a_hung_call_times_out_is_scored_on_error_and_the_pool_goes_on(slow_py):
    reward = _reward("slow.py:slow", "--reward.timeout_s=0.5", "--reward.on_error=-2")
    pool = reward.parts[0].reward.pool
    t0 = time.monotonic()
    scored = reward(_responses(["a", "hang", "ccc"]))
    assert time.monotonic() - t0 < 20  # not the 60 s the call sleeps
    assert scored.scores.tolist() == [1.0, -2.0, 3.0]
    assert scored.stats == {"errors": pytest.approx(1 / 3)}
    assert pool.restarts == 1  # the hung worker was stopped with its pool, and a new pool answers
    assert reward(_responses(["xy"])).scores.tolist() == [2.0]
    reward.close()


def test_a_hung_call_with_on_error_fail_stops(slow_py):
    reward = _reward("slow.py:slow", "--reward.timeout_s=0.5")
    with pytest.raises(RewardCallError) as e:
        reward(_responses(["a", "hang"]))
    assert e.value.exc_type == "TimeoutError" and "reward.timeout_s = 0.5 s" in e.value.message
    reward.close()


def test_a_raising_call_in_a_worker_both_ways(slow_py, tmp_path):
    fallback = _reward("slow.py:picky", "--reward.on_error=0.5")
    scored = fallback(_responses(["0", "bad", "2"]))
    assert scored.scores.tolist() == [1.0, 0.5, 1.0] and scored.stats == {"errors": pytest.approx(1 / 3)}
    fallback.close()
    fail = _reward("slow.py:picky")
    with pytest.raises(RewardCallError) as e:
        fail(_responses(["0", "bad"]))
    assert (e.value.exc_type, e.value.message) == ("RuntimeError", "cannot read 'bad'")
    assert f'File "{tmp_path / "slow.py"}"' in e.value.frames and "in picky" in e.value.frames  # from the worker
    fail.close()


def _children_after(seconds: float) -> list:
    deadline = time.monotonic() + seconds
    while multiprocessing.active_children() and time.monotonic() < deadline:
        time.sleep(0.1)
    return multiprocessing.active_children()


def test_no_worker_outlives_its_reward(slow_py):
    import gc

    reward = _reward("slow.py:slow")
    assert len(multiprocessing.active_children()) == 2
    reward.close()  # a run that stopped on a reward error closes it
    assert _children_after(10) == []
    reward = _reward("slow.py:slow")
    assert len(multiprocessing.active_children()) == 2
    del reward  # a finished run drops it
    gc.collect()
    assert _children_after(10) == []
