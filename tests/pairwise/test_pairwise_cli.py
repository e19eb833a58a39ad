"""The real entry points: `reasonrl rm-train` learns a separable preference file (and, without swap, learns the
position instead), its report recomputes exactly from the saved judge, and `reasonrl rl` runs PPO with the
`pairwise` reward against the reference anchor."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from reasonrl.config import load_config
from reasonrl.model.setup import load_or_build
from reasonrl.pairwise.judges import load_judge
from reasonrl.pairwise.rm_train import evaluate_judge, preference_data

ROOT = Path(__file__).resolve().parents[2]
TINY = str(ROOT / "configs" / "pairwise_tiny.toml")


def _cli(*args: str) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "reasonrl", *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


def _metrics(run_dir: Path) -> list[dict]:
    return [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def separable(tmp_path_factory):
    """Pairs whose chosen answer always says `12` and whose rejected one says `13`: learnable in a few steps."""
    path = tmp_path_factory.mktemp("prefs") / "prefs.jsonl"
    rows = [{"prompt": f"Ana has {i} pens.", "chosen": "The answer is \\boxed{12}.",
             "rejected": "The answer is \\boxed{13}."} for i in range(96)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _rm_train(run: Path, data: Path, tokenizer_dir, *extra: str) -> list[str]:
    args = ["--config", TINY, f"--model.tokenizer_path={tokenizer_dir}", f"--pairwise.data={data}",
            "--pairwise.num_test=32", "--train.steps=80", "--optim.lr=3e-3", "--train.batch_size=8",
            f"--log.run_dir={run}", *extra]
    _cli("rm-train", *args)
    return args


@pytest.mark.slow
def test_rm_train_swap_learns_a_separable_preference(tmp_path, separable, tokenizer_dir):
    run = tmp_path / "swap"
    _rm_train(run, separable, tokenizer_dir)
    report = json.loads((run / "eval.json").read_text())
    assert report["accuracy"] >= 0.9 and report["consistency"] >= 0.9  # right in both presentation orders
    losses = [m["loss"] for m in _metrics(run) if "loss" in m]
    assert len(losses) == 80 and sum(losses[-5:]) < sum(losses[:5])


@pytest.mark.slow
def test_rm_train_without_swap_learns_the_position(tmp_path, separable, tokenizer_dir):
    # every pair shown chosen-first: "always YES" fits the data, so the judge ignores the content
    run = tmp_path / "noswap"
    _rm_train(run, separable, tokenizer_dir, "--pairwise.swap=false", "--pairwise.chosen_first=1.0")
    report = json.loads((run / "eval.json").read_text())
    assert report["consistency"] <= 0.1 and report["mean_p_first"] > 0.9 and report["accuracy"] == 0.5


def test_rm_train_then_ppo_with_pairwise_reward(tmp_path, tokenizer_dir):
    """rm-train's report recomputes exactly from the saved judge; PPO logs the centred, scaled debiased score."""
    judge_run, tok = tmp_path / "rm", f"--model.tokenizer_path={tokenizer_dir}"
    rm_args = ["--config", TINY, tok, "--train.steps=2", f"--log.run_dir={judge_run}"]
    _cli("rm-train", *rm_args)
    report = json.loads((judge_run / "eval.json").read_text())
    again = evaluate_judge(load_judge(judge_run / "judge"), preference_data(load_config(TINY, rm_args[2:]))[1])
    for key in ("accuracy", "consistency", "ece", "mean_p_first"):
        assert again[key] == pytest.approx(report[key], abs=1e-6)
    assert (judge_run / "plots" / "reliability.png").stat().st_size > 0
    assert len([m for m in _metrics(judge_run) if "loss" in m]) == 2

    run = tmp_path / "ppo"
    args = [tok, f"--pairwise.judge_path={judge_run / 'judge'}", f"--log.run_dir={run}"]
    _cli("rl", "--config", TINY, *args)
    steps = [m for m in _metrics(run) if "reward" in m]
    assert len(steps) == 3
    for m in steps:
        # mean R = 2 (mean s - 1/2): the reward is the debiased score, centred and scaled by pairwise.scale
        assert m["reward"] == pytest.approx(2.0 * (m["reward/score"] - 0.5), abs=1e-5)
        assert 0.0 <= m["reward/consistency"] <= 1.0 and 0.0 <= m["reward/beats_anchor"] <= 1.0
        assert m["num_responses"] == 8 and "policy_loss" in m
    fresh, _ = load_or_build(load_config(TINY, args))
    trained = load_file(str(run / "final" / "model.safetensors"))
    assert max((fresh.state_dict()[k] - v).abs().max().item() for k, v in trained.items()) > 1e-6


@pytest.mark.parametrize("recipe", ["pairwise_ppo.toml", "pairwise_tiny.toml", "pairwise_ppo_paper.toml"])
def test_pairwise_recipes_have_the_per_token_kl(recipe):
    """Notes B.3: pairwise PPO adds "the usual per-token KL penalty" (before issue 23 the toy recipes had none)."""
    cfg = load_config(str(ROOT / "configs" / recipe), [])
    assert cfg.rl.algo == "ppo" and cfg.reward.kind == "pairwise"
    assert cfg.rl.kl_coef == 0.01 and cfg.rl.kl_in_reward and cfg.rl.kl_estimator == "k1"
    assert cfg.pairwise.principle == ""  # documented: no principle in the toy world; the paper recipe leaves it open
    assert "{principle}" in cfg.pairwise.template
