"""RL trainers end to end on a fresh micro model (CPU, seconds).

A fresh model almost never answers, so the smoke runs switch on DAPO's overlong shaping with a short cache:
response lengths differ, rewards differ, and both the group advantages and the critic get a real signal.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reasonrl.config import load_config
from reasonrl.model.setup import load_or_build
from reasonrl.train import grpo, ppo
from reasonrl.train.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[2]
SMOKE = ["--model.path=", "--model.preset=micro", "--data.difficulty=1", "--data.num_train=200",
         "--train.eval_examples=8", "--train.eval_every=0", "--rollout.max_new_tokens=16", "--rollout.num_samples=4",
         "--rl.prompts_per_step=4", "--rl.minibatch_size=8", "--rl.overlong_penalty=true", "--rl.overlong_cache=14",
         "--optim.lr=1e-3", "--log.progress=false"]


UNDEFINED_OK = ("explained_var", "len_correct", "len_wrong", "adv_len_q")


def _metrics(run_dir):
    return [json.loads(x) for x in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def _changed(cfg, run_dir) -> float:
    """Largest absolute weight change between the fresh model and the trained one."""
    fresh, _ = load_or_build(cfg)
    trained = load_file(str(Path(run_dir) / "final" / "model.safetensors"))
    return max((fresh.state_dict()[k] - v).abs().max().item() for k, v in trained.items())


@pytest.mark.parametrize("recipe", ["vapo_tiny", "dapo_tiny"])
def test_rl_cli_smoke_reward_signal_and_parameters_change(tmp_path, recipe):
    run = tmp_path / recipe
    # the overlong ramp over all 16 tokens is linear in the length: R = score - |y| / 16 for every response
    args = SMOKE + ["--train.steps=3", "--train.save_every=2", f"--log.run_dir={run}", "--rl.overlong_cache=16"]
    if recipe == "vapo_tiny":
        args.append("--rl.value_pretrain_steps=1")
    else:  # nothing is ever correct yet: keep groups by reward variation (the overlong length signal)
        args.append("--rl.dynamic_sampling_on=reward")
    r = subprocess.run([sys.executable, "-m", "reasonrl", "rl", "--config", str(ROOT / "configs" / f"{recipe}.toml"),
                        *args], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    cfg = load_config(ROOT / "configs" / f"{recipe}.toml", args)
    steps = [m for m in _metrics(run) if "reward" in m]
    expect = 4 if recipe == "vapo_tiny" else 3  # one value-pretraining step first
    assert len(steps) == expect
    for m in steps:
        # every metric finite, but for those undefined on some batches (NaN -> null): explained variance when all
        # returns are equal, the length of correct answers when there is none, a length quartile without tokens
        assert all(v is not None for k, v in m.items() if not k.startswith(UNDEFINED_OK)), m
        assert m["num_responses"] >= 4 and 0 < m["resp_len"] <= 16
        # the logged reward recomputed from the logged accuracy and length: score +1 correct, -1 otherwise
        assert m["reward"] == pytest.approx(2 * m["acc"] - 1 - m["resp_len"] / 16, abs=1e-5)
        assert m["time_rollout"] > 0 and m["time_score"] > 0 and m["time_train"] > 0 and m["tokens_per_s"] > 0
    assert _changed(cfg, run) > 1e-6
    if recipe == "vapo_tiny":
        assert steps[0]["phase"] == "value_pretrain" and "policy_loss" not in steps[0]
        assert all("policy_loss" in m and "value_loss" in m for m in steps[1:])
        assert (list_checkpoints(run)[-1] / "critic" / "model.safetensors").is_file()
    else:
        assert all(0.0 <= m["kept_fraction"] <= 1.0 for m in steps)
    assert (run / "plots").is_dir() and any((run / "plots").iterdir())


@pytest.mark.parametrize(("recipe", "source"), [("vapo_tiny", "gsm8k"), ("dapo_tiny", "gsm8k")])
def test_rl_trainers_run_on_real_benchmark_files(tmp_path, recipe, source):
    """The real-use path: the same trainers read GSM8K from ../shared/data and score with the general math
    verifier (a fresh micro model never answers, so the overlong length shaping gives the signal)."""
    from reasonrl.tasks.sources import load_split

    args = SMOKE + ["--train.steps=2", "--train.save_every=0", f"--data.source={source}",
                    f"--log.run_dir={tmp_path}", "--rl.value_pretrain_steps=1", "--rl.dynamic_sampling_on=reward"]
    cfg = load_config(ROOT / "configs" / f"{recipe}.toml", args)
    records = load_split(cfg.data, "train")
    assert len(records) > 400 and all(r["answer"] for r in records[:50])  # real problems, not the world
    result = (ppo if recipe == "vapo_tiny" else grpo).train(cfg)
    steps = [m for m in _metrics(tmp_path) if "reward" in m]
    assert len(steps) == (3 if recipe == "vapo_tiny" else 2)
    assert all(m["num_responses"] >= 4 and m["resp_len"] > 0 for m in steps)
    assert 0.0 <= result["heldout_acc"] <= 1.0
    assert _changed(cfg, tmp_path) > 1e-6


def test_ppo_resume_equals_uninterrupted(tmp_path, crash_at_call):
    base = SMOKE + ["--train.steps=4", "--train.save_every=2", "--rl.value_pretrain_steps=1"]
    full = load_config(ROOT / "configs" / "vapo_tiny.toml", base + [f"--log.run_dir={tmp_path / 'full'}"])
    ppo.train(full)

    crashed = load_config(ROOT / "configs" / "vapo_tiny.toml", base + [f"--log.run_dir={tmp_path / 'crash'}"])
    with crash_at_call(ppo, "compute_advantages", 4):  # in the 4th step (of 5), after the step-2 checkpoint
        ppo.train(crashed)
    crashed.train.resume = True
    ppo.train(crashed)

    a, b = _metrics(tmp_path / "full"), _metrics(tmp_path / "crash")
    assert [m["step"] for m in a] == [m["step"] for m in b]
    for x, y in zip(a, b, strict=True):
        for key in ("reward", "value_loss", "policy_loss", "resp_len"):
            if key in x:
                assert x[key] == pytest.approx(y[key], rel=1e-5, abs=1e-6), (key, x["step"])
    for sub in ("", "critic"):
        wa = load_file(str(list_checkpoints(tmp_path / "full")[-1] / sub / "model.safetensors"))
        wb = load_file(str(list_checkpoints(tmp_path / "crash")[-1] / sub / "model.safetensors"))
        for k in wa:
            torch.testing.assert_close(wa[k], wb[k], rtol=1e-5, atol=1e-6)


def test_vapo_advantages_are_decoupled_and_length_adaptive():
    from reasonrl.train.rl import Batch

    cfg = load_config(ROOT / "configs" / "vapo_tiny.toml")
    mask = torch.tensor([[False, True, True, True], [False, True, True, False]])
    batch = Batch(input_ids=torch.zeros(2, 4, dtype=torch.long), attention_mask=torch.ones(2, 4, dtype=torch.long),
                  mask=mask, old_logp=torch.zeros(2, 4), scores=torch.tensor([1.0, -1.0]),
                  correct=torch.tensor([True, False]), lengths=torch.tensor([3, 2]))
    values = torch.tensor([[0.0, 0.5, 0.2, 0.9], [0.0, -0.3, 0.4, 0.0]])
    cfg.rl.whiten_advantages = False
    cfg.rl.alpha = 0.05  # the paper's value (vapo_tiny uses 1.0 for its ~48-token responses)
    out = ppo.compute_advantages(batch, values, cfg, pretraining=False)
    # critic lambda 1, gamma 1: the return at every response token is the final score
    assert torch.allclose(out.returns[mask], torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0]))
    # lengths 3 and 2 with alpha 0.05 give lambda = clamp(1 - 1/(0.05 l)) = 0: advantages are one-step TD errors
    # row 0: d1 = 0 + 0.2 - 0.5 = -0.3, d2 = 0 + 0.9 - 0.2 = 0.7, d3 = 1 - 0.9 = 0.1
    # row 1: d1 = 0 + 0.4 - (-0.3) = 0.7, d2 = -1 - 0.4 = -1.4
    torch.testing.assert_close(out.advantages[mask], torch.tensor([-0.3, 0.7, 0.1, 0.7, -1.4]))
    out = ppo.compute_advantages(batch, values, cfg, pretraining=True)
    assert torch.allclose(out.returns[mask], torch.tensor([1.0, 1.0, 1.0, -1.0, -1.0]))


WORKER = r'''
import sys, torch
from reasonrl import dist
from reasonrl.config import load_config
from reasonrl.train.rl import Batch, policy_update
from transformers import LlamaConfig, LlamaForCausalLM
dist.init("gloo")
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=2))
g = torch.Generator().manual_seed(1)
N, L = 8, 6
ids = torch.randint(0, 32, (N, L), generator=g)
mask = torch.zeros(N, L, dtype=torch.bool); mask[:, 2:] = True; mask[::3, 5] = False
batch = Batch(input_ids=ids, attention_mask=torch.ones(N, L, dtype=torch.long), mask=mask,
              old_logp=-torch.rand(N, L, generator=g) * mask, scores=torch.randn(N, generator=g),
              correct=torch.arange(N) % 2 == 0, lengths=mask.sum(1), advantages=torch.randn(N, L, generator=g) * mask)
cfg = load_config(None, ["--rl.minibatch_size=8", "--rl.loss_agg=" + sys.argv[2], "--rl.pos_nll_coef=0.1",
                         "--train.max_grad_norm=0"])
half = N // dist.world_size()
mine = batch.rows(torch.arange(dist.rank() * half, (dist.rank() + 1) * half))
if sys.argv[3] == "sgd":
    model = dist.wrap_model(model, "ddp")
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
else:  # Dion: with 2 processes its data-parallel mode (no DDP; P / R factors averaged), clipping on and reached
    from reasonrl.train.run import dion_data_parallel, policy_and_optimizer
    cfg = load_config(None, ["--rl.minibatch_size=8", "--rl.loss_agg=" + sys.argv[2], "--rl.pos_nll_coef=0.1",
                             "--train.max_grad_norm=0.05", "--optim.name=dion", "--optim.lr=0.05",
                             "--optim.rank_fraction=0.5", "--optim.warmup_steps=0"])
    model, opt = policy_and_optimizer(model, cfg)
    assert dion_data_parallel(cfg) == (dist.world_size() == 2)
    assert dist.world_size() == 1 or model is dist.unwrap(model)  # 2 processes: Dion's own sync, no DDP
init = {k: v.clone() for k, v in dist.unwrap(model).state_dict().items()}
norms = [policy_update(model, opt, mine, cfg, seed=0)["grad_norm"] for _ in range(2)]
if dist.rank() == 0:
    w = dist.unwrap(model).state_dict()
    torch.save({"w": w, "moved": max((w[k] - init[k]).abs().max().item() for k in w), "norms": norms,
                "max_norm": cfg.train.max_grad_norm}, sys.argv[1])
dist.destroy()
'''


@pytest.mark.parametrize(("agg", "opt"), [("token-mean", "sgd"), ("seq-mean-token-mean", "sgd"),
                                          ("token-mean", "dion")])
def test_two_process_policy_update_equals_one_process(tmp_path, agg, opt):
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = {}
    for n in (1, 2):
        out[n] = tmp_path / f"w{n}.pt"
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                            str(script), str(out[n]), agg, opt], capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(out[1]), torch.load(out[2])
    assert a["moved"] > 1e-4 and b["moved"] > 1e-4  # the updates did something
    if opt == "dion":  # every step clips, so the clip norm itself must be the whole batch's
        assert min(a["norms"] + b["norms"]) > a["max_norm"] > 0, (a["norms"], b["norms"])
        assert a["norms"] == pytest.approx(b["norms"], rel=1e-5)
    diff = max((a["w"][k] - b["w"][k]).abs().max().item() for k in a["w"])
    assert diff < 1e-6


@pytest.mark.parametrize("name", ["muon", "dion"])
def test_rl_trainers_take_the_optimizer_from_config(tmp_path, name, monkeypatch):
    import reasonrl.optim
    from reasonrl.optim import Dion, Muon

    seen = {}
    real = reasonrl.optim.build_optimizer

    def spy(model, cfg, **kwargs):
        seen["opt"] = real(model, cfg, **kwargs)
        return seen["opt"]

    cfg = load_config(ROOT / "configs" / "dapo_tiny.toml", SMOKE + [
        "--train.steps=1", "--train.save_every=0", f"--log.run_dir={tmp_path}", f"--optim.name={name}",
        "--optim.lr=0.02", "--rl.dynamic_sampling_on=reward"])
    monkeypatch.setattr(reasonrl.optim, "build_optimizer", spy)
    grpo.train(cfg)
    assert isinstance(seen["opt"], {"muon": Muon, "dion": Dion}[name])
    assert _changed(cfg, tmp_path) > 1e-6


@pytest.mark.parametrize("dual_clip", [0.0, 3.0])
def test_policy_update_dual_clip_from_config(dual_clip):
    """rl.dual_clip reaches the loss: with old log-probs far below the current ones every ratio is huge, so
    every negative-advantage token hits the dual bound (and none does with dual_clip = 0, the default)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from reasonrl.train.rl import Batch, policy_update

    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=2))
    n, length = 4, 6
    mask = torch.zeros(n, length, dtype=torch.bool)
    mask[:, 2:] = True
    adv = torch.tensor([1.0, -1.0, -1.0, 1.0])[:, None] * mask
    batch = Batch(input_ids=torch.randint(0, 32, (n, length)), attention_mask=torch.ones(n, length, dtype=torch.long),
                  mask=mask, old_logp=torch.full((n, length), -30.0), scores=torch.zeros(n),
                  correct=torch.zeros(n, dtype=torch.bool), lengths=mask.sum(1), advantages=adv)
    cfg = load_config(None, ["--rl.minibatch_size=4", f"--rl.dual_clip={dual_clip}"])
    stats = policy_update(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, cfg, seed=0)
    if dual_clip:
        assert stats["clipfrac_dual"] == pytest.approx(0.5)
        assert stats["policy_loss"] == pytest.approx(0.5 * (-1.2) + 0.5 * 3.0, abs=1e-5)  # -A(1+0.2) / c|A|
    else:
        assert "clipfrac_dual" not in stats
