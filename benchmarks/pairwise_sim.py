"""Pairwise-RL's reward with a controlled judge: what swap debiasing and the anchor do to the reward's error.

    .venv/bin/python benchmarks/pairwise_sim.py --quick --out pairwise_sim_quick.json   # 2 seeds, seconds
    .venv/bin/python benchmarks/pairwise_sim.py --out runs/pairwise_sim.json            # 5 seeds

A synthetic judge P(first > second) = sigmoid(k (u_first - u_second) + b + noise), answering 1/2 (a tie) with
probability `ties` (reasonrl.pairwise.simulate), scores policy samples of known quality u ~ N(0, 1) against a
reference anchor (quality 0.5, fixed per prompt) or a sibling sample, with one query (`none`), the swap-debiased
probability average of reasonrl.pairwise.reward (`prob`), or a logit-space average (`logit`). Per cell: the
reward's bias and RMSE against the exact unbiased judge's reward sigmoid(k (u_y - u_*)), and `order_acc` (how
often two samples of one prompt are rewarded in the order of their true quality: what policy gradient uses).

The position biases include the LM judges' of benchmarks/pairwise.py (docs/pairwise.md): mean P(first better)
0.703 without swap augmentation and 0.566 with it, i.e. b = logit(0.703) = 0.86 and logit(0.566) = 0.27 at equal
quality, so the LM PPO runs can be read against the matching rows. `claims`: paired by seed (the same samples in
both arms), verdicts from reasonrl.eval.verdicts.
"""

from __future__ import annotations

import argparse
import itertools
import math
import statistics
import time

from output import finish, print_claims

from reasonrl.eval.verdicts import claim, paired_comparison
from reasonrl.pairwise.simulate import ANCHORS, DEBIAS, SimJudge, simulate

LM_NO_SWAP_BIAS = math.log(0.703 / 0.297)  # 0.863: the no-swap LM judge's mean P(first better), docs/pairwise.md
LM_SWAP_BIAS = math.log(0.566 / 0.434)  # 0.266: the swap-augmented LM judge's
PAPER = "Pairwise-RL (arXiv 2504.04950)"
NO_NUMBERS = "no number (notes B.6: the paper's results were not available to us)"


def judges(k: float) -> dict[str, SimJudge]:
    """Named judge settings: each knob alone, then together at the LM judges' position biases."""
    return {
        "exact": SimJudge(k=k),
        "bias 1": SimJudge(k=k, bias=1.0),
        "noise 1": SimJudge(k=k, noise=1.0),
        "ties 0.2": SimJudge(k=k, ties=0.2),
        "LM swap b, noise 1, ties 0.2": SimJudge(k=k, bias=LM_SWAP_BIAS, noise=1.0, ties=0.2),
        "LM no-swap b, noise 1, ties 0.2": SimJudge(k=k, bias=LM_NO_SWAP_BIAS, noise=1.0, ties=0.2),
    }


def run_grid(args) -> list[dict]:
    """Every (judge, anchor, debias, seed) cell; the samples depend on the seed only (paired across cells)."""
    rows = []
    for (name, judge), anchor, debias, seed in itertools.product(judges(args.k).items(), ANCHORS, DEBIAS,
                                                                 range(args.seeds)):
        rows.append({"judge": name, **simulate(judge, anchor=anchor, debias=debias, num_prompts=args.prompts,
                                               num_samples=args.samples, seed=seed)})
    return rows


def per_seed(rows: list[dict], key: str, **where) -> list[float]:
    """`key` of the cells matching `where`, in seed order."""
    sel = sorted((r for r in rows if all(r[k] == v for k, v in where.items())), key=lambda r: r["seed"])
    return [r[key] for r in sel]


def summary_table(rows: list[dict]) -> list[dict]:
    out = []
    for name in dict.fromkeys(r["judge"] for r in rows):
        for anchor in ANCHORS:
            row = {"judge": name, "anchor": anchor}
            for debias in DEBIAS:
                for key in ("mean_error", "rmse", "order_acc"):
                    row[f"{key}_{debias}"] = statistics.fmean(per_seed(rows, key, judge=name, anchor=anchor,
                                                                       debias=debias))
            out.append(row)
    return out


def claims(rows: list[dict]) -> list[dict]:
    lm = "LM no-swap b, noise 1, ties 0.2"
    ref = dict(judge=lm, anchor="reference")
    setting = f"controlled judge '{lm}' (b = {LM_NO_SWAP_BIAS:.2f}), reference anchor; pairs = seeds"
    abs_bias = {d: [abs(x) for x in per_seed(rows, "mean_error", **ref, debias=d)] for d in ("none", "prob")}
    out = [
        claim(PAPER, "swap debiasing removes the position bias of the pairwise reward (|mean error|)",
              paired_comparison(abs_bias["none"], abs_bias["prob"], expect="less"),
              paper_value=f"{NO_NUMBERS}; notes B.3 [S]: position bias is addressed by swap augmentation",
              setting=setting),
        claim(PAPER, "swap debiasing lowers the reward's error against the true quality difference (RMSE)",
              paired_comparison(per_seed(rows, "rmse", **ref, debias="none"),
                                per_seed(rows, "rmse", **ref, debias="prob"), expect="less"),
              paper_value=f"{NO_NUMBERS}; notes B.3 [I]: s = 1/2 [p(y > y*) + 1 - p(y* > y)]", setting=setting),
        claim(PAPER, "a fixed reference anchor orders a prompt's samples better than a sibling-sample anchor",
              paired_comparison(per_seed(rows, "order_acc", judge=lm, anchor="sibling", debias="prob"),
                                per_seed(rows, "order_acc", judge=lm, anchor="reference", debias="prob"),
                                expect="greater"),
              paper_value=f"{NO_NUMBERS}; notes B.3 [S]: the anchor is a ground-truth answer; B.6: anchor source open",
              setting=f"controlled judge '{lm}', swap-debiased; order accuracy; pairs = seeds"),
    ]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="2 seeds, 128 prompts (seconds)")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--prompts", type=int, default=512, help="prompts per seed")
    ap.add_argument("--samples", type=int, default=4, help="policy samples per prompt")
    ap.add_argument("--k", type=float, default=2.0, help="judge sharpness (logit per unit of quality difference)")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    if args.quick:
        args.seeds, args.prompts = 2, 128
    t0 = time.perf_counter()
    rows = run_grid(args)
    table = summary_table(rows)
    print(f"controlled judge, k = {args.k}, {args.prompts} prompts x {args.samples} samples, "
          f"mean of {args.seeds} seeds")
    print(f"{'judge':<33}{'anchor':<10}" + "".join(f"{h:>9}" for h in (
        "err1", "errP", "errL", "rmse1", "rmseP", "rmseL", "order1", "orderP", "orderL")))
    for r in table:
        vals = [r[f"{k}_{d}"] for k in ("mean_error", "rmse", "order_acc") for d in DEBIAS]
        print(f"{r['judge']:<33}{r['anchor']:<10}" + "".join(f"{v:>9.3f}" for v in vals))
    print("(err = mean error against the exact judge's reward; 1 = one query; P = swap-debiased probability "
          "average; L = logit-space average)")
    cl = claims(rows)
    print("\nclaims (paired by seed):")
    print_claims(cl, digits=4)
    finish({"benchmark": "pairwise_sim", "settings": vars(args), "lm_biases": {"no_swap": LM_NO_SWAP_BIAS,
                                                                               "swap": LM_SWAP_BIAS},
            "table": table, "cells": rows, "claims": cl, "seconds": time.perf_counter() - t0}, args.out)


if __name__ == "__main__":
    main()
