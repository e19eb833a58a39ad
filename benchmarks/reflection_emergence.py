"""Does explicit reflection emerge with training compute? (Rethinking Reflection in Pre-Training, Table 6 analogue.)

    .venv/bin/python benchmarks/reflection_emergence.py --quick --out quick.json   # plumbing only; ~100 s CPU
    .venv/bin/python benchmarks/reflection_emergence.py --out reflection.json                 # full run

Trains the `tiny` preset from scratch by SFT (configs/sft.toml) on two synthetic corpora that differ only in
slips: `slip` has 3% of traces with a wrong step followed by `Wait,` and the corrected step, `control` has none
(alt_fraction 0 in both). Each run saves ~10 log-spaced checkpoints; every checkpoint is probed on situational
adversarial chains of thought (reasonrl.reflection.probe, greedy) with no trigger and with "Wait,". Prints each
run's table and the Pearson r of accuracy and explicit-reflection rate with log10 compute (6·N·D), and writes
the headline figures as JSON. The paper's GSM8K row (Table 6): r = 0.84 for both.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

from reasonrl import cli
from reasonrl.eval.report import print_rows
from reasonrl.reflection.probe import parse_checkpoints, run_probe

CORPORA = {"slip": 0.03, "control": 0.0}
FULL = {"preset": "tiny", "steps": 600, "batch_size": 32, "num_train": 20000, "log_checkpoints": 10,
        "num_items": 140, "seeds": (0, 1, 2), "max_new_tokens": 64}
QUICK = {"preset": "tiny", "steps": 8, "batch_size": 8, "num_train": 128, "log_checkpoints": 3,
         "num_items": 7, "seeds": (0,), "max_new_tokens": 24}


def train_run(run_dir: Path, slip_fraction: float, s: dict) -> None:
    """SFT from scratch with log-spaced checkpoints, through the `reasonrl sft` entry point."""
    assert cli.run(["sft", "--config", "configs/sft.toml", f"--model.preset={s['preset']}",
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="8 SFT steps, 3 checkpoints, 7 items (plumbing)")
    ap.add_argument("--run-root", default="runs/reflection_emergence", help="where runs and probe outputs go")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    args = ap.parse_args()
    s = QUICK if args.quick else FULL
    root = Path(args.run_root) / ("quick" if args.quick else "full")
    t0 = time.perf_counter()
    runs, heads = {}, []
    for corpus, slip in CORPORA.items():
        run_dir = root / corpus
        train_run(run_dir, slip, s)
        res = run_probe(parse_checkpoints(str(run_dir)), data="synthetic", num_items=s["num_items"],
                        seeds=s["seeds"], max_new_tokens=s["max_new_tokens"], out_dir=run_dir / "reflection")
        runs[corpus] = {"slip_fraction": slip, "table": res["table"], "correlations": res["correlations"]}
        for trigger, corr in res["correlations"].items():
            heads.append({"corpus": corpus, "trigger": trigger, **headline(
                [r for r in res["table"] if r["trigger"] == trigger], corr)})
    print_rows("headline: Pearson r with log compute, and the last checkpoint (paper GSM8K: r = 0.84, 0.84)",
               [{k: ("n/a" if v is None else v) for k, v in h.items()} for h in heads])
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s")
    if args.out:
        out = {"settings": {**s, "seeds": list(s["seeds"]), "quick": args.quick, "corpora": CORPORA},
               "headline": heads, "runs": runs, "seconds": seconds, "machine": platform.platform()}
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
