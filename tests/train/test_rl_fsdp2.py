"""RL under FSDP2 on two gloo ranks vs one process on the whole batch: the real `grpo.train` / `ppo.train`, one step,
both rollout modes (`dist.rollout_params`), with a crafted policy under which rank 1's rows all stop at their first
token while rank 0's run on to different lengths (the case where processes decode different numbers of steps).
The ranks are forked (tests/train/_rl_fsdp2_worker.py); a hang fails after a timeout.

Checked: every rank's rollout is what one process samples from the unsharded policy with its prompts and seed;
the policy (and critic) after the step equal one process's update on both ranks' batches within 1e-5, the
reference model sharded too; Dion's FSDP2 path in RL; a resumed run (sharded Dion and AdamW states) equals an
uninterrupted one; what stays unsupported is one line. With LoRA (`model.lora_r`): the same for the adapters and
the critic's value head (saved gathered whole, in peft's format), the reference being the sharded policy with its
adapters off, the critic's frozen backbone its own shards of the policy's base, the gathered copy carrying the
adapters, and a resumed LoRA run equal to an uninterrupted one."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).parent))
import _rl_fsdp2_worker as w  # noqa: E402

from reasonrl.config import load_config  # noqa: E402
from reasonrl.model import lora  # noqa: E402
from reasonrl.model.setup import prepare_for_training  # noqa: E402
from reasonrl.model.tiny import load_model  # noqa: E402
from reasonrl.model.value import build_critic  # noqa: E402
from reasonrl.reward import build_reward  # noqa: E402
from reasonrl.train import fsdp, rl  # noqa: E402
from reasonrl.train.checkpoint import STATE_FILE  # noqa: E402
from reasonrl.train.run import policy_and_optimizer  # noqa: E402
from reasonrl.train.schedule import build_scheduler  # noqa: E402

TIMEOUT_S = 180


@pytest.fixture(scope="module")
def inputs(tmp_path_factory, world_tokenizer) -> dict:
    root = tmp_path_factory.mktemp("rl_fsdp2")
    model_dir, data = w.write_inputs(root, world_tokenizer)
    return {"root": root, "model_dir": model_dir, "data": data}


@pytest.fixture(scope="module")
def ranks(inputs, free_port, run_forked) -> list[dict]:
    root = inputs["root"]
    run_forked(w.run, (w.WORLD, free_port(), str(root), str(inputs["model_dir"]), str(inputs["data"])),
               nprocs=w.WORLD, timeout_s=TIMEOUT_S, what="the 2-process FSDP2 RL runs")
    return [torch.load(root / f"rank{r}.pt", weights_only=False) for r in range(w.WORLD)]


def _config(inputs, name: str, run_dir: Path, *extra: str):
    algo, scenario_extra = w.SCENARIOS[name]
    return load_config(None, w.overrides(inputs["model_dir"], inputs["data"], run_dir, algo, *scenario_extra, *extra))


def _weights(path: Path) -> dict[str, torch.Tensor]:
    """A saved model's weights: the adapter (peft's format) of a LoRA model, else the whole model."""
    return load_file(str(path / (lora.ADAPTER_WEIGHTS if lora.is_adapter_dir(path) else "model.safetensors")))


def _saved(model: torch.nn.Module, out: Path) -> dict[str, torch.Tensor]:
    """What a checkpoint holds of `model` (`lora.save_model`: its adapter with LoRA), read back."""
    lora.save_model(model, out)
    return _weights(out)


def _assert_moved_and_equal(got: dict, want: dict, start: dict) -> None:
    """`got` (the 2-rank run) equals `want` (one process) within 1e-5 and the update really moved them."""
    assert set(got) == set(want) == set(start)
    assert max((want[k] - start[k]).abs().max().item() for k in start) > 1e-3
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5, msg=k)


def _start(inputs, cfg):
    """`(policy, tokenizer, critic or None)` as the trainers start a run (`run.start_run`, `value.build_critic`):
    seeded first, so LoRA adapters (A is drawn at random) come out as on every rank."""
    torch.manual_seed(cfg.train.seed)
    policy, tokenizer = load_model(inputs["model_dir"])
    prepare_for_training(policy, cfg)
    critic = build_critic(policy, cfg, None) if cfg.rl.algo == "ppo" else None
    return policy, tokenizer, critic


def _one_process_step(inputs, name: str, ranks: list[dict], tmp_path: Path) -> dict:
    """One process's update on both ranks' batches, from the same initial model: `{"policy": (start, after),
    "critic": (start, after)}`, each what a checkpoint holds (`_saved`)."""
    cfg = _config(inputs, name, tmp_path / "ref")
    policy, tokenizer, critic = _start(inputs, cfg)
    ref_model = fsdp.reference_model(policy, cfg, torch.device("cpu"), resumed=False)
    assert ref_model is not None  # the scenarios train with a KL term: the sharded reference model is exercised
    start = {"policy": _saved(policy, tmp_path / "policy0")}
    policy, optimizer = policy_and_optimizer(policy, cfg)
    for group in optimizer.param_groups:  # Dion on FSDP2 runs every matrix transposed; so must the reference
        if group.get("algorithm") == "dion":
            group["transpose"] = True
    build_scheduler(optimizer, cfg.optim, cfg.train.steps)
    out = {}
    if critic is not None:
        start["critic"] = _saved(critic, tmp_path / "critic0")
        batch = rl.concat([r[name]["critic_batches"][0] for r in ranks], tokenizer.pad_token_id)
        critic_opt = torch.optim.AdamW([p for p in critic.parameters() if p.requires_grad], lr=cfg.rl.critic_lr,
                                       betas=tuple(cfg.optim.betas))
        rl.critic_update(critic, critic_opt, batch, cfg, seed=0)
        out["critic"] = (start["critic"], _saved(critic, tmp_path / "critic1"))
    batch = rl.concat([r[name]["policy_batches"][0] for r in ranks], tokenizer.pad_token_id)
    rl.policy_update(policy, optimizer, batch, cfg, seed=0, ref_model=ref_model)
    out["policy"] = (start["policy"], _saved(policy, tmp_path / "policy1"))
    return out


def test_ranks_decode_different_numbers_of_steps(ranks):
    """The scenario is the one that needs lockstep: rank 1's rows all end at their first token, rank 0's later and
    at different lengths, so a lone decode loop would stop after 1 step on rank 1 and after 8 on rank 0."""
    for name in w.SCENARIOS:
        r0, r1 = ranks[0][name]["rollouts"][0], ranks[1][name]["rollouts"][0]
        assert r1["batch"].lengths.tolist() == [1] * w.G, name
        assert r0["batch"].lengths.max() > 1 and len(set(r0["batch"].lengths.tolist())) > 1, name


def test_gathered_replica_is_the_whole_model_with_tied_weights_kept(ranks, world_tokenizer):
    from reasonrl.model.tiny import build_model

    want = build_model("micro", world_tokenizer).state_dict()
    for rank in ranks:
        got = rank["tied_replica"]
        assert got["tied"] and got["class"] == "LlamaForCausalLM"  # no FSDP class: the built-in step applies
        assert set(got["weights"]) == set(want)
        for k in want:
            assert torch.equal(got["weights"][k], want[k]), k


def test_policy_critic_and_reference_are_sharded(ranks):
    for name, (algo, _) in w.SCENARIOS.items():
        want = {"policy": True, "reference": True, **({"critic": True} if algo == "ppo" else {})}
        assert ranks[0][name]["sharded"] == ranks[1][name]["sharded"] == want, name


def test_full_rank_samples_with_the_others_under_dynamic_sampling(ranks):
    """Rank 0 kept its first group (varied rewards) and rank 1 dropped its own (all length 1): rank 0 still
    sampled the second round with rank 1 (the sharded policy decodes on every process) but trained on its
    first group only."""
    a, b = ranks[0]["grpo_dynamic"], ranks[1]["grpo_dynamic"]
    assert len(a["rollouts"]) == len(b["rollouts"]) == 2
    (trained,) = a["policy_batches"]
    assert torch.equal(trained.input_ids, a["rollouts"][0]["batch"].input_ids)


def test_uneven_minibatches_under_fsdp2_equal_ddp(ranks):
    """Minibatches of 4 over 8 + 4 rows, a one-row masked stand-in on rank 1 and prompts shared where they
    repeat: FSDP2 makes DDP's update (same rows per minibatch, same seed) within 1e-5."""
    start = w.dw.tiny_policy().state_dict()
    got, want = ranks[0]["uneven"]["fsdp2"], ranks[0]["uneven"]["ddp"]  # `dist.full_state_dict`: rank 0's
    assert set(got) == set(want) == set(start)
    assert max((want[k] - start[k]).abs().max().item() for k in start) > 1e-3
    for k in want:
        torch.testing.assert_close(got[k], want[k], atol=1e-5, rtol=1e-5, msg=k)


@pytest.mark.parametrize("name", list(w.SCENARIOS))
def test_rollout_under_fsdp2_is_the_unsharded_policys(inputs, ranks, name):
    """What each rank sampled from the sharded policy is what one process samples from the whole policy with the
    same prompts and seed: the gathered copy, and lockstep's extra steps on a finished row, change no sample."""
    cfg = _config(inputs, name, inputs["root"] / "unused")
    policy, tokenizer, _ = _start(inputs, cfg)
    reward = build_reward(cfg, tokenizer=tokenizer)
    for got in (rollout for rank in ranks for rollout in rank[name]["rollouts"]):
        _assert_same_rollout(got, rl.rollout_and_score(policy, tokenizer, got["records"], cfg, got["seed"], reward)[0])


def _assert_same_rollout(got: dict, want: rl.Batch) -> None:
    assert torch.equal(got["batch"].input_ids, want.input_ids)
    assert torch.equal(got["batch"].mask, want.mask)
    torch.testing.assert_close(got["batch"].old_logp, want.old_logp, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(got["batch"].scores, want.scores)


@pytest.mark.parametrize("name", list(w.SCENARIOS))
def test_rollout_mode_is_the_configured_one(inputs, ranks, name):
    """"gathered" gathers once per rollout and once for the final held-out evaluation and decodes on its own;
    "lockstep" never gathers and every decode loop, rollouts and evaluation alike, runs in lockstep."""
    cfg = _config(inputs, name, inputs["root"] / "unused")
    for rank in ranks:
        log = rank[name]
        assert len(log["lockstep"]) > len(log["rollouts"])  # the final evaluation decoded too
        if cfg.dist.rollout_params == "lockstep":
            assert log["gathered"] == 0 and set(log["lockstep"]) == {cfg.dist.lockstep_sync_every}
        else:
            assert log["gathered"] == len(log["rollouts"]) + 1 and set(log["lockstep"]) == {0}


@pytest.mark.parametrize("name", ["grpo_lockstep", "grpo_gathered", "grpo_dion", "grpo_dynamic", "grpo_lora_lockstep",
                                  "grpo_lora_gathered"])
def test_grpo_step_under_fsdp2_equals_one_process(inputs, ranks, name, tmp_path):
    want = _one_process_step(inputs, name, ranks, tmp_path)
    start, after = want["policy"]
    _assert_moved_and_equal(_weights(inputs["root"] / name / "final"), after, start)


@pytest.mark.parametrize("name", ["ppo_lockstep", "ppo_gathered", "ppo_lora_lockstep", "ppo_lora_gathered"])
def test_ppo_step_under_fsdp2_equals_one_process(inputs, ranks, name, tmp_path):
    want = _one_process_step(inputs, name, ranks, tmp_path)
    start, after = want["policy"]
    _assert_moved_and_equal(_weights(inputs["root"] / name / "final"), after, start)
    start, after = want["critic"]
    _assert_moved_and_equal(_weights(inputs["root"] / name / "checkpoints" / "step_0000001" / "critic"), after, start)


@pytest.mark.parametrize("name", [n for n in w.SCENARIOS if "lora" in n])
def test_lora_checkpoints_under_fsdp2_hold_whole_adapters_alone(inputs, name):
    """Saved from the gathered state: peft's format, every adapter (2 per block linear) and the critic's value head
    at full shape, no copy of the frozen base."""
    for sub in ("final", *(["checkpoints/step_0000001/critic"] if name.startswith("ppo") else [])):
        d = inputs["root"] / name / sub
        assert sorted(p.name for p in d.glob("adapter*")) == [lora.ADAPTER_CONFIG, lora.ADAPTER_WEIGHTS]
        assert not (d / "model.safetensors").exists()
        got = _weights(d)
        adapters = {k: v for k, v in got.items() if ".lora_" in k}
        assert len(adapters) == 2 * 2 * 7 and all(k.startswith(lora.PREFIX) for k in got)
        for k, v in adapters.items():  # A (r, in), B (out, r) of a layer whose in / out are 16 or 32: whole
            assert 4 in v.shape and v.numel() >= 4 * 16, (k, v.shape)
        assert set(got) - set(adapters) == ({lora.PREFIX + "score.weight", lora.PREFIX + "score.bias"}
                                           if sub.endswith("critic") else set())


@pytest.mark.parametrize("name", ["ppo_lora_lockstep", "ppo_lora_gathered"])
def test_lora_critic_under_fsdp2_holds_its_own_shards_of_the_frozen_base(ranks, name):
    """On one process the LoRA critic's backbone is the policy's base, the same Parameter objects (test_lora.py).
    `fully_shard` replaces each module's parameters by new DTensor shards, so after the policy and the critic are
    sharded each holds its own shards of that base: equal on every process, never the same objects (a base
    gathered by one model's forward pass is not the other's), the base frozen in both."""
    for rank in ranks:
        got = rank[name]["base_sharing"]
        assert got == {"same_objects": False, "sharded": True, "equal": True, "frozen": True, "num": got["num"]}
        assert got["num"] > 10


def test_gathered_replica_of_a_lora_policy_carries_its_adapters(ranks):
    """The decoding copy of a sharded LoRA policy (adapters not zero) computes the unsharded policy's logits: the
    adapters are injected into the copy and gathered with the base, not dropped (the base's logits differ)."""
    for rank in ranks:
        got = rank["lora_replica"]
        assert got["class"] == "LlamaForCausalLM" and got["lora"] and got["full"]
        assert (got["want"] - got["base"]).abs().max() > 0.1
        torch.testing.assert_close(got["got"], got["want"], atol=1e-5, rtol=1e-5)


def test_lora_rollout_from_trained_adapters_is_one_process_s(inputs, ranks, tmp_path):
    """The uninterrupted LoRA run's second rollout samples from the adapters its first step trained, through the
    gathered copy: it equals one process sampling from the policy with the step-1 checkpoint's adapter (and the
    untrained policy samples other tokens, or the same with other log-probs)."""
    algo, extra = w.LORA_RESUME
    cfg = load_config(None, w.overrides(inputs["model_dir"], inputs["data"], tmp_path / "unused", algo, *extra))
    policy, tokenizer, _ = _start(inputs, cfg)
    reward = build_reward(cfg, tokenizer=tokenizer)
    for rank in ranks:
        got = rank["lora_full"]["rollouts"][1]
        untrained = rl.rollout_and_score(policy, tokenizer, got["records"], cfg, got["seed"], reward)[0]
        same_tokens = untrained.input_ids.shape == got["batch"].input_ids.shape and torch.equal(
            untrained.input_ids, got["batch"].input_ids)
        assert not same_tokens or (untrained.old_logp - got["batch"].old_logp).abs().max() > 1e-3
    lora.load_adapter_weights(policy, inputs["root"] / "lora_full" / "checkpoints" / "step_0000001")
    for rank in ranks:
        got = rank["lora_full"]["rollouts"][1]
        _assert_same_rollout(got, rl.rollout_and_score(policy, tokenizer, got["records"], cfg, got["seed"], reward)[0])


def test_resumed_run_under_fsdp2_equals_uninterrupted(inputs, ranks):
    """PPO with Dion: 2 steps in one go vs 1 step, then resumed for the second. The sharded optimizer states
    (Dion's Q and momenta, the critic's AdamW moments) are saved per rank and read back."""
    full, resumed = inputs["root"] / "full", inputs["root"] / "resumed"
    step1 = resumed / "checkpoints" / "step_0000001"
    assert torch.load(step1 / STATE_FILE, weights_only=False)["optimizer_shards"] == 2
    for r in range(2):
        states = torch.load(step1 / f"rank{r}.pt", weights_only=False)["optimizers"]
        assert set(states) == {"policy", "critic"} and states["policy"]["state"]
    assert (resumed / "resumes.jsonl").is_file()  # it really resumed (train.steps grew from 1 to 2)
    for sub in ("final", "checkpoints/step_0000002/critic"):
        a, b = _weights(full / sub), _weights(resumed / sub)
        for k in a:
            torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-6, msg=f"{sub}: {k}")
    steps = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (full, resumed)]
    a, b = ([x for x in run if x.get("step") == 2 and "policy_loss" in x][0] for run in steps)
    assert a["grad_norm"] > 0.1 and a["resp_len"] > 1  # step 2 learns something: a real test of the resumed state
    assert (b["policy_loss"], b["value_loss"], b["grad_norm"]) == pytest.approx((a["policy_loss"], a["value_loss"],
                                                                                  a["grad_norm"]), rel=1e-6)


def test_resumed_lora_run_under_fsdp2_equals_uninterrupted(inputs, ranks):
    """PPO with LoRA, gathered rollouts: 2 steps in one go vs 1 step, then resumed (the adapters read back from the
    checkpoint's peft files, their AdamW states and the value head's from the per-rank shards)."""
    full, resumed = inputs["root"] / "lora_full", inputs["root"] / "lora_resumed"
    step1 = resumed / "checkpoints" / "step_0000001"
    assert torch.load(step1 / STATE_FILE, weights_only=False)["optimizer_shards"] == 2
    for r in range(2):
        states = torch.load(step1 / f"rank{r}.pt", weights_only=False)["optimizers"]
        assert {k: len(v["state"]) for k, v in states.items()} == {"policy": 2 * 14, "critic": 2 * 14 + 2}
    assert (resumed / "resumes.jsonl").is_file()
    start = _weights(step1)
    for sub in ("final", "checkpoints/step_0000002/critic"):
        a, b = _weights(full / sub), _weights(resumed / sub)
        assert set(a) == set(b) and all(".lora_" in k or ".score." in k for k in a)
        for k in a:
            torch.testing.assert_close(b[k], a[k], atol=1e-6, rtol=1e-6, msg=f"{sub}: {k}")
    assert max((_weights(full / "final")[k] - start[k]).abs().max().item() for k in start) > 1e-3  # step 2 moved
    steps = [[json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()] for run in (full, resumed)]
    a, b = ([x for x in run if x.get("step") == 2 and "policy_loss" in x][0] for run in steps)
    assert a["grad_norm"] > 0.01 and a["kl"] > 0  # the adapters moved the policy off its reference (adapters off)
    assert (b["policy_loss"], b["value_loss"], b["grad_norm"], b["kl"]) == pytest.approx(
        (a["policy_loss"], a["value_loss"], a["grad_norm"], a["kl"]), rel=1e-6)


def test_reference_model_on_resume_is_the_initial_policy(inputs):
    """A resumed run's policy holds the checkpoint's weights; its KL reference must still be where the run started
    (a copy of the resumed policy would be the bug: KL to the checkpoint)."""
    cfg = _config(inputs, "grpo_gathered", inputs["root"] / "unused")
    trained = load_model(inputs["model_dir"])[0]
    with torch.no_grad():
        for p in trained.parameters():
            p.add_(0.1)
    ref = fsdp.reference_model(trained, cfg, torch.device("cpu"), resumed=True)
    start = _weights(inputs["model_dir"])
    assert all(torch.equal(v, start[k]) for k, v in ref.state_dict().items())
    assert not any(p.requires_grad for p in ref.parameters())
    fresh = fsdp.reference_model(trained, cfg, torch.device("cpu"), resumed=False)
    assert all(torch.equal(v, trained.state_dict()[k]) for k, v in fresh.state_dict().items())


def test_sharded_checkpoint_on_another_world_size_is_one_line(inputs, ranks, tmp_path, capsys):
    """A checkpoint whose optimizer states are 2 FSDP2 shards cannot resume on one process: one line, exit 2,
    nothing written."""
    from reasonrl.cli import main

    run = tmp_path / "run"
    shutil.copytree(inputs["root"] / "resumed", run)
    before = sorted(p.name for p in run.rglob("*"))
    args = w.overrides(inputs["model_dir"], inputs["data"], run, "ppo", "--optim.name=dion",
                       "--optim.rank_fraction=0.5", "--optim.scalar_lr=0.01", "--train.steps=3", "--train.resume=true")
    with pytest.raises(SystemExit) as e:
        main(["rl", *args])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and "2 FSDP2 shards" in err, err
    assert sorted(p.name for p in run.rglob("*")) == before


@pytest.mark.parametrize(("extra", "named"), [
    (["--rollout.backend=vllm"], "rollout.backend"),
    (["--dist.rollout_params=lockstep", "--rollout.compile=true"], "rollout.compile"),
])
def test_what_fsdp2_rl_does_not_support_is_one_line(tmp_path, monkeypatch, capsys, extra, named):
    from reasonrl.cli import main

    monkeypatch.setenv("WORLD_SIZE", "2")
    run = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        main(["rl", "--model.path=", "--model.preset=micro", "--rl.prompts_per_step=2", "--rl.minibatch_size=2",
              "--dist.strategy=fsdp2", f"--log.run_dir={run}", *extra])
    err = capsys.readouterr().err.strip()
    assert e.value.code == 2 and len(err.splitlines()) == 1 and named in err, err
    assert not run.exists()
