"""VAPO ablation on the synthetic world (science, not a test): PPO, GRPO, DAPO, VAPO and VAPO without each of
its seven parts, from the same SFT model, several seeds each.

Reports, per variant: final held-out accuracy (mean and std over seeds), the number of RL steps to first
reach a target held-out accuracy (median over seeds; "-" when a seed never does), and a plot of held-out
accuracy against steps. The paper's Table 1 (AIME24 avg@32) is printed beside it.

    python benchmarks/vapo_ablation.py --sft-model runs/demo/sft/final --steps 30 --seeds 3 --out ablation.json
    python benchmarks/vapo_ablation.py --quick      # a few steps of three variants, to check it runs

Held-out accuracy follows the recipes' `train.eval_*` protocol (avg@4 at temperature 1 in the *_tiny configs:
the papers' avg@32 protocol, smaller); `--jobs N` runs N trainings at once, one thread each.

"Without decoupled GAE" sets the critic lambda to the policy's fixed 0.95 (VC-PPO's coupled setting) while
keeping the other parts; "without group sampling" keeps the number of responses per step (128) but takes
128 prompts x 1 sample; "without value pretraining" starts policy updates at once with a fresh critic.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from reasonrl.config import load_config
from reasonrl.eval.plots import plt
from reasonrl.train import run_rl
from reasonrl.train.logging import read_metrics

ROOT = Path(__file__).resolve().parents[1]

# Paper Table 1 (AIME24 avg@32), for the side-by-side table.
PAPER = {"ppo": 5, "dapo": 50, "vapo": 60, "vapo-value_pretrain": 11, "vapo-decoupled_gae": 33,
         "vapo-length_adaptive": 45, "vapo-clip_higher": 46, "vapo-token_loss": 53, "vapo-pos_nll": 54,
         "vapo-group_sampling": 55}

VAPO_WITHOUT = {
    "value_pretrain": ["--rl.value_pretrain_steps=0"],
    "decoupled_gae": ["--rl.lam_critic=0.95"],
    "length_adaptive": ["--rl.length_adaptive=false", "--rl.lam_policy=0.95"],
    "token_loss": ["--rl.loss_agg=seq-mean-token-mean"],
    "clip_higher": ["--rl.clip_high=0.2"],
    "pos_nll": ["--rl.pos_nll_coef=0"],
    "group_sampling": ["--rollout.num_samples=1", "--rl.prompts_per_step=128"],
}


def variants() -> dict[str, tuple[str, list[str]]]:
    out = {"ppo": ("ppo_tiny", []), "grpo": ("grpo_tiny", []), "dapo": ("dapo_tiny", []), "vapo": ("vapo_tiny", [])}
    for part, overrides in VAPO_WITHOUT.items():
        out[f"vapo-{part}"] = ("vapo_tiny", overrides)
    return out


def run_one(name: str, recipe: str, overrides: list[str], *, seed: int, args, out_dir: Path) -> list[dict]:
    run_dir = out_dir / name / f"seed{seed}"
    cfg = load_config(ROOT / "configs" / f"{recipe}.toml", overrides + [
        f"--model.path={args.sft_model}", f"--train.steps={args.steps}", f"--train.seed={seed}",
        f"--train.eval_every={args.eval_every}", f"--train.eval_examples={args.eval_examples}",
        f"--train.save_every={args.steps}", f"--log.run_dir={run_dir}", "--log.progress=false", "--log.plots=false",
        "--train.overwrite=true",
    ])
    if cfg.rl.algo == "ppo" and cfg.rl.value_pretrain_steps:
        cfg.rl.value_pretrain_steps = min(cfg.rl.value_pretrain_steps, args.value_pretrain)
    t = time.perf_counter()
    run_rl(cfg)
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "heldout_acc" in r]
    pre = cfg.rl.value_pretrain_steps if cfg.rl.algo == "ppo" else 0
    # x-axis: policy-update steps (value-pretraining steps do not count)
    curve = [{"step": r["step"] - pre, "acc": r["heldout_acc"], "greedy": r.get("heldout_acc_greedy")} for r in rows]
    print(f"  {name:<22} seed {seed}: final {curve[-1]['acc']:.3f}  ({time.perf_counter() - t:.0f}s)", flush=True)
    return curve


def _run_task(task: tuple) -> list[dict]:
    name, recipe, overrides, seed, args, out_dir = task
    torch.set_num_threads(max(1, args.threads))
    return run_one(name, recipe, overrides, seed=seed, args=args, out_dir=out_dir)


def steps_to(curve: list[dict], target: float) -> int | None:
    return next((p["step"] for p in curve if p["step"] > 0 and p["acc"] >= target), None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sft-model", default=str(ROOT / "runs" / "demo" / "sft" / "final"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=5)
    ap.add_argument("--eval-examples", type=int, default=200)
    ap.add_argument("--value-pretrain", type=int, default=5, help="cap on VAPO's value-pretraining steps")
    ap.add_argument("--target", type=float, default=0.0, help="target held-out accuracy; 0 = SFT accuracy + 0.05")
    ap.add_argument("--jobs", type=int, default=1, help="trainings run at once (processes)")
    ap.add_argument("--only", default="", help="comma-separated variant names")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default="")
    ap.add_argument("--work-dir", default=str(ROOT / "runs" / "ablation"))
    args = ap.parse_args()
    if not (Path(args.sft_model) / "config.json").is_file():
        sys.exit(f"error: {args.sft_model} is not a model directory; run `make demo` first or pass --sft-model")
    if args.quick:
        args.steps, args.seeds, args.eval_every, args.eval_examples, args.value_pretrain = 2, 1, 2, 32, 1
        args.only = args.only or "ppo,dapo,vapo"
    args.threads = max(1, (torch.get_num_threads() or 1) // args.jobs)
    torch.set_num_threads(args.threads)
    chosen = variants()
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    out_dir = Path(args.work_dir)
    tasks = [(name, recipe, ov, s, args, out_dir) for name, (recipe, ov) in chosen.items() for s in range(args.seeds)]
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(_run_task, tasks))
    else:
        results = [_run_task(t) for t in tasks]
    curves: dict[str, list[list[dict]]] = {}
    for (name, *_), curve in zip(tasks, results, strict=True):
        curves.setdefault(name, []).append(curve)
    start = statistics.mean(c[0]["acc"] for cs in curves.values() for c in cs if c[0]["step"] <= 0) if any(
        c[0]["step"] <= 0 for cs in curves.values() for c in cs) else None
    target = args.target or (round((start or 0.0) + 0.05, 3))
    rows = []
    for name, cs in curves.items():
        finals = [c[-1]["acc"] for c in cs]
        hits = [steps_to(c, target) for c in cs]
        reached = [h for h in hits if h is not None]
        greedy = [c[-1]["greedy"] for c in cs if c[-1].get("greedy") is not None]
        rows.append({"variant": name, "final_acc": statistics.mean(finals),
                     "final_greedy": statistics.mean(greedy) if greedy else None,
                     "final_std": statistics.pstdev(finals) if len(finals) > 1 else 0.0,
                     "steps_to_target": statistics.median(reached) if reached else None,
                     "seeds_reaching": f"{len(reached)}/{len(cs)}", "paper_aime24": PAPER.get(name)})
    print(f"\nVAPO ablation: {args.steps} RL steps, {args.seeds} seeds, target held-out acc {target:.3f}")
    print(f"{'variant':<22} {'final acc':>10} {'std':>6} {'greedy':>7} {'steps->target':>14} {'seeds':>6} "
          f"{'paper AIME24':>13}")
    for r in rows:
        stt = "-" if r["steps_to_target"] is None else f"{r['steps_to_target']:.0f}"
        paper = "" if r["paper_aime24"] is None else str(r["paper_aime24"])
        greedy = "" if r["final_greedy"] is None else f"{r['final_greedy']:.3f}"
        print(f"{r['variant']:<22} {r['final_acc']:>10.3f} {r['final_std']:>6.3f} {greedy:>7} {stt:>14} "
              f"{r['seeds_reaching']:>6} {paper:>13}")
    by = {r["variant"]: r for r in rows}
    ratios = {}
    for peer in ("ppo", "dapo"):
        if "vapo" in by and peer in by and by["vapo"]["steps_to_target"] and by[peer]["steps_to_target"]:
            ratios[f"vapo_over_{peer}_steps"] = by["vapo"]["steps_to_target"] / by[peer]["steps_to_target"]
    print("ratios (VAPO steps-to-target / peer):", ratios or "n/a (a variant never reached the target)")
    fig, ax = plt.subplots(figsize=(8, 5))
    for name, cs in curves.items():
        steps = [p["step"] for p in cs[0]]
        mean = [statistics.mean(c[i]["acc"] for c in cs) for i in range(len(steps))]
        ax.plot(steps, mean, label=name, lw=2.5 if name in ("vapo", "ppo", "dapo") else 1)
    ax.axhline(target, ls="--", c="gray", lw=0.8)
    ax.set_xlabel("RL step")
    ax.set_ylabel("held-out accuracy (recipe protocol)")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out_dir.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_dir / "ablation.png", dpi=110)
    print(f"plot -> {out_dir / 'ablation.png'}")
    if args.out:
        Path(args.out).write_text(json.dumps({"target": target, "steps": args.steps, "seeds": args.seeds,
                                              "rows": rows, **ratios, "curves": curves}, indent=2) + "\n")


if __name__ == "__main__":
    main()
