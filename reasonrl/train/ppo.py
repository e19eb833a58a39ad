"""PPO with a critic, and VAPO (arXiv 2504.05118) as a configuration of it.

VAPO = PPO + value pretraining (`rl.value_pretrain_steps`) + decoupled GAE (`rl.lam_critic = 1.0`) +
length-adaptive GAE (`rl.length_adaptive`, alpha 0.05) + token-level loss (`rl.loss_agg = "token-mean"`) +
clip-higher (`rl.clip_high = 0.28`) + positive-example NLL (`rl.pos_nll_coef = 0.1`) + group sampling
(`rollout.num_samples > 1`). See configs/vapo.toml; each part is switched off alone in the ablation.

Each step reads: rollout -> reward -> values -> advantages -> update (critic, then policy unless still in
value pretraining) -> log -> eval -> checkpoint. Value pretraining runs first as `value_pretrain_steps`
critic-only steps on rollouts of the frozen initial policy with Monte-Carlo returns (lambda = 1).
"""

from __future__ import annotations

import time
from itertools import chain

import torch

from reasonrl import dist
from reasonrl.algo.advantages import decoupled_gae, length_adaptive_lambda, masked_moments, whiten
from reasonrl.algo.kl import KL_ESTIMATORS
from reasonrl.algo.rewards import token_level_rewards
from reasonrl.config import Config
from reasonrl.eval.evaluate import heldout_accuracy
from reasonrl.model.tiny import num_params
from reasonrl.model.value import build_critic
from reasonrl.reward import build_reward
from reasonrl.reward.check import dry_run
from reasonrl.tasks.sources import load_split
from reasonrl.train import fsdp, rl, rl_checkpoint, step_metrics
from reasonrl.train.run import finish_run, open_log, policy_and_optimizer, progress_bar, start_run
from reasonrl.train.schedule import build_scheduler

PLOT_KEYS = ["reward", "acc", "heldout_acc", "heldout_acc_greedy",
             "resp_len", "value_loss", "explained_var", "entropy", "clipfrac_high",
             "heldout_len", "len_correct", "len_wrong", "frac_negative", "adv_len_q1", "adv_len_q4"]  # Concise RL


def compute_advantages(batch: rl.Batch, values: torch.Tensor, cfg: Config, *, pretraining: bool) -> rl.Batch:
    """Decoupled GAE: policy advantages with lambda_policy (fixed or length-adaptive), critic returns with
    lambda_critic (1.0 during value pretraining: Monte-Carlo returns)."""
    r = cfg.rl
    # the score on the last response token; with `kl_in_reward` minus kl_coef * KL_t on every token (Concise RL)
    kl = KL_ESTIMATORS[r.kl_estimator](batch.old_logp, batch.ref_logp) if r.kl_in_reward else None  # (N, L)
    rewards = token_level_rewards(batch.scores, batch.mask, kl=kl, kl_coef=r.kl_coef if r.kl_in_reward else 0.0)
    lam_p = length_adaptive_lambda(batch.lengths, alpha=r.alpha) if r.length_adaptive else r.lam_policy
    advantages, returns = decoupled_gae(rewards, values, batch.mask, gamma=r.gamma, lam_policy=lam_p,
                                        lam_critic=1.0 if pretraining else r.lam_critic)
    if r.whiten_advantages:  # with the whole batch's statistics, summed over processes
        advantages = whiten(advantages, batch.mask, moments=dist.all_reduce_sum(masked_moments(advantages, batch.mask)))
    batch.advantages, batch.returns, batch.old_values = advantages, returns, values
    return batch


def critic_advantages(critic, batch: rl.Batch, cfg: Config, *, pretraining: bool, ref_model=None) -> rl.Batch:
    """The critic's values of the rollout (no gradient; `rl.critic_values`: with the reward's critic context, such
    as Pairwise-RL's anchor, when it gave one), the reference log-probs when `rl.kl_in_reward`, then
    `compute_advantages`."""
    if cfg.rl.kl_in_reward:
        assert ref_model is not None, "rl.kl_in_reward needs the reference model"
        batch.ref_logp = rl.reference_logprobs(ref_model, batch, cfg)
    with torch.no_grad():
        values = rl.critic_values(dist.unwrap(critic), batch, cfg)  # the critic's own input if the reward gave one
    return compute_advantages(batch, values, cfg, pretraining=pretraining)


def train(cfg: Config, *, reward=None, train_data=None, test_data=None) -> dict:
    """Run the trainer as configured; `reward` (kinds and / or functions, `build_reward(kinds=)`), `train_data` and
    `test_data` (Python records, `load_split(records=)`) replace the configured ones (the API, `reasonrl.rl`)."""
    rl.check_rl_setup(cfg, dist.launched_world_size())
    run_dir, device, resume_from, policy, tokenizer = start_run(cfg)
    critic = build_critic(policy, cfg, resume_from)  # with LoRA: its own adapters over the policy's frozen base
    ref_model = fsdp.reference_model(policy, cfg, device, resumed=resume_from is not None)
    policy.to(device).train()
    critic.to(device).train()
    train_records = load_split(cfg.data, "train", records=train_data)
    reward = build_reward(cfg, tokenizer=tokenizer, device=device, kinds=reward)
    reward = dry_run(reward, train_records, cfg, tokenizer=tokenizer)  # a reward that fails on the data stops here
    test_records = load_split(cfg.data, "test", num=cfg.train.eval_examples, records=test_data)

    policy, optimizer = policy_and_optimizer(policy, cfg)
    critic = dist.wrap_model(critic, cfg.dist.strategy)
    critic_opt = torch.optim.AdamW([p for p in critic.parameters() if p.requires_grad], lr=cfg.rl.critic_lr,
                                   betas=tuple(cfg.optim.betas))  # with LoRA: the adapters and the value head
    scheduler = build_scheduler(optimizer, cfg.optim, cfg.train.steps)
    total = cfg.rl.value_pretrain_steps + cfg.train.steps
    state = rl.progress_state(None)
    if resume_from:
        state = rl_checkpoint.load(resume_from, {"policy": optimizer, "critic": critic_opt}, scheduler, cfg)
    # the first write, every input validated (the prompts too: a prompt beyond the model's positions stops here)
    log = open_log(cfg, run_dir, state["step"], model=policy, tokenizer=tokenizer,
                   sampled=chain(train_records, test_records))
    n_params = num_params(dist.unwrap(policy))
    if state["step"] == 0 and cfg.train.eval_every:  # the starting point of the held-out curve
        log.log({"step": 0, **heldout_accuracy(policy, tokenizer, cfg, test_records)})
    bar = progress_bar(cfg, total, state["step"], "ppo")

    while state["step"] < total:
        step = state["step"]
        pretraining = step < cfg.rl.value_pretrain_steps
        seed = rl.step_seed(cfg.train.seed, step, dist.rank())
        t0 = time.perf_counter()
        # rollout -> reward
        records = rl.step_prompts(train_records, state, num=cfg.rl.prompts_per_step, seed=cfg.train.seed)
        batch, info = rl.rollout_and_score(policy, tokenizer, records, cfg, seed, reward)
        reward.raise_errors(step + 1)  # a reward that failed on any process stops every process here
        batch = batch.to(device)
        t1 = time.perf_counter()
        # values -> advantages
        batch = critic_advantages(critic, batch, cfg, pretraining=pretraining, ref_model=ref_model)
        # update: critic always, policy once value pretraining is over
        stats = rl.critic_update(critic, critic_opt, batch, cfg, seed=seed)
        if not pretraining:
            stats.update(rl.policy_update(policy, optimizer, batch, cfg, seed=seed + 1, ref_model=ref_model))
            scheduler.step()
        t2 = time.perf_counter()
        # log -> eval -> checkpoint
        phase = "value_pretrain" if pretraining else "ppo"
        record = step_metrics.step_record(state, batch, {"phase": phase, **stats, **info},
                                          lr=scheduler.get_last_lr()[0], t0=t0, t1=t1, t2=t2)
        if cfg.train.eval_every and state["step"] % cfg.train.eval_every == 0:
            record.update(heldout_accuracy(policy, tokenizer, cfg, test_records))
        stop = not pretraining and step_metrics.early_stop(state, record, cfg)
        record.update({"early_stop": True} if stop else {})
        log.log(record)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(step_metrics.postfix(record, acc="acc", vloss="value_loss"))
        if cfg.train.save_every and state["step"] % cfg.train.save_every == 0 or state["step"] == total or stop:
            rl_checkpoint.save(run_dir, state["step"], models={"": policy, "critic": critic}, tokenizer=tokenizer,
                               optimizers={"policy": optimizer, "critic": critic_opt}, scheduler=scheduler,
                               state=state, n_params=n_params)
        if stop:
            break
    return finish_run(cfg, run_dir, policy, tokenizer, test_records, log, state["step"], plot_keys=PLOT_KEYS,
                      plot_name="ppo", bar=bar)
