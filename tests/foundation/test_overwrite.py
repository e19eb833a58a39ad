"""`--overwrite` moves the old run aside (`<run_dir>/.overwritten/`) and deletes it only once the new run has saved
a checkpoint: a new run that dies first leaves the old run restorable, byte for byte (docs/runs.md)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from reasonrl.config import load_config
from reasonrl.errors import UserError
from reasonrl.train import checkpoint as ckpt_lib
from reasonrl.train import rundir

ASIDE = ckpt_lib.OVERWRITTEN


def _snapshot(root: Path) -> dict[str, bytes | None]:
    return {str(p.relative_to(root)): (p.read_bytes() if p.is_file() else None) for p in sorted(root.rglob("*"))}


def _die(*args, **kwargs):
    raise RuntimeError("the machine went away")


def test_a_new_run_that_dies_before_its_first_checkpoint_leaves_the_old_run_aside(tmp_path, finished_run, cli,
                                                                                  monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _snapshot(run)
    sft = ["sft", "--config", str(finished_run.parent / "micro.toml"), f"--log.run_dir={run}"]

    with monkeypatch.context() as m:
        m.setattr(ckpt_lib, "save_checkpoint", _die)  # the new run dies at its first checkpoint
        with pytest.raises(RuntimeError):
            cli(*sft, "--overwrite", "--train.steps=3")
        rundir.release_all()  # what the process's exit does
        assert _snapshot(run / ASIDE) == before  # every file of the old run, unchanged, aside
        assert sorted(p.name for p in run.iterdir()) == sorted([ASIDE, "config.json", "inputs.json", "metrics.jsonl"])
        assert json.loads((run / "config.json").read_text())["train"]["steps"] == 3  # the new run's start

        code, _, err = cli(*sft)  # a fresh run is refused and told where the old run is
        assert code == 2 and "already holds a run" in err and str(run / ASIDE) in err, err
        code, _, err = cli(*sft, "--resume")
        assert code == 2 and "nothing to resume" in err and str(run / ASIDE) in err, err

        with pytest.raises(RuntimeError):  # a second attempt that dies too: its files go, the old run stays aside
            cli(*sft, "--overwrite", "--train.steps=4")
        rundir.release_all()
        assert _snapshot(run / ASIDE) == before
        assert json.loads((run / "config.json").read_text())["train"]["steps"] == 4

    seen, save = [], ckpt_lib.save_checkpoint

    def spy(run_dir, step, **kwargs):
        out = save(run_dir, step, **kwargs)
        seen.append((step, (run / ASIDE).exists()))
        return out

    monkeypatch.setattr(ckpt_lib, "save_checkpoint", spy)
    code, _, err = cli(*sft, "--overwrite")  # a new run that gets through: the old run goes at its first checkpoint
    assert code == 0, err
    assert seen == [(1, False), (2, False)] and not (run / ASIDE).exists()
    steps = [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines() if '"loss"' in x]
    assert steps == [1, 2] and (run / "final" / "model.safetensors").is_file()


def test_restoring_the_old_run_by_hand_as_docs_runs_md_says(tmp_path, finished_run, cli, monkeypatch):
    run = tmp_path / "run"
    shutil.copytree(finished_run, run)
    before = _snapshot(run)
    monkeypatch.setattr(ckpt_lib, "save_checkpoint", _die)
    with pytest.raises(RuntimeError):
        cli("sft", "--config", str(finished_run.parent / "micro.toml"), f"--log.run_dir={run}", "--overwrite")
    rundir.release_all()
    for p in run.iterdir():  # delete what the dead run wrote, move the old run back
        if p.name != ASIDE:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    for p in (run / ASIDE).iterdir():
        p.rename(run / p.name)
    (run / ASIDE).rmdir()
    assert _snapshot(run) == before


def _fake_run(run: Path, *, checkpoint: bool, marker: str) -> None:
    run.mkdir(parents=True, exist_ok=True)
    (run / "config.json").write_text(marker)
    if checkpoint:
        step = ckpt_lib.step_dir(run, 1)
        step.mkdir(parents=True)
        (step / ckpt_lib.STATE_FILE).write_text(marker)


def test_an_aside_left_by_a_run_that_got_further_is_stale(tmp_path):
    run = tmp_path / "run"
    _fake_run(run / ASIDE, checkpoint=True, marker="oldest")
    _fake_run(run, checkpoint=True, marker="newer")  # saved a checkpoint, but died before deleting the aside
    rundir.set_aside(run)
    assert (run / ASIDE / "config.json").read_text() == "newer" and not (run / "config.json").exists()
    assert (run / ASIDE / "checkpoints").is_dir()

    _fake_run(run, checkpoint=False, marker="attempt")  # an attempt that died before its first checkpoint
    rundir.set_aside(run)
    assert (run / ASIDE / "config.json").read_text() == "newer" and not (run / "config.json").exists()

    ckpt_lib.drop_overwritten(run)
    assert not (run / ASIDE).exists()
    rundir.set_aside(run)  # nothing to replace: no aside that a later message would point at
    assert not (run / ASIDE).exists()


def test_every_commands_run_files_count(tmp_path):
    run = tmp_path / "judge_run"
    (run / "judge").mkdir(parents=True)
    (run / "judge" / "judge.json").write_text("{}")
    (run / "eval.json").write_text("{}")
    with pytest.raises(UserError, match=r"already holds a run \(judge, eval.json\)"):
        rundir.check(load_config(None, [f"--log.run_dir={run}"]))  # an rl or sft run into an rm-train run
    cfg = load_config(None, [f"--log.run_dir={run}", "--train.overwrite=true"])
    rundir.check(cfg)
    rundir.claim(cfg, 0)
    assert sorted(p.name for p in (run / ASIDE).iterdir()) == ["eval.json", "judge"]  # replaced whole
    rundir.release(run)
