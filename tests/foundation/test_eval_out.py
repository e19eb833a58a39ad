"""`reasonrl eval --out` onto an earlier evaluation, and `eval --compare --out`: refused without `--overwrite`
(tests/foundation/test_bad_input_papers.py), replaced whole with it."""

from __future__ import annotations

import json
import math

GOOD = ('{"prompt": "Ana has 2 pens. She buys 1 more. How many pens does Ana have now?", "answer": "3"}\n') * 2


def test_eval_overwrite_replaces_an_earlier_evaluation_whole(tmp_path, micro_model_dir, cli):
    data, out = tmp_path / "d.jsonl", tmp_path / "ev"
    data.write_text(GOOD)
    out.mkdir()
    (out / "summary.json").write_text('{"old": true}')
    (out / "episodes.jsonl").write_text('{"old": true}\n')  # an earlier `eval --tools` there
    args = ["eval", "--model", str(micro_model_dir), "--data", str(data), "--out", str(out),
            "--rollout.max_new_tokens=2", "--log.progress=false"]
    code, _, err = cli(*args)
    assert code == 2 and "already holds an evaluation (summary.json, episodes.jsonl)" in err, err
    code, _, err = cli(*args, "--overwrite")
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_problems"] == 2 and "old" not in summary
    assert len((out / "samples.jsonl").read_text().splitlines()) == 2
    assert not (out / "episodes.jsonl").exists()  # the two kinds of evaluation do not mix in one directory
    assert not list(out.glob("*.tmp"))


def test_compare_overwrite_and_a_zero_length(tmp_path, cli):
    for name, length in (("a", 0.0), ("b", 5.0)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"data": "gsm8k", "split": "test", "mean@n": 0.5,
                                                                  "mean_length": length}))
    out = tmp_path / "cmp"
    args = ["eval", "--compare", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(out)]
    code, _, err = cli(*args)
    assert code == 0, err
    (row,) = json.loads((out / "compare.json").read_text())["rows"]
    assert math.isnan(row["len_ratio"]) and row["len_B"] == 5.0  # no ratio to a zero length, no crash
    code, _, err = cli(*args)
    assert code == 2 and "already holds a comparison (compare.json): pass --overwrite" in err, err
    code, _, err = cli(*args, "--overwrite")
    assert code == 0, err
