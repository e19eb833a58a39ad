"""Run directories: nothing lost, nothing mixed. Each test drives `reasonrl sft` (in this process) on a copy of a
real finished 2-step micro-model run (conftest `finished_run`); the bad-input refusals are in test_bad_input.py."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from reasonrl.config import load_config


def _metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


def _steps(run):
    return sorted(int(p.name.split("_")[1]) for p in (run / "checkpoints").iterdir())


@pytest.fixture
def run(tmp_path, finished_run):
    shutil.copytree(finished_run, tmp_path / "run")
    return tmp_path / "run"


@pytest.fixture
def base(finished_run, run):
    """`sft --config <the finished run's toml> --log.run_dir=<the copy>`."""
    return ["sft", "--config", finished_run.parent / "micro.toml", f"--log.run_dir={run}"]


def test_overwrite_replaces_the_old_run_entirely(cli, run, base):
    assert _steps(run) == [1, 2]
    code, _, err = cli(*base, "--overwrite", "--train.steps=1")
    assert code == 0, err
    # the old step-2 checkpoint is gone: it would be "newest" and a later --resume would load the old model
    assert _steps(run) == [1]
    assert [m["step"] for m in _metrics(run)] == [1, 1]  # the step and its final evaluation, nothing older
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 1
    assert not (run / ".lock").exists()


def test_resume_extending_steps_is_recorded_truthfully(cli, run, base):
    code, _, err = cli(*base, "--resume", "--train.steps=3")
    assert code == 0, err
    assert _steps(run)[-1] == 3
    assert json.loads((run / "config.json").read_text())["train"]["steps"] == 3
    record = json.loads((run / "resumes.jsonl").read_text())
    assert record["step"] == 2 and record["changed"]["train.steps"] == {"from": 2, "to": 3}
    assert set(record["changed"]) == {"train.steps", "log.run_dir"}  # the copy moved the run: recorded too
    lines = [m["step"] for m in _metrics(run) if "loss" in m]
    assert lines == [1, 2, 3]


def test_resume_may_turn_gradient_checkpointing_on(cli, run, base):
    """Checkpointing changes the memory a step takes, not its gradients: a run that ran out of memory resumes with
    it on (and config.json / resumes.jsonl record the change)."""
    code, _, err = cli(*base, "--resume", "--train.steps=3", "--model.gradient_checkpointing=true")
    assert code == 0, err
    record = json.loads((run / "resumes.jsonl").read_text())
    assert record["changed"]["model.gradient_checkpointing"] == {"from": False, "to": True}
    assert json.loads((run / "config.json").read_text())["model"]["gradient_checkpointing"] is True
    assert [m["step"] for m in _metrics(run) if "loss" in m] == [1, 2, 3]


def test_resume_with_a_changed_config_names_every_differing_key(cli, run, base):
    code, _, err = cli(*base, "--resume", "--optim.lr=0.1", "--train.batch_size=2", "--log.progress=true")
    assert code == 2
    assert "optim.lr 0.003 -> 0.1" in err and "train.batch_size 4 -> 2" in err
    assert "log.progress" not in err.split("only")[0]  # safe to change: not listed as a difference


def test_resuming_a_finished_run_appends_no_line(cli, run, base):
    before = (run / "metrics.jsonl").read_bytes()
    code, _, err = cli(*base, "--resume")
    assert code == 0, err
    assert (run / "metrics.jsonl").read_bytes() == before


def test_resume_refuses_another_model_at_the_same_path(cli, tmp_path, base, micro_model_dir, world_tokenizer):
    """A resume reloads the reference model and a LoRA base from model.path: a retrained model at the same path
    (`sft --overwrite` into it) is refused, naming the key; the same bytes moved away and back resume. Mutation:
    not comparing inputs.json on --resume -> the retrained model resumes (exit 0)."""
    from reasonrl.model.tiny import build_model

    model, run = tmp_path / "model", tmp_path / "fresh"
    shutil.copytree(micro_model_dir, model)
    args = [*base, f"--log.run_dir={run}", f"--model.path={model}", "--train.steps=1"]
    code, _, err = cli(*args)
    assert code == 0, err
    assert set(json.loads((run / "inputs.json").read_text())) == {"model.path", "model.tokenizer_path"}
    shutil.move(model, tmp_path / "aside")
    build_model("micro", world_tokenizer, seed=1).save_pretrained(model)  # another model of the same shape
    world_tokenizer.save_pretrained(model)
    code, _, err = cli(*args, "--resume", "--train.steps=2")
    assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert f"--resume, but model.path {model} holds other bytes than when the run started" in err, err
    assert _steps(run) == [1]
    shutil.rmtree(model)
    shutil.move(tmp_path / "aside", model)  # the run's own model again, moved back: the same bytes
    code, _, err = cli(*args, "--resume", "--train.steps=2")
    assert code == 0, err
    assert _steps(run) == [1, 2]


def test_a_run_from_before_inputs_were_recorded_resumes_with_a_warning(cli, run, base):
    (run / "inputs.json").unlink()
    code, _, err = cli(*base, "--resume", "--train.steps=3")
    assert code == 0, err
    assert err.count("reasonrl: warning: ") == 1 and "no inputs.json" in err, err
    assert "model.tokenizer_path" in json.loads((run / "inputs.json").read_text())  # recorded from now on
    assert _steps(run)[-1] == 3


def test_a_live_lock_refuses_at_once_and_a_dead_one_is_stale(cli, tmp_path, base):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    args = [*base, f"--log.run_dir={fresh}"]
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (fresh / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        t = time.perf_counter()
        code, _, err = cli(*args)
        assert code == 2 and f"in use by process {sleeper.pid}" in err, err
        assert time.perf_counter() - t < 5  # refused before any model or data work
        assert sorted(p.name for p in fresh.iterdir()) == [".lock"]
    finally:
        sleeper.kill()
        sleeper.wait()
    code, _, err = cli(*args)  # the holder is gone: a stale lock is taken over
    assert code == 0, err
    assert (fresh / "final").is_dir() and not (fresh / ".lock").exists()


def test_a_lock_on_another_host_is_respected(cli, tmp_path, base):
    fresh = tmp_path / "fresh"
    fresh.mkdir()
    (fresh / ".lock").write_text(json.dumps({"pid": 1, "host": "some-other-machine"}))
    code, _, err = cli(*base, f"--log.run_dir={fresh}")
    assert code == 2 and "some-other-machine" in err, err


def test_the_lock_works_without_hard_links(tmp_path, monkeypatch):
    from reasonrl.errors import UserError
    from reasonrl.train import rundir

    def no_links(src, dst):
        raise PermissionError("this filesystem has no hard links")

    monkeypatch.setattr("os.link", no_links)
    rundir.acquire(tmp_path)
    assert json.loads((tmp_path / ".lock").read_text()) == {"pid": os.getpid(), "host": socket.gethostname()}
    rundir.release(tmp_path)
    assert list(tmp_path.iterdir()) == []
    (tmp_path / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere"}))
    with pytest.raises(UserError, match="in use by process 1 on elsewhere"):
        rundir.acquire(tmp_path)


def test_jsonl_source_takes_a_test_source_and_warns_without_one(cli, tmp_path, base):
    from reasonrl.tasks.sources import heldout_is_train, load_split

    train, test = tmp_path / "train.jsonl", tmp_path / "test.jsonl"
    line = '{{"prompt": "Ana has {a} pens. She buys 1 more. How many pens does Ana have now?", ' \
           '"response": "{a} + 1 = {b}. The answer is \\\\boxed{{{b}}}.", "answer": "{b}"}}\n'
    train.write_text("".join(line.format(a=a, b=a + 1) for a in range(1, 9)))
    test.write_text("".join(line.format(a=a, b=a + 1) for a in range(50, 53)))
    cfg = load_config(None, [f"--data.source={train}", f"--data.test_source={test}"])
    assert [r["answer"] for r in load_split(cfg.data, "test")] == ["51", "52", "53"]
    assert [r["answer"] for r in load_split(cfg.data, "train")][:2] == ["2", "3"]
    assert not heldout_is_train(cfg.data)

    code, _, err = cli(*base, "--overwrite", f"--data.source={train}", "--train.steps=1")
    assert code == 0, err
    assert "held-out accuracy will be measured on training problems" in err
    assert heldout_is_train(load_config(None, [f"--data.source={train}"]).data)
    code, _, err = cli(*base, "--overwrite", f"--data.source={train}", f"--data.test_source={test}",
                       "--train.steps=1")
    assert code == 0, err
    assert "warning" not in err


def test_warnings_unused_sections_and_pass_k_above_the_sample_count(cli, tmp_path, finished_run, micro_model_dir):
    code, _, err = cli("world", "--config", finished_run.parent / "micro.toml", "--out", tmp_path / "w.jsonl",
                       "--num", "3")
    assert code == 0, err
    assert err.count("reasonrl: warning:") == 1
    assert "does not use section(s) [model], [train], [optim], [rollout], [log]" in err
    data = tmp_path / "w.jsonl"
    code, _, err = cli("eval", "--model", micro_model_dir, "--data", data, "--out", tmp_path / "ev",
                       "--num-samples", "2", "--eval.pass_k=[1, 4]", "--rollout.max_new_tokens=2",
                       "--log.progress=false")
    assert code == 0, err
    assert err.strip() == "reasonrl: warning: eval.pass_k [4] exceeds eval.num_samples 2: not reported"
    assert "pass@4" not in json.loads((tmp_path / "ev" / "summary.json").read_text())


@pytest.mark.slow
def test_under_torchrun_rank_0_locks_and_a_locked_dir_stops_every_rank(tmp_path, finished_run):
    def torchrun(run_dir):
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--standalone", "-m", "reasonrl",
               "sft", "--config", str(finished_run.parent / "micro.toml"), f"--log.run_dir={run_dir}"]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})

    r = torchrun(tmp_path / "two")
    assert r.returncode == 0, r.stderr[-3000:]
    assert (tmp_path / "two" / "final").is_dir() and not (tmp_path / "two" / ".lock").exists()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        (tmp_path / "locked").mkdir()
        (tmp_path / "locked" / ".lock").write_text(json.dumps({"pid": sleeper.pid, "host": socket.gethostname()}))
        r = torchrun(tmp_path / "locked")
    finally:
        sleeper.kill()
        sleeper.wait()
    assert r.returncode != 0
    assert r.stderr.count(f"reasonrl: error: log.run_dir {tmp_path / 'locked'} is in use by process") == 2
    assert sorted(p.name for p in (tmp_path / "locked").iterdir()) == [".lock"]


def test_eval_data_is_exactly_what_is_evaluated(cli, tmp_path, micro_model_dir):
    """`eval --data X` evaluates X even when the config names a data.test_source (that is for the trainers)."""
    data, empty = tmp_path / "w.jsonl", tmp_path / "empty.jsonl"
    assert cli("world", "--out", data, "--num", "2", "--split", "test")[0] == 0
    empty.write_text("")
    toml = tmp_path / "c.toml"
    toml.write_text(f'[data]\ntest_source = "{empty}"\n[rollout]\nmax_new_tokens = 2\n[log]\nprogress = false\n')
    code, _, err = cli("eval", "--config", toml, "--model", micro_model_dir, "--data", data, "--out", tmp_path / "ev")
    assert code == 0, err
    assert json.loads((tmp_path / "ev" / "summary.json").read_text())["num_problems"] == 2


def test_an_adapter_runs_fingerprint_covers_its_base(tmp_path):
    """A LoRA adapter directory as model.path loads its base from `base_model_name_or_path`: retraining the base
    (`sft --overwrite` into it) must change what inputs.json records, or a resume would mix the new base with the
    old adapter. Mutation: fingerprinting the adapter directory alone -> the two fingerprints are equal."""
    from reasonrl.config import load_config
    from reasonrl.train.rundir import input_fingerprints

    base, adapter = tmp_path / "base", tmp_path / "adapter"
    base.mkdir()
    adapter.mkdir()
    (base / "config.json").write_text("{}")
    (base / "model.safetensors").write_bytes(b"weights one")
    (adapter / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": str(base)}))
    (adapter / "adapter_model.safetensors").write_bytes(b"adapter")
    cfg = load_config(None, [f"--model.path={adapter}", f"--model.tokenizer_path={base}"])
    before = input_fingerprints(cfg)["model.path"]
    (base / "model.safetensors").write_bytes(b"weights two")
    assert input_fingerprints(cfg)["model.path"] != before


def test_a_torn_metrics_line_from_a_crash_does_not_stop_the_resume(cli, run, base):
    """A crash mid-write leaves metrics.jsonl without its last newline: the resume drops the torn line (the step is
    replayed from the checkpoint). Mutation: parsing every line -> the torn line is an error, exit 2."""
    with (run / "metrics.jsonl").open("a") as f:
        f.write('{"step": 3, "lo')
    code, _, err = cli(*base, "--resume", "--train.steps=3")
    assert code == 0, err
    assert _steps(run)[-1] == 3 and '"lo\n' not in (run / "metrics.jsonl").read_text()
