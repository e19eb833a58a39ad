import json
import subprocess
import sys

import pytest

from reasonrl.config import Config, from_dict, load_config, to_dict, write_resolved
from reasonrl.errors import UserError


def test_defaults_toml_and_overrides_layer(tmp_path):
    f = tmp_path / "c.toml"
    f.write_text('[train]\nsteps = 7\nbatch_size = 4\n[optim]\nname = "muon"\nlr = 1\n')
    cfg = load_config(f, ["--train.steps=9", "--optim.betas=[0.8, 0.9]", "--data.source=gsm8k"])
    assert cfg.train.steps == 9  # override beats file
    assert cfg.train.batch_size == 4  # file beats default
    assert cfg.optim.name == "muon"
    assert cfg.optim.lr == 1.0 and isinstance(cfg.optim.lr, float)  # int accepted for float
    assert cfg.optim.betas == [0.8, 0.9]
    assert cfg.data.source == "gsm8k"
    assert cfg.train.grad_accum == Config().train.grad_accum  # untouched default


def test_resolved_config_round_trips(tmp_path):
    cfg = load_config(None, ["--train.steps=3", "--rollout.stop=['x', 'y']"])
    path = write_resolved(cfg, tmp_path)
    again = from_dict(json.loads(path.read_text()))
    assert to_dict(again) == to_dict(cfg)
    assert again.rollout.stop == ["x", "y"]


@pytest.mark.parametrize(
    "text, overrides, needle",
    [
        ("[nope]\nx = 1\n", [], "unknown section [nope]"),
        ("[train]\nstepz = 1\n", [], "unknown key train.stepz"),
        ('[train]\nsteps = "ten"\n', [], "train.steps: expected int"),
        ("[train]\nsteps = 1.5\n", [], "train.steps: expected int"),
        ('[optim]\nname = "sgd"\n', [], "optim.name: 'sgd' is not one of"),
        ("[train]\nresume = 1\n", [], "train.resume: expected true or false"),
        ("[train\nsteps = 1\n", [], "malformed TOML"),
        ("", ["--train.steps=abc"], "command line: train.steps: expected int"),
        ("", ["--bogus.x=1"], "unknown section [bogus]"),
        ("", ["--train.steps"], "must look like --section.key=value"),
        ("[train]\neval_top_p = 1.5\n", [], "train.eval_top_p must lie in (0, 1], got 1.5"),
        ("[train]\neval_samples = 0\n", [], "train.eval_samples must be >= 1"),
        ("", ["--train.eval_temperature=-1"], "train.eval_temperature must be a finite number >= 0 (0 = greedy)"),
        ("", ["--rl.dual_clip=0.5"], "rl.dual_clip must be 0 (off) or > 1, got 0.5"),
        ("", ["--rl.clip_low=1.5"], "rl.clip_low must lie in [0, 1)"),
        ("", ["--rl.overlong_penalty=true", "--rl.overlong_cache=200", "--rollout.max_new_tokens=64"],
         "rl.overlong_cache must lie in [1, rollout.max_new_tokens = 64]"),
        ("", ['--reward.kinds=["verifier", "r.py:f"]', "--reward.weights=[1]"],
         "reward.weights has 1 entries for 2 reward.kinds"),
        ("", ['--reward.kinds=["verifier"]', "--reward.kind=r.py:f"], "set reward.kind (one reward) or reward.kinds"),
        ("", ["--reward.weights=[1, nan]"], "reward.weights[1] must be a finite number"),
        ("", ["--reward.workers=-1"], "reward.workers must be >= 0"),
        ("", ["--reward.timeout_s=0"], "reward.timeout_s must be a finite number > 0"),
        ("", ["--reward.on_error=stop"], 'reward.on_error must be "fail" or a finite number'),
        ("", ["--reward.on_error=inf"], 'reward.on_error must be "fail" or a finite number'),
        ("[reward]\non_error = true\n", [], "reward.on_error: expected a number or a string, got bool True"),
    ],
)
def test_bad_config_is_a_user_error_naming_the_place(tmp_path, text, overrides, needle):
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(UserError) as e:
        load_config(f, overrides)
    assert needle in str(e.value)
    if not overrides:
        assert str(f) in str(e.value)


def test_malformed_toml_names_the_line(tmp_path):
    f = tmp_path / "bad.toml"
    f.write_text("[train]\nsteps = 1\nbatch_size = = 2\n")
    with pytest.raises(UserError) as e:
        load_config(f)
    assert "line 3" in str(e.value)


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "reasonrl", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=120)


def test_cli_bad_input_exits_2_with_one_line_and_no_traceback(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("[train]\nstepz = 1\n")
    cases = [
        (["sft", "--config", str(tmp_path / "missing.toml")], "config file not found"),
        (["sft", "--config", str(bad)], "unknown key train.stepz"),
        (["sft", "--train.steps=x"], "train.steps: expected int"),
        (["eval", "--model", str(tmp_path), "--data", "synthetic"], "not a Hugging Face model directory"),
    ]
    for args, needle in cases:
        r = _cli(*args)
        assert r.returncode == 2, (args, r.stderr)
        assert needle in r.stderr, (args, r.stderr)
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_help_lists_every_command():
    r = _cli("--help")
    assert r.returncode == 0
    for cmd in ("world", "tokenizer", "init-model", "sft", "eval", "demo"):
        assert cmd in r.stdout


def test_on_error_takes_a_word_or_a_number(tmp_path):
    f = tmp_path / "r.toml"
    f.write_text("[reward]\non_error = -1\n")  # a TOML integer is a number
    assert load_config(f).reward.on_error == -1.0
    assert load_config(None, ["--reward.on_error=0.25"]).reward.on_error == 0.25
    assert load_config(None, ["--reward.on_error=fail"]).reward.on_error == "fail"
