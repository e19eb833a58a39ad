"""AdamW vs Muon vs Dion (rank fractions 1, 1/4, 1/16) training the same tiny Llama on the synthetic world.

    .venv/bin/python benchmarks/optim.py                       # tiny preset, 300 steps, batch 16
    .venv/bin/python benchmarks/optim.py --quick --out bench.json

Every method starts from the same initial weights (`build_model(seed=0)`) and sees the same batches in the same
order (next-token loss on chat-formatted prompt + response, right-padded, padding masked). Hidden matrices use
the named method; embeddings, norms and the tied head use AdamW at `--adamw-lr` in every run (the grouping of
`reasonrl.optim.groups`). Schedule: `reasonrl.train.schedule` (linear warm-up over 10% of the steps, cosine to
10%), applied through LambdaLR exactly as the trainers do.

Reported per method: training loss (mean of the last 10% of steps), held-out loss, median optimizer-step time
(`opt.step()` only), total seconds; a plot of loss vs steps and vs seconds. Communication per step of a 2-rank
data-parallel run: the ring-model formula (`dion.data_parallel_comm_bytes`) and the bytes Dion's collectives
actually sent in a real 2-process gloo run on localhost (2 steps, forked ranks), with a check that the weights
stay identical on both ranks. `ratio` compares each Dion run with Muon (loss) and Dion traffic with a full
gradient all-reduce. Timings on a shared CPU are noisy; no hyper-parameter was tuned per method.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.multiprocessing as mp
from output import finish, print_claims

from reasonrl import dist
from reasonrl.config import OptimConfig
from reasonrl.eval.verdicts import claim, paired_comparison
from reasonrl.model.tiny import build_model, num_params
from reasonrl.model.tokenizer import train_tokenizer
from reasonrl.optim import build_optimizer, split_param_groups
from reasonrl.optim.comm import world_group
from reasonrl.optim.dion import data_parallel_comm_bytes
from reasonrl.tasks.synthetic import generate as synthetic
from reasonrl.train.schedule import build_scheduler

FRACTIONS = {"1": 1.0, "1/4": 0.25, "1/16": 1 / 16}


def methods(args) -> dict[str, OptimConfig]:
    common = dict(weight_decay=0.0, scalar_lr=args.adamw_lr, warmup_steps=max(1, args.steps // 10), min_lr_ratio=0.1)
    out = {
        "adamw": OptimConfig(name="adamw", lr=args.adamw_lr, **common),
        "muon": OptimConfig(name="muon", lr=args.lr, **common),
    }
    for label, frac in FRACTIONS.items():
        out[f"dion {label}"] = OptimConfig(name="dion", lr=args.lr, rank_fraction=frac, **common)
    return out


def setup(args):
    records = synthetic(args.num_train + args.num_eval, seed=0, difficulty=2)
    tokenizer = train_tokenizer([r["prompt"] + " " + r["response"] for r in records], vocab_size=512)
    tokenizer.padding_side = "right"
    chats = [
        [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["response"]}] for r in records
    ]
    texts = [tokenizer.apply_chat_template(c, tokenize=False) for c in chats]
    enc = tokenizer(texts, add_special_tokens=False, truncation=True, max_length=args.seq_len, padding="longest",
                    return_tensors="pt")  # fmt: skip
    labels = enc.input_ids.masked_fill(enc.attention_mask == 0, -100)
    data = {"input_ids": enc.input_ids, "attention_mask": enc.attention_mask, "labels": labels}
    train = {k: v[: args.num_train] for k, v in data.items()}
    held_out = {k: v[args.num_train :] for k, v in data.items()}
    return tokenizer, train, held_out


def batches(train: dict, args) -> list[dict]:
    """The same batch sequence for every method."""
    gen = torch.Generator().manual_seed(args.seed)
    order = torch.cat(
        [torch.randperm(args.num_train, generator=gen) for _ in range(args.steps * args.batch // args.num_train + 1)]
    )
    return [{k: v[order[i * args.batch : (i + 1) * args.batch]] for k, v in train.items()} for i in range(args.steps)]


def train_one(cfg: OptimConfig, tokenizer, data: list[dict], held_out: dict, args, seed: int = 0) -> dict:
    model = build_model(args.preset, tokenizer, seed=seed)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg, args.steps)
    losses, elapsed, step_times = [], [], []
    start = time.perf_counter()
    for batch in data:
        loss = model(**batch).loss
        loss.backward()
        t0 = time.perf_counter()
        opt.step()
        step_times.append(time.perf_counter() - t0)
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
        elapsed.append(time.perf_counter() - start)
    with torch.no_grad():
        eval_loss = float(model(**held_out).loss)
    tail = max(1, len(losses) // 10)
    return {
        "train_loss": statistics.fmean(losses[-tail:]),
        "eval_loss": eval_loss,
        "opt_step_ms": 1000 * statistics.median(step_times),
        "total_s": elapsed[-1],
        "losses": losses,
        "seconds": elapsed,
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_rank_worker(rank: int, port: int, tokenizer, train: dict, args, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE="2")
    torch.set_num_threads(1)
    dist.init("gloo")
    result = {}
    for label, frac in FRACTIONS.items():
        model = build_model(args.preset, tokenizer, seed=0)
        cfg = OptimConfig(name="dion", lr=args.lr, rank_fraction=frac, scalar_lr=args.adamw_lr)
        opt = build_optimizer(model, cfg, process_group=world_group())
        sent = []
        for step in range(2):  # each rank its own half of a batch; no gradient all-reduce by the "trainer"
            lo = (2 * step + rank) * args.batch // 2
            model(**{k: v[lo : lo + args.batch // 2] for k, v in train.items()}).loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            sent.append(opt.last_step_bytes)
        checksum = float(sum(p.detach().double().sum() for p in model.parameters()))
        result[label] = {"bytes": sent[-1], "checksum": checksum}
    torch.save(result, Path(out_dir) / f"rank{rank}.pt")
    dist.destroy()


def two_rank_bytes(tokenizer, train: dict, args) -> dict:
    """Bytes Dion's collectives sent per step in a real 2-process data-parallel run, and rank agreement."""
    with tempfile.TemporaryDirectory() as tmp:
        mp.start_processes(_two_rank_worker, args=(_free_port(), tokenizer, train, args, tmp), nprocs=2,
                           start_method="fork")  # fmt: skip
        ranks = [torch.load(Path(tmp) / f"rank{r}.pt") for r in range(2)]
    return {label: {"bytes": ranks[0][label]["bytes"],
                    "ranks_identical": ranks[0][label]["checksum"] == ranks[1][label]["checksum"]}
            for label in FRACTIONS}  # fmt: skip


def comm_table(model, measured: dict) -> dict:
    split = split_param_groups(model)
    shapes = [tuple(p.shape) for _, p in split["matrix"]]
    num_scalar = sum(p.numel() for role in ("embedding", "head", "vector") for _, p in split[role])
    out = {}
    for label, frac in FRACTIONS.items():
        formula = data_parallel_comm_bytes(shapes, rank_fraction=frac, world=2, num_scalar=num_scalar)
        matrices_only = data_parallel_comm_bytes(shapes, rank_fraction=frac, world=2)
        out[label] = {
            "dion_bytes": formula["dion"],
            "all_reduce_bytes": formula["all_reduce"],
            "ratio": formula["ratio"],
            "matrix_ratio": matrices_only["ratio"],
            **({"measured_bytes": measured[label]["bytes"], "ranks_identical": measured[label]["ranks_identical"]}
               if measured else {}),
        }  # fmt: skip
    return out


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for name, r in results.items():
        smooth, ema = [], r["losses"][0]
        for x in r["losses"]:
            ema = 0.9 * ema + 0.1 * x
            smooth.append(ema)
        axes[0].plot(range(1, len(smooth) + 1), smooth, label=name)
        axes[1].plot(r["seconds"], smooth, label=name)
    axes[0].set(xlabel="step", ylabel="training loss (EMA 0.9)", yscale="log")
    axes[1].set(xlabel="seconds", yscale="log")
    axes[0].legend()
    fig.suptitle("AdamW vs Muon vs Dion on the synthetic world")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


PAPER = "Dion (arXiv 2504.05295)"


def claims(by_seed: list[dict], *, margin: float) -> list[dict]:
    """Paired by seed (each seed: its own initial weights and batch order, the same for every method)."""
    def per_seed(name: str, key: str) -> list[float]:
        return [runs[name][key] for runs in by_seed]

    n = len(by_seed)
    loss = f"held-out loss, tiny Llama on the synthetic world; pairs = {n} seed(s)"
    return [
        claim(PAPER, f"Dion at rank fraction 1/4 matches full-rank Dion (held-out loss within {margin:g})",
              paired_comparison(per_seed("dion 1", "eval_loss"), per_seed("dion 1/4", "eval_loss"), expect="equal",
                                margin=margin),
              paper_value="rank_fraction 0.25 'achieves nearly equivalent performance as full-rank' at 3B "
                          "(official README; dion-muon.md 1.9)", setting=loss),
        claim(PAPER, f"full-rank Dion matches Muon's held-out loss at equal steps (within {margin:g})",
              paired_comparison(per_seed("muon", "eval_loss"), per_seed("dion 1", "eval_loss"), expect="equal",
                                margin=margin),
              paper_value="Dion beats Muon in wall-clock to target loss at 3B (v2 Fig. 1); full rank is not exactly "
                          "Muon (dion-muon.md 1.1, verified)", setting=loss),
        claim(PAPER, "Dion (full rank) reaches a lower held-out loss than AdamW at equal steps",
              paired_comparison(per_seed("adamw", "eval_loss"), per_seed("dion 1", "eval_loss"), expect="less"),
              paper_value="2-3x training efficiency over AdamW at 3B (v2 Section 5.4, Fig. 1)", setting=loss),
        claim(PAPER, "low-rank Dion (1/16) takes less optimizer-step time than Muon",
              paired_comparison(per_seed("muon", "opt_step_ms"), per_seed("dion 1/16", "opt_step_ms"), expect="less"),
              paper_value="faster per step at large matrices (2048^2 and up, H100; v3 Fig. 1); at small scale Dion "
                          "can be slower than Muon (MSR blog, secondary)",
              setting=f"median opt.step() ms on this shared CPU, tiny matrices; pairs = {n} seed(s)"),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="40 steps, batch 8 (under a minute on an idle machine)")
    ap.add_argument("--out", type=Path, help="write headline figures as JSON here")
    ap.add_argument("--plot", type=Path, help="loss plot (default: next to --out, else runs/benchmarks/optim.png)")
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--seq-len", type=int, default=128)
    ap.add_argument("--num-train", type=int, default=4000)
    ap.add_argument("--num-eval", type=int, default=128)
    ap.add_argument("--lr", type=float, default=0.02, help="Muon / Dion learning rate")
    ap.add_argument("--adamw-lr", type=float, default=3e-3, help="AdamW lr, also for the AdamW groups of Muon / Dion")
    ap.add_argument("--seed", type=int, default=0, help="batch order of the first seed")
    ap.add_argument("--seeds", type=int, default=1, help="seeds: seed i has initial weights i and batch order "
                    "--seed + i, the same for every method; claims pair the methods by seed")
    ap.add_argument("--loss-margin", type=float, default=0.02,
                    help="the largest held-out loss difference that still counts as equal (claims)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 is fastest on a shared 2-core box)")
    ap.add_argument("--no-dist", action="store_true", help="skip the 2-process communication measurement")
    args = ap.parse_args()
    if args.quick:
        args.steps, args.batch, args.num_train, args.num_eval, args.seq_len = 40, 8, 320, 32, 96
    torch.set_num_threads(args.threads)

    tokenizer, train, held_out = setup(args)
    by_seed = []
    first_seed = args.seed
    for i in range(args.seeds):
        args.seed = first_seed + i
        data = batches(train, args)
        runs = {}
        for name, cfg in methods(args).items():
            runs[name] = r = train_one(cfg, tokenizer, data, held_out, args, seed=i)
            print(f"  seed {i} {name:10s} train {r['train_loss']:.4f}  eval {r['eval_loss']:.4f}  "
                  f"{r['total_s']:.1f}s", flush=True)
        by_seed.append(runs)
    args.seed = first_seed
    results = by_seed[0] if args.seeds == 1 else {
        name: {**by_seed[0][name], **{k: statistics.fmean(runs[name][k] for runs in by_seed)
                                      for k in ("train_loss", "eval_loss", "opt_step_ms", "total_s")}}
        for name in by_seed[0]}  # means over seeds; the curves (plot) are the first seed's
    model = build_model(args.preset, tokenizer, seed=0)
    measured = {} if args.no_dist else two_rank_bytes(tokenizer, train, args)
    comm = comm_table(model, measured)

    print(f"\n{args.preset} preset, {num_params(model) / 1e6:.2f}M parameters, {args.steps} steps x batch {args.batch}"
          f", mean of {args.seeds} seed(s)")
    print(f"{'method':10s} {'train loss':>10s} {'eval loss':>10s} {'opt step ms':>12s} {'total s':>8s}")
    for name, r in results.items():
        print(f"{name:10s} {r['train_loss']:10.4f} {r['eval_loss']:10.4f} {r['opt_step_ms']:12.2f} {r['total_s']:8.1f}")
    print("\n2-rank data parallel, bytes sent per rank per step (ring model, fp32)")
    head = ["dion", "measured", "all-reduce"]
    print(f"{'dion rank':10s} " + " ".join(f"{h:>10s}" for h in head) + f" {'ratio':>7s} {'matrices':>9s} {'same':>5s}")
    for label, c in comm.items():
        print(f"{label:10s} {c['dion_bytes']:10.0f} {c.get('measured_bytes', float('nan')):10.0f} "
              f"{c['all_reduce_bytes']:10.0f} {c['ratio']:7.3f} {c['matrix_ratio']:9.3f} "
              f"{str(c.get('ranks_identical', '-')):>5s}")  # fmt: skip

    ratio = {f"dion {label} / muon eval loss": results[f"dion {label}"]["eval_loss"] / results["muon"]["eval_loss"]
             for label in FRACTIONS}  # fmt: skip
    ratio["muon / adamw eval loss"] = results["muon"]["eval_loss"] / results["adamw"]["eval_loss"]
    muon_ms = results["muon"]["opt_step_ms"]
    ratio |= {f"dion {label} / muon opt step time": results[f"dion {label}"]["opt_step_ms"] / muon_ms
              for label in FRACTIONS}  # fmt: skip
    ratio |= {f"dion {label} / all-reduce bytes": comm[label]["ratio"] for label in FRACTIONS}
    cl = claims(by_seed, margin=args.loss_margin)
    print("\nclaims (paired by seed):")
    print_claims(cl, digits=4)
    plot_path = args.plot or (args.out.with_suffix(".png") if args.out else Path("runs/benchmarks/optim.png"))
    plot(results, plot_path)
    print(f"\nplot: {plot_path}")
    if args.out:
        summary = {
            "benchmark": "optim",
            "quick": args.quick,
            "machine": f"{platform.machine()} {platform.processor() or ''}".strip(),
            "threads": args.threads,
            "config": {k: v for k, v in vars(args).items() if k not in ("out", "plot")} | {"plot": str(plot_path)},
            "methods": {
                name: {k: v for k, v in r.items() if k not in ("losses", "seconds")} for name, r in results.items()
            },  # fmt: skip
            "methods_by_seed": [{name: {k: v for k, v in r.items() if k not in ("losses", "seconds")}
                                 for name, r in runs.items()} for runs in by_seed],
            "comm_2rank": comm,
            "ratio": ratio,
            "claims": cl,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        finish(json.loads(json.dumps(summary, default=str)), str(args.out))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
