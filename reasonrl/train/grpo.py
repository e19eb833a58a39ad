"""GRPO, and DAPO (arXiv 2503.14476) as a configuration of it.

DAPO = GRPO + clip-higher (`rl.clip_high = 0.28`) + token-level loss (`rl.loss_agg = "token-mean"`) +
dynamic sampling (`rl.dynamic_sampling`: keep groups with 0 < #correct < G, sampling more rounds until the
batch holds `rl.prompts_per_step` groups or `rl.max_sample_rounds` is reached) + overlong reward shaping
(`rl.overlong_penalty`, DAPO Eq. 13 with L_max = `rollout.max_new_tokens`, L_cache = `rl.overlong_cache`).
See configs/grpo.toml and configs/dapo.toml.

Each step reads: rollout -> reward -> filter (dynamic sampling) -> group advantages -> update -> log -> eval
-> checkpoint.
"""

from __future__ import annotations

import time
from itertools import chain

import torch

from reasonrl import dist
from reasonrl.algo.advantages import group_advantages
from reasonrl.algo.filters import dynamic_sampling_mask, varied_reward_mask
from reasonrl.config import Config
from reasonrl.eval.evaluate import heldout_accuracy
from reasonrl.model.tiny import num_params
from reasonrl.reward import Reward, build_reward
from reasonrl.reward.check import dry_run
from reasonrl.reward.stats import merge_stat_sums
from reasonrl.tasks.sources import load_split
from reasonrl.train import fsdp, rl, rl_checkpoint, step_metrics
from reasonrl.train.run import finish_run, open_log, policy_and_optimizer, progress_bar, start_run
from reasonrl.train.schedule import build_scheduler

PLOT_KEYS = ["reward", "acc", "heldout_acc", "heldout_acc_greedy",
             "resp_len", "entropy", "kept_fraction", "clipfrac_high",
             "heldout_len", "len_correct", "len_wrong", "frac_negative", "adv_len_q1", "adv_len_q4"]  # Concise RL


def collect(policy, tokenizer, train_records, cfg: Config, state: dict, reward: Reward) -> tuple[rl.Batch, dict]:
    """Rollout + reward, with DAPO dynamic sampling: keep informative groups until the batch is full.

    Each round reads the next `rl.prompts_per_step` prompts of the stream (`rl.step_prompts`, which advances
    `state["prompt_cursor"]`). A process keeps at most its share of groups and stops sampling once it has them
    (under FSDP2 it samples on with the others and discards what it draws: `fsdp`); all processes stop together,
    when every one is full or after `rl.max_sample_rounds`, so they run the same rounds and their cursors agree.
    A process may end with fewer groups than the others (the update allows that, `rl.minibatches`); one that kept
    none while others did holds its last round's first group with the mask cleared (trained on nothing; its rows
    still count in that step's reward and accuracy log).
    """
    group, step = cfg.rollout.num_samples, state["step"]
    want = cfg.rl.prompts_per_step // dist.world_size()  # groups this process should hold
    kept: list[rl.Batch] = []
    num_kept = num_seen = truncated = 0
    score_time = 0.0
    reward_sums: dict = {}
    rounds = cfg.rl.max_sample_rounds if cfg.rl.dynamic_sampling else 1
    # several rounds share one decoding model (the parameters do not change between them: gathered once); one round
    # drops it right after sampling, before scoring (`rl.rollout_and_score`)
    decoding: dict | None = {} if rounds > 1 else None
    for round_ in range(rounds):
        records = rl.step_prompts(train_records, state, num=cfg.rl.prompts_per_step, seed=cfg.train.seed)
        full = num_kept >= want
        if not full or fsdp.sharded(cfg):  # a sharded policy samples on every process together, full or not
            batch, info = rl.rollout_and_score(policy, tokenizer, records, cfg,
                                               rl.step_seed(cfg.train.seed, step, round_, dist.rank()), reward,
                                               keep=decoding)
        if not full:
            truncated += info["num_truncated"]
            score_time += info["time_score"]
            reward_sums = merge_stat_sums(reward_sums, info["reward_stats"])
            num_seen += batch.size // group
            last = batch
            if cfg.rl.dynamic_sampling:
                keep = (dynamic_sampling_mask(batch.correct, group) if cfg.rl.dynamic_sampling_on == "acc"
                        else varied_reward_mask(batch.scores, group))  # (N,) whole groups
                batch = batch.rows(keep.nonzero()[:, 0][: (want - num_kept) * group])
            if batch.size:
                kept.append(batch)
                num_kept += batch.size // group
        if dist.all_true(num_kept >= want):  # every process is full
            break
    decoding = None  # a gathered copy is freed before the update
    kept_total = rl.global_count(torch.tensor([float(num_kept)]))  # every process asks: a collective
    if not kept:
        if kept_total == 0:
            kept.append(last)  # every group everywhere was all-correct or all-wrong: its advantages are 0
        else:
            pad = last.rows(torch.arange(group))
            pad.mask = torch.zeros_like(pad.mask)
            kept.append(pad)
    batch = rl.concat(kept, tokenizer.pad_token_id)
    seen_total = rl.global_count(torch.tensor([float(num_seen)]))
    return batch, {"kept_fraction": kept_total / max(1.0, seen_total), "sample_rounds": round_ + 1,
                   "num_truncated": truncated, "time_score": score_time, "reward_stats": reward_sums}


def train(cfg: Config, *, reward=None, train_data=None, test_data=None) -> dict:
    """Run the trainer as configured; `reward` (kinds and / or functions, `build_reward(kinds=)`), `train_data` and
    `test_data` (Python records, `load_split(records=)`) replace the configured ones (the API, `reasonrl.rl`)."""
    rl.check_rl_setup(cfg, dist.launched_world_size())
    run_dir, device, resume_from, policy, tokenizer = start_run(cfg)
    ref_model = fsdp.reference_model(policy, cfg, device, resumed=resume_from is not None)
    policy.to(device).train()
    train_records = load_split(cfg.data, "train", records=train_data)
    reward = build_reward(cfg, tokenizer=tokenizer, device=dist.device(), kinds=reward)
    reward = dry_run(reward, train_records, cfg, tokenizer=tokenizer)  # a reward that fails on the data stops here
    test_records = load_split(cfg.data, "test", num=cfg.train.eval_examples, records=test_data)

    policy, optimizer = policy_and_optimizer(policy, cfg)
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.train.steps)
    state = rl.progress_state(None)
    if resume_from:
        state = rl_checkpoint.load(resume_from, {"policy": optimizer}, scheduler, cfg)
    # the first write, every input validated (the prompts too: a prompt beyond the model's positions stops here)
    log = open_log(cfg, run_dir, state["step"], model=policy, tokenizer=tokenizer,
                   sampled=chain(train_records, test_records))
    n_params = num_params(dist.unwrap(policy))
    if state["step"] == 0 and cfg.train.eval_every:  # the starting point of the held-out curve
        log.log({"step": 0, **heldout_accuracy(policy, tokenizer, cfg, test_records)})
    bar = progress_bar(cfg, cfg.train.steps, state["step"], cfg.rl.algo)

    while state["step"] < cfg.train.steps:
        step = state["step"]
        t0 = time.perf_counter()
        # rollout -> reward -> filter
        batch, info = collect(policy, tokenizer, train_records, cfg, state, reward)
        reward.raise_errors(step + 1)  # a reward that failed on any process stops every process here
        batch = batch.to(device)
        t1 = time.perf_counter()
        # advantages: group-normalised outcome reward on every response token
        adv = group_advantages(batch.scores, cfg.rollout.num_samples, normalize_std=cfg.rl.group_std)  # (N,)
        batch.advantages = adv[:, None] * batch.mask
        # update
        stats = rl.policy_update(policy, optimizer, batch, cfg, seed=rl.step_seed(cfg.train.seed, step, 99),
                                 ref_model=ref_model)
        scheduler.step()
        t2 = time.perf_counter()
        # log -> eval -> checkpoint
        record = step_metrics.step_record(state, batch, {**stats, **info}, lr=scheduler.get_last_lr()[0],
                                          t0=t0, t1=t1, t2=t2)
        if cfg.train.eval_every and state["step"] % cfg.train.eval_every == 0:
            record.update(heldout_accuracy(policy, tokenizer, cfg, test_records))
        stop = step_metrics.early_stop(state, record, cfg)
        record.update({"early_stop": True} if stop else {})
        log.log(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(step_metrics.postfix(record, acc="acc", kept="kept_fraction"))
        last = state["step"] == cfg.train.steps
        if cfg.train.save_every and state["step"] % cfg.train.save_every == 0 or last or stop:
            rl_checkpoint.save(run_dir, state["step"], models={"": policy}, tokenizer=tokenizer,
                               optimizers={"policy": optimizer}, scheduler=scheduler, state=state,
                               n_params=n_params)
        if stop:
            break
    return finish_run(cfg, run_dir, policy, tokenizer, test_records, log, state["step"], plot_keys=PLOT_KEYS,
                      plot_name=cfg.rl.algo, bar=bar)
