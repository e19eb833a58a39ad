"""LoRA runs end to end: a PPO run (critic with its own adapters, KL to the policy with adapters off) resumes
bit-identically, `reasonrl export --merge` writes a plain model with the adapter model's logits (and refuses to
clobber), `reasonrl eval` reads the adapter run, and SFT with LoRA under FSDP2 on 2 processes equals 1 process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from reasonrl.config import load_config
from reasonrl.model.logprobs import sequence_logprobs
from reasonrl.train import ppo
from reasonrl.train.checkpoint import list_checkpoints

ROOT = Path(__file__).resolve().parents[2]
ADAPTER = "adapter_model.safetensors"
RUN = ["--data.difficulty=1", "--data.num_train=200", "--train.eval_examples=4", "--train.eval_every=0",
       "--rollout.max_new_tokens=12", "--rollout.num_samples=4", "--rl.prompts_per_step=4", "--rl.minibatch_size=8",
       "--rl.overlong_penalty=true", "--rl.overlong_cache=12", "--rl.value_pretrain_steps=0", "--rl.kl_coef=0.05",
       "--optim.lr=1e-2", "--rl.critic_lr=1e-2", "--log.progress=false", "--log.plots=false",
       "--model.lora_r=4", "--model.lora_alpha=8", "--train.steps=4", "--train.save_every=2"]


@pytest.fixture(scope="module")
def base_dir(micro_model_dir):
    """A saved micro model: the frozen base the adapters go over."""
    return micro_model_dir


def ppo_config(base_dir, run_dir):
    return load_config(ROOT / "configs" / "vapo_tiny.toml", [f"--model.path={base_dir}", f"--log.run_dir={run_dir}",
                                                            *RUN])


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory, base_dir):
    """A finished 4-step LoRA PPO run (checkpoints at steps 2 and 4, final/)."""
    run = tmp_path_factory.mktemp("lora_ppo") / "full"
    ppo.train(ppo_config(base_dir, run))
    return run


def test_lora_ppo_resume_is_bit_identical(lora_run, base_dir, tmp_path, monkeypatch, crash_at_call):
    crashed = ppo_config(base_dir, tmp_path / "crash")
    with crash_at_call(ppo, "compute_advantages", 3):  # in step 3, after the step-2 checkpoint
        ppo.train(crashed)
    from reasonrl import dist

    saved, real_state = [], dist.full_state_dict

    def spy(model, **kw):  # what checkpoints and final/ take from each model
        saved.append(real_state(model, **kw))
        return saved[-1]

    monkeypatch.setattr(dist, "full_state_dict", spy)
    crashed.train.resume = True
    ppo.train(crashed)
    # the frozen base is neither gathered nor copied (a full 7B copy on rank 0 per checkpoint): adapters and the
    # critic's value head only (step-4 checkpoint: policy + critic, then final/)
    assert len(saved) == 3 and all(saved)
    assert all(".lora_" in k or ".modules_to_save." in k for state in saved for k in state), saved[0].keys()

    last_full, last_crash = list_checkpoints(lora_run)[-1], list_checkpoints(tmp_path / "crash")[-1]
    assert last_full.name == last_crash.name == "step_0000004"
    for sub in ("", "critic"):  # the policy's and the critic's adapters, bit for bit
        assert not (last_full / sub / "model.safetensors").exists()  # no copy of the base in a checkpoint
        a, b = load_file(str(last_full / sub / ADAPTER)), load_file(str(last_crash / sub / ADAPTER))
        assert set(a) == set(b) and len(a) > 0
        assert all(torch.equal(a[k], b[k]) for k in a)
    start = ppo_config(base_dir, tmp_path / "unused")
    assert start.model.lora_r == 4
    moved = load_file(str(lora_run / "final" / ADAPTER))
    assert max(v.abs().max().item() for k, v in moved.items() if ".lora_B." in k) > 1e-4  # B left 0: it trained
    # only adapters (and the critic's value head) sit in the optimizers: 2 per block linear, 2 blocks x 7
    state = torch.load(last_full / "trainer_state.pt", weights_only=False)
    counts = {k: sum(len(g["params"]) for g in o["param_groups"]) for k, o in state["optimizers"].items()}
    assert counts == {"policy": 2 * 14, "critic": 2 * 14 + 2}
    metrics = [json.loads(x) for x in (lora_run / "metrics.jsonl").read_text().splitlines()]
    assert all(m["kl"] > 0 for m in metrics if "kl" in m)  # the reference (adapters off) differs from the policy


def _cli(capsys, *argv):
    from reasonrl.cli import main

    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return e.value.code, out, err


def test_export_merge_writes_the_adapter_models_logits_and_never_clobbers(lora_run, base_dir, tmp_path, capsys):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    out = tmp_path / "merged"
    code, stdout, err = _cli(capsys, "export", "--merge", lora_run, out)
    assert code == 0, err
    assert (out / "model.safetensors").is_file() and not (out / "adapter_config.json").exists()
    ids = torch.randint(3, 200, (4, 10), generator=torch.Generator().manual_seed(0))
    am = torch.ones_like(ids)
    with torch.no_grad():  # peft's own unmerged adapter model vs the plain export, no peft
        adapter = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base_dir), lora_run / "final")
        base_logp = sequence_logprobs(AutoModelForCausalLM.from_pretrained(base_dir).eval(), ids, am)
        want = sequence_logprobs(adapter.eval(), ids, am)
        got = sequence_logprobs(AutoModelForCausalLM.from_pretrained(out).eval(), ids, am)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)
    assert (want - base_logp).abs().max() > 1e-4  # the adapter is not a no-op

    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for argv, needle in [
        ((lora_run, out), "exists and is not an empty directory"),  # OUT holds the first export
        ((base_dir, tmp_path / "x"), "is a plain model"),  # a full fine-tune has nothing to merge
        ((tmp_path / "missing", tmp_path / "y"), "not a directory"),
    ]:
        code, _, err = _cli(capsys, "export", "--merge", *argv)
        assert code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
        assert needle in err, err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists()


def test_eval_reads_an_adapter_run_as_its_merged_model(base_dir, tmp_path, capsys):
    from reasonrl.model import lora
    from reasonrl.model.setup import prepare_for_training
    from reasonrl.model.tiny import load_model

    policy, tokenizer = load_model(base_dir)
    prepare_for_training(policy, load_config(None, [f"--model.path={base_dir}", "--model.lora_r=4"]))
    with torch.no_grad():  # an adapter that moves the model far enough to change what it samples
        for name, p in policy.named_parameters():
            if ".lora_B." in name:
                p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.3)
    lora.save_model(policy, tmp_path / "adapter")
    tokenizer.save_pretrained(tmp_path / "adapter")
    code, _, err = _cli(capsys, "export", "--merge", tmp_path / "adapter", tmp_path / "merged")
    assert code == 0, err
    common = ["--data", "synthetic", "--eval.max_examples=4", "--rollout.max_new_tokens=8", "--log.progress=false",
              "--data.difficulty=1"]
    samples = {}
    for name in ("adapter", "merged", "base"):
        model = base_dir if name == "base" else tmp_path / name
        code, _, err = _cli(capsys, "eval", "--model", model, "--out", tmp_path / f"eval_{name}", *common)
        assert code == 0, err
        samples[name] = [json.loads(x)["response"] for x in (tmp_path / f"eval_{name}" / "samples.jsonl")
                         .read_text().splitlines()]
    assert len(samples["adapter"]) == 4 and samples["adapter"] == samples["merged"]
    assert samples["adapter"] != samples["base"]  # it evaluated the adapted model, not its base


@pytest.mark.slow
def test_lora_sft_under_fsdp2_on_two_processes_equals_one(tmp_path, base_dir):
    common = [f"--model.path={base_dir}", "--model.lora_r=4", "--train.steps=3", "--train.save_every=0",
              "--data.num_train=64", "--train.eval_examples=4", "--dist.strategy=fsdp2", "--optim.lr=1e-2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for n, accum in ((1, 2), (2, 1)):
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={n}", "--standalone", "-m",
               "reasonrl", "sft", "--config", str(ROOT / "configs" / "sft_tiny.toml"), *common,
               f"--log.run_dir={tmp_path / str(n)}", f"--train.grad_accum={accum}"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
        assert r.returncode == 0, r.stderr[-3000:]
    losses = [[json.loads(x)["loss"] for x in (tmp_path / str(n) / "metrics.jsonl").read_text().splitlines()
               if "loss" in x] for n in (1, 2)]
    assert len(losses[0]) == 3 and losses[0] == pytest.approx(losses[1], rel=1e-6)
    a, b = (load_file(str(tmp_path / str(n) / "final" / ADAPTER)) for n in (1, 2))
    assert set(a) == set(b) and all(".lora_" in k for k in a)
    assert max(v.abs().max().item() for k, v in a.items() if ".lora_B." in k) > 1e-4
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


DDP_WORKER = r'''
import sys, torch
from reasonrl import dist
from reasonrl.config import load_config
from reasonrl.model import lora
from reasonrl.train import fsdp
from reasonrl.train.rl import Batch, policy_update
from transformers import LlamaConfig, LlamaForCausalLM
dist.init("gloo")
cfg = load_config(None, ["--rl.minibatch_size=8", "--rl.kl_coef=0.5", "--rl.pos_nll_coef=0.1",
                         "--train.max_grad_norm=0", "--model.lora_r=2", "--model.lora_alpha=4",
                         "--model.path=" + sys.argv[2]])
torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                     num_attention_heads=2, num_key_value_heads=2))
lora.add_lora(model, cfg.model, base=sys.argv[2])
with torch.no_grad():  # B starts at 0: give it weight, so the policy differs from its reference (the base)
    for name, p in model.named_parameters():
        if ".lora_B." in name:
            p.copy_(torch.randn(p.shape, generator=torch.Generator().manual_seed(len(name))) * 0.3)
g = torch.Generator().manual_seed(1)
N, L, P = 8, 7, 3
ids = torch.randint(0, 32, (N, L), generator=g)
ids[:, :P] = ids[::2, :P].repeat_interleave(2, dim=0)  # pairs share a prompt: the shared pass outside DDP
mask = torch.zeros(N, L, dtype=torch.bool); mask[:, P:] = True; mask[::3, 6] = False
batch = Batch(input_ids=ids, attention_mask=torch.ones(N, L, dtype=torch.long), mask=mask,
              old_logp=-torch.rand(N, L, generator=g) * mask, scores=torch.randn(N, generator=g),
              correct=torch.arange(N) % 2 == 0, lengths=mask.sum(1), advantages=torch.randn(N, L, generator=g) * mask,
              prompt_len=P)
half = N // dist.world_size()
mine = batch.rows(torch.arange(dist.rank() * half, (dist.rank() + 1) * half))
ref = fsdp.reference_model(model, cfg, torch.device("cpu"), resumed=False)  # the policy itself (adapters off)
model = dist.wrap_model(model, "ddp")
opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.2)
init = {k: v.clone() for k, v in dist.unwrap(model).state_dict().items()}
kls = [policy_update(model, opt, mine, cfg, seed=0, ref_model=ref)["kl"] for _ in range(2)]
if dist.rank() == 0:
    torch.save({"w": dist.unwrap(model).state_dict(), "init": init, "kl": kls}, sys.argv[1])
dist.destroy()
'''


def test_lora_policy_update_with_reference_over_two_ddp_processes_equals_one(tmp_path):
    script = tmp_path / "worker.py"
    script.write_text(DDP_WORKER)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = {}
    for n in (1, 2):
        out[n] = tmp_path / f"w{n}.pt"
        r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={n}",
                            str(script), str(out[n]), str(tmp_path)], capture_output=True, text=True, timeout=300,
                           env=env)
        assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(out[1]), torch.load(out[2])
    assert min(a["kl"] + b["kl"]) > 1e-4  # the reference (the base: adapters off) is not the policy
    for k, v in a["w"].items():
        moved = (v - a["init"][k]).abs().max().item()
        assert (moved > 1e-4) if ".lora_" in k else (moved == 0.0), k  # adapters trained, base frozen
        torch.testing.assert_close(v, b["w"][k], atol=1e-6, rtol=1e-5)
