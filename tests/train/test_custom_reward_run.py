"""Your reward in real runs of the trainers (micro model, a few steps): several kinds logged each and summed with
their weights; a run whose reward judges no correctness logs no accuracy; a function that raises or returns NaN at
step N stops the run (exit 1, one line, then the user's frames) with its checkpoints kept, and `--resume` goes on
once it is fixed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reasonrl.config import load_config
from reasonrl.errors import UserCodeError
from reasonrl.train import grpo, ppo
from reasonrl.train.checkpoint import list_checkpoints

SMOKE = ["--model.path=", "--model.preset=micro", "--data.difficulty=1", "--data.num_train=64",
         "--train.eval_examples=4", "--train.eval_every=0", "--rollout.max_new_tokens=12", "--rollout.num_samples=4",
         "--rl.prompts_per_step=2", "--rl.minibatch_size=8", "--log.progress=false", "--log.plots=false"]

REWARDS_PY = '''
def digits(prompts, completions, **columns):
    return [sum(ch.isdigit() for ch in c) / max(1, len(c)) for c in completions]

def fails_at_step_2(prompts, completions, **columns):
    # call 1 is the dry call, call 2 step 1, call 3 step 2 (one call per GRPO step without dynamic sampling)
    fails_at_step_2.calls = getattr(fails_at_step_2, "calls", 0) + 1
    if fails_at_step_2.calls == 3:
        return parse(completions)
    return [0.0] * len(completions)

def parse(completions):
    return [int(c) for c in completions]
'''


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _cli(capsys, *argv: str) -> tuple[int, str]:
    from reasonrl.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    return e.value.code, capsys.readouterr().err


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    (tmp_path / "rewards.py").write_text(REWARDS_PY)
    monkeypatch.chdir(tmp_path)  # reward.kind paths are relative to the working directory
    return tmp_path


def test_several_kinds_are_logged_each_and_summed_with_their_weights(workdir, capsys):
    run = workdir / "run"
    code, err = _cli(capsys, "rl", *SMOKE, "--rl.algo=grpo", "--train.steps=2", f"--log.run_dir={run}",
                     '--reward.kinds=["verifier", "rewards.py:digits"]', "--reward.weights=[1.0, 0.5]")
    assert code == 0, err
    steps = [m for m in _metrics(run) if "reward" in m]
    assert len(steps) == 2
    for m in steps:
        # one process, no overlong shaping: the step's reward is the weighted sum of the logged kinds' means
        assert m["reward"] == pytest.approx(m["reward/verifier"] + 0.5 * m["reward/digits"], abs=1e-6)
        assert 0 <= m["reward/digits"] <= 1 and "reward/verifier/answered" in m
        assert "acc" in m and "len_correct" in m  # the verifier judges correctness
    assert any(m["reward/digits"] > 0 for m in steps)  # a real signal, not a constant 0
    assert "judges no correctness" not in err


def test_a_reward_without_a_judge_of_correctness_logs_no_accuracy(workdir, capsys):
    cfg = load_config(None, [*SMOKE, "--rl.algo=grpo", "--train.steps=1", f"--log.run_dir={workdir / 'run'}",
                             "--reward.kind=rewards.py:digits"])
    capsys.readouterr()
    grpo.train(cfg)
    assert capsys.readouterr().err.count("judges no correctness") == 1
    step = [m for m in _metrics(workdir / "run") if "reward" in m][0]
    assert step["reward"] == pytest.approx(step.get("reward/digits", step["reward"]))
    assert "acc" not in step and "len_correct" not in step and "len_wrong" not in step  # absent, not a wrong 0
    assert "frac_negative" in step  # what needs no correctness is still logged


def test_a_function_raising_at_step_2_stops_with_its_frames_and_resumes_once_fixed(workdir, capsys):
    run = workdir / "run"
    args = ["rl", *SMOKE, "--rl.algo=grpo", "--train.steps=3", "--train.save_every=1", f"--log.run_dir={run}",
            '--reward.kinds=["verifier", "rewards.py:fails_at_step_2"]']
    code, err = _cli(capsys, *args)
    lines = err.splitlines()
    assert code == 1, err
    assert lines[0].startswith("reasonrl: error: reward 'rewards.py:fails_at_step_2' raised at step 2: ValueError: "
                               "invalid literal for int() with base 10: ")
    frames = "\n".join(lines[1:])
    assert "in fails_at_step_2" in frames and "in parse" in frames
    assert all(str(workdir) in line for line in lines[1:] if line.startswith('  File "'))  # only the user's frames
    assert "reasonrl/" not in frames
    assert [c.name for c in list_checkpoints(run)] == ["step_0000001"]  # step 1 kept; step 2 never trained
    assert not (run / "final").exists()
    fixed = REWARDS_PY.replace("return parse(completions)", "return [0.5] * len(completions)")
    (workdir / "rewards.py").write_text(fixed.replace("calls == 3", "calls == 2"))  # and fixed for good: no 2nd call
    code, err = _cli(capsys, *args, "--resume")
    assert code == 0, err
    steps = [m for m in _metrics(run) if "reward" in m]
    assert [m["step"] for m in steps] == [1, 2, 3]
    # the fixed file ran (loaded afresh, its call count from 0): its 2nd call, the resumed run's step 2, gave 0.5
    assert [m["reward/fails_at_step_2"] for m in steps[1:]] == [0.5, 0.0]


def test_ppo_stops_at_the_step_whose_reward_raised(workdir):
    calls = {"n": 0}

    def raises_on_step_2(completions, **kw):
        calls["n"] += 1
        if calls["n"] == 3:  # dry call, step 1, step 2
            raise ZeroDivisionError("no score")
        return [0.0] * len(completions)

    cfg = load_config(None, [*SMOKE, "--train.steps=3", f"--log.run_dir={workdir / 'run'}"])
    with pytest.raises(UserCodeError, match="^reward 'raises_on_step_2' raised at step 2: ZeroDivisionError: no "
                                            "score$"):
        ppo.train(cfg, reward=["verifier", raises_on_step_2], train_data=None)
    assert [m["step"] for m in _metrics(workdir / "run") if "reward" in m] == [1]  # no update on step 2's stand-ins


def test_a_nan_at_step_2_is_one_line(workdir):
    calls = {"n": 0}

    def nan_on_step_2(completions, **kw):
        calls["n"] += 1
        return [float("nan") if calls["n"] == 3 else 1.0] * len(completions)

    cfg = load_config(None, [*SMOKE, "--rl.algo=grpo", "--train.steps=3", f"--log.run_dir={workdir / 'run'}"])
    with pytest.raises(UserCodeError) as e:
        grpo.train(cfg, reward=nan_on_step_2)
    assert str(e.value) == "reward 'nan_on_step_2' at step 2: returned a non-finite score (nan) for response 0 of 8"
    assert e.value.frames == ""
