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

Verdicts with power: every final model (and the SFT start) is also evaluated per problem on `--heldout` held-out
problems x `--heldout-samples` samples at temperature 1, with one sampling seed for every model (common random
numbers); the JSON keeps each seed's per-problem accuracies and `claims` (`reasonrl.vapo.claims.ablation_claims`):
VAPO vs PPO, VAPO vs DAPO, VAPO without value pretraining vs VAPO, paired over problems and over seeds. A run
whose `heldout.json` matches the protocol is reused, so seeds can be added to an earlier study; one trained the
same way but evaluated otherwise has its final model re-evaluated (more `--heldout` problems cost no training).
`--eval-every 0` skips the training-time curve (and shrinks the trainer's own final evaluation to 16 greedy
problems).

    python benchmarks/vapo_ablation.py --only ppo,dapo,vapo,vapo-value_pretrain --steps 40 --seeds 4 \
        --eval-every 0 --heldout 200 --heldout-samples 8 --out ablation_power.json
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from output import finish

from reasonrl.config import load_config
from reasonrl.eval.evaluate import run_eval
from reasonrl.eval.plots import plt
from reasonrl.eval.verdicts import paired_comparison
from reasonrl.model.tiny import load_model
from reasonrl.rollout.sampler import SamplingParams
from reasonrl.tasks.sources import load_split, verifier_for
from reasonrl.train import run_rl
from reasonrl.train.logging import read_metrics
from reasonrl.vapo.claims import ablation_claims

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


TRAIN_KEYS = ("sft_model", "steps", "value_pretrain", "eval_every", "eval_examples")  # the rest: the final evaluation


def protocol(args) -> dict:
    """What a finished run's results depend on beyond its variant and seed: a saved run is reused if equal, and
    its final model only re-evaluated if just the evaluation (`--heldout*`) differs."""
    return {"sft_model": str(args.sft_model), "steps": args.steps, "value_pretrain": args.value_pretrain,
            "eval_every": args.eval_every, "eval_examples": args.eval_examples, "heldout": args.heldout,
            "heldout_samples": args.heldout_samples, "heldout_seed": args.heldout_seed}


def heldout_per_problem(model_dir: Path, cfg, args) -> list[float]:
    """Accuracy of each of the first `args.heldout` held-out problems over `args.heldout_samples` samples at
    temperature 1, with the same sampling seed for every model; in the split's order."""
    model, tokenizer = load_model(model_dir)
    records = load_split(cfg.data, "test", num=args.heldout)
    params = SamplingParams(temperature=1.0, n=args.heldout_samples, max_new_tokens=cfg.rollout.max_new_tokens,
                            stop=tuple(cfg.rollout.stop), seed=args.heldout_seed)
    _, samples = run_eval(model, tokenizer, records, params=params, verifier=verifier_for(cfg.data),
                          template=cfg.data.prompt_template, batch_size=cfg.rollout.batch_size)
    by: dict[str, list[bool]] = {}
    for s in samples:
        by.setdefault(str(s["problem_id"]), []).append(s["correct"])
    ids = [str(r.get("id", i)) for i, r in enumerate(records)]
    assert all(len(by[i]) == args.heldout_samples for i in ids), "every problem needs all its samples"
    return [sum(by[i]) / len(by[i]) for i in ids]


def run_one(name: str, recipe: str, overrides: list[str], *, seed: int, args, out_dir: Path) -> dict:
    """Train one variant with one seed (or reuse a finished run of the same protocol): its held-out curve (training
    evals; empty with --eval-every 0) and its final model's per-problem accuracies."""
    run_dir = out_dir / name / f"seed{seed}"
    saved = run_dir / "heldout.json"
    evals = [f"--train.eval_every={args.eval_every}", f"--train.eval_examples={args.eval_examples}"]
    if not args.eval_every:  # the per-problem evaluation below replaces the trainer's final one
        evals = ["--train.eval_every=0", "--train.eval_examples=16", "--train.eval_temperature=0"]
    cfg = load_config(ROOT / "configs" / f"{recipe}.toml", overrides + evals + [
        f"--model.path={args.sft_model}", f"--train.steps={args.steps}", f"--train.seed={seed}",
        f"--train.save_every={args.steps}", f"--log.run_dir={run_dir}", "--log.progress=false", "--log.plots=false",
        "--train.overwrite=true",
    ])
    done = json.loads(saved.read_text()) if saved.is_file() else None
    if done and all(done["protocol"][k] == protocol(args)[k] for k in TRAIN_KEYS):
        if done["protocol"] != protocol(args):  # the same training, another final evaluation
            per_problem = heldout_per_problem(run_dir / "final", cfg, args)
            done = {**done, "protocol": protocol(args), "per_problem": per_problem}
            saved.write_text(json.dumps(done) + "\n")
        print(f"  {name:<22} seed {seed}: final {statistics.fmean(done['per_problem']):.3f}  (trained before)",
              flush=True)
        return done
    if cfg.rl.algo == "ppo" and cfg.rl.value_pretrain_steps:
        cfg.rl.value_pretrain_steps = min(cfg.rl.value_pretrain_steps, args.value_pretrain)
    t = time.perf_counter()
    run_rl(cfg)
    rows = [r for r in read_metrics(run_dir / "metrics.jsonl") if "heldout_acc" in r] if args.eval_every else []
    pre = cfg.rl.value_pretrain_steps if cfg.rl.algo == "ppo" else 0
    # x-axis: policy-update steps (value-pretraining steps do not count)
    curve = [{"step": r["step"] - pre, "acc": r["heldout_acc"], "greedy": r.get("heldout_acc_greedy")} for r in rows]
    done = {"protocol": protocol(args), "curve": curve,
            "per_problem": heldout_per_problem(run_dir / "final", cfg, args)}
    saved.write_text(json.dumps(done) + "\n")
    print(f"  {name:<22} seed {seed}: final {statistics.fmean(done['per_problem']):.3f}  "
          f"({time.perf_counter() - t:.0f}s)", flush=True)
    return done


def sft_per_problem(args, out_dir: Path) -> list[float]:
    """The SFT start's per-problem accuracies under the same protocol (cached in the work dir)."""
    saved = out_dir / "sft_heldout.json"
    if saved.is_file() and (done := json.loads(saved.read_text()))["protocol"] == protocol(args):
        return done["per_problem"]
    cfg = load_config(ROOT / "configs" / "vapo_tiny.toml", [f"--model.path={args.sft_model}"])
    done = {"protocol": protocol(args), "per_problem": heldout_per_problem(Path(args.sft_model), cfg, args)}
    out_dir.mkdir(parents=True, exist_ok=True)
    saved.write_text(json.dumps(done) + "\n")
    return done["per_problem"]


def _run_task(task: tuple) -> dict:
    name, recipe, overrides, seed, args, out_dir = task
    torch.set_num_threads(max(1, args.threads))
    return run_one(name, recipe, overrides, seed=seed, args=args, out_dir=out_dir)


def steps_to(curve: list[dict], target: float) -> int | None:
    return next((p["step"] for p in curve if p["step"] > 0 and p["acc"] >= target), None)


def curve_rows(curves: dict[str, list[list[dict]]], target_arg: float) -> tuple[float, list[dict], dict]:
    """From the training-time curves: (target, per-variant rows with steps-to-target, VAPO's step ratios)."""
    firsts = [c[0]["acc"] for cs in curves.values() for c in cs if c[0]["step"] <= 0]
    target = target_arg or round((statistics.mean(firsts) if firsts else 0.0) + 0.05, 3)
    rows = []
    for name, cs in curves.items():
        finals = [c[-1]["acc"] for c in cs]
        reached = [h for h in (steps_to(c, target) for c in cs) if h is not None]
        greedy = [c[-1]["greedy"] for c in cs if c[-1].get("greedy") is not None]
        rows.append({"variant": name, "final_acc": statistics.mean(finals),
                     "final_greedy": statistics.mean(greedy) if greedy else None,
                     "final_std": statistics.pstdev(finals) if len(finals) > 1 else 0.0,
                     "steps_to_target": statistics.median(reached) if reached else None,
                     "seeds_reaching": f"{len(reached)}/{len(cs)}", "paper_aime24": PAPER.get(name)})
    by = {r["variant"]: r for r in rows}
    ratios = {}
    for peer in ("ppo", "dapo"):
        if "vapo" in by and peer in by and by["vapo"]["steps_to_target"] and by[peer]["steps_to_target"]:
            ratios[f"vapo_over_{peer}_steps"] = by["vapo"]["steps_to_target"] / by[peer]["steps_to_target"]
    return target, rows, ratios


def print_curve_rows(rows: list[dict], ratios: dict, target: float, args) -> None:
    print(f"\nVAPO ablation: {args.steps} RL steps, {args.seeds} seeds, target held-out acc {target:.3f}")
    print(f"{'variant':<22} {'final acc':>10} {'std':>6} {'greedy':>7} {'steps->target':>14} {'seeds':>6} "
          f"{'paper AIME24':>13}")
    for r in rows:
        stt = "-" if r["steps_to_target"] is None else f"{r['steps_to_target']:.0f}"
        paper = "" if r["paper_aime24"] is None else str(r["paper_aime24"])
        greedy = "" if r["final_greedy"] is None else f"{r['final_greedy']:.3f}"
        print(f"{r['variant']:<22} {r['final_acc']:>10.3f} {r['final_std']:>6.3f} {greedy:>7} {stt:>14} "
              f"{r['seeds_reaching']:>6} {paper:>13}")
    print("ratios (VAPO steps-to-target / peer):", ratios or "n/a (a variant never reached the target)")


def final_rows(per_problem: dict[str, list[list[float]]], sft: list[float]) -> list[dict]:
    """Per variant: the mean over seeds of the final per-problem accuracy, its spread over seeds, each seed's value,
    and the change from the SFT start on the same problems and samples with its interval over problems (a check
    of the study's power: the size of effect it can see)."""
    rows = []
    for name, seeds in per_problem.items():
        finals = [statistics.fmean(s) for s in seeds]
        vs_sft = paired_comparison(sft, [statistics.fmean(col) for col in zip(*seeds, strict=True)])
        rows.append({"variant": name, "final_acc": statistics.fmean(finals),
                     "seed_std": statistics.stdev(finals) if len(finals) > 1 else 0.0, "seeds": finals,
                     "vs_sft": vs_sft.diff, "vs_sft_ci": [vs_sft.ci_low, vs_sft.ci_high],
                     "paper_aime24": PAPER.get(name)})
    return rows


def print_finals(rows: list[dict], sft: list[float], claims: list[dict], args) -> None:
    print(f"\nfinal held-out accuracy: {args.heldout} problems x {args.heldout_samples} samples at T = 1 "
          f"(SFT start {statistics.fmean(sft):.3f})")
    print(f"{'variant':<22} {'mean':>6} {'seed sd':>8} {'vs SFT':>7} {'95% interval':>18}  per seed")
    for r in rows:
        low, high = r["vs_sft_ci"]
        print(f"{r['variant']:<22} {r['final_acc']:>6.3f} {r['seed_std']:>8.3f} {r['vs_sft']:>+7.3f} "
              f"[{low:+.3f}, {high:+.3f}]  " + " ".join(f"{x:.3f}" for x in r["seeds"]))
    print(f"\n{'claim':<44} {'pairs':<30} {'diff':>7} {'95% interval':>18}  verdict")
    for c in claims:
        pairs = c["setting"].split("pairs: ")[1]
        print(f"{c['claim'][:44]:<44} {pairs[:30]:<30} {c['ours']:>+7.3f} "
              f"[{c['ci_low']:+.3f}, {c['ci_high']:+.3f}]  {c['verdict']}")


def plot_curves(curves: dict[str, list[list[dict]]], target: float, path: Path) -> None:
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    print(f"plot -> {path}")


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sft-model", default=str(ROOT / "runs" / "demo" / "sft" / "final"))
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--eval-every", type=int, default=5, help="training-time evaluations; 0 = none (no curve)")
    ap.add_argument("--eval-examples", type=int, default=200)
    ap.add_argument("--heldout", type=int, default=200, help="held-out problems of the final per-problem evaluation")
    ap.add_argument("--heldout-samples", type=int, default=8, help="samples per problem (T = 1) in that evaluation")
    ap.add_argument("--heldout-seed", type=int, default=0, help="its sampling seed, the same for every model")
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
        args.heldout, args.heldout_samples = 32, 2
        args.only = args.only or "ppo,dapo,vapo"
    args.threads = max(1, (torch.get_num_threads() or 1) // args.jobs)
    torch.set_num_threads(args.threads)
    chosen = variants()
    if args.only:
        chosen = {k: v for k, v in chosen.items() if k in args.only.split(",")}
    out_dir = Path(args.work_dir)
    sft = sft_per_problem(args, out_dir)
    # seed-major: a study stopped early still has every variant at the seeds it finished
    tasks = [(name, recipe, ov, s, args, out_dir) for s in range(args.seeds) for name, (recipe, ov) in chosen.items()]
    if args.jobs > 1:
        import multiprocessing as mp
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(args.jobs, mp_context=mp.get_context("spawn")) as pool:
            results = list(pool.map(_run_task, tasks))
    else:
        results = [_run_task(t) for t in tasks]
    curves: dict[str, list[list[dict]]] = {}
    per_problem: dict[str, list[list[float]]] = {}
    for (name, *_), done in zip(tasks, results, strict=True):
        curves.setdefault(name, []).append(done["curve"])
        per_problem.setdefault(name, []).append(done["per_problem"])
    summary: dict = {"steps": args.steps, "seeds": args.seeds, "protocol": protocol(args)}
    if args.eval_every:
        target, rows, ratios = curve_rows(curves, args.target)
        print_curve_rows(rows, ratios, target, args)
        plot_curves(curves, target, out_dir / "ablation.png")
        summary.update({"target": target, "rows": rows, **ratios, "curves": curves})
    finals = final_rows(per_problem, sft)
    claims = ablation_claims(per_problem)
    print_finals(finals, sft, claims, args)
    summary.update({"finals": finals, "sft_per_problem": sft, "per_problem": per_problem, "claims": claims})
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
