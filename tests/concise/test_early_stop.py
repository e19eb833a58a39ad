"""`train.early_stop_patience`: Concise RL's optional stop once held-out length stops falling."""

import json
from pathlib import Path

import pytest

from reasonrl.cli import run
from reasonrl.train import grpo
from reasonrl.train.step_metrics import length_plateaued

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(("lengths", "patience", "stop"), [
    ([50, 40, 42, 41], 2, True),    # best before the last two is 40; min(42, 41) >= 40
    ([50, 40, 42, 41], 3, False),   # best before the last three is 50; 40 < 50: still falling
    ([50, 40], 2, False),           # not enough evaluations yet
    ([50, 40, 40], 1, True),        # equal is not a fall
    ([50, 40, 39.5], 1, False),
    ([50, 60, 70], 0, False),       # 0 = off
])
def test_length_plateaued_hand_values(lengths, patience, stop):
    assert length_plateaued(lengths, patience) is stop


def test_grpo_stops_when_heldout_length_stops_falling(tmp_path, tokenizer_dir, monkeypatch):
    # held-out lengths: 20 at step 0 (not counted), then 10, 8, 9, 9, ...: with patience 2 the run stops at step 4
    lengths = iter([20.0, 10.0, 8.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0, 9.0])
    monkeypatch.setattr(grpo, "heldout_accuracy",
                        lambda *a, **k: {"heldout_acc": 0.0, "heldout_len": next(lengths)})
    out = tmp_path / "run"
    assert run(["rl", "--config", str(ROOT / "configs" / "grpo_tiny.toml"), "--model.path=", "--model.preset=micro",
                f"--model.tokenizer_path={tokenizer_dir}",
                "--train.steps=10", "--train.eval_every=1", "--train.early_stop_patience=2", "--train.save_every=0",
                "--rl.prompts_per_step=2", "--rollout.num_samples=2", "--rollout.max_new_tokens=4",
                "--rl.minibatch_size=4", "--train.eval_examples=2", f"--log.run_dir={out}",
                "--log.progress=false", "--log.plots=false"]) == 0
    rows = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 1, 2, 3, 4]
    assert rows[-1]["early_stop"] is True and "early_stop" not in rows[-2]
    assert (out / "final").is_dir() and (out / "checkpoints").is_dir()
