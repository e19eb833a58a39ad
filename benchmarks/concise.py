"""Concise Reasoning via RL (arXiv 2504.05185) at toy scale: the bandit argument and the two-phase tiny LM.

    .venv/bin/python benchmarks/concise.py --quick --out concise_quick.json     # the bandit only, < 1 min
    .venv/bin/python benchmarks/concise.py --out runs/concise.json              # bandit + tiny LM (see docs)

1. The bandit (`reasonrl.concise.bandit`): a geometric-stopping policy, correctness Bernoulli(p) independent of
   length, reward +1 / -0.5, PPO through the project's own `gae` / `policy_loss` / `value_loss`, for lambda in
   {0.9, 0.95, 1}, p in {0.05, 0.2, 0.5, 0.9}, per-sequence token-mean vs token-sum loss, a zero (untrained) vs
   a learned constant critic. Reports E[T] at the start and the end (mean over seeds).
2. The tiny LM, every stage through the real CLI (`reasonrl sft / rl / eval / concise select`):
   SFT on difficulty-2 problems with slips and restarts in the traces (length is free to vary) ->
   phase 1: PPO on difficulty-4 problems (mostly unsolved: rewards mostly negative) ->
   `concise select`: 8 difficulty-2 training problems the phase-1 model solves 20-80% of the time (8 samples) ->
   phase 2: configs/concise_phase2_tiny.toml (PPO, 8 x 8) and the same with GRPO;
   held-out length and accuracy (100 difficulty-2 test problems x 4 samples at T = 0.6) before and after,
   with the standard error over problems (`eval.compare`).
`--out F.json`: `bandit` (list of {lam, p, loss, critic, length_start, length_end}), and with the LM part
`phase1`, `phase2` {length_before, length_after, acc_before, acc_after, acc_stderr}, `phase2_grpo` (the first
phase-2 seed's; every seed's in `phase2_by_seed` / `phase2_grpo_by_seed`, `--phase2-seeds 0,1,2`), `ratio` =
phase-2 PPO length_after / length_before; `claims` (reasonrl.eval.verdicts): the bandit's length drift at lambda
0.95 paired by seed, and phase 2 against its start paired per held-out problem (length; accuracy kept or raised,
no drop beyond `--acc-margin`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from output import finish, print_claims

from reasonrl.concise.bandit import BanditConfig, run_bandit
from reasonrl.eval.compare import compare_rows, load_evals
from reasonrl.eval.report import print_rows
from reasonrl.eval.verdicts import claim, paired_comparison

ROOT = Path(__file__).resolve().parents[1]
EVAL_ARGS = ["--data", "synthetic", "--data.difficulty=2", "--num-samples", "4", "--rollout.temperature=0.6",
             "--rollout.max_new_tokens=160", "--log.progress=false"]


def bandit(steps: int, seeds: int) -> list[dict]:
    """Every cell over `seeds` seeds; length_end is the mean over seeds (each seed's value in `length_end_seeds`)."""
    runs = [run_bandit(BanditConfig(steps=steps, seed=s)) for s in range(seeds)]
    out = []
    for cells in zip(*runs, strict=True):
        ends = [c["length_end"] for c in cells]
        out.append({k: cells[0][k] for k in ("lam", "p", "loss", "critic", "length_start")}
                   | {"length_end": sum(ends) / len(ends), "length_end_seeds": ends,
                      "critic_end": sum(c["critic_end"] for c in cells) / len(cells)})
    return out


def print_bandit(rows: list[dict]) -> None:
    table = []
    for r in rows:
        mean_r = r["p"] * 1.0 + (1 - r["p"]) * -0.5
        table.append({"lam": r["lam"], "p": r["p"], "E[r]": mean_r, "loss": r["loss"], "critic": r["critic"],
                      "len_start": r["length_start"], "len_end": r["length_end"],
                      "ratio": r["length_end"] / r["length_start"]})
    print_rows("bandit: E[T] = 1/s before and after PPO (reward +1 / -0.5; mean over seeds)", table)


def cli(args: list[str], log: Path) -> None:
    """Run `reasonrl ARGS`, output to `log`; stop with the log's tail if it fails."""
    cli_together([(args, log)])


def cli_together(jobs: list[tuple[list[str], Path]]) -> None:
    """Run several `reasonrl` commands at once (each with one thread); stop if any fails."""
    t = time.perf_counter()
    procs = []
    if not jobs:
        return
    for args, log in jobs:
        print(f"$ reasonrl {' '.join(args)}", flush=True)
        procs.append((subprocess.Popen([sys.executable, "-m", "reasonrl", *args], stdout=log.open("w"),
                                       stderr=subprocess.STDOUT, cwd=ROOT), log))
    for proc, log in procs:
        if proc.wait() != 0:
            sys.exit(f"failed ({proc.returncode}); last lines of {log}:\n"
                     + "".join(log.read_text().splitlines(True)[-30:]))
    print(f"  done in {time.perf_counter() - t:.0f} s", flush=True)


def sft(work: Path, steps: int) -> Path:
    final = work / "sft" / "final"
    if (final / "model.safetensors").is_file():
        return final
    cli(["tokenizer", "--out", str(work / "tokenizer")], work / "tokenizer.log")
    cli(["sft", "--data.difficulty=2", "--data.num_train=20000", "--data.slip_fraction=0.25",
         "--data.alt_fraction=0.15", f"--train.steps={steps}", "--train.batch_size=32", "--train.eval_every=0",
         "--train.save_every=0", "--train.eval_examples=100", "--optim.lr=3e-3", "--optim.warmup_steps=30",
         "--rollout.max_new_tokens=128", "--data.max_len=256", f"--model.tokenizer_path={work / 'tokenizer'}",
         f"--log.run_dir={work / 'sft'}", "--log.progress=false"], work / "sft.log")
    return final


def phase1(work: Path, model: Path, steps: int) -> Path:
    """Ordinary PPO (lambda 0.95, seq-mean-token-mean, +1 / -0.5 / -1, no KL) on difficulty-4 problems."""
    final = work / "phase1" / "final"
    if not (final / "model.safetensors").is_file():
        cli(["rl", "--config", "configs/concise_phase2_tiny.toml", f"--model.path={model}", "--data.source=synthetic",
             "--data.difficulty=4", f"--train.steps={steps}", "--rl.prompts_per_step=16", "--rl.minibatch_size=32",
             "--rollout.temperature=1.0", "--rollout.max_new_tokens=160", "--rl.kl_in_reward=false", "--rl.kl_coef=0",
             "--optim.lr=5e-5", "--rl.critic_lr=1e-4", "--train.eval_examples=32", "--train.save_every=0",
             f"--log.run_dir={work / 'phase1'}", "--log.progress=false"], work / "phase1.log")
    return final


def evaluate(work: Path, models: dict[str, Path], num: int) -> list[Path]:
    """`reasonrl eval` of each model (at once) on the held-out set; the output dirs, in `models` order."""
    outs = [work / "eval" / name for name in models]
    cli_together([(["eval", "--model", str(model), *EVAL_ARGS, f"--eval.max_examples={num}", "--out", str(out)],
                   work / f"eval_{name}.log") for (name, model), out in zip(models.items(), outs, strict=True)
                  if not (out / "summary.json").is_file()])
    return outs


def metrics(run_dir: Path) -> list[dict]:
    return [m for m in (json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()) if "reward" in m]


def side(before: Path, after: Path) -> dict:
    (row,) = compare_rows(load_evals(before), load_evals(after))
    return {"length_before": row["len_A"], "length_after": row["len_B"], "acc_before": row["acc_A"],
            "acc_after": row["acc_B"], "acc_stderr": max(row["se_A"], row["se_B"]), "acc_stderr_before": row["se_A"],
            "acc_stderr_after": row["se_B"], "len_correct_after": row["len_correct_B"],
            "len_wrong_after": row["len_wrong_B"], "ratio": row["len_B"] / row["len_A"]}


def tiny_lm(work: Path, args) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    sft_model = Path(args.sft_model) if args.sft_model else sft(work, args.sft_steps)
    p1 = phase1(work, sft_model, args.phase1_steps)
    ev_sft, ev_p1 = evaluate(work, {"sft": sft_model, "phase1": p1}, args.eval_examples)
    data = work / "phase2.jsonl"
    if not data.is_file():
        cli(["concise", "select", "--model", str(p1), "--data", "synthetic", "--data.difficulty=2", "--k", "8",
             "--num", "8", "--p-min", "0.2", "--p-max", "0.8", "--max-problems", "64", "--rollout.temperature=0.6",
             "--rollout.max_new_tokens=160", "--out", str(data), "--log.progress=false"], work / "select.log")
    out = {"phase1": side(ev_sft, ev_p1), "phase2_set": [json.loads(x) for x in data.read_text().splitlines()]}
    seeds = [int(x) for x in args.phase2_seeds.split(",") if x] or [args.phase2_seed]
    ppo_evs = []
    for seed in seeds:
        tag = f"_s{seed}" if seed else ""
        jobs = []  # phase 2 with PPO (the recipe) and with GRPO (KL 0.01 k1 in the loss), trained side by side
        for algo in ("ppo", "grpo"):
            run = work / f"phase2_{algo}{tag}"
            if not (run / "final" / "model.safetensors").is_file():
                extra = ["--rl.algo=grpo", "--rl.kl_in_reward=false"] if algo == "grpo" else []
                jobs.append((["rl", "--config", "configs/concise_phase2_tiny.toml", f"--model.path={p1}",
                              f"--data.source={data}", f"--train.steps={args.phase2_steps}",
                              "--rollout.max_new_tokens=160", f"--log.run_dir={run}", f"--train.seed={seed}",
                              "--log.progress=false", *extra], work / f"phase2_{algo}{tag}.log"))
        cli_together(jobs)
        evs = evaluate(work, {f"phase2_{a}{tag}": work / f"phase2_{a}{tag}" / "final" for a in ("ppo", "grpo")},
                       args.eval_examples)
        ppo_evs.append(evs[0])
        for algo, ev in zip(("ppo", "grpo"), evs, strict=True):
            run = work / f"phase2_{algo}{tag}"
            side_ = side(ev_p1, ev)
            side_["curve"] = [{k: m.get(k) for k in ("step", "resp_len", "acc", "reward", "len_correct", "len_wrong",
                                                      "frac_negative", "adv_len_q1", "adv_len_q4")}
                              for m in metrics(run)]
            out.setdefault(f"{'phase2' if algo == 'ppo' else 'phase2_grpo'}_by_seed", {})[str(seed)] = side_
            if seed == seeds[0]:  # the headline (and the plot) is the first seed's
                out["phase2" if algo == "ppo" else "phase2_grpo"] = side_
    out["claims"] = phase2_claims(ev_p1, ppo_evs, margin=args.acc_margin)
    out["ratio"] = out["phase2"]["ratio"]
    rows = [{"stage": "phase 1 (SFT -> PPO on difficulty 4)", **_row(out["phase1"])}]
    for seed in seeds:
        rows += [{"stage": f"phase 2 PPO (concise_phase2_tiny), seed {seed}", **_row(out["phase2_by_seed"][str(seed)])},
                 {"stage": f"phase 2 GRPO, seed {seed}", **_row(out["phase2_grpo_by_seed"][str(seed)])}]
    print_rows(f"tiny LM: held-out difficulty 2, {args.eval_examples} problems x 4 samples at T = 0.6", rows)
    return out


PAPER = "Concise RL (arXiv 2504.05185)"


def per_problem(eval_dir: Path) -> dict[str, tuple[float, float]]:
    """{problem id: (accuracy over its samples, mean length)} from a `reasonrl eval` directory's samples.jsonl."""
    by: dict[str, list[dict]] = {}
    for line in (eval_dir / "samples.jsonl").read_text().splitlines():
        if line.strip():
            row = json.loads(line)
            by.setdefault(str(row["problem_id"]), []).append(row)
    return {k: (sum(r["correct"] for r in v) / len(v), sum(r["length"] for r in v) / len(v)) for k, v in by.items()}


def bandit_claims(rows: list[dict], lam: float = 0.95) -> list[dict]:
    """The sign of the length drift under lambda < 1 (notes A.2 [S]), paired by seed (start and end of each seed's
    run): the paper's per-sequence token-mean loss and a critic that is not trained (c = 0, so r - c = r)."""
    out = []
    for p, expect, text in ((0.05, "greater", "with lambda < 1, PPO lengthens responses when rewards are mostly "
                                              "negative (bandit, p = 0.05)"),
                            (0.9, "less", "with lambda < 1, PPO shortens responses when rewards are mostly positive "
                                          "(bandit, p = 0.9)")):
        (cell,) = [r for r in rows if r["lam"] == lam and r["p"] == p and r["loss"] == "seq-mean-token-mean"
                   and r["critic"] == "zero"]
        ends = cell["length_end_seeds"]
        out.append(claim(PAPER, text, paired_comparison([cell["length_start"]] * len(ends), ends, expect=expect),
                         paper_value="no number; notes A.2 [S]: lambda < 1 favours shorter responses when r > 0 and "
                                     "longer when r < 0",
                         setting=f"geometric-stopping bandit, lambda {lam}, zero critic, E[T] start -> end; "
                                 f"pairs = {len(ends)} seed(s)"))
    return out


def phase2_claims(before: Path, afters: list[Path], *, margin: float) -> list[dict]:
    """Phase 2 (one eval dir per phase-2 seed) against its start on the same held-out problems (pairs = (seed,
    problem), the start's value repeated for every seed): mean length per problem, and
    accuracy per problem (non-inferiority within `margin`: the paper's "maintaining or even improving accuracy"; an
    equality claim would call a rise a failure)."""
    a, bs = per_problem(before), [per_problem(after) for after in afters]
    ids = sorted(set(a).intersection(*bs))
    pairs = [(a[i], b[i]) for b in bs for i in ids]
    length = paired_comparison([x[1] for x, _ in pairs], [y[1] for _, y in pairs], expect="less")
    setting = (f"tiny LM, {len(ids)} held-out difficulty-2 problems x 4 samples at T 0.6, {len(bs)} phase-2 seed(s); "
               "pairs = (seed, problem)")
    return [
        claim(PAPER, "phase-2 PPO on a few solvable problems shortens held-out responses (ours: relative change; "
                     "interval: per-problem token difference)", length, ours=length.mean_b / length.mean_a - 1,
              paper_value="-54% (R1-1.5B, average of 4 benchmarks, 6848 -> 3119 tokens) [C]; -40% (R1-7B) [C]",
              setting=setting),
        claim(PAPER, f"phase-2 PPO keeps or raises held-out accuracy (no drop beyond {margin:g})",
              paired_comparison([x[0] for x, _ in pairs], [y[0] for _, y in pairs], expect="at_least", margin=margin),
              paper_value="+1.4 points (R1-1.5B average 57.0 -> 58.4) [C]; +0.5 (R1-7B, 71.6 -> 72.1) [C]",
              setting=setting),
    ]


def _row(s: dict) -> dict:
    return {"len_before": s["length_before"], "len_after": s["length_after"], "ratio": s["ratio"],
            "acc_before": s["acc_before"], "acc_after": s["acc_after"], "stderr": s["acc_stderr"]}


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_lm = "phase2" in result
    fig, axes = plt.subplots(1, 3 if has_lm else 2, figsize=(15 if has_lm else 10, 3.8))
    for ax, critic in zip(axes[:2], ("zero", "learned"), strict=True):
        for loss, style in (("seq-mean-token-mean", "-"), ("token-sum", "--")):
            for lam, color in ((0.9, "C0"), (0.95, "C1"), (1.0, "C2")):
                pts = [r for r in result["bandit"] if r["critic"] == critic and r["loss"] == loss and r["lam"] == lam]
                ax.plot([r["p"] for r in pts], [r["length_end"] / r["length_start"] for r in pts], style, color=color,
                        marker="o", label=f"lam {lam}, {loss}")
        ax.axhline(1.0, color="gray", lw=0.8)
        ax.axvline(1 / 3, color="gray", lw=0.8, ls=":")  # E[r] = 0 at p = 1/3
        ax.set_yscale("log")
        ax.set_xlabel("solve rate p (E[r] = 0 at 1/3)")
        ax.set_ylabel("E[T] end / start")
        ax.set_title(f"bandit, {critic} critic")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    if has_lm:
        ax = axes[2]
        for key, label in (("phase2", "PPO"), ("phase2_grpo", "GRPO")):
            curve = result[key]["curve"]
            ax.plot([c["step"] for c in curve], [c["resp_len"] for c in curve], label=f"{label}: rollout length")
        ax.set_xlabel("phase-2 step")
        ax.set_ylabel("mean response tokens")
        ax.set_title("tiny LM phase 2 (8 problems x 8)")
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="the bandit only, fewer steps and one seed (< 1 min)")
    ap.add_argument("--out", default="")
    ap.add_argument("--bandit-steps", type=int, default=200)
    ap.add_argument("--seeds", type=int, default=3, help="bandit seeds")
    ap.add_argument("--work-dir", default=str(ROOT / "runs" / "concise"))
    ap.add_argument("--sft-model", default="", help="skip SFT and start from this model")
    ap.add_argument("--sft-steps", type=int, default=600)
    ap.add_argument("--phase1-steps", type=int, default=16)
    ap.add_argument("--phase2-steps", type=int, default=24)
    ap.add_argument("--eval-examples", type=int, default=100)
    ap.add_argument("--phase2-seed", type=int, default=0, help="train.seed of phase 2 (reuses the earlier stages)")
    ap.add_argument("--phase2-seeds", default="", help="comma-separated train.seeds of phase 2 (default: "
                    "--phase2-seed); claims pair per (seed, held-out problem); the earlier stages are shared")
    ap.add_argument("--acc-margin", type=float, default=0.05,
                    help="the largest per-problem accuracy drop that still counts as 'accuracy kept' (claims)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t = time.perf_counter()
    steps, seeds = (60, 1) if args.quick else (args.bandit_steps, args.seeds)
    result: dict = {"bandit": bandit(steps, seeds), "bandit_steps": steps, "bandit_seeds": seeds}
    print_bandit(result["bandit"])
    claims = bandit_claims(result["bandit"])
    if not args.quick:
        result.update(tiny_lm(Path(args.work_dir), args))
        claims += result.pop("claims")
        print(f"\nratio (phase-2 PPO held-out length after / before): {result['ratio']:.3f}")
    result["claims"] = claims
    print("\nclaims:")
    print_claims(claims)
    result["seconds"] = time.perf_counter() - t
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        finish(result, str(out))
        plot(result, out.with_suffix(".png"))
        print(f"-> {out}, {out.with_suffix('.png')}")


if __name__ == "__main__":
    main()
