"""Reflection probes across checkpoints: checkpoint parsing, grading, and a real run on two micro SFT checkpoints."""

import json
import zlib
from pathlib import Path

import numpy as np
import pytest

from reasonrl import cli
from reasonrl.errors import UserError
from reasonrl.reflection import probe
from reasonrl.reflection.metrics import METRICS
from reasonrl.reflection.probe import (
    is_correct,
    parse_checkpoints,
    probe_items,
    prompt_template,
    reflection_command,
)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    """Three log-spaced checkpoints (steps 1, 2 and 4) of the micro preset, from the `reasonrl sft` CLI entry point
    (in process: a second interpreter would import torch and transformers again). Three, so a Pearson r across
    them is not +-1 by construction."""
    out = tmp_path_factory.mktemp("sft_run")
    assert cli.run(["sft", "--config", str(REPO / "configs/sft_tiny.toml"), "--model.preset=micro",
                    "--train.steps=4", "--train.log_checkpoints=3", "--train.save_every=0", "--data.num_train=64",
                    "--train.eval_examples=2", f"--log.run_dir={out}"]) == 0
    return out


def test_probe_end_to_end(run_dir, tmp_path, capsys, monkeypatch):
    # a micro model never answers right, so every metric would stay 0 and every r be undefined: grade by a checksum
    # of the continuation instead (deterministic, and it changes as the checkpoints' outputs do)
    monkeypatch.setattr(probe, "is_correct", lambda data, text, gold: zlib.crc32(text.encode()) % 2 == 0)
    out = tmp_path / "probe"
    result = reflection_command(str(run_dir), "synthetic", str(out), num_items=6, seeds=(0, 1), max_new_tokens=12)
    rows = [json.loads(line) for line in (out / "table.jsonl").read_text().splitlines()]
    assert [(r["step"], r["trigger"]) for r in rows] == [(s, t) for s in (1, 2, 4) for t in ("none", "Wait,")]
    assert rows == result["table"]
    for r in rows:
        assert r["accuracy"] == r["explicit_reflection_accuracy"] + r["implicit_reflection_accuracy"]
        assert all(0.0 <= r[m] <= 1.0 for m in METRICS)
        assert r["num_records"] == 12  # 6 items x 2 seeds
        assert r["compute"] == 6.0 * r["params"] * r["tokens"]
    assert rows[0]["compute"] < rows[2]["compute"] < rows[4]["compute"] and rows[0]["tokens"] < rows[4]["tokens"]
    samples = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(samples) == 3 * 2 * 2 * 6 and {s["seed"] for s in samples} == {0, 1}  # ckpts x triggers x seeds x items
    corr = json.loads((out / "correlations.json").read_text())
    assert set(corr) == {"none", "Wait,"}
    defined = 0
    for trigger, c in corr.items():  # r recomputed here from the table: metric vs log10(6 N D) over 3 checkpoints
        mine = [r for r in rows if r["trigger"] == trigger]
        x = np.log10([6.0 * r["params"] * r["tokens"] for r in mine])
        for m in METRICS:
            y = np.array([r[m] for r in mine])
            if np.ptp(y) == 0:  # a metric that did not move has no r
                assert c[m] is None, (trigger, m)
            else:
                assert c[m] == pytest.approx(np.corrcoef(x, y)[0, 1], abs=1e-9), (trigger, m)
                defined += 1
    assert defined > 0  # at least one metric moved, so the comparison is not vacuous
    assert sorted(p.name for p in (out / "plots").iterdir()) == sorted(f"{m}.png" for m in METRICS)
    assert "Pearson r with log compute" in capsys.readouterr().out


def test_parse_checkpoints_forms(run_dir):
    ckpts = parse_checkpoints(str(run_dir))
    assert [p.name for p in ckpts] == ["step_0000001", "step_0000002", "step_0000004"]
    assert parse_checkpoints(str(run_dir / "checkpoints")) == ckpts
    assert parse_checkpoints(f"{ckpts[1]},{ckpts[0]}") == [ckpts[1], ckpts[0]]
    assert parse_checkpoints(str(ckpts[0])) == [ckpts[0]]


def test_parse_checkpoints_errors(tmp_path):
    with pytest.raises(UserError, match="not a directory"):
        parse_checkpoints(str(tmp_path / "nope"))
    with pytest.raises(UserError, match="no checkpoints"):
        parse_checkpoints(str(tmp_path))
    model = tmp_path / "step_0000003"
    model.mkdir()
    (model / "config.json").write_text("{}")
    with pytest.raises(UserError, match="no meta.json"):
        parse_checkpoints(str(model))
    (model / "meta.json").write_text(json.dumps({"step": 3, "params": 10}))
    with pytest.raises(UserError, match="tokens_seen"):
        parse_checkpoints(f"{model},{model}")
    (model / "meta.json").write_text(json.dumps({"step": 3, "params": 10, "tokens_seen": 5}))
    assert parse_checkpoints(str(tmp_path)) == [model]
    with pytest.raises(UserError, match="not a Hugging Face model"):
        parse_checkpoints(f"{model},{tmp_path}")
    with pytest.raises(UserError, match="--data: 'mmlu'"):
        reflection_command(str(model), "mmlu", str(tmp_path / "out"))


def test_probe_items_and_prompt():
    items = probe_items("synthetic", 9, seed=0)
    assert len(items) == 9 and all(it["wrong_answer"] != it["gold_answer"] for it in items)
    assert len({it["id"] for it in items}) == 9
    tpl, fmt = prompt_template("gsm8k", tokenizer=None)
    assert tpl.startswith("Answer the question:") and fmt == " {trigger} "


def test_is_correct():
    # synthetic: the last \boxed{} counts
    assert is_correct("synthetic", " 12 - 3 = 9. The answer is \\boxed{14}.", "14")
    assert not is_correct("synthetic", " The answer is \\boxed{14}. No, \\boxed{13}.", "14")
    assert not is_correct("synthetic", " 14", "14")
    # gsm8k: flexible-extract takes the last number, commas and $ stripped
    assert is_correct("gsm8k", "Wait, so she pays $1,250.", "1250")
    assert not is_correct("gsm8k", "It is 18 and then 20", "18")
    assert not is_correct("gsm8k", "no number here", "18")


def test_reflection_cli_runs_on_the_checkpoint_series(run_dir, tmp_path, capsys):
    out = tmp_path / "cli_probe"
    assert cli.run(["reflection", "--checkpoints", str(run_dir), "--data", "synthetic", "--out", str(out),
                    "--num-items", "3", "--max-new-tokens", "8"]) == 0
    rows = [json.loads(line) for line in (out / "table.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 1, 2, 2, 4, 4]
    assert all(r["num_records"] == 9 for r in rows)  # 3 items x 3 default seeds
    with pytest.raises(UserError):
        cli.run(["reflection", "--checkpoints", str(tmp_path / "nope")])
    out2 = tmp_path / "cli_probe_triggers"
    assert cli.run(["reflection", "--checkpoints", str(run_dir), "--out", str(out2), "--num-items", "2",
                    "--max-new-tokens", "4", "--trigger", "Wait, I made a mistake"]) == 0
    rows = [json.loads(line) for line in (out2 / "table.jsonl").read_text().splitlines()]
    assert [r["trigger"] for r in rows] == ["Wait, I made a mistake"] * 3
