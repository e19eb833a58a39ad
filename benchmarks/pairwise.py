"""Pairwise-RL at toy scale (issue 14; arXiv 2504.04950, notes B.7): judges, then PPO with their rewards.

    .venv/bin/python benchmarks/pairwise.py --out pairwise.json                    # full: judges + PPO
    .venv/bin/python benchmarks/pairwise.py --quick --out quick.json               # micro judges, no PPO
    .venv/bin/python benchmarks/pairwise.py --reuse --ppo-variants bt,pairwise_anchor --out F.json   # stage 3 again

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

Prints a table and writes `--out` JSON: `judges: {bt, pairwise, pairwise_swap: {accuracy, consistency, ece, ...}}`
and, in the full run, `ppo: {bt, pairwise_anchor: {true_quality_start, true_quality_end, ...}}`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
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


def run_ppo(work: Path, policy: Path, steps: int, names: list[str], seed: int = 0, overwrite: bool = False) -> dict:
    out = {}
    for name in names:
        judge = work / ("rm_bt" if name == "bt" else "rm_pairwise_swap") / "judge"
        extra = [*PPO_VARIANTS[name], f"--pairwise.judge_path={judge}", f"--train.seed={seed}"]
        run = work / (f"ppo_{name}" if seed == 0 else f"ppo_{name}_seed{seed}")
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
                     "overrides": extra, "steps": len(steps_), "seconds": round(time.time() - t0, 1)}
    return out


def reliability_plot(work: Path, judges: dict) -> Path:
    from reasonrl.pairwise.rm_train import plot_reliability

    return plot_reliability({k: v["bins"] for k, v in judges.items()}, work / "reliability.png",
                            title="held-out pairs, both orders")


def fmt(x) -> str:
    return "-" if x is None else f"{x:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--policy", default="", help="SFT policy directory (default: train one under --work-dir)")
    ap.add_argument("--ppo-steps", type=int, default=30)
    ap.add_argument("--ppo-variants", default="bt,pairwise_anchor,pairwise_sample",
                    help=f"comma-separated, of {', '.join(PPO_VARIANTS)}")
    ap.add_argument("--ppo-seed", type=int, default=0, help="train.seed of the PPO runs (run dirs get _seed<N>)")
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
    result = {"judges": {k: {kk: vv for kk, vv in v.items() if kk != "bins"} for k, v in judges.items()},
              "policy": str(policy), "quick": args.quick}
    if not args.quick:
        ppo = run_ppo(work, policy, args.ppo_steps, variants, seed=args.ppo_seed, overwrite=args.overwrite)
        print(f"\nPPO, {args.ppo_steps} steps (first -> last quarter of the rollouts; held-out accuracy start -> end)")
        print(f"{'reward':<23}{'true quality':>18}{'held-out acc':>18}{'recheck offset':>18}{'recheck other':>18}"
              f"{'explained var':>18}")
        for name, r in ppo.items():
            print(f"{name:<23}{fmt(r['true_quality_start']) + ' -> ' + fmt(r['true_quality_end']):>18}"
                  f"{fmt(r['heldout_acc_start']) + ' -> ' + fmt(r['heldout_acc_end']):>18}"
                  f"{fmt(r['recheck_offset_start']) + ' -> ' + fmt(r['recheck_offset_end']):>18}"
                  f"{fmt(r['recheck_other_start']) + ' -> ' + fmt(r['recheck_other_end']):>18}"
                  f"{fmt(r['explained_var_start']) + ' -> ' + fmt(r['explained_var_end']):>18}")
        result["ppo"] = ppo
    if args.out:
        tmp = Path(args.out + ".tmp")
        tmp.write_text(json.dumps(result, indent=2) + "\n")
        tmp.replace(args.out)


if __name__ == "__main__":
    main()
