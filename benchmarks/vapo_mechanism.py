"""VAPO's critic and GAE arguments (arXiv 2504.05118 §4.1-4.2) reproduced on a chain with known true values.

    python benchmarks/vapo_mechanism.py --quick --out vapo_mechanism_quick.json     # 3 lengths, 3 seeds, < 1 min
    python benchmarks/vapo_mechanism.py --out runs/vapo_mechanism.json              # 8 lengths (16-2048), 10 seeds

The simulation is `reasonrl.vapo.chain` (a sparse-reward chain of l tokens, a frozen policy, critics that are a
weight per position plus a slope on the state, trained with the project's `gae` returns and `value_loss`); every
(length, seed) is its own run. The tables, mean +- sd over seeds:
(a) early-token advantage bias (t < 16) of an RM-initialised critic, untrained vs after value pretraining (50 steps
    of Monte-Carlo returns), with VAPO's length-adaptive lambda (and lambda 0.95 / 1 beside it);
(b) V(0) / E[r] of critics trained from zero for the same 50 steps with lambda_critic 0.95 vs 1 (and from the RM
    init), beside 0.95^(l-1), the reward's weight in the first token's lambda-return;
(c) with the pretrained critic: advantage-error variance and |bias| of lambda 0.95, 1 and length-adaptive.
`--out F.json`: `claims` (`reasonrl.vapo.claims.mechanism_claims`, paired over seeds), `table` (the means and
sds), `rows` (every seed's rows), the config; the plot goes to `--work-dir`/vapo_mechanism.png.
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import asdict
from pathlib import Path

import torch
from output import finish

from reasonrl.eval.report import print_rows
from reasonrl.vapo.chain import ChainConfig, decay, run_chain
from reasonrl.vapo.claims import mechanism_claims

ROOT = Path(__file__).resolve().parents[1]
QUICK_LENGTHS = (16, 64, 512)
KEYS = ("early_bias", "abs_bias", "var", "v0")


def aggregate(rows: list[dict]) -> dict[tuple, dict]:
    """`{(length, critic, estimator): {key: mean, key_sd: sd over seeds, lam}}`."""
    by: dict[tuple, list[dict]] = {}
    for r in rows:
        by.setdefault((r["length"], r["critic"], r["estimator"]), []).append(r)
    out = {}
    for k, rs in by.items():
        cell = {"lam": rs[0]["lam"], "num_seeds": len(rs)}
        for key in KEYS:
            xs = [r[key] for r in rs]
            cell[key], cell[f"{key}_sd"] = statistics.fmean(xs), statistics.stdev(xs) if len(xs) > 1 else 0.0
        out[k] = cell
    return out


def pm(cell: dict, key: str, scale: float = 1.0) -> str:
    return f"{cell[key] * scale:+.4f} +- {cell[key + '_sd'] * scale:.4f}"


def print_tables(table: dict[tuple, dict], lengths: list[int], p0: float) -> None:
    a, b, c = [], [], []
    for n in lengths:
        t = {(crit, est): table[(n, crit, est)] for (m, crit, est) in table if m == n}
        a.append({"l": n, "lam_adaptive": t[("rm+mc", "adaptive")]["lam"],
                  "untrained (adaptive)": pm(t[("rm+untrained", "adaptive")], "early_bias"),
                  "pretrained (adaptive)": pm(t[("rm+mc", "adaptive")], "early_bias"),
                  "untrained (0.95)": f"{t[('rm+untrained', 'fixed')]['early_bias']:+.4f}",
                  "pretrained (0.95)": f"{t[('rm+mc', 'fixed')]['early_bias']:+.4f}",
                  "untrained (1)": f"{t[('rm+untrained', 'one')]['early_bias']:+.4f}",
                  "pretrained (1)": f"{t[('rm+mc', 'one')]['early_bias']:+.4f}"})
        b.append({"l": n, "0.95^(l-1)": f"{decay(0.95, n):.3g}",
                  **{f"{crit} ({name})": pm(t[(crit, "fixed")], "v0", 1 / p0)
                     for crit, name in (("zero+td", "lam 0.95"), ("zero+mc", "lam 1"), ("rm+td", "lam 0.95"),
                                        ("rm+mc", "lam 1"))}})
        c.append({"l": n, **{f"var {est}": f"{t[('rm+mc', est)]['var']:.4f}" for est in ("fixed", "one", "adaptive")},
                  **{f"|bias| {est}": f"{t[('rm+mc', est)]['abs_bias']:.5f}" for est in ("fixed", "one", "adaptive")}})
    print_rows("(a) early-token advantage bias E[A_hat - A*] (t < 16), RM-like critic: untrained vs value-pretrained",
               a)
    print_rows("(b) V(0) / E[r] after the critic's training steps (decay: 1 = the reward reached token 0)", b)
    print_rows("(c) pretrained critic: mean over t of Var(A_hat - A*) and |E[A_hat - A*]|; fixed = lambda 0.95, "
               "one = lambda 1, adaptive = 1 - 1/(0.05 l)", c)


def print_claims(claims: list[dict]) -> None:
    print(f"\n{'claim':<100} {'ours':>9} {'95% interval':>22}  verdict")
    for c in claims:
        print(f"{c['claim'][:100]:<100} {c['ours']:>+9.4f} [{c['ci_low']:+.4f}, {c['ci_high']:+.4f}]  {c['verdict']}")


def plot(table: dict[tuple, dict], lengths: list[int], p0: float, path: Path) -> None:
    from reasonrl.eval.plots import plt

    fig, axes = plt.subplots(1, 4, figsize=(19, 4))

    def curve(ax, crit, est, key, label, scale=1.0, **kw):
        m = [table[(n, crit, est)][key] * scale for n in lengths]
        s = [table[(n, crit, est)][key + "_sd"] * scale for n in lengths]
        ax.errorbar(lengths, m, yerr=s, marker="o", capsize=3, label=label, **kw)

    ax = axes[0]
    curve(ax, "rm+untrained", "adaptive", "early_bias", "untrained (RM-like), adaptive lambda")
    curve(ax, "rm+mc", "adaptive", "early_bias", "value-pretrained, adaptive lambda")
    curve(ax, "rm+untrained", "fixed", "early_bias", "untrained, lambda 0.95", ls="--")
    curve(ax, "rm+mc", "fixed", "early_bias", "pretrained, lambda 0.95", ls="--")
    ax.set_title("(a) early-token advantage bias")
    ax = axes[1]
    curve(ax, "zero+td", "fixed", "v0", "critic lambda 0.95", 1 / p0)
    curve(ax, "zero+mc", "fixed", "v0", "critic lambda 1", 1 / p0)
    curve(ax, "rm+td", "fixed", "v0", "RM init, lambda 0.95", 1 / p0, ls="--")
    ax.plot(lengths, [decay(0.95, n) for n in lengths], "k:", label="0.95^(l-1)")
    ax.set_title("(b) V(0) / E[r]")
    for ax, key, title in ((axes[2], "var", "(c) Var(A_hat - A*)"), (axes[3], "abs_bias", "(c) |bias|")):
        for est, label in (("fixed", "lambda 0.95"), ("one", "lambda 1"), ("adaptive", "1 - 1/(0.05 l)")):
            curve(ax, "rm+mc", est, key, label)
        ax.set_yscale("log")
        ax.set_title(f"{title}, pretrained critic")
    for ax in axes:
        ax.set_xscale("log", base=2)
        ax.set_xlabel("response length l (tokens)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"plot -> {path}")


def main() -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help=f"lengths {QUICK_LENGTHS}, 3 seeds (< 1 min)")
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--critic-steps", type=int, default=ChainConfig.critic_steps)
    ap.add_argument("--critic-lr", type=float, default=ChainConfig.critic_lr)
    ap.add_argument("--critic-optim", choices=("sgd", "adam"), default=ChainConfig.critic_optim)
    ap.add_argument("--out", default="")
    ap.add_argument("--work-dir", default=str(ROOT / "runs" / "vapo_mechanism"), help="where the plot goes")
    args = ap.parse_args()
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    critic = {"critic_steps": args.critic_steps, "critic_lr": args.critic_lr, "critic_optim": args.critic_optim}
    base = ChainConfig(**critic)
    if args.quick:
        base, args.seeds = ChainConfig(lengths=QUICK_LENGTHS, **critic), 3
    rows = []
    for seed in range(args.seeds):
        rows += run_chain(ChainConfig(**{**asdict(base), "seed": seed}))
    lengths = list(base.lengths)
    table = aggregate(rows)
    print_tables(table, lengths, base.p0)
    claims = mechanism_claims(rows, p0=base.p0)
    print_claims(claims)
    plot(table, lengths, base.p0, Path(args.work_dir) / "vapo_mechanism.png")
    seconds = time.perf_counter() - t0
    print(f"\n{args.seeds} seeds x {len(lengths)} lengths in {seconds:.0f} s")
    summary = {"config": {**asdict(base), "seeds": args.seeds}, "claims": claims,
               "table": [{"length": k[0], "critic": k[1], "estimator": k[2], **v} for k, v in table.items()],
               "rows": rows, "seconds": seconds}
    return finish(summary, args.out)


if __name__ == "__main__":
    main()
