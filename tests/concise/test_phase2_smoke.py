"""Phase 2 through the real CLI: configs/concise_phase2_tiny.toml on a JSONL set like `concise select` writes,
with the length-bias diagnostics recomputed exactly from the logged reward and lengths."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("algo", ["ppo", "grpo"])
def test_phase2_cli_logs_length_bias(tmp_path, tokenizer_dir, algo):
    data = tmp_path / "phase2.jsonl"
    # answers no micro model will produce: every response is wrong, so the outcome reward is -1 for all
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"Ana has {i} pens. How many pens?",
                                        "answer": "987654321", "solve_rate": 0.5}) + "\n" for i in range(4)))
    run = tmp_path / "run"
    # a fresh model rarely ends a response; the stop string "e" ends it at the first token holding an "e", so
    # lengths vary (and the length quartiles are populated)
    args = ["--model.path=", "--model.preset=micro", f"--model.tokenizer_path={tokenizer_dir}",
            f"--data.source={data}", "--train.steps=2", '--rollout.stop=["e"]',
            "--train.eval_examples=2", "--rollout.max_new_tokens=16", "--rollout.num_samples=4",
            "--rl.prompts_per_step=4", "--rl.minibatch_size=8", "--reward.kind=length_penalty", "--reward.wrong=-1",
            "--reward.length_start=0", "--reward.length_end=16", "--reward.length_penalty=-1", "--optim.lr=1e-3",
            f"--log.run_dir={run}", "--log.progress=false"]
    if algo == "grpo":  # the diagnostics come from the shared step record, so GRPO logs them too
        args += ["--rl.algo=grpo", "--rl.kl_in_reward=false"]
    r = subprocess.run([sys.executable, "-m", "reasonrl", "rl", "--config",
                        str(ROOT / "configs" / "concise_phase2_tiny.toml"), *args],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    steps = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in steps if "reward" in m]
    assert len(steps) == 2
    for m in steps:
        # reward = -1 (wrong) + penalty -1 * len/16 for len <= 16, so mean reward = -1 - mean length / 16
        assert m["reward"] == pytest.approx(-1 - m["resp_len"] / 16, abs=1e-5)
        assert m["frac_negative"] == 1.0 and m["len_wrong"] == pytest.approx(m["resp_len"])
        assert m["len_correct"] is None  # no correct response: NaN, logged as null
        assert m["num_responses"] == 16 and m["resp_len"] < 16  # some responses stopped early
        assert m["adv_len_q1"] is not None
        if algo == "ppo":
            assert m["reward/penalized"] > 0
    assert (run / "plots").is_dir() and any((run / "plots").iterdir())
