"""Retro-Search at toy scale (arXiv 2504.04383): revise a meandering reasoner's traces, then distil them.

    .venv/bin/python benchmarks/retro_search.py --quick --out quick.json   # plumbing: micro models, gold traces
    .venv/bin/python benchmarks/retro_search.py --out retro.json           # full run

1. The meandering reasoner M: the `tiny` preset SFT-trained on synthetic traces where many examples abandon a
   first attempt with `Alternatively,` or correct a slip with `Wait,` (slip 0.3, switch 0.5).
2. The weak reviser W: the `micro` preset trained the same way (weak-to-strong).
3. M samples one trace per training problem (`reasonrl eval --eval.split=train`, T = 1).
4. `reasonrl retro-search` revises M's correct traces with M itself (self) and with W (weak-to-strong).
5. Two fresh `tiny` models are SFT-trained, one on M's original correct traces, one on their self-revised
   versions (same problems, same steps), per seed (3 seeds), and evaluated greedily on the held-out split:
   accuracy, response length in tokens and thought switches per response, pooled over seeds (`acc_stderr` is
   the binomial standard error of the pooled samples; per-seed numbers are in `sft_per_seed`).

Stages whose outputs exist under --run-root are reused (models, samples) or resumed (retro-search), so an
interrupted run continues where it stopped.

Every stage runs through the `reasonrl` CLI. Prints the tables and writes `revision`, `revision_w2s`, `sft`
(full run), `ratio` = revised-student length / original-student length and `claims` as JSON: the revision's token
change per trace (self, weak-to-strong; also under --quick), and the students paired per (seed, held-out problem)
on length and correctness (reasonrl.eval.verdicts), and with 2+ seeds the same paired per seed (per-seed means: the
interval then holds the spread between training runs). `--student-seeds 0,1,2` and `--num-test N` size the student
comparison.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import time
from pathlib import Path

import torch
from output import finish, print_claims

from reasonrl import cli
from reasonrl.eval.report import print_rows
from reasonrl.eval.verdicts import claim, paired_comparison
from reasonrl.retro.segment import SYNTHETIC_STEP_SEP, num_switches
from reasonrl.tasks import synthetic

KEYWORDS = ("Alternatively", "Wait", "But wait", "Hmm", "Hold on", "Another approach")
FULL = {"difficulty": 1, "teacher": "tiny", "teacher_steps": 300, "reviser": "micro", "reviser_steps": 300,
        "batch_size": 32, "num_train": 8000, "num_traces": 1500, "student_steps": 250, "num_test": 200,
        "max_new_tokens": 96, "student_seeds": (0, 1, 2), "sft": True, "gold_traces": False}
QUICK = {"difficulty": 1, "teacher": "micro", "teacher_steps": 4, "reviser": "micro", "reviser_steps": 2,
         "batch_size": 8, "num_train": 64, "num_traces": 24, "student_steps": 0, "num_test": 16,
         "max_new_tokens": 48, "student_seeds": (), "sft": False, "gold_traces": True}
CORPUS = {"slip_fraction": 0.3, "alt_fraction": 0.5}


def world(s: dict) -> list[str]:
    return [f"--data.difficulty={s['difficulty']}", f"--data.num_test={s['num_test']}",
            f"--rollout.max_new_tokens={s['max_new_tokens']}", "--log.progress=false"]


def sft(run_dir: Path, preset: str, steps: int, s: dict, data: list[str]) -> Path:
    """SFT from scratch through `reasonrl sft`; returns the final model directory (kept from an earlier run)."""
    if (run_dir / "final").is_dir():
        print(f"reusing {run_dir / 'final'}")
        return run_dir / "final"
    assert cli.run(["sft", "--config", "configs/sft.toml", f"--model.preset={preset}", f"--train.steps={steps}",
                    f"--train.batch_size={s['batch_size']}", "--train.eval_every=0", "--train.save_every=0",
                    "--train.log_checkpoints=0", "--train.eval_examples=8", "--optim.warmup_steps=20",
                    f"--log.run_dir={run_dir}", *world(s), *data]) == 0, f"sft failed for {run_dir}"
    return run_dir / "final"


def evaluate(model: Path, out: Path, s: dict, *, split: str, temperature: float, num: int) -> list[dict]:
    """`reasonrl eval` on the synthetic world; returns its samples (kept from an earlier run)."""
    if (out / "samples.jsonl").is_file():
        return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert cli.run(["eval", "--model", str(model), "--data", "synthetic", "--out", str(out), *world(s),
                    f"--eval.split={split}", f"--eval.max_examples={num}", f"--rollout.temperature={temperature}",
                    f"--data.num_train={s['num_train']}"]) == 0
    return [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]


def summary(samples: list[dict]) -> dict:
    n = len(samples)
    acc = sum(x["correct"] for x in samples) / n
    return {"acc": acc, "acc_stderr": math.sqrt(acc * (1 - acc) / n), "length": sum(x["length"] for x in samples) / n,
            "switches": sum(num_switches(x["response"], KEYWORDS, SYNTHETIC_STEP_SEP) for x in samples) / n,
            "num": n}


def retro(model: Path, traces: Path, out: Path, reviser: Path | None) -> dict:
    """`reasonrl retro-search` (resuming an earlier run's file); returns the revision block (per-trace means)."""
    args = ["retro-search", "--model", str(model), "--data", str(traces), "--out", str(out), "--synthetic",
            "--batch-size", "64", "--max-new-tokens", "64", "--no-progress"]
    args += (["--reviser", str(reviser)] if reviser else []) + (["--resume"] if out.exists() else [])
    assert cli.run(args) == 0
    stats = json.loads(out.with_name(out.stem + ".stats.json").read_text())
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    correct = sum(synthetic.verify(r["response"], r["answer"]) for r in rows)
    return {"traces": len(rows), "revised_correct_fraction": correct / max(1, len(rows)),
            "tokens_before": stats["tokens_before"], "tokens_after": stats["tokens_after"],
            "switches_before": stats["switches_before"], "switches_after": stats["switches_after"],
            "steps_before": stats["steps_before"], "steps_after": stats["steps_after"],
            "accepted_revisions": stats["accepted_revisions"], "traces_changed": stats["traces_changed"]}


PAPER = "Retro-Search (arXiv 2504.04383)"


def revision_claim(out: Path, *, text: str, paper_value: str, setting: str) -> dict:
    """Tokens of each revised trace before and after (pairs = traces); ours = the relative change of the mean."""
    rows = [json.loads(x) for x in out.read_text().splitlines() if x.strip()]
    cmp = paired_comparison([r["tokens_before"] for r in rows], [r["tokens_after"] for r in rows], expect="less")
    return claim(PAPER, text, cmp, ours=cmp.mean_b / cmp.mean_a - 1, paper_value=paper_value,
                 setting=f"{setting}; {len(rows)} traces; interval on the per-trace token difference")


PAPER_LENGTH = "-31.2% average reasoning length (self, R1-distill-7B, 7 benchmarks) [C, abstract]"
PAPER_ACC = "+7.7% performance (self) [C, abstract; relative or absolute not stated]"
PAPER_KEPT = "shorter at equal or better accuracy (abstract) [C]"


def student_claims(samples: dict[str, list[dict]], num_seeds: int, *, margin: float = 0.05) -> list[dict]:
    """Students on original vs self-revised traces, paired per (seed, held-out problem): response length and
    correctness (greedy, one answer per problem): accuracy raised (the paper's +7.7%) and accuracy kept (no drop
    beyond `margin`: "shorter at equal or better accuracy"); with 2+ seeds the same three paired by seed (per-seed
    means), whose interval includes the spread between training runs that the (seed, problem) pairs leave out."""
    def keyed(rows):
        return {(r["seed"], str(r["problem_id"])): r for r in rows}

    a, b = keyed(samples["original"]), keyed(samples["revised"])
    keys = sorted(set(a) & set(b))
    setting = (f"fresh tiny students, {len(keys) // max(1, num_seeds)} held-out problems x {num_seeds} seed(s), "
               "greedy; pairs = (seed, problem)")
    length = paired_comparison([a[k]["length"] for k in keys], [b[k]["length"] for k in keys], expect="less")
    acc_a, acc_b = [float(a[k]["correct"]) for k in keys], [float(b[k]["correct"]) for k in keys]
    out = [
        claim(PAPER, "SFT on self-revised traces gives shorter answers (ours: relative change; interval: per-answer "
                     "token difference)", length, ours=length.mean_b / length.mean_a - 1,
              paper_value=PAPER_LENGTH, setting=setting),
        claim(PAPER, "SFT on self-revised traces raises accuracy", paired_comparison(acc_a, acc_b, expect="greater"),
              paper_value=PAPER_ACC, setting=setting),
        claim(PAPER, f"SFT on self-revised traces keeps accuracy (no drop beyond {margin:g})",
              paired_comparison(acc_a, acc_b, expect="at_least", margin=margin), paper_value=PAPER_KEPT,
              setting=setting),
    ]
    if num_seeds < 2:
        return out
    # The (seed, problem) pairs treat a student's training seed as fixed; the seed-level pairs carry the
    # training-to-training spread (each seed: its two students' means over the same held-out problems).
    seeds = sorted({k[0] for k in keys})

    def seed_means(rows: dict, field: str) -> list[float]:
        return [sum(float(rows[k][field]) for k in keys if k[0] == s) / sum(k[0] == s for k in keys) for s in seeds]

    by_seed = f"fresh tiny students, {len(seeds)} seeds, each its mean over the same held-out problems; pairs = seeds"
    length_s = paired_comparison(seed_means(a, "length"), seed_means(b, "length"), expect="less")
    acc_sa, acc_sb = seed_means(a, "correct"), seed_means(b, "correct")
    return out + [
        claim(PAPER, "SFT on self-revised traces gives shorter answers, paired by seed", length_s,
              ours=length_s.mean_b / length_s.mean_a - 1, paper_value=PAPER_LENGTH, setting=by_seed),
        claim(PAPER, "SFT on self-revised traces raises accuracy, paired by seed",
              paired_comparison(acc_sa, acc_sb, expect="greater"), paper_value=PAPER_ACC, setting=by_seed),
        claim(PAPER, f"SFT on self-revised traces keeps accuracy (no drop beyond {margin:g}), paired by seed",
              paired_comparison(acc_sa, acc_sb, expect="at_least", margin=margin), paper_value=PAPER_KEPT,
              setting=by_seed),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="plumbing: micro models, a few steps, the world's gold "
                    "switch traces revised instead of the model's, no student SFT")
    ap.add_argument("--run-root", default="runs/retro_search", help="where models, traces and evals go")
    ap.add_argument("--out", default=None, help="write the results as JSON here")
    ap.add_argument("--student-seeds", default="", help="comma-separated student seeds (default: the size's, 0,1,2)")
    ap.add_argument("--num-test", type=int, default=0, help="held-out problems per student evaluation (default: the "
                    "size's, 200; other sizes get their own eval directories)")
    ap.add_argument("--acc-margin", type=float, default=0.05, help="the largest accuracy drop of the revised-trace "
                    "students that still counts as 'accuracy kept' (claims)")
    args = ap.parse_args()
    torch.set_num_threads(1)  # the benchmark machine is shared; one thread per process is the fair share
    s = dict(QUICK if args.quick else FULL)
    if args.student_seeds:
        s["student_seeds"] = tuple(int(x) for x in args.student_seeds.split(","))
    eval_tag = ""
    if args.num_test and args.num_test != s["num_test"]:
        s["num_test"], eval_tag = args.num_test, f"_n{args.num_test}"
    root = Path(args.run_root) / ("quick" if args.quick else "full")
    t0 = time.perf_counter()
    corpus = [f"--data.num_train={s['num_train']}", *(f"--data.{k}={v}" for k, v in CORPUS.items())]
    teacher = sft(root / "teacher", s["teacher"], s["teacher_steps"], s, corpus)
    reviser = sft(root / "reviser", s["reviser"], s["reviser_steps"], s, corpus)
    trace_samples = evaluate(teacher, root / "traces", s, split="train", temperature=1.0, num=s["num_traces"])
    traces = root / "traces" / "samples.jsonl"
    if s["gold_traces"]:  # --quick: an untrained model answers nothing right, so revise the world's own traces
        traces = root / "traces" / "gold.jsonl"
        records = synthetic.generate(s["num_traces"], difficulty=s["difficulty"], alt_fraction=1.0)
        traces.write_text("".join(json.dumps(r) + "\n" for r in records))
    teacher_train = summary(trace_samples)
    revision = retro(teacher, traces, root / "revised_self.jsonl", None)
    revision_w2s = retro(teacher, traces, root / "revised_w2s.jsonl", reviser)
    print_rows("revision (means per revised trace)", [{"reviser": f"self ({s['teacher']})", **revision},
                                                      {"reviser": f"weak ({s['reviser']})", **revision_w2s}])
    result = {"teacher_train_samples": teacher_train, "revision": revision, "revision_w2s": revision_w2s}
    trace_setting = f"synthetic world, {'gold switch traces (--quick)' if s['gold_traces'] else 'reasoner traces'}"
    claims = [revision_claim(root / "revised_self.jsonl", text="self Retro-Search shortens correct traces",
                             paper_value="-31.2% (self; the paper's figure is its students' reasoning length) [C]",
                             setting=f"{trace_setting}, self revision"),
              revision_claim(root / "revised_w2s.jsonl", text="weak-to-strong Retro-Search shortens correct traces",
                             paper_value="-11.3% (W2S; the paper's figure is its students' reasoning length) [C]",
                             setting=f"{trace_setting}, a micro reviser")]
    if s["sft"]:
        revised = root / "revised_self.jsonl"
        samples: dict[str, list[dict]] = {"original": [], "revised": []}
        per_seed = []
        for seed in s["student_seeds"]:
            row = {"seed": seed}
            for name, field in (("original", "original_response"), ("revised", "response")):
                model = sft(root / f"student_{name}_s{seed}", "tiny", s["student_steps"], s,
                            [f"--data.source={revised}", f"--data.response_field={field}", f"--train.seed={seed}",
                             f"--model.init_seed={seed}"])
                mine = evaluate(model, root / f"eval_{name}_s{seed}{eval_tag}", s, split="test", temperature=0.0,
                                num=s["num_test"])
                samples[name] += [{**x, "seed": seed} for x in mine]
                row.update({f"{name}_acc": summary(mine)["acc"], f"{name}_length": summary(mine)["length"]})
            per_seed.append(row)
        print_rows("students per seed (held-out, greedy)", per_seed)
        students = {name: summary(rows) for name, rows in samples.items()}
        students["teacher"] = summary(evaluate(teacher, root / f"eval_teacher{eval_tag}", s, split="test",
                                               temperature=0.0, num=s["num_test"]))
        print_rows("held-out (greedy)", [{"model": k, **v} for k, v in students.items()])
        result["sft"], result["sft_per_seed"] = students, per_seed
        result["ratio"] = students["revised"]["length"] / students["original"]["length"]
        claims += student_claims(samples, len(s["student_seeds"]), margin=args.acc_margin)
    result["claims"] = claims
    print("\nclaims:")
    print_claims(claims, pairs=True)
    seconds = time.perf_counter() - t0
    print(f"\n{seconds:.0f} s")
    if args.out:
        settings = {**s, "student_seeds": list(s["student_seeds"]), **CORPUS, "quick": args.quick}
        finish({"settings": settings, **result, "seconds": seconds, "machine": platform.platform()}, args.out)


if __name__ == "__main__":
    main()
