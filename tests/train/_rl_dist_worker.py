"""Code run by each of the 2 gloo ranks of test_rl_distributed.py (forked, localhost only).

`run(rank, world, port, out_dir)` runs every scenario and saves `out_dir/rank{rank}.pt`; the test process
computes the one-process references with the same input builders below and compares.

Scenarios: PPO advantage whitening on an uneven 5 / 3 row split; GRPO dynamic sampling (with a scripted
rollout) where rank 1 keeps fewer groups than rank 0, then the policy update on those unequal batches (prompts
shared per group, outside DDP's hooks; and once with sharing off, through DDP); a step where rank 1 keeps no
group at all; a critic update with shared prompts.
"""

from __future__ import annotations

import os
from types import SimpleNamespace

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from reasonrl import dist
from reasonrl.algo.advantages import group_advantages
from reasonrl.config import load_config
from reasonrl.reward.stats import reward_stat_means, reward_stat_sums
from reasonrl.train import grpo, ppo, rl, step_metrics

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
    """A stand-in for `rl.rollout_and_score`: G fixed rows per record, sharing its 2-token prompt (so the update
    teacher-forces each prompt once, `rl.share_prompt`); the first `informative(rank, call)` groups have one correct
    answer (kept by dynamic sampling), the others none; tokens a function of the record alone."""
    calls = {"n": 0}

    def fake(policy, tokenizer, records, cfg, seed, reward, **_):
        num_inform = informative(dist.rank(), calls["n"])
        calls["n"] += 1
        rows = len(records) * G
        ids = torch.stack([torch.randint(0, 32, (L,), generator=torch.Generator().manual_seed(r["i"] * 10 + k))
                           for r in records for k in range(G)])
        ids[:, :2] = torch.stack([torch.tensor([r["i"] % 32, 7]) for r in records for _ in range(G)])  # the prompt
        mask = torch.zeros(rows, L, dtype=torch.bool)
        mask[:, 2:] = True
        correct = torch.zeros(rows, dtype=torch.bool)
        correct[: num_inform * G : G] = True
        batch = rl.Batch(input_ids=ids, attention_mask=torch.ones(rows, L, dtype=torch.long), mask=mask,
                         old_logp=-0.1 * mask.float(), scores=correct.float() * 2 - 1, correct=correct,
                         lengths=mask.sum(1), prompt_len=2)
        # reward stats: mean 1 on rank 0's responses, 2 on rank 1's; "only0" is a mean only rank 0 has
        stats = {"r": float(dist.rank() + 1), "only0": 1.0 if dist.rank() == 0 else None}
        return batch, {"num_truncated": 0, "time_score": 0.0, "reward_stats": reward_stat_sums(stats, rows)}

    return fake


RECORDS = [{"prompt": f"p{i}", "answer": "0", "i": i} for i in range(40)]


SHARED_PASSES = {"n": 0}  # teacher-forced passes that ran each distinct prompt once


def count_shared_passes() -> None:
    """Count the shared-prompt passes the update makes (`shared_prompt_logits` returning logits, not None)."""
    from reasonrl.model import logprobs, value

    real = logprobs.shared_prompt_logits

    def counted(*args, **kwargs):
        out = real(*args, **kwargs)
        SHARED_PASSES["n"] += out is not None
        return out

    logprobs.shared_prompt_logits = value.shared_prompt_logits = counted


def _collect_and_update(informative, seed: int, *overrides: str) -> dict:
    cfg = sampling_config(*overrides)
    rl.rollout_and_score = scripted_rollout(informative)
    state = rl.progress_state(None)
    batch, info = grpo.collect(None, PAD, RECORDS, cfg, state, reward=None)
    batch.advantages = group_advantages(batch.scores, G)[:, None] * batch.mask
    model = dist.wrap_model(tiny_policy(), "ddp")
    opt = torch.optim.SGD(model.parameters(), lr=0.5)
    before = SHARED_PASSES["n"]
    stats = rl.policy_update(model, opt, batch, cfg, seed=seed)
    return {"batch": batch, "cursor": state["prompt_cursor"], "rounds": info["sample_rounds"],
            "w": {k: v.clone() for k, v in dist.unwrap(model).state_dict().items()}, "loss": stats["policy_loss"],
            "reward_means": reward_stat_means(info["reward_stats"]), "shared_passes": SHARED_PASSES["n"] - before,
            "stats": {**step_metrics.rollout_stats(batch), **step_metrics.length_bias_stats(batch)}}


def critic_inputs(rank: int | None = None) -> rl.Batch:
    """A PPO batch of 4 prompts x G samples with returns and old values (rank r holds prompts 2r, 2r + 1)."""
    records = RECORDS[:4] if rank is None else RECORDS[2 * rank : 2 * rank + 2]
    batch, _ = scripted_rollout(lambda r, c: 1)(None, PAD, records, None, 0, None)
    g = torch.Generator().manual_seed(11)
    returns = torch.randn(16, L, generator=g)
    old_values = torch.randn(16, L, generator=g) * 0.1
    rows = slice(None) if rank is None else slice(8 * rank, 8 * rank + 8)
    batch.returns, batch.old_values = returns[rows] * batch.mask, old_values[rows] * batch.mask
    return batch


def critic_config():
    return load_config(None, ["--rl.minibatch_size=16", "--rl.ppo_epochs=2", "--train.max_grad_norm=0"])


def critic_step(batch: rl.Batch) -> dict:
    """One `rl.critic_update` (SGD) of a critic built from `tiny_policy`, DDP-wrapped under torch.distributed."""
    from reasonrl.model.value import value_model_from_policy

    critic = value_model_from_policy(tiny_policy())
    torch.nn.init.normal_(critic.score.weight, std=0.5, generator=torch.Generator().manual_seed(2))
    critic = dist.wrap_model(critic, "ddp")
    before = SHARED_PASSES["n"]
    stats = rl.critic_update(critic, torch.optim.SGD(critic.parameters(), lr=0.5), batch, critic_config(), seed=3)
    return {"w": {k: v.clone() for k, v in dist.unwrap(critic).state_dict().items()}, "loss": stats["value_loss"],
            "shared_passes": SHARED_PASSES["n"] - before}


def rank1_keeps_one_group(rank: int, call: int) -> int:
    return 2 if rank == 0 else int(call == 1)  # rank 0: both its groups; rank 1: one group in its second round


def rank1_keeps_none(rank: int, call: int) -> int:
    return 2 if rank == 0 else 0


def run(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(rank))
    torch.set_num_threads(1)
    dist.init("gloo")
    count_shared_passes()
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
        # the same update with prompt sharing off: the plain pass through DDP's own forward and hooks
        out["unshared"] = _collect_and_update(rank1_keeps_one_group, 5, "--rl.share_prompt=false")
        dist.GRAD_BUCKET_NUMEL = 300  # several all-reduce buckets, and parameters larger than one (512 elements)
        out["critic"] = critic_step(critic_inputs(rank))
    finally:
        dist.destroy()
    torch.save(out, os.path.join(out_dir, f"rank{rank}.pt"))
