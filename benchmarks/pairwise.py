"""Pairwise-RL at toy scale (issue 14; arXiv 2504.04950, notes B.7): judges, then PPO with their rewards.

    .venv/bin/python benchmarks/pairwise.py --out pairwise.json                    # full: judges + PPO
    .venv/bin/python benchmarks/pairwise.py --quick --out quick.json               # micro judges, no PPO
    .venv/bin/python benchmarks/pairwise.py --reuse --ppo-variants bt,pairwise_anchor --out F.json   # stage 3 again
    .venv/bin/python benchmarks/pairwise.py --reuse --ppo-variants bt,pairwise_anchor --ppo-seeds 0,1,2,3,4 \
        --out F.json                                                                # 5 seeds, paired claims

1. Policy: `--policy DIR` or a short SFT of the tiny preset on the synthetic world (difficulty 1).
2. Judges (`reasonrl rm-train`, each initialised from the policy, the paper's "reward model from a generative
   model"), on the synthetic preference set (`reasonrl.pairwise.world`): Bradley-Terry, the generative judge
   without swap augmentation (pairs shown chosen-first with probability `pairwise.chosen_first`) and with it.
   Held-out accuracy (both presentation orders), swap consistency, ECE, and one reliability plot.
3. PPO (`reasonrl rl`, configs/pairwise_ppo.toml) from the policy with the Bradley-Terry scalar reward r(x, y)
   vs the swap judge's debiased score against an anchor s(y, y*) (`PPO_VARIANTS`: the reference answer or a
   sibling sample, the critic seeing the anchor, `pairwise.critic_sees_anchor`, or blind to it). Hidden quality
   q = correct - 0.5 * re-check (the world's), averaged over the first and the last quarter of the training
   rollouts; held-out accuracy at the start and the end; offset exploitation = the rate of `Wait,` re-checks on
   prompts with the labeler's offset vs the others, first vs last quarter; the critic's explained variance.

`--reuse` skips stages 1-2 where their outputs exist (the SFT policy, each judge's `eval.json`). A judge or PPO run
directory that already holds a run is refused by `reasonrl rm-train` / `rl` unless `--overwrite` (deletes it).

The PPO recipe has a per-token KL to the SFT policy in the reward (rl.kl_coef 0.01, notes B.3); `--kl-coef 0`
repeats the KL-free runs recorded before issue 23 (run dirs without the `_kl` suffix).

Prints a table and writes `--out` JSON: `judges: {bt, pairwise, pairwise_swap: {accuracy, consistency, ece, ...}}`
and, in the full run, `ppo` (the first seed's) / `ppo_by_seed: {seed: {bt, pairwise_anchor: {true_quality_start,
true_quality_end, ...}}}`; `claims`: the judges compared pair by pair on the held-out pairs (swap consistency,
accuracy), the PPO variants by seed (hidden quality, held-out accuracy, offset exploitation: anchor vs BT).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from output import finish, print_claims

from reasonrl.eval.verdicts import claim, paired_comparison

ROOT = Path(__file__).resolve().parents[1]
PAPER = "Pairwise-RL (arXiv 2504.04950)"
NO_NUMBERS = "no number (notes B.6: the paper's results were not available to us)"
JUDGES = {  # name -> rm-train overrides
    "bt": ["--pairwise.judge=bt"],
    "pairwise": ["--pairwise.judge=generative", "--pairwise.swap=false"],
    "pairwise_swap": ["--pairwise.judge=generative", "--pairwise.swap=true"],
}


def cli(*args: str, log: Path) -> None:
    """Run `reasonrl ...` in a subprocess (one thread), its output to `log`; stop on failure."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with log.open("w") as f:
        r = subprocess.run([sys.executable, "-m", "reasonrl", *args], stdout=f, stderr=subprocess.STDOUT, env=env)
    if r.returncode != 0:
        sys.exit(f"benchmarks/pairwise.py: `reasonrl {' '.join(args)}` failed; see {log}")


def metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x.strip()]


def train_policy(work: Path, quick: bool) -> Path:
    run = work / "sft"
    if not (run / "final" / "config.json").is_file():
        size = ["--model.preset=micro", "--train.steps=20"] if quick else ["--train.steps=400"]
        cli("sft", "--config", str(ROOT / "configs" / "sft.toml"), "--data.difficulty=1", *size,
            "--train.eval_every=0", "--train.eval_examples=50", "--train.save_every=0", "--train.log_checkpoints=0",
            "--rollout.max_new_tokens=48", f"--log.run_dir={run}", "--log.progress=false", log=work / "sft.log")
    return run / "final"


def train_judges(work: Path, policy: Path, quick: bool, reuse: bool = False, overwrite: bool = False) -> dict:
    out = {}
    size = ["--train.steps=6", "--pairwise.num_train=64", "--pairwise.num_test=64"] if quick else []
    for name, extra in JUDGES.items():
        run = work / f"rm_{name}"
        if reuse and (run / "eval.json").is_file() and (run / "judge").is_dir():
            out[name] = {**json.loads((run / "eval.json").read_text()), "reused": True}
            continue
        t0 = time.time()
        cli("rm-train", "--config", str(ROOT / "configs" / "pairwise_rm.toml"), f"--model.path={policy}", *extra,
            *size, f"--log.run_dir={run}", "--log.progress=false", *(["--overwrite"] if overwrite else []),
            log=work / f"rm_{name}.log")
        out[name] = {**json.loads((run / "eval.json").read_text()), "seconds": round(time.time() - t0, 1)}
    return out


SIBLING = ["--pairwise.anchor=sample", "--rollout.num_samples=2", "--rl.prompts_per_step=32"]  # 64 responses a step
PPO_VARIANTS = {  # name -> rl overrides (the judge path is added); the critic sees the anchor unless "blind"
    "bt": ["--pairwise.anchor=none"],
    "pairwise_anchor": ["--pairwise.anchor=reference"],
    "pairwise_anchor_blind": ["--pairwise.anchor=reference", "--pairwise.critic_sees_anchor=false"],
    "pairwise_sample": SIBLING,
    "pairwise_sample_blind": [*SIBLING, "--pairwise.critic_sees_anchor=false"],
}


def recipe_kl() -> float:
    import tomllib

    return tomllib.loads((ROOT / "configs" / "pairwise_ppo.toml").read_text())["rl"].get("kl_coef", 0.0)


def run_ppo(work: Path, policy: Path, steps: int, names: list[str], seed: int = 0, overwrite: bool = False,
            kl_coef: float | None = None) -> dict:
    """One PPO run per variant; run dirs `ppo_<name>[_seed<N>][_kl<coef>]` (no `_kl` for the KL-free runs
    recorded before the recipe had a KL)."""
    out = {}
    kl = recipe_kl() if kl_coef is None else kl_coef
    for name in names:
        judge = work / ("rm_bt" if name == "bt" else "rm_pairwise_swap") / "judge"
        extra = [*PPO_VARIANTS[name], f"--pairwise.judge_path={judge}", f"--train.seed={seed}", f"--rl.kl_coef={kl}"]
        run = work / (f"ppo_{name}" + (f"_seed{seed}" if seed else "") + (f"_kl{kl:g}" if kl else ""))
        t0 = time.time()
        cli("rl", "--config", str(ROOT / "configs" / "pairwise_ppo.toml"), f"--model.path={policy}", *extra,
            f"--train.steps={steps}", f"--log.run_dir={run}", "--log.progress=false",
            *(["--overwrite"] if overwrite else []), log=Path(f"{run}.log"))
        rows = metrics(run)
        evals = [m for m in rows if "heldout_acc" in m]
        steps_ = [m for m in rows if "reward" in m]
        first, last = steps_[: max(1, len(steps_) // 4)], steps_[-max(1, len(steps_) // 4) :]

        def mean(key, part):
            vals = [m[key] for m in part if m.get(key) is not None]
            return sum(vals) / len(vals) if vals else None

        out[name] = {"true_quality_start": mean("reward/true_quality", first),
                     "true_quality_end": mean("reward/true_quality", last),
                     "heldout_acc_start": evals[0]["heldout_acc"], "heldout_acc_end": evals[-1]["heldout_acc"],
                     "train_acc_start": mean("acc", first), "train_acc_end": mean("acc", last),
                     "recheck_offset_start": mean("reward/recheck_offset", first),
                     "recheck_offset_end": mean("reward/recheck_offset", last),
                     "recheck_other_start": mean("reward/recheck_other", first),
                     "recheck_other_end": mean("reward/recheck_other", last),
                     "reward_start": mean("reward", first), "reward_end": mean("reward", last),
                     "explained_var_start": mean("explained_var", first),
                     "explained_var_end": mean("explained_var", last),
                     "kl_coef": json.loads((run / "config.json").read_text())["rl"]["kl_coef"],
                     "overrides": extra, "steps": len(steps_), "seconds": round(time.time() - t0, 1)}
    return out


def reliability_plot(work: Path, judges: dict) -> Path:
    from reasonrl.pairwise.rm_train import plot_reliability

    return plot_reliability({k: v["bins"] for k, v in judges.items()}, work / "reliability.png",
                            title="held-out pairs, both orders")


def judge_claims(judges: dict) -> list[dict]:
    """Judges compared pair by pair on the same held-out pairs (each asked in both orders): swap consistency
    (swap vs no swap) and accuracy (swap vs Bradley-Terry). Skipped for judges reused from before `per_pair`."""
    if not all("per_pair" in judges.get(k, {}) for k in ("bt", "pairwise", "pairwise_swap")):
        return []

    def consistent(j: dict) -> list[float]:
        pp = j["per_pair"]
        return [float((a > 0.5) == (b < 0.5)) for a, b in zip(pp["p_chosen_first"], pp["p_rejected_first"],
                                                              strict=True)]

    def correct(j: dict) -> list[float]:  # the share of the two orders answered right: 0, 1/2 or 1
        pp = j["per_pair"]
        return [((a > 0.5) + (b < 0.5)) / 2 for a, b in zip(pp["p_chosen_first"], pp["p_rejected_first"],
                                                            strict=True)]

    setting = f"tiny judges, {len(consistent(judges['bt']))} held-out pairs of the preference world; pairs = pairs"
    return [
        claim(PAPER, "swap augmentation makes the pairwise judge swap-consistent (no position bias)",
              paired_comparison(consistent(judges["pairwise"]), consistent(judges["pairwise_swap"]),
                                expect="greater"),
              paper_value=f"{NO_NUMBERS}; notes B.3 [S]: data augmentation against positional bias", setting=setting),
        claim(PAPER, "the pairwise generative judge is more accurate than a Bradley-Terry reward model",
              paired_comparison(correct(judges["bt"]), correct(judges["pairwise_swap"]), expect="greater"),
              paper_value=f"{NO_NUMBERS}; abstract [C]: better reward-model performance", setting=setting),
    ]


def ppo_claims(by_seed: dict[int, dict]) -> list[dict]:
    """The PPO comparison paired by seed (the runs of one seed share prompts and first rollouts): the reference
    anchor reward against the Bradley-Terry reward, at the end of the runs."""
    seeds = sorted(s for s, runs in by_seed.items() if {"bt", "pairwise_anchor"} <= set(runs))
    if not seeds:
        return []

    def end(name: str, key: str) -> list[float]:
        return [by_seed[s][name][key] for s in seeds]

    kl = by_seed[seeds[0]]["pairwise_anchor"]["kl_coef"]
    setting = f"tiny policy and judges, PPO {by_seed[seeds[0]]['bt']['steps']} steps, rl.kl_coef {kl}; pairs = seeds"
    rows = [("true_quality_end", "greater", "the anchor reward keeps more hidden quality than the Bradley-Terry reward",
             "notes B.7 [I]: higher true quality with pairwise-vs-anchor rewards"),
            ("heldout_acc_end", "greater", "PPO with the anchor reward ends with higher held-out accuracy",
             "abstract [C]: better results on benchmarks"),
            ("recheck_offset_end", "less", "the anchor reward exploits the labeler's prompt offset less",
             "notes B.7 [I]: the anchor removes the offset; BT shows reward hacking of the offset features")]
    return [claim(PAPER, text, paired_comparison(end("bt", key), end("pairwise_anchor", key), expect=expect),
                  paper_value=f"{NO_NUMBERS}; {note}", setting=setting) for key, expect, text, note in rows
            if None not in end("bt", key) + end("pairwise_anchor", key)]  # a rate with no prompts to count is None


def fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", default="", help="SFT policy directory (default: train one under --work-dir)")
    ap.add_argument("--ppo-steps", type=int, default=30)
    ap.add_argument("--ppo-variants", default="bt,pairwise_anchor,pairwise_sample",
                    help=f"comma-separated, of {', '.join(PPO_VARIANTS)}")
    ap.add_argument("--ppo-seed", type=int, default=0, help="train.seed of the PPO runs (run dirs get _seed<N>)")
    ap.add_argument("--ppo-seeds", default="", help="comma-separated train.seeds, one PPO run per variant and seed "
                    "(default: --ppo-seed); `claims` pair the variants by seed")
    ap.add_argument("--kl-coef", type=float, default=None,
                    help="rl.kl_coef of the PPO runs (default: configs/pairwise_ppo.toml's; 0 = the pre-KL runs)")
    ap.add_argument("--reuse", action="store_true", help="keep the SFT policy and judges already in the work dir")
    ap.add_argument("--overwrite", action="store_true", help="replace judge and PPO runs already in the work dir")
    ap.add_argument("--quick", action="store_true", help="micro policy and judges, a few steps, no PPO")
    ap.add_argument("--out", default="")
    ap.add_argument("--work-dir", default=str(ROOT / "runs" / "pairwise_bench"))
    args = ap.parse_args()
    variants = [v for v in args.ppo_variants.split(",") if v]
    unknown = [v for v in variants if v not in PPO_VARIANTS]
    if unknown:
        ap.error(f"--ppo-variants: unknown {', '.join(unknown)} (known: {', '.join(PPO_VARIANTS)})")
    work = Path(args.work_dir) / ("quick" if args.quick else "full")
    work.mkdir(parents=True, exist_ok=True)
    policy = Path(args.policy) if args.policy else train_policy(work, args.quick)
    judges = train_judges(work, policy, args.quick, reuse=args.reuse, overwrite=args.overwrite)
    plot = reliability_plot(work, judges)
    print(f"\njudges (held-out pairs, both orders; reliability plot: {plot})")
    print(f"{'judge':<15}{'accuracy':>10}{'consistency':>13}{'ece':>8}{'mean P(A>B)':>13}{'true acc':>10}")
    for name, r in judges.items():
        print(f"{name:<15}{fmt(r['accuracy']):>10}{fmt(r['consistency']):>13}{fmt(r['ece']):>8}"
              f"{fmt(r['mean_p_first']):>13}{fmt(r.get('true_accuracy')):>10}")
    result = {"judges": {k: {kk: vv for kk, vv in v.items() if kk not in ("bins", "per_pair")}
                         for k, v in judges.items()}, "policy": str(policy), "quick": args.quick}
    claims = judge_claims(judges)
    if not args.quick:
        seeds = [int(x) for x in args.ppo_seeds.split(",") if x] or [args.ppo_seed]
        by_seed = {seed: run_ppo(work, policy, args.ppo_steps, variants, seed=seed, overwrite=args.overwrite,
                                 kl_coef=args.kl_coef) for seed in seeds}
        for seed, ppo in by_seed.items():
            print(f"\nPPO seed {seed}, {args.ppo_steps} steps (first -> last quarter of the rollouts; held-out "
                  "accuracy start -> end)")
            print(f"{'reward':<23}{'true quality':>18}{'held-out acc':>18}{'recheck offset':>18}"
                  f"{'recheck other':>18}{'explained var':>18}")
            for name, r in ppo.items():
                print(f"{name:<23}{fmt(r['true_quality_start']) + ' -> ' + fmt(r['true_quality_end']):>18}"
                      f"{fmt(r['heldout_acc_start']) + ' -> ' + fmt(r['heldout_acc_end']):>18}"
                      f"{fmt(r['recheck_offset_start']) + ' -> ' + fmt(r['recheck_offset_end']):>18}"
                      f"{fmt(r['recheck_other_start']) + ' -> ' + fmt(r['recheck_other_end']):>18}"
                      f"{fmt(r['explained_var_start']) + ' -> ' + fmt(r['explained_var_end']):>18}")
        result["ppo"] = by_seed[seeds[0]]
        result["ppo_by_seed"] = {str(seed): ppo for seed, ppo in by_seed.items()}
        claims += ppo_claims(by_seed)
    print("\nclaims (pairwise.py: judges paired by held-out pair, PPO by seed)")
    print_claims(claims, digits=4, pairs=True)
    result["claims"] = claims
    finish(result, args.out)

if __name__ == "__main__":
    main()
