"""VAPO's claims as verdicts with power (`eval.verdicts`): the chain mechanism (chain.py rows) and the tiny-LM
ablation (per-problem held-out accuracies), each a paired comparison with a bootstrap interval.

Mechanism claims are paired over seeds: each seed's value is the mean over the lengths the claim is about
(short: l <= short_max, long: l >= long_min), so a seed is one replication of the whole grid. Ablation claims are
paired over held-out problems (each problem's accuracy averaged over seeds and samples: the interval covers the
choice of problems, not of training seeds) and over seeds (each seed's accuracy over all problems: the interval
covers training noise, with as few pairs as there are seeds).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable

from reasonrl.eval.verdicts import claim, paired_comparison

PAPER = "VAPO (arXiv 2504.05118)"
# Table 1 (AIME24 avg@32) and the §4 figures the claims are checked against
PAPER_VALUES = {
    "value_pretrain": "VAPO w/o value pretraining: AIME24 11 vs 60 (Table 1); an RM-initialised critic is "
                      "positively biased on early tokens (§4.1)",
    "decay": "reward weight in a token's lambda-return lambda^(T-t); 0.95^100 ~ 0.006 (§4.1); "
             "w/o decoupled GAE: AIME24 33 vs 60 (Table 1)",
    "no_decay": "lambda_critic = 1.0: unbiased Monte-Carlo targets (§4.1, §5.1)",
    "adaptive": "lambda_policy = 1 - 1/(0.05 l) (Eq. 5); w/o length-adaptive GAE: AIME24 45 vs 60 (Table 1)",
}


def seed_values(rows: list[dict], *, critic: str, estimator: str, key: str, lengths: list[int],
                fn: Callable[[float], float] = float) -> list[float]:
    """Per seed (ascending), the mean over `lengths` of `fn(row[key])` for one critic and estimator."""
    by: dict[int, list[float]] = {}
    for r in rows:
        if r["critic"] == critic and r["estimator"] == estimator and r["length"] in lengths:
            by.setdefault(r["seed"], []).append(fn(r[key]))
    assert by and all(len(v) == len(lengths) for v in by.values()), (
        f"missing rows for {critic} / {estimator} at lengths {lengths}")
    return [statistics.fmean(by[s]) for s in sorted(by)]


def against_constant(values: list[float], const: float, text: str, *, expect: str, margin: float = 0.0,
                     paper_value: str, setting: str) -> dict:
    """A claim that a quantity (one value per seed) lies above, below or within `margin` of `const`: the paired
    comparison of the values against `const`, reported as the values' mean and the bootstrap interval of that
    mean (the interval of the difference shifted by `const`), with the verdict on the difference."""
    cmp = paired_comparison([const] * len(values), values, expect=expect, margin=margin)
    row = claim(PAPER, text, cmp, paper_value=paper_value, ours=cmp.mean_b, setting=setting)
    return {**row, "ci_low": cmp.ci_low + const, "ci_high": cmp.ci_high + const, "threshold": const}


def mechanism_claims(rows: list[dict], *, p0: float, long_min: int = 512, short_max: int = 64) -> list[dict]:
    """The (a), (b), (c) claims of the chain study; `p0` is the chain's E[r] (V(0) is compared with it)."""
    lengths = sorted({r["length"] for r in rows})
    short = [n for n in lengths if n <= short_max]
    long = [n for n in lengths if n >= long_min]
    assert short and long, f"need lengths <= {short_max} and >= {long_min}, got {lengths}"
    out = []

    def values(critic, estimator, key, on, fn=float):
        return seed_values(rows, critic=critic, estimator=estimator, key=key, lengths=on, fn=fn)

    # (a) the RM-like critic, length-adaptive advantages (VAPO's), early tokens, every length
    untrained = values("rm+untrained", "adaptive", "early_bias", lengths, abs)
    pretrained = values("rm+mc", "adaptive", "early_bias", lengths, abs)
    cmp = paired_comparison(untrained, pretrained, expect="less")
    out.append(claim(PAPER, "(a) value pretraining (Monte-Carlo returns, frozen policy) reduces the early-token "
                     "advantage bias of an RM-initialised critic", cmp, paper_value=PAPER_VALUES["value_pretrain"],
                     setting=f"|mean bias| of t < early_tokens, length-adaptive lambda, mean over l in {lengths}; "
                             "pairs: seeds"))
    removed = [1 - b / a for a, b in zip(untrained, pretrained, strict=True)]
    out.append(against_constant(removed, 0.5, "(a) ... and removes most (more than half) of it",
                                expect="greater", paper_value=PAPER_VALUES["value_pretrain"],
                                setting="ours = the fraction of the bias removed; seeds"))
    # (b) critics trained from zero (everything V(0) knows came through the targets), long responses
    td = values("zero+td", "fixed", "v0", long, lambda v: v / p0)
    mc = values("zero+mc", "fixed", "v0", long, lambda v: v / p0)
    cmp = paired_comparison(mc, td, expect="less")
    out.append(claim(PAPER, "(b) a critic trained with lambda 0.95 loses the terminal reward on long responses: "
                     "V(0) / E[r] below that of a lambda-1 critic", cmp, paper_value=PAPER_VALUES["decay"],
                     setting=f"zero-initialised critics, same steps and episodes; l in {long}; pairs: seeds"))
    out.append(against_constant(mc, 1.0, "(b) ... and a lambda-1 critic (decoupled GAE) does not: V(0) / E[r] "
                                "within 0.1 of 1", expect="equal", margin=0.1, paper_value=PAPER_VALUES["no_decay"],
                                setting=f"ours = V(0) / E[r] of the lambda-1 critic; l in {long}; seeds"))
    # (c) the pretrained critic (VAPO's), three policy estimators
    for text, key, base, on, fn in (
            ("(c) length-adaptive lambda: lower advantage variance than lambda 1 on long responses", "var", "one",
             long, float),
            ("(c) length-adaptive lambda: lower advantage bias than lambda 0.95 on short responses", "abs_bias",
             "fixed", short, float),
            ("(c, the paper's wording) length-adaptive lambda: lower advantage bias than lambda 0.95 on long "
             "responses", "abs_bias", "fixed", long, float),
            ("(c, the paper's wording) length-adaptive lambda: lower advantage variance than lambda 0.95 on short "
             "responses", "var", "fixed", short, float)):
        cmp = paired_comparison(values("rm+mc", base, key, on, fn), values("rm+mc", "adaptive", key, on, fn),
                                expect="less")
        what = "mean over t of Var(A_hat - A*)" if key == "var" else "mean over t of |E[A_hat - A*]|"
        out.append(claim(PAPER, text, cmp, paper_value=PAPER_VALUES["adaptive"],
                         setting=f"{what}, pretrained critic (RM init + value pretraining); l in {on}; pairs: seeds"))
    return out


ABLATION = (("vapo", "ppo", "greater", "VAPO beats PPO on held-out accuracy", "AIME24 60 vs 5 (+55 points)"),
            ("vapo", "dapo", "greater", "VAPO beats DAPO on held-out accuracy", "AIME24 60 vs 50 (+10 points)"),
            ("vapo-value_pretrain", "vapo", "less", "VAPO without value pretraining is below VAPO",
             "AIME24 11 vs 60 (-49 points)"))


MIN_SEED_PAIRS = 3


def ablation_claims(per_problem: dict[str, list[list[float]]]) -> list[dict]:
    """`per_problem[variant][seed][problem]`: held-out accuracy of each problem (over its samples) for each seed's
    final model, problems in the same order everywhere. Two claims per comparison of `ABLATION` whose variants
    both ran: paired over problems, and over the seeds both have (seed i with seed i; only with at least
    `MIN_SEED_PAIRS` of them)."""
    out = []
    for b, a, expect, text, paper in ABLATION:
        if a not in per_problem or b not in per_problem:
            continue
        xa, xb = per_problem[a], per_problem[b]
        by_problem = [[statistics.fmean(col) for col in zip(*x, strict=True)] for x in (xa, xb)]
        cmp = paired_comparison(*by_problem, expect=expect)
        setting = f"{b} - {a}; {len(xa)} / {len(xb)} seeds, {len(by_problem[0])} problems"
        out.append(claim(PAPER, text, cmp, paper_value=paper, setting=f"{setting}; pairs: problems (seed means)"))
        n = min(len(xa), len(xb))
        if n < MIN_SEED_PAIRS:  # the bootstrap of one or two pairs is no interval to judge by
            continue
        by_seed = [[statistics.fmean(s) for s in x[:n]] for x in (xa, xb)]
        cmp = paired_comparison(*by_seed, expect=expect)
        out.append(claim(PAPER, text, cmp, paper_value=paper, setting=f"{setting}; pairs: the first {n} seeds "
                                                                      "(problem means)"))
    return out
