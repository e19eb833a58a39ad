"""`reasonrl eval --compare A B`: accuracy and length of two evaluations side by side, per benchmark.

A and B are output directories of `reasonrl eval` (each holds summary.json and samples.jsonl), or directories
whose subdirectories are (one per benchmark, e.g. `before/math500`, `before/gsm8k`); benchmarks are matched by
the summary's `data` and `split`. Evaluating is left to `reasonrl eval`, so each side's protocol (samples,
temperature, max tokens) is whatever its run recorded. Concise RL's table (arXiv 2504.05185, Table 1) is this
comparison: accuracy and mean length before and after phase 2.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

from reasonrl.errors import UserError
from reasonrl.outputs import check_output_dir, check_previous, write_atomic
from reasonrl.tasks.datasets import read_objects
from reasonrl.userfiles import read_json_object, require


def accuracy_stderr(samples: list[dict]) -> float:
    """Standard error of mean@n over problems: std of the per-problem accuracies / sqrt(#problems).

    The problems, not the samples of one problem, carry most of the variance, so they are the unit. The std is
    the unbiased one (/(P-1)); NaN with fewer than two problems.
    """
    by: dict[str, list[bool]] = {}
    for s in samples:
        by.setdefault(str(s["problem_id"]), []).append(bool(s["correct"]))
    accs = [sum(c) / len(c) for c in by.values()]
    if len(accs) < 2:
        return float("nan")
    mean = sum(accs) / len(accs)
    var = sum((a - mean) ** 2 for a in accs) / (len(accs) - 1)
    return math.sqrt(var / len(accs))


def load_evals(path: str | Path) -> dict[str, dict]:
    """`{benchmark: summary (+ acc_stderr)}` from one eval directory or a directory of them."""
    root = Path(path)
    dirs = [root] if (root / "summary.json").is_file() else sorted(p.parent for p in root.glob("*/summary.json"))
    if not dirs:
        raise UserError(f"{root}: no summary.json here or in its subdirectories (run `reasonrl eval --out DIR`)")
    out = {}
    for d in dirs:
        summary = read_summary(d / "summary.json")
        samples_path = d / "samples.jsonl"
        samples = read_samples(samples_path) if samples_path.is_file() else []
        name = f"{Path(str(summary['data'])).stem}/{summary['split']}"
        out[name] = {**summary, "acc_stderr": accuracy_stderr(samples) if samples else float("nan")}
    return out


def read_summary(path: Path) -> dict:
    """An eval summary.json with the keys the comparison reads, typed (else one UserError naming file and key):
    `data` and `split` text, `mean@n` and the mean lengths finite numbers (lengths >= 0)."""
    summary = read_json_object(path)
    where = str(path)
    for key in ("data", "split"):
        require(summary, where, key, "str")
    require(summary, where, "mean@n", "number")
    for key in ("mean_length", "mean_length_correct", "mean_length_wrong"):
        if key == "mean_length" or summary.get(key) is not None:
            if require(summary, where, key, "number") < 0:
                raise UserError(f"{where}: key {key!r} must be >= 0, got {summary[key]}")
    return summary


def read_samples(path: Path) -> list[dict]:
    """An eval samples.jsonl: each line's `problem_id` (text or integer) and `correct` (true / false) are what the
    standard error reads (else a UserError naming file:line and the field)."""
    out = []
    for lineno, row in read_objects(path):
        where = f"{path}:{lineno}"
        if not isinstance(row.get("problem_id"), str | int) or isinstance(row.get("problem_id"), bool):
            raise UserError(f"{where}: field 'problem_id' must be text or an integer")
        if not isinstance(row.get("correct"), bool):
            raise UserError(f"{where}: field 'correct' must be true or false")
        out.append(row)
    return out


def compare_rows(a: dict[str, dict], b: dict[str, dict]) -> list[dict]:
    """One row per benchmark present in both: accuracies, their difference and standard errors, mean lengths
    (all, correct, wrong) and the length ratio B / A."""
    common = [k for k in a if k in b]
    if not common:
        raise UserError(f"eval --compare: no benchmark in both ({', '.join(a)} vs {', '.join(b)})")
    rows = []
    for k in common:
        x, y = a[k], b[k]
        rows.append({"benchmark": k, "acc_A": x["mean@n"], "acc_B": y["mean@n"], "d_acc": y["mean@n"] - x["mean@n"],
                     "se_A": x["acc_stderr"], "se_B": y["acc_stderr"], "len_A": x["mean_length"],
                     "len_B": y["mean_length"], "len_ratio": _ratio(y["mean_length"], x["mean_length"]),
                     "len_correct_A": x.get("mean_length_correct"), "len_correct_B": y.get("mean_length_correct"),
                     "len_wrong_A": x.get("mean_length_wrong"), "len_wrong_B": y.get("mean_length_wrong")})
    return rows


def _ratio(b: float, a: float) -> float:
    """B / A; NaN when A is 0 (responses of no tokens: no ratio to report)."""
    return b / a if a else float("nan")


def compare_command(path_a: str, path_b: str, *, out_dir: str | None = None, overwrite: bool = False) -> list[dict]:
    """Print the side-by-side table (with an unweighted average row, as the paper's) and optionally write it to
    `<out_dir>/compare.json` (checked first: not an input, not an earlier compare.json unless `overwrite`)."""
    from reasonrl.eval.report import print_rows

    if out_dir is not None:
        what = "eval --compare --out"
        out = check_output_dir(out_dir, what, inputs=[("A", path_a), ("B", path_b)], owns=("compare.json",))
        check_previous(out, what, ("compare.json",), desc="a comparison", overwrite=overwrite)
    rows = compare_rows(load_evals(path_a), load_evals(path_b))
    if len(rows) > 1:
        keys = ["acc_A", "acc_B", "d_acc", "len_A", "len_B"]
        avg = {"benchmark": "average", **{k: sum(r[k] for r in rows) / len(rows) for k in keys}}
        rows.append({**avg, "len_ratio": _ratio(avg["len_B"], avg["len_A"])})
    print(f"A = {path_a}\nB = {path_b}")
    print_rows("eval --compare: accuracy (mean@n) and mean response length, B vs A", rows)
    if out_dir is not None:
        path = write_atomic(out / "compare.json",
                            json.dumps({"A": str(path_a), "B": str(path_b), "rows": rows}, indent=2) + "\n")
        print(f"-> {path}")
    return rows
