"""Code run by each of the 2 gloo ranks of test_rl_distributed.py (forked, localhost only).

`run(rank, world, port, out_dir)` runs every scenario and saves `out_dir/rank{rank}.pt`; the test process
computes the one-process references with the same input builders below and compares.

Scenarios: PPO advantage whitening on an uneven 5 / 3 row split; GRPO dynamic sampling (with a scripted
rollout) where rank 1 keeps fewer groups than rank 0, then the policy update on those unequal batches; and a
step where rank 1 keeps no group at all.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from reasonrl import dist
from reasonrl.algo.advantages import group_advantages
from reasonrl.config import load_config
from reasonrl.train import grpo, ppo, rl

WORLD = 2
N, L = 8, 6  # the whitening batch
SPLIT = [range(0, 5), range(5, 8)]  # uneven on purpose
G = 4  # group size of the dynamic-sampling scenario
PAD = SimpleNamespace(pad_token_id=0)


def tiny_policy() -> LlamaForCausalLM:
    torch.manual_seed(0)
    return LlamaForCausalLM(LlamaConfig(vocab_size=32, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                                        num_attention_heads=2, num_key_value_heads=2))


def whiten_inputs() -> tuple[rl.Batch, torch.Tensor]:
    g = torch.Generator().manual_seed(3)
    mask = torch.zeros(N, L, dtype=torch.bool)
    mask[:, 2:] = True
    mask[::3, 5] = False
    batch = rl.Batch(input_ids=torch.randint(0, 32, (N, L), generator=g),
                     attention_mask=torch.ones(N, L, dtype=torch.long), mask=mask, old_logp=torch.zeros(N, L),
                     scores=torch.tensor([1.0, -1.0, 1.0, 1.0, -1.0, -1.0, 1.0, -1.0]),
                     correct=torch.zeros(N, dtype=torch.bool), lengths=mask.sum(1))
    values = torch.randn(N, L, generator=g) * mask
    return batch, values


def whiten_config():
    return load_config(None, ["--rl.whiten_advantages=true", "--rl.lam_policy=0.9", "--rl.lam_critic=0.9"])


def sampling_config(*overrides: str):
    """4 prompts per step (2 groups per rank), dynamic sampling on accuracy, up to 3 rounds; one minibatch of 12
    rows: each process's rows in one minibatch, whatever the split."""
    return load_config(None, [f"--rollout.num_samples={G}", "--rl.prompts_per_step=4", "--rl.dynamic_sampling=true",
                              "--rl.max_sample_rounds=3", "--rl.minibatch_size=12", "--rl.ppo_epochs=2",
                              "--rl.loss_agg=token-mean", "--rl.pos_nll_coef=0.1", "--train.max_grad_norm=0",
                              *overrides])


def scripted_rollout(informative):
    """A stand-in for `rl.rollout_and_score`: G fixed rows per record; the first `informative(rank, call)` groups
    have one correct answer (kept by dynamic sampling), the others none; tokens a function of the record alone."""
    calls = {"n": 0}

    def fake(policy, tokenizer, records, cfg, seed, reward):
        num_inform = informative(dist.rank(), calls["n"])
        calls["n"] += 1
        rows = len(records) * G
        ids = torch.stack([torch.randint(0, 32, (L,), generator=torch.Generator().manual_seed(r["i"] * 10 + k))
                           for r in records for k in range(G)])
        mask = torch.zeros(rows, L, dtype=torch.bool)
        mask[:, 2:] = True
        correct = torch.zeros(rows, dtype=torch.bool)
        correct[: num_inform * G : G] = True
        batch = rl.Batch(input_ids=ids, attention_mask=torch.ones(rows, L, dtype=torch.long), mask=mask,
                         old_logp=-0.1 * mask.float(), scores=correct.float() * 2 - 1, correct=correct,
                         lengths=mask.sum(1), prompt_len=2)
        # reward stats: mean 1 on rank 0's responses, 2 on rank 1's; "only0" is a mean only rank 0 has
        stats = {"r": float(dist.rank() + 1), "only0": 1.0 if dist.rank() == 0 else None}
        return batch, {"num_truncated": 0, "time_score": 0.0, "reward_stats": rl.reward_stat_sums(stats, rows)}

    return fake


RECORDS = [{"prompt": f"p{i}", "answer": "0", "i": i} for i in range(40)]


def _collect_and_update(informative, seed: int, *overrides: str) -> dict:
    cfg = sampling_config(*overrides)
    rl.rollout_and_score = scripted_rollout(informative)
    state = rl.progress_state(None)
    batch, info = grpo.collect(None, PAD, RECORDS, cfg, state, reward=None)
    batch.advantages = group_advantages(batch.scores, G)[:, None] * batch.mask
    model = dist.wrap_model(tiny_policy(), "ddp")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    stats = rl.policy_update(model, opt, batch, cfg, seed=seed)
    return {"batch": batch, "cursor": state["prompt_cursor"], "rounds": info["sample_rounds"],
            "w": {k: v.clone() for k, v in dist.unwrap(model).state_dict().items()}, "loss": stats["policy_loss"],
            "reward_means": rl.reward_stat_means(info["reward_stats"])}


def rank1_keeps_one_group(rank: int, call: int) -> int:
    return 2 if rank == 0 else int(call == 1)  # rank 0: both its groups; rank 1: one group in its second round


def rank1_keeps_none(rank: int, call: int) -> int:
    return 2 if rank == 0 else 0


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init("gloo")
    out: dict = {}
    try:
        batch, values = whiten_inputs()
        idx = torch.tensor(list(SPLIT[rank]))
        out["adv"] = ppo.compute_advantages(batch.rows(idx), values[idx], whiten_config(), pretraining=False).advantages
        out["fewer"] = _collect_and_update(rank1_keeps_one_group, seed=5)
        out["none"] = _collect_and_update(rank1_keeps_none, seed=6)
        # minibatches of 4 over 8 + 4 rows: 3 per epoch; rank 1 has rows for 2 of them and a masked row for one
        out["small_mb"] = _collect_and_update(rank1_keeps_one_group, 7, "--rl.minibatch_size=4")
        out["small_mb"]["minibatches"] = [len(i) for i in rl.minibatches(out["small_mb"]["batch"].size,
                                                                         sampling_config("--rl.minibatch_size=4"), 7)]
    finally:
        dist.destroy()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
