"""`reasonrl eval --compare A B`: the side-by-side table from two eval output directories (hand values)."""

import json
import math
import subprocess
import sys

import pytest

from reasonrl.eval.compare import accuracy_stderr, compare_rows, load_evals


def _eval_dir(path, data, acc, length, samples):
    path.mkdir(parents=True)
    (path / "summary.json").write_text(json.dumps({"data": data, "split": "test", "mean@n": acc, "mean_length": length,
                                                   "mean_length_correct": length - 1, "mean_length_wrong": length + 1}))
    (path / "samples.jsonl").write_text("".join(json.dumps(s) + "\n" for s in samples))


def _samples(per_problem: list[list[bool]]):
    return [{"problem_id": f"p{i}", "correct": c, "length": 1} for i, cs in enumerate(per_problem) for c in cs]


def test_stderr_over_problems():
    # per-problem accuracies 1, 0.5, 0 -> mean 0.5, unbiased var (0.25 + 0 + 0.25) / 2 = 0.25, se = sqrt(0.25/3)
    se = accuracy_stderr(_samples([[True, True], [True, False], [False, False]]))
    assert se == pytest.approx(math.sqrt(0.25 / 3))
    assert math.isnan(accuracy_stderr(_samples([[True, False]])))  # one problem: undefined


def test_compare_rows_per_benchmark(tmp_path):
    # A = before, B = after, each a directory of two benchmarks; only math500 is common to both
    _eval_dir(tmp_path / "A" / "math500", "math500", 0.5, 100.0, _samples([[True], [False]]))
    _eval_dir(tmp_path / "A" / "gsm8k", "gsm8k", 0.2, 50.0, _samples([[False]]))
    _eval_dir(tmp_path / "B" / "math500", "math500", 0.6, 40.0, _samples([[True], [True]]))
    a, b = load_evals(tmp_path / "A"), load_evals(tmp_path / "B")
    assert sorted(a) == ["gsm8k/test", "math500/test"]
    (row,) = compare_rows(a, b)
    # d_acc = 0.6 - 0.5 = 0.1; len_ratio = 40 / 100 = 0.4; se_A: accuracies 1, 0 -> var 0.5, se sqrt(0.5/2) = 0.5;
    # se_B: 1, 1 -> 0
    assert row["benchmark"] == "math500/test" and row["d_acc"] == pytest.approx(0.1)
    assert row["len_ratio"] == pytest.approx(0.4) and row["se_A"] == pytest.approx(0.5) and row["se_B"] == 0.0
    assert (row["len_correct_A"], row["len_wrong_B"]) == (99.0, 41.0)


def test_compare_cli_table_and_bad_dir(tmp_path):
    _eval_dir(tmp_path / "A", "synthetic", 0.25, 80.0, _samples([[True], [False]]))
    _eval_dir(tmp_path / "B", "synthetic", 0.25, 20.0, _samples([[False], [True]]))
    r = subprocess.run([sys.executable, "-m", "reasonrl", "eval", "--compare", str(tmp_path / "A"), str(tmp_path / "B"),
                        "--out", str(tmp_path / "cmp")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "synthetic/test" in r.stdout
    saved = json.loads((tmp_path / "cmp" / "compare.json").read_text())
    assert saved["rows"][0]["len_ratio"] == pytest.approx(0.25)
    r = subprocess.run([sys.executable, "-m", "reasonrl", "eval", "--compare", str(tmp_path / "A"),
                        str(tmp_path / "C")], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and "no summary.json" in r.stderr and "Traceback" not in r.stderr
