"""The RL update on cases with a known answer: a fresh rollout has ratio 1 (sampling temperature, no dropout),
the positive-example NLL and the KL penalty equal their formulas recomputed here and move the policy the right
way, `rl.recompute_old_logp` replaces the sampler's log-probs, the prompt stream is read without replacement and
resumably, and greedy sampling or a batch that does not divide over the processes is refused up front."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from reasonrl.config import load_config
from reasonrl.model.logprobs import sequence_logprobs
from reasonrl.model.tiny import build_shape
from reasonrl.reward import build_reward
from reasonrl.tasks import synthetic
from reasonrl.train import grpo, rl
from reasonrl.train.checkpoint import STATE_FILE, list_checkpoints

ROOT = Path(__file__).resolve().parents[2]
T = 0.7  # every test samples and trains at T != 1, so a dropped temperature shows


def _model(tokenizer, *, seed: int = 0, dropout: float = 0.0):
    return build_shape(tokenizer, seed=seed, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=2, num_key_value_heads=2, attention_dropout=dropout)


def _config(*overrides: str):
    return load_config(None, [f"--rollout.temperature={T}", "--rollout.max_new_tokens=10", "--rollout.num_samples=2",
                              "--rl.minibatch_size=64", "--rl.loss_agg=token-mean", "--train.max_grad_norm=0",
                              *overrides])


def _rollout(model, tokenizer, cfg) -> rl.Batch:
    records = synthetic.generate(4, seed=1, difficulty=1)
    batch, _ = rl.rollout_and_score(model, tokenizer, records, cfg, 0, build_reward(cfg, tokenizer=tokenizer))
    assert batch.mask.sum() > 40
    return batch


def _logp(model, batch: rl.Batch) -> torch.Tensor:
    """Teacher-forced log-probs at T, eval mode: an independent evaluation of what the update optimises."""
    model.eval()
    with torch.no_grad():
        return sequence_logprobs(model, batch.input_ids, batch.attention_mask, temperature=T)


def test_fresh_rollout_has_ratio_one_at_the_sampling_temperature_with_dropout(world_tokenizer):
    """Catches a policy update at T = 1 (or any T but the sampler's) and dropout left on in the update."""
    model = _model(world_tokenizer, dropout=0.3)
    cfg = _config()
    batch = _rollout(model, world_tokenizer, cfg)
    model.train()  # where the trainer leaves it after a held-out evaluation
    batch.advantages = torch.ones_like(batch.old_logp) * batch.mask
    stats = rl.policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, cfg, seed=0)
    assert stats["ratio_mean"] == pytest.approx(1.0, abs=1e-5)
    assert stats["ratio_max"] == pytest.approx(1.0, abs=1e-4)
    assert stats["clipfrac_low"] == stats["clipfrac_high"] == 0.0


@pytest.mark.parametrize("recompute", [False, True])
def test_recompute_old_logp_replaces_the_samplers_logprobs(world_tokenizer, monkeypatch, recompute):
    real = rl.sample

    def zeroed(*a, **k):  # a sampler whose log-probs are wrong: only a recomputation can fix them
        ro = real(*a, **k)
        ro.logprobs = torch.zeros_like(ro.logprobs)
        return ro

    monkeypatch.setattr(rl, "sample", zeroed)
    model = _model(world_tokenizer)
    cfg = _config(f"--rl.recompute_old_logp={str(recompute).lower()}", "--rollout.batch_size=3")  # 3 chunks of rows
    batch = _rollout(model, world_tokenizer, cfg)
    if recompute:
        expect = torch.where(batch.mask, _logp(model, batch), 0.0)
        torch.testing.assert_close(batch.old_logp, expect, atol=1e-6, rtol=0)
        assert batch.old_logp[batch.mask].max() < -1e-3  # real log-probs, not the zeros
    else:
        assert batch.old_logp.eq(0).all()


def test_positive_nll_hand_value_and_direction(world_tokenizer):
    """VAPO Eq. 9-10 with A = 0 and ratio 1: the loss is exactly mu * (-mean logp over the correct samples' tokens),
    and a step on it makes those tokens more likely (a flipped sign makes them less likely)."""
    model = _model(world_tokenizer)
    cfg = _config("--rl.pos_nll_coef=0.5")
    batch = _rollout(model, world_tokenizer, cfg)
    batch.correct = torch.arange(batch.size) % 3 == 0  # mark a third of the samples correct
    batch.advantages = torch.zeros_like(batch.old_logp)
    pos = batch.mask & batch.correct[:, None]
    before = _logp(model, batch)[pos].mean()
    stats = rl.policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, cfg, seed=0)
    assert stats["pos_nll"] == pytest.approx(-before.item(), rel=1e-5)
    assert stats["policy_loss"] == pytest.approx(0.5 * -before.item(), rel=1e-5)
    rl.policy_update(model, torch.optim.SGD(model.parameters(), lr=0.5), batch, cfg, seed=0)
    assert _logp(model, batch)[pos].mean() > before + 1e-3


@pytest.mark.parametrize("estimator", ["k1", "k3"])
def test_kl_penalty_hand_value_and_direction(world_tokenizer, estimator):
    """kl_coef > 0 against a different reference: the penalty equals the estimator written out here on the
    teacher-forced log-probs at T (token mean), and a step on it moves the policy towards the reference."""
    model, ref = _model(world_tokenizer, seed=0), _model(world_tokenizer, seed=1).eval()
    cfg = _config("--rl.kl_coef=0.2", f"--rl.kl_estimator={estimator}")
    batch = _rollout(model, world_tokenizer, cfg)
    batch.advantages = torch.zeros_like(batch.old_logp)
    m = batch.mask

    def kl_now() -> float:
        d = (_logp(ref, batch) - _logp(model, batch))[m]  # log(ref / pi) per token
        per_token = -d if estimator == "k1" else d.exp() - d - 1  # k1 = log(pi / ref); k3 = r - log r - 1
        return per_token.mean().item()

    before = kl_now()
    assert before > 0.01
    stats = rl.policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, cfg, seed=0, ref_model=ref)
    assert stats["kl"] == pytest.approx(before, rel=1e-4)
    assert stats["policy_loss"] == pytest.approx(0.2 * before, rel=1e-4)  # A = 0: the penalty is the whole loss
    rl.policy_update(model, torch.optim.SGD(model.parameters(), lr=0.5), batch, cfg, seed=0, ref_model=ref)
    if estimator == "k3":  # k1's gradient is the score function, not a descent direction on the sampled tokens
        assert kl_now() < before - 1e-4


def test_step_prompts_reads_each_epoch_once_in_order():
    records = [{"i": i} for i in range(40)]
    state = {"prompt_cursor": 0}
    draws = [[r["i"] for r in rl.step_prompts(records, state, num=8, seed=3)] for _ in range(6)]
    assert sorted(i for d in draws[:5] for i in d) == list(range(40))  # epoch 1: every record once
    assert state["prompt_cursor"] == 48
    assert len(set(draws[5])) == 8 and draws[5] != draws[0]  # epoch 2: a fresh permutation
    resumed = {"prompt_cursor": 16}  # a checkpoint's cursor after two steps continues the same stream
    assert [r["i"] for r in rl.step_prompts(records, resumed, num=8, seed=3)] == draws[2]


class _Crash(Exception):
    pass


def test_dynamic_sampling_rounds_continue_the_stream_and_resume(tmp_path, monkeypatch):
    """Nothing is ever correct for a fresh model, so dynamic sampling uses all its rounds: every round draws new
    prompts, checkpoints hold the cursor, and a resumed run draws what the uninterrupted one drew. The rounds of a
    step share one decoding model (`rl.decoder`: under FSDP2 a gathered copy, made once per step, not per round)."""
    args = ["--model.path=", "--model.preset=micro", "--data.difficulty=1", "--data.num_train=100",
            "--train.eval_examples=2", "--train.eval_every=0", "--rollout.max_new_tokens=6", "--rollout.num_samples=2",
            "--rl.prompts_per_step=4", "--rl.minibatch_size=8", "--rl.dynamic_sampling=true",
            "--rl.max_sample_rounds=2", "--rl.overlong_cache=4", "--train.steps=2", "--train.save_every=1",
            "--log.progress=false",
            "--log.plots=false"]
    real = rl.rollout_and_score
    drawn: list[list[str]] = []

    def spy(policy, tokenizer, records, *a, **k):
        if crash_at is not None and len(drawn) == crash_at:
            raise _Crash()
        drawn.append([r["prompt"] for r in records])
        return real(policy, tokenizer, records, *a, **k)

    decoders, real_decoder = [], rl.decoder

    def count(policy, cfg):
        decoders.append(1)
        return real_decoder(policy, cfg)

    monkeypatch.setattr(rl, "rollout_and_score", spy)
    monkeypatch.setattr(rl, "decoder", count)
    crash_at = None
    grpo.train(load_config(ROOT / "configs" / "dapo_tiny.toml", args + [f"--log.run_dir={tmp_path / 'full'}"]))
    full = drawn[:]
    assert len(full) == 4 and len({p for d in full for p in d}) == 16  # 2 steps x 2 rounds x 4 new prompts
    assert len(decoders) == 2  # one decoding model per step
    cursors = [torch.load(c / STATE_FILE, weights_only=False)["progress"]["prompt_cursor"]
               for c in list_checkpoints(tmp_path / "full")]
    assert cursors == [8, 16]
    drawn.clear()
    crash_at = 2  # in step 2, after the step-1 checkpoint
    cfg = load_config(ROOT / "configs" / "dapo_tiny.toml", args + [f"--log.run_dir={tmp_path / 'crash'}"])
    with pytest.raises(_Crash):
        grpo.train(cfg)
    crash_at = None
    cfg.train.resume = True
    grpo.train(cfg)
    assert drawn == full


@pytest.mark.parametrize(("override", "world", "named"), [
    ("--rollout.temperature=0", "1", "rollout.temperature"),  # greedy rollouts: no log-probs to form a ratio with
    ("--rl.prompts_per_step=3", "2", "rl.prompts_per_step"),  # 3 prompts over 2 processes
    ("--rl.minibatch_size=5", "2", "rl.minibatch_size"),
])
def test_rl_refuses_greedy_sampling_and_indivisible_batches(tmp_path, monkeypatch, capsys, override, world, named):
    """One line, exit 2, before anything is written; WORLD_SIZE is read before the process group is joined."""
    from reasonrl.cli import main

    monkeypatch.setenv("WORLD_SIZE", world)
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["rl", "--config", str(ROOT / "configs" / "dapo_tiny.toml"), "--model.path=", "--model.preset=micro",
              "--rl.prompts_per_step=4", "--train.steps=1", "--train.eval_examples=2", "--rollout.max_new_tokens=4",
              "--rl.overlong_cache=2", "--data.num_train=50", "--log.progress=false", f"--log.run_dir={run}", override])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and named in err, err
    assert not run.exists()
