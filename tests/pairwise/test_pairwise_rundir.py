"""`reasonrl rm-train` has the trainers' run-directory protections (`reasonrl.train.rundir`): a used directory is
refused (exit 2, one line) and left as it was unless `--overwrite`, which replaces the whole old run; inputs are
validated before anything is written; a live lock keeps a second process out."""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "pairwise_tiny.toml")


def _rm_train(run: Path, tokenizer_dir, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reasonrl", "rm-train", "--config", TINY,
                           f"--model.tokenizer_path={tokenizer_dir}", "--train.steps=1", "--pairwise.num_train=16",
                           "--pairwise.num_test=8", f"--log.run_dir={run}", *extra],
                          capture_output=True, text=True, timeout=600)


def _files(run: Path) -> dict[str, bytes]:
    return {str(p.relative_to(run)): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


def _one_error_line(r: subprocess.CompletedProcess, *needles: str) -> str:
    assert r.returncode == 2, r.stderr[-2000:]
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reasonrl: error: ") and "Traceback" not in r.stderr, r.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def test_used_run_dir_is_refused_untouched_and_overwrite_replaces_it(tmp_path, tokenizer_dir):
    run = tmp_path / "rm"
    assert _rm_train(run, tokenizer_dir).returncode == 0
    before = _files(run)
    assert {"config.json", "metrics.jsonl", "eval.json", "judge/judge.json"} <= set(before)

    line = _one_error_line(_rm_train(run, tokenizer_dir, "--train.steps=2"), f"log.run_dir {run} already holds a run",
                           "--overwrite")
    assert "--resume" not in line  # rm-train keeps no checkpoints: there is nothing to resume
    assert _files(run) == before  # nothing written, nothing deleted

    (run / "judge" / "stale.bin").write_bytes(b"old")  # a file of the old run that the new one would not rewrite
    r = _rm_train(run, tokenizer_dir, "--train.steps=2", "--overwrite")
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (run / "judge" / "stale.bin").exists() and not (run / ".lock").exists()
    losses = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert [m["step"] for m in losses] == [1, 2]  # the new run's steps only
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 2


def test_inputs_are_validated_before_anything_is_written(tmp_path, tokenizer_dir):
    run = tmp_path / "rm"
    _one_error_line(_rm_train(run, tokenizer_dir, f"--pairwise.data={tmp_path / 'missing.jsonl'}"), "missing.jsonl")
    assert not run.exists()
    _one_error_line(_rm_train(run, tokenizer_dir, "--train.resume=true"), "train.resume", "--overwrite")
    assert not run.exists()


def test_a_run_dir_locked_by_a_live_process_is_refused(tmp_path, tokenizer_dir):
    import socket

    run = tmp_path / "rm"
    run.mkdir()
    (run / ".lock").write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))  # this test: alive
    _one_error_line(_rm_train(run, tokenizer_dir), "is in use by process", str(os.getpid()))
    assert sorted(p.name for p in run.iterdir()) == [".lock"]
