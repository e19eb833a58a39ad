"""The training-time held-out evaluation: its protocol (greedy, or avg@k at a temperature with greedy beside it)
and the final evaluation of a run, which is not repeated when the last step was just evaluated."""

import json
from pathlib import Path

import pytest

from reasonrl.config import load_config
from reasonrl.eval import evaluate
from reasonrl.model.setup import load_or_build
from reasonrl.train import grpo

ROOT = Path(__file__).resolve().parents[2]
MICRO = ["--model.path=", "--model.preset=micro", "--data.difficulty=1", "--data.num_train=200",
         "--rollout.max_new_tokens=8", "--log.progress=false"]


@pytest.fixture
def calls(monkeypatch):
    """Record the SamplingParams of every run_eval call; sample 'correct' fractions 0.25 (sampled) / 1.0 (greedy)."""
    seen = []

    def fake_run_eval(model, tokenizer, records, *, params, **kwargs):
        seen.append((params, len(records)))
        mean = 1.0 if params.temperature == 0 else 0.25
        return {"mean@n": mean, "mean_length": 7.0}, []

    monkeypatch.setattr(evaluate, "run_eval", fake_run_eval)
    return seen


def test_heldout_default_is_greedy_once(calls):
    cfg = load_config(None, MICRO + ["--train.eval_examples=5"])
    model, tok = load_or_build(cfg)
    out = evaluate.heldout_accuracy(model, tok, cfg, [{"prompt": "p", "answer": "1"}] * 9)
    assert out == {"heldout_acc": 1.0, "heldout_len": 7.0}
    assert len(calls) == 1
    params, n_records = calls[0]
    assert params.temperature == 0.0 and params.n == 1 and n_records == 5


def test_heldout_sampled_protocol_reports_avg_at_k_and_greedy(calls):
    cfg = load_config(None, MICRO + ["--train.eval_examples=3", "--train.eval_samples=6",
                                     "--train.eval_temperature=1.0", "--train.eval_top_p=0.7"])
    model, tok = load_or_build(cfg)
    out = evaluate.heldout_accuracy(model, tok, cfg, [{"prompt": "p", "answer": "1"}] * 4)
    assert out == {"heldout_acc": 0.25, "heldout_len": 7.0, "heldout_acc_greedy": 1.0}
    (sampled, n1), (greedy, n2) = calls
    assert (sampled.temperature, sampled.top_p, sampled.n) == (1.0, 0.7, 6)
    assert (greedy.temperature, greedy.n) == (0.0, 1)
    assert n1 == n2 == 3
    assert sampled.max_new_tokens == greedy.max_new_tokens == cfg.rollout.max_new_tokens


@pytest.mark.parametrize("eval_every", [0, 2])
def test_final_eval_runs_once(tmp_path, eval_every):
    cfg = load_config(ROOT / "configs" / "grpo_tiny.toml", MICRO + [
        "--train.steps=2", f"--train.eval_every={eval_every}", "--train.eval_examples=4", "--train.eval_samples=2",
        "--train.save_every=0", "--rollout.num_samples=2", "--rl.prompts_per_step=2", "--rl.minibatch_size=4",
        f"--log.run_dir={tmp_path}"])
    result = grpo.train(cfg)
    evals = [r for r in map(json.loads, (tmp_path / "metrics.jsonl").read_text().splitlines()) if "heldout_acc" in r]
    expect_steps = [0, 2] if eval_every else [2]
    assert [r["step"] for r in evals] == expect_steps
    assert all("heldout_acc_greedy" in r for r in evals)
    assert result["heldout_acc"] == evals[-1]["heldout_acc"]
    assert result["heldout_acc_greedy"] == evals[-1]["heldout_acc_greedy"]


def test_metrics_log_fresh_run_drops_an_earlier_runs_lines_and_resume_keeps_its_own(tmp_path):
    from reasonrl.train.logging import MetricsLog, read_metrics

    log = MetricsLog(tmp_path)
    for step in (0, 1, 2, 3):
        log.log({"step": step, "x": step})
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2, 3]
    MetricsLog(tmp_path, resume_step=2)  # resumed from the step-2 checkpoint: step 3 will be replayed
    assert [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl")] == [0, 1, 2]
    fresh = MetricsLog(tmp_path)  # a new run in the same directory
    assert read_metrics(tmp_path / "metrics.jsonl") == [] and fresh.last == {}
