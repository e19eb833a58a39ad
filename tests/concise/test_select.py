"""`reasonrl concise select`: the selection rule and the solve-rate arithmetic (hand values), and its CLI."""

import subprocess
import sys

from reasonrl.concise.select import select_problems, solve_rates


def test_selection_rule_is_strict_in_order_and_capped():
    rates = [0.0, 0.125, 1.0, 0.5, 0.875, 0.25, 0.75]
    # 0 < p < 1 (the paper's "solves at least sometimes"): every index but 0 and 2, in data order
    assert select_problems(rates, p_min=0.0, p_max=1.0, num=8) == [1, 3, 4, 5, 6]
    assert select_problems(rates, p_min=0.0, p_max=1.0, num=2) == [1, 3]
    # 0.2 < p < 0.8: 0.125 and 0.875 out; both bounds strict, so 0.25 and 0.75 stay but a rate of 0.25 with
    # p_min = 0.25 would not
    assert select_problems(rates, p_min=0.2, p_max=0.8, num=8) == [3, 5, 6]
    assert select_problems(rates, p_min=0.25, p_max=0.75, num=8) == [3]


def test_solve_rates_per_problem():
    # problem a: 3 samples, 2 correct, lengths 10, 20, 30 -> 2/3, mean 20; problem b: 1 sample, wrong, 7
    samples = [{"problem_id": "a", "correct": True, "length": 10}, {"problem_id": "b", "correct": False, "length": 7},
               {"problem_id": "a", "correct": False, "length": 20}, {"problem_id": "a", "correct": True, "length": 30}]
    out = solve_rates(samples, ["b", "a"])
    assert out == [{"solve_rate": 0.0, "num_samples": 1, "mean_length": 7.0},
                   {"solve_rate": 2 / 3, "num_samples": 3, "mean_length": 20.0}]


def test_select_cli_writes_nothing_when_no_problem_qualifies(tmp_path, tokenizer_dir):
    # a fresh micro model never solves a problem: every rate is 0, so the strict rule keeps none -> exit 2,
    # one line naming the data; the per-problem rates are still written for inspection
    out = tmp_path / "phase2.jsonl"
    r = subprocess.run([sys.executable, "-m", "reasonrl", "concise", "select", "--data", "synthetic", "--out", str(out),
                        "--k", "2", "--max-problems", "3", "--model.preset=micro", "--data.difficulty=1",
                        f"--model.tokenizer_path={tokenizer_dir}",
                        "--rollout.max_new_tokens=8", "--log.progress=false"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "none of 3 problems has 0.0 < solve rate < 1.0" in r.stderr and "Traceback" not in r.stderr
    assert not out.exists()
    rates = (tmp_path / "phase2.jsonl.rates.jsonl").read_text().splitlines()
    assert len(rates) == 3 and all('"solve_rate": 0.0' in x and '"num_samples": 2' in x for x in rates)
