"""examples/custom_reward runs as its README documents: the README's commands, run from the repository root through the
real CLI, shortened to a step or two and writing under a temporary directory, so the example cannot rot."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "custom_reward"
SHORTER = {  # per command: fewer steps and problems, and the outputs the configs name redirected
    "sft": ["--train.steps=2", "--train.eval_examples=2", "--model.preset=micro", "--log.run_dir={tmp}/sft"],
    "rl": ["--train.steps=1", "--train.eval_examples=2", "--rl.prompts_per_step=2", "--model.path={tmp}/sft/final",
           "--log.run_dir={tmp}/grpo"],
    "eval": ["--eval.max_examples=2"],
}


def documented_commands() -> list[list[str]]:
    """The `reasonrl ...` lines of the README's bash block, as argv lists (the environment assignment dropped)."""
    block = re.search(r"```bash\n(.*?)\n```", (EXAMPLE / "README.md").read_text(), re.S).group(1)
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert all(c[0] == "OMP_NUM_THREADS=1" and c[1] == "reasonrl" for c in commands), commands
    return [c[2:] for c in commands]


def test_the_documented_commands_run(tmp_path, monkeypatch, capsys):
    from reasonrl.cli import main

    monkeypatch.chdir(ROOT)  # the reward's path in config.toml is relative to the repository root
    commands = documented_commands()
    assert [c[0] for c in commands] == ["sft", "rl", "eval"]
    for argv in commands:
        argv = [a.replace("runs/custom_reward", str(tmp_path)) for a in argv]
        extra = [a.replace("{tmp}", str(tmp_path)) for a in SHORTER[argv[0]]]
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main([*argv, *extra, "--log.progress=false"])
        assert e.value.code == 0, capsys.readouterr().err
    step = [json.loads(x) for x in (tmp_path / "grpo" / "metrics.jsonl").read_text().splitlines() if '"reward"' in x][0]
    # config.toml: the verifier and the format bonus, both logged (their weighted sum is tested with a real signal in
    # tests/train/test_custom_reward_run.py; after 2 SFT steps the bonus is usually 0 here)
    assert step["reward"] == pytest.approx(step["reward/verifier"] + step["reward/format_bonus"], abs=1e-6)
    assert 0.0 <= step["reward/format_bonus"] <= 0.5 and "acc" in step
    summary = json.loads((tmp_path / "eval" / "summary.json").read_text())
    assert summary["num_samples"] == 2 and {"reward", "reward/verifier", "reward/format_bonus"} <= set(summary)


def test_format_bonus_by_hand():
    import importlib.util

    spec = importlib.util.spec_from_file_location("example_rewards", EXAMPLE / "rewards.py")
    rewards = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(rewards)
    completions = ["2 + 3 = 5. The answer is \\boxed{5}.", "The answer is 5.", "\\boxed{}", "\\boxed{5"]
    assert rewards.format_bonus(["p"] * 4, completions, answer=["5"] * 4) == [0.5, 0.0, 0.5, 0.0]
