"""Does explicit reflection emerge with training compute? (Rethinking Reflection in Pre-Training, Table 6 analogue.)

    .venv/bin/python benchmarks/reflection_emergence.py --quick --out quick.json   # plumbing only; ~100 s CPU
    .venv/bin/python benchmarks/reflection_emergence.py --out reflection.json                 # full run

Trains the `tiny` preset from scratch by SFT (configs/sft.toml) on two synthetic corpora that differ only in
slips: `slip` has 3% of traces with a wrong step followed by `Wait,` and the corrected step, `control` has none
(alt_fraction 0 in both). Each run saves ~10 log-spaced checkpoints; every checkpoint is probed on situational
adversarial chains of thought (reasonrl.reflection.probe, greedy) with no trigger and with "Wait,". Prints each
run's table and the Pearson r of accuracy and explicit-reflection rate with log10 compute (6·N·D), and writes
the headline figures as JSON. The paper's GSM8K row (Table 6): r = 0.84 for both. `--train-seeds 0,1,2` trains
each corpus once per seed; `claims` compare the first and the last checkpoint of the slip corpus, and slip vs
control at the last, paired per (training seed, probe seed, item) with the `Wait,` trigger.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

from output import finish, print_claims

from reasonrl import cli
from reasonrl.eval.report import print_rows
from reasonrl.eval.verdicts import bootstrap_correlation, claim, paired_comparison
from reasonrl.reflection.probe import parse_checkpoints, run_probe

CORPORA = {"slip": 0.03, "control": 0.0}
FULL = {"preset": "tiny", "steps": 600, "batch_size": 32, "num_train": 20000, "log_checkpoints": 10,
        "num_items": 140, "seeds": (0, 1, 2), "max_new_tokens": 64}
QUICK = {"preset": "tiny", "steps": 8, "batch_size": 8, "num_train": 128, "log_checkpoints": 3,
         "num_items": 7, "seeds": (0,), "max_new_tokens": 24}


def train_run(run_dir: Path, slip_fraction: float, s: dict, seed: int = 0) -> None:
    """SFT from scratch with log-spaced checkpoints, through the `reasonrl sft` entry point."""
    assert cli.run(["sft", "--config", "configs/sft.toml", f"--model.preset={s['preset']}",
                    f"--train.seed={seed}", f"--model.init_seed={seed}",
                    f"--train.steps={s['steps']}", f"--train.batch_size={s['batch_size']}",
                    f"--train.log_checkpoints={s['log_checkpoints']}", "--train.save_every=0",
                    "--train.eval_every=0", "--train.eval_examples=8", f"--data.num_train={s['num_train']}",
                    f"--data.slip_fraction={slip_fraction}", "--data.alt_fraction=0", "--log.progress=false",
                    f"--log.run_dir={run_dir}", "--overwrite"]) == 0, f"sft failed for {run_dir}"


def headline(rows: list[dict], corr: dict) -> dict:
    last = max(rows, key=lambda r: r["compute"])
    return {"r_accuracy": corr["accuracy"], "r_explicit_rate": corr["explicit_reflection_rate"],
            "final_accuracy": last["accuracy"], "final_explicit_rate": last["explicit_reflection_rate"],
            "num_checkpoints": len(rows), "num_checkpoints_correcting": corr["num_checkpoints_correcting"]}


PAPER = "Rethinking Reflection in Pre-Training (arXiv 2504.04022)"
TRIGGER = "Wait,"


def probe_records(run_dir: Path) -> dict[int, dict[tuple, dict]]:
    """{checkpoint step: {(probe seed, item id): record}} of the `Wait,` probe records of one run."""
    out: dict[int, dict[tuple, dict]] = {}
    for line in (run_dir / "reflection" / "samples.jsonl").read_text().splitlines():
        r = json.loads(line)
        if r["trigger"] == TRIGGER:
            out.setdefault(r["step"], {})[(r["seed"], r["id"])] = r
    return out


def log_compute(run_dirs: list[Path]) -> dict[int, float]:
    """{checkpoint step: log10 training compute}, the mean over the runs (seeds see slightly different tokens)."""
    by_step: dict[int, list[float]] = {}
    for d in run_dirs:
        for line in (d / "reflection" / "table.jsonl").read_text().splitlines():
            row = json.loads(line)
            if row["trigger"] == TRIGGER:
                by_step.setdefault(row["step"], []).append(math.log10(row["compute"]))
    return {step: sum(v) / len(v) for step, v in by_step.items()}


def trend(recs: dict[int, dict[int, dict[tuple, dict]]], x: dict[int, float], key: str):
    """Pearson r of log compute with the `key` rate over the checkpoints, and its bootstrap interval over
    training seeds and (probe seed, item) units (reasonrl.eval.verdicts.bootstrap_correlation); None if flat."""
    seeds = sorted(recs)
    steps = sorted(recs[seeds[0]])
    assert all(sorted(recs[s]) == steps for s in seeds), "every training seed needs the same checkpoint steps"
    units = sorted(set.intersection(*(set(recs[s][step]) for s in seeds for step in steps)), key=str)
    values = [[[float(recs[s][step][u][key]) for step in steps] for u in units] for s in seeds]
    return bootstrap_correlation([x[step] for step in steps], values, expect="greater")


def claims(runs: dict[str, dict[int, Path]], corr: dict) -> list[dict]:
    """The paper's trend (Pearson r of the metric with log compute over the slip corpus's checkpoints, with its
    interval over training seeds and items), first vs last checkpoint of the slip corpus, and slip vs control at
    the last checkpoint, paired per (training seed, probe seed, item), all with the `Wait,` trigger."""
    def pairs(key: str, side_a, side_b) -> tuple[list[float], list[float]]:
        a, b = [], []
        for seed in sorted(runs["slip"]):
            ra, rb = side_a(seed), side_b(seed)
            for k in sorted(set(ra) & set(rb), key=str):
                a.append(float(ra[k][key]))
                b.append(float(rb[k][key]))
        return a, b

    recs = {c: {seed: probe_records(d) for seed, d in by_seed.items()} for c, by_seed in runs.items()}

    def first(c):
        return lambda seed: recs[c][seed][min(recs[c][seed])]

    def last(c):
        return lambda seed: recs[c][seed][max(recs[c][seed])]

    n = len(runs["slip"])
    r_acc, r_refl = corr.get("accuracy"), corr.get("explicit_reflection_rate")
    setting = (f"tiny model SFT'd from scratch, slip corpus, {n} training seed(s), first vs last checkpoint, "
               f"trigger '{TRIGGER}'; Pearson r with log compute here (seed 0): accuracy {r_acc}, "
               f"explicit rate {r_refl}; pairs = (training seed, probe seed, item)")
    x = log_compute(list(runs["slip"].values()))
    r_setting = (f"tiny model SFT'd from scratch, slip corpus, {n} training seed(s), {len(x)} log-spaced "
                 f"checkpoints, trigger '{TRIGGER}'; r of the seed-averaged curve with log10 compute; interval: "
                 "bootstrap over training seeds and (probe seed, item)")
    out = []
    for key, text in (("correct", "accuracy on adversarial chains of thought correlates with log pre-training "
                                  "compute (Pearson r)"),
                      ("reflective", "explicit reflection rate correlates with log pre-training compute (Pearson r)")):
        cmp = trend(recs["slip"], x, key)
        if cmp is not None:  # a metric that never moves has no r
            out.append(claim(PAPER, text, cmp, paper_value="r = 0.84 (GSM8K-Platinum, Table 6) [C]",
                             setting=r_setting))
    out += [claim(PAPER, "accuracy on adversarial chains of thought rises from the first to the last checkpoint",
                 paired_comparison(*pairs("correct", first("slip"), last("slip")), expect="greater"),
                 paper_value="Pearson r = 0.84 with log compute (GSM8K-Platinum, Table 6) [C]", setting=setting),
           claim(PAPER, "explicit reflection rate rises from the first to the last checkpoint",
                 paired_comparison(*pairs("reflective", first("slip"), last("slip")), expect="greater"),
                 paper_value="Pearson r = 0.84 with log compute (GSM8K-Platinum, Table 6) [C]", setting=setting)]
    if "control" in runs and set(runs["control"]) == set(runs["slip"]):
        out.append(claim(PAPER, "a corpus without corrections teaches less explicit reflection (slip vs control)",
                         paired_comparison(*pairs("reflective", last("control"), last("slip")), expect="greater"),
                         paper_value="no number; notes D.9 [I]: without correction documents explicit reflection "
                                     "stays near zero",
                         setting=f"last checkpoints, {n} training seed(s), trigger '{TRIGGER}'; pairs = (training "
                                 "seed, probe seed, item)"))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 SFT steps, 3 checkpoints, 7 items (plumbing)")
    ap.add_argument("--run-root", default="runs/reflection_emergence", help="where runs and probe outputs go")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--train-seeds", default="0", help="comma-separated training seeds (train.seed and "
                    "model.init_seed) of every corpus; run dirs of seed > 0 get _s<N>; claims pool them")
    args = ap.parse_args()
    s = QUICK if args.quick else FULL
    root = Path(args.run_root) / ("quick" if args.quick else "full")
    train_seeds = [int(x) for x in args.train_seeds.split(",") if x]
    t0 = time.perf_counter()
    runs, heads, dirs = {}, [], {}
    for corpus, slip in CORPORA.items():
        for seed in train_seeds:
            run_dir = root / (corpus if seed == 0 else f"{corpus}_s{seed}")
            train_run(run_dir, slip, s, seed)
            res = run_probe(parse_checkpoints(str(run_dir)), data="synthetic", num_items=s["num_items"],
                            seeds=s["seeds"], max_new_tokens=s["max_new_tokens"], out_dir=run_dir / "reflection")
            dirs.setdefault(corpus, {})[seed] = run_dir
            name = corpus if seed == 0 else f"{corpus}_s{seed}"
            runs[name] = {"slip_fraction": slip, "train_seed": seed, "table": res["table"],
                          "correlations": res["correlations"]}
            for trigger, corr in res["correlations"].items():
                heads.append({"corpus": corpus, "train_seed": seed, "trigger": trigger, **headline(
                    [r for r in res["table"] if r["trigger"] == trigger], corr)})
    print_rows("headline: Pearson r with log compute, and the last checkpoint (paper GSM8K: r = 0.84, 0.84)",
               [{k: ("n/a" if v is None else v) for k, v in h.items()} for h in heads])
    first = next(iter(runs.values()))  # slip corpus, first training seed
    cl = claims(dirs, first["correlations"].get(TRIGGER, {}))
    print("\nclaims:")
    print_claims(cl, pairs=True)
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s")
    if args.out:
        out = {"settings": {**s, "seeds": list(s["seeds"]), "train_seeds": train_seeds, "quick": args.quick,
                            "corpora": CORPORA},
               "headline": heads, "runs": runs, "claims": cl, "seconds": seconds, "machine": platform.platform()}
        finish(out, args.out)

if __name__ == "__main__":
    main()
