"""The bandit behind benchmarks/concise.py: the paper's length argument reproduced through `gae` / `policy_loss`."""

import math

import pytest

from reasonrl.concise.bandit import BanditConfig, run_bandit


def test_length_follows_the_sign_of_r_minus_v_with_lambda_below_one():
    # zero critic, lambda 0.9, per-sequence token-mean loss: E[r] = p - 0.5 (1 - p) is -0.425 at p = 0.05 and +0.85
    # at p = 0.9, so (notes A.2) length must grow in the first cell and shrink in the second; the learned critic
    # tracks E[r] (its constant ends near -0.425 and +0.85)
    grid = [{"lam": 0.9, "p": p, "loss": "seq-mean-token-mean", "critic": c} for p in (0.05, 0.9)
            for c in ("zero", "learned")]
    out = run_bandit(BanditConfig(steps=40, batch=32), grid)
    grow, grow_learned, shrink, shrink_learned = out
    assert grow["length_start"] == pytest.approx(10.0)
    assert grow["length_end"] > 1.5 * grow["length_start"]
    assert shrink["length_end"] < 0.67 * shrink["length_start"]
    assert -0.6 < grow_learned["critic_end"] < -0.2 and shrink_learned["critic_end"] > 0.4
    # a critic that tracks E[r] removes most of the drift: |log(end / start)| at least halves
    def drift(c):
        return abs(math.log(c["length_end"] / c["length_start"]))

    assert drift(grow_learned) < 0.5 * drift(grow) and drift(shrink_learned) < 0.5 * drift(shrink)
