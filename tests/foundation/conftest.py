"""Fixtures for the CLI-level tests: a micro-model config file, a saved micro model, and `cli(...)`, which runs
`reasonrl.cli.main` in this process and returns (exit code, stdout, stderr)."""

from __future__ import annotations

import pytest

MICRO_TOML = """
[model]
preset = "micro"
tokenizer_path = "{tokenizer}"
[data]
difficulty = 1
num_train = 64
num_test = 4
max_len = 96
[train]
steps = 2
batch_size = 4
eval_every = 0
eval_examples = 2
save_every = 1
[optim]
lr = 3e-3
warmup_steps = 1
[rollout]
max_new_tokens = 6
batch_size = 8
[log]
run_dir = "{run_dir}"
progress = false
plots = false
"""


@pytest.fixture(scope="session")
def make_micro_toml(tokenizer_dir):
    """`make_micro_toml(path, run_dir)` writes a config for a 2-step micro-model run (checkpoint every step) with
    the session tokenizer, so no tokenizer is trained, and returns `path`."""

    def make(path, run_dir):
        path.write_text(MICRO_TOML.format(tokenizer=tokenizer_dir, run_dir=run_dir))
        return path

    return make


@pytest.fixture(scope="session")
def finished_run(tmp_path_factory, make_micro_toml):
    """A real finished 2-step SFT run (checkpoints at steps 1 and 2, final/, metrics.jsonl, config.json); its config
    is `micro.toml` beside it. Copy it before use."""
    from reasonrl.config import load_config
    from reasonrl.train.sft import train

    root = tmp_path_factory.mktemp("finished")
    toml = make_micro_toml(root / "micro.toml", root / "run")
    train(load_config(toml))
    return root / "run"


@pytest.fixture
def cli(capsys):
    """Run the real CLI entry point in-process: `cli("sft", "--config", ...)` -> (exit code, stdout, stderr)."""
    from reasonrl.cli import main

    def run(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        with pytest.raises(SystemExit) as e:
            main([str(a) for a in argv])
        out, err = capsys.readouterr()
        return e.value.code, out, err

    return run

