"""VAPO's verdicts: the chain claims from per-seed rows, the ablation claims from per-problem accuracies."""

import pytest

from reasonrl.vapo.chain import ESTIMATORS, critic_names
from reasonrl.vapo.claims import ablation_claims, against_constant, mechanism_claims, seed_values


def chain_rows(value, seeds=5, lengths=(16, 512)):
    """Rows as `run_chain` writes them, every key of every row from `value(critic, estimator, key, length, seed)`."""
    return [{"seed": s, "length": n, "critic": c, "estimator": e, "lam": 0.9,
             **{k: value(c, e, k, n, s) for k in ("early_bias", "abs_bias", "var", "v0")}}
            for s in range(seeds) for n in lengths for c in critic_names() for e in ESTIMATORS]


def paper_like(c, e, k, n, s):
    """Values a correct reading turns into known verdicts; the rows a claim must not read hold decoys (9.0)."""
    jitter = 0.001 * s  # seeds differ a little
    if k in ("var", "abs_bias") and c != "rm+mc" or k == "early_bias" and e != "adaptive":
        return 9.0
    if k == "early_bias":  # negative on purpose: the claim compares sizes |bias|
        return -0.2 if c == "rm+untrained" else 0.01 + jitter
    if k == "v0":  # p0 = 0.5: on long responses the lambda-0.95 critic keeps 10% of E[r], the lambda-1 critic all
        return {"zero+td": 0.05 + jitter if n > 100 else 0.5, "zero+mc": 0.5 - jitter}.get(c, 0.3)
    if k == "var":
        return {"one": 0.25, "fixed": 0.05 if n > 100 else 0.12, "adaptive": 0.01 + jitter}[e]
    return {"one": 0.02, "fixed": 0.001 if n > 100 else 0.006, "adaptive": 0.002 + jitter / 10}[e]  # abs_bias


def test_mechanism_claims_read_the_right_rows():
    claims = mechanism_claims(chain_rows(paper_like), p0=0.5)
    assert len(claims) == 8
    a, most, b, no_decay, c_var, c_short, c_long, c_var_short = claims
    # (a): |-0.2| against 0.01 + 0.001 s (mean 0.012): a drop of 0.188
    assert a["ours"] == pytest.approx(0.012 - 0.2) and a["verdict"] == "reproduced"
    assert most["ours"] == pytest.approx(1 - 0.012 / 0.2, abs=1e-3) and most["verdict"] == "reproduced"
    assert most["ci_low"] <= most["ours"] <= most["ci_high"] and most["threshold"] == 0.5
    # (b): V(0) / E[r] is 0.1 + 0.002 s against 1 - 0.002 s on the long lengths only (512)
    assert b["ours"] == pytest.approx(0.104 - 0.996) and b["verdict"] == "reproduced"
    assert no_decay["ours"] == pytest.approx(0.996) and no_decay["verdict"] == "reproduced"
    assert 0.98 < no_decay["ci_low"] <= no_decay["ci_high"] <= 1.0
    # (c): variance on long: 0.012 vs 0.25; bias on short: 0.0022 vs 0.006 -> reproduced; bias on long:
    # 0.0022 vs 0.001 -> not reproduced; variance on short 0.012 vs 0.12 -> reproduced
    assert c_var["ours"] == pytest.approx(0.012 - 0.25) and c_var["verdict"] == "reproduced"
    assert c_short["ours"] == pytest.approx(0.0022 - 0.006) and c_short["verdict"] == "reproduced"
    assert c_long["ours"] == pytest.approx(0.0022 - 0.001) and c_long["verdict"] == "not reproduced"
    assert c_var_short["ours"] == pytest.approx(0.012 - 0.12) and c_var_short["verdict"] == "reproduced"
    for c in claims:
        assert {"paper", "claim", "ours", "paper_value", "ci_low", "ci_high", "verdict"} <= set(c)
        assert c["num_pairs"] == 5 and c["paper_value"]


def test_mechanism_claims_say_not_reproduced_when_pretraining_adds_bias():
    def worse(c, e, k, n, s):
        if k == "early_bias":
            return 0.05 if c == "rm+untrained" else -0.1 - 0.001 * s
        return paper_like(c, e, k, n, s)

    a, most = mechanism_claims(chain_rows(worse), p0=0.5)[:2]
    assert a["verdict"] == "not reproduced" and most["verdict"] == "not reproduced" and most["ours"] < 0


def test_seed_values_average_the_given_lengths_per_seed():
    rows = chain_rows(lambda c, e, k, n, s: n + s, seeds=2, lengths=(16, 32, 512))
    assert seed_values(rows, critic="rm+mc", estimator="one", key="var", lengths=[16, 32]) == [24.0, 25.0]
    with pytest.raises(AssertionError, match="missing rows"):
        seed_values(rows, critic="rm+mc", estimator="one", key="var", lengths=[16, 64])


def test_against_constant_reports_the_values_and_their_interval():
    # 0.95, 1.0, 1.05 against 1 within 0.1: mean 1.0; every bootstrap mean lies in [0.95, 1.05]
    row = against_constant([0.95, 1.0, 1.05], 1.0, "x", expect="equal", margin=0.1, paper_value="p", setting="s")
    assert row["ours"] == pytest.approx(1.0) and row["verdict"] == "reproduced"
    assert 0.95 <= row["ci_low"] <= 1.0 <= row["ci_high"] <= 1.05


def test_ablation_claims_pair_problems_over_seed_means_and_seeds():
    # 3 seeds x 4 problems; VAPO equals PPO on seed 0 and is 0.4, 0.2, 0.4, 0.2 higher on the problems of seeds 1
    # and 2: the seed means differ by 0, 0.3, 0.3, the problems' seed means by 0.267, 0.133, 0.267, 0.133
    ppo = [[0.2, 0.4, 0.6, 0.8]] * 3
    vapo = [[0.2, 0.4, 0.6, 0.8], [0.6, 0.6, 1.0, 1.0], [0.6, 0.6, 1.0, 1.0]]
    by_problem, by_seed = ablation_claims({"ppo": ppo, "vapo": vapo})
    assert by_problem["ours"] == pytest.approx(0.2) and by_problem["num_pairs"] == 4
    assert by_problem["verdict"] == "reproduced"  # every problem's seed mean is higher
    assert (by_problem["ci_low"], by_problem["ci_high"]) == pytest.approx((0.1333, 0.2667), abs=1e-3)
    assert by_seed["ours"] == pytest.approx(0.2) and by_seed["num_pairs"] == 3
    assert by_seed["ci_low"] == pytest.approx(0.0) and by_seed["verdict"] == "inconclusive"  # one seed shows nothing
    assert "problems" in by_problem["setting"] and "seeds" in by_seed["setting"]


def test_ablation_claims_need_both_variants_and_three_seeds_for_the_seed_pairing():
    two = [[0.5, 0.5]] * 2
    claims = ablation_claims({"vapo": two, "vapo-value_pretrain": [[0.1, 0.2]] * 2, "dapo": two})
    # VAPO vs PPO is skipped (no PPO); VAPO vs DAPO and -value pretraining vs VAPO: only the problem pairing
    assert [c["claim"] for c in claims] == ["VAPO beats DAPO on held-out accuracy",
                                            "VAPO without value pretraining is below VAPO"]
    assert claims[1]["ours"] == pytest.approx(-0.35) and claims[1]["verdict"] == "reproduced"
