"""reasonrl/outputs.py: the one place that decides about output paths, and the settings of append-style outputs."""

from __future__ import annotations

import json

import pytest

from reasonrl.errors import UserError
from reasonrl.outputs import (
    BLOCK,
    check_output_dir,
    check_output_file,
    check_previous,
    check_settings,
    fingerprint,
    settings_changes,
    write_atomic,
)


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "data.jsonl").write_text("{}\n")
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "config.json").write_text("{}")
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "final").mkdir()
    (tmp_path / "a_file").write_text("x")
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "data.jsonl")
    return tmp_path


@pytest.mark.parametrize("out, needle", [
    ("data.jsonl", "is also the input --data"),
    ("link.jsonl", "is also the input --data"),  # the same file under another name
    ("model/x.jsonl", "lies inside the input --model"),
    ("model/sub/x.jsonl", "lies inside the input --model"),
    ("model", "is a directory; give a file name"),
    ("a_file/x.jsonl", "a_file is not a directory"),
])
def test_a_file_output_that_would_touch_an_input_is_refused(tree, out, needle):
    inputs = [("--data", tree / "data.jsonl"), ("--model", tree / "model"), ("--unused", ""), ("--name", "gsm8k")]
    with pytest.raises(UserError) as e:
        check_output_file(tree / out, "x --out", inputs=inputs)
    assert needle in str(e.value) and str(e.value).startswith("x --out ")


def test_a_file_output_beside_its_inputs_passes(tree):
    inputs = [("--data", tree / "data.jsonl"), ("--model", tree / "model")]
    assert check_output_file(tree / "out.jsonl", "x --out", inputs=inputs) == tree / "out.jsonl"
    assert check_output_file(tree / "new" / "out.jsonl", "x --out", inputs=inputs)  # its directory made later
    assert not (tree / "new").exists()  # the check creates nothing


def test_a_directory_output_holding_an_input_is_refused_only_where_it_writes(tree):
    model = [("model.path", tree / "run" / "final")]
    with pytest.raises(UserError, match="contains the input model.path"):
        check_output_dir(tree / "run", "log.run_dir", inputs=model)  # owns everything
    with pytest.raises(UserError, match="contains the input model.path"):
        check_output_dir(tree / "run", "log.run_dir", inputs=model, owns=("final",))
    assert check_output_dir(tree / "run", "eval --out", inputs=model, owns=("summary.json",)) == tree / "run"
    with pytest.raises(UserError, match="is also the input model.path"):
        check_output_dir(tree / "run" / "final", "eval --out", inputs=model, owns=("summary.json",))
    with pytest.raises(UserError, match="exists and is not a directory"):
        check_output_dir(tree / "a_file", "eval --out")


def test_a_previous_output_needs_overwrite(tree):
    (tree / "run" / "summary.json").write_text("{}")
    with pytest.raises(UserError, match=r"already holds an evaluation \(summary.json\): pass --overwrite"):
        check_previous(tree / "run", "eval --out", ("summary.json", "samples.jsonl"), desc="an evaluation",
                       overwrite=False)
    assert check_previous(tree / "run", "eval --out", ("summary.json", "samples.jsonl"), desc="x",
                          overwrite=True) == ["summary.json"]


def test_write_atomic_leaves_no_temporary_file(tmp_path):
    path = write_atomic(tmp_path / "d" / "f.json", "one")
    write_atomic(path, "two")
    assert path.read_text() == "two" and sorted(p.name for p in path.parent.iterdir()) == ["f.json"]


def test_fingerprint_follows_the_bytes_not_the_path(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    for d in (a, b):
        d.mkdir()
        (d / "config.json").write_text("{}")
        (d / "model.safetensors").write_bytes(bytes(range(256)) * (4 * BLOCK // 256))  # over 3 MiB: sampled
        (d / ".lock").write_text(str(d))  # dotfiles do not count
        (d / ".cache" / "huggingface").mkdir(parents=True)  # nor what dot-directories hold (a download's metadata)
        (d / ".cache" / "huggingface" / "model.safetensors.metadata").write_text(str(d))
    assert fingerprint(a) == fingerprint(b)  # a moved copy is the same model
    weights = bytearray((b / "model.safetensors").read_bytes())
    weights[len(weights) // 2 + 7] ^= 1  # a byte in the middle block
    (b / "model.safetensors").write_bytes(bytes(weights))
    assert fingerprint(a) != fingerprint(b)
    (b / "model.safetensors").write_bytes((a / "model.safetensors").read_bytes() + b"x")  # a size change
    assert fingerprint(a) != fingerprint(b)
    assert fingerprint(a / "config.json") == fingerprint(b / "config.json")


def test_settings_resume_rule(tmp_path):
    out, settings_path = tmp_path / "out.jsonl", tmp_path / "out.settings.json"
    now = {"temperature": 0.6, "keywords": ("Wait",), "model_weights": "abc"}
    kw = dict(what="retro-search --out", exists=True)
    check_settings(out, settings_path, now, resume=False, overwrite=False, exists=False, what="x")  # a fresh output
    check_settings(out, settings_path, now, resume=False, overwrite=True, **kw)  # replaced
    with pytest.raises(UserError, match="already holds output: pass --resume to continue it or --overwrite"):
        check_settings(out, settings_path, now, resume=False, overwrite=False, **kw)
    with pytest.raises(UserError, match="no out.settings.json beside it"):
        check_settings(out, settings_path, now, resume=True, overwrite=False, **kw)
    with pytest.raises(UserError, match="contradict"):
        check_settings(out, settings_path, now, resume=True, overwrite=True, **kw)
    settings_path.write_text(json.dumps({**now, "keywords": ["Wait"]}))
    check_settings(out, settings_path, now, resume=True, overwrite=False, **kw)  # a tuple saved as a list agrees
    settings_path.write_text(json.dumps({**now, "keywords": ["Wait"], "temperature": 0.9, "old_key": 1}))
    with pytest.raises(UserError) as e:
        check_settings(out, settings_path, now, resume=True, overwrite=False, **kw)
    assert "old_key 1 -> None, temperature 0.9 -> 0.6" in str(e.value)
    assert settings_changes({"a": 1, "b": 2}, {"a": 1, "b": 3}) == {"b": (2, 3)}


def test_a_run_config_compares_only_the_keys_both_sides_have():
    """rundir.config_changes goes through settings_changes(shared_only=True): a key a newer reasonrl added (or an
    older one had) does not refuse a resume; a changed value still does. Mutation: shared_only ignored -> fails."""
    from reasonrl.config import load_config, to_dict
    from reasonrl.train.rundir import config_changes

    saved, now = {"a": 1, "gone": 2, "b": 3}, {"a": 1, "added": 4, "b": 5}
    assert settings_changes(saved, now, shared_only=True) == {"b": (3, 5)}
    assert settings_changes(saved, now) == {"added": (None, 4), "b": (3, 5), "gone": (2, None)}
    cfg = load_config(None, ["--optim.lr=0.5"])
    old = to_dict(cfg)
    old["optim"]["lr"], old["train"]["from_an_old_version"] = 0.25, 1
    del old["train"]["steps"]
    assert config_changes(cfg, old) == {"optim.lr": (0.25, 0.5)}


def test_read_appended_cuts_a_torn_last_line_off_the_file(tmp_path):
    """The resumable writers (retro-search --out, swirl trajectories) read through read_appended. Mutation: not
    truncating the file -> the next append would join the torn line, and the file assertion fails."""
    from reasonrl.outputs import read_appended

    path = tmp_path / "out.jsonl"
    assert read_appended(path) == b""  # no file: nothing done yet
    path.write_bytes(b'{"a": 1}\n{"b": 2}\n{"c": ')
    assert read_appended(path) == b'{"a": 1}\n{"b": 2}\n'
    assert path.read_bytes() == b'{"a": 1}\n{"b": 2}\n'
    assert read_appended(path) == path.read_bytes()  # complete lines are left alone


def test_config_inputs_names_the_set_paths_by_key():
    """One helper lists a command's inputs by config key (rundir.run_inputs, eval's and concise select's --out
    checks). Mutation: keeping unset keys -> ('model.tokenizer_path', '') appears."""
    from reasonrl.config import load_config
    from reasonrl.outputs import MODEL_AND_DATA, config_inputs
    from reasonrl.train.rundir import run_inputs

    cfg = load_config(None, ["--model.path=m", "--data.source=d.jsonl", "--model.tokenizer_path="])
    assert config_inputs(cfg, MODEL_AND_DATA) == [("model.path", "m"), ("data.source", "d.jsonl")]
    assert run_inputs(cfg)[:2] == [("model.path", "m"), ("data.source", "d.jsonl")]
