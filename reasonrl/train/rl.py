"""Pieces shared by the RL trainers (ppo.py, grpo.py): prompts per step, rollout + reward, batch algebra,
the policy and critic updates (a step's metrics: `step_metrics.py`; checkpoints: `rl_checkpoint.py`). Each is a
plain function; the trainers read top to bottom.

Distribution: every process samples its share of the step's prompts; losses are aggregated with global
token / sequence counts (summed over processes) and multiplied by the world size because DDP averages
gradients, so N processes compute the same update as one process holding the whole batch. Processes may
hold different numbers of rows (dynamic sampling keeps what it finds): the number of minibatches comes from
the global row count, and a process without rows for one of them trains on a masked row, so every process
makes the same collectives.

Dropout is off for the whole of RL: the sampler runs the policy in eval() mode and so does the update, so the
update's log-probs on fresh data are the ones the sampler drew with (ratio 1); a dropout-perturbed ratio
would be clipped noise.
"""

from __future__ import annotations

import hashlib
import math
import re
import time
from dataclasses import dataclass, fields

import torch

from reasonrl import dist
from reasonrl.algo.kl import KL_ESTIMATORS
from reasonrl.algo.losses import aggregate, policy_loss, positive_nll, value_loss
from reasonrl.algo.rewards import overlong_penalty
from reasonrl.config import Config
from reasonrl.errors import UserError
from reasonrl.model.activation_ckpt import eval_with_checkpointing
from reasonrl.model.logprobs import sequence_logprobs
from reasonrl.model.lora import adapters_off
from reasonrl.model.value import token_values
from reasonrl.reward import Responses, Reward
from reasonrl.reward.stats import reward_stat_sums
from reasonrl.rollout.sampler import Rollout, SamplingParams, sample
from reasonrl.tasks.prompts import format_prompt, record_prompt
from reasonrl.train import fsdp
from reasonrl.train.data import stream_indices
from reasonrl.train.grad import clip_grad, clip_grad_synced
from reasonrl.train.run import dion_data_parallel


@dataclass
class Batch:
    """One step's training rows (all tensors share the first dimension N; 2-D ones are (N, L))."""

    input_ids: torch.Tensor
    attention_mask: torch.Tensor
    mask: torch.Tensor  # bool (N, L): trained response tokens
    old_logp: torch.Tensor  # (N, L)
    scores: torch.Tensor  # (N,) scalar reward per response
    correct: torch.Tensor | None  # (N,) bool; None when the reward judges no correctness (`Scored.correct`)
    lengths: torch.Tensor  # (N,) response tokens
    advantages: torch.Tensor | None = None  # (N, L)
    returns: torch.Tensor | None = None  # (N, L)
    old_values: torch.Tensor | None = None  # (N, L)
    ref_logp: torch.Tensor | None = None  # (N, L): reference-model log-probs (`rl.kl_in_reward`)
    prompt_len: int = 0
    # the critic's own input when the reward gives a critic context (`with_critic_context`), else None: its
    # prompt (context inserted) left-padded to `critic_prompt_len` columns, then the same response columns
    critic_input_ids: torch.Tensor | None = None  # (N, Lc), Lc - critic_prompt_len = L - prompt_len
    critic_attention_mask: torch.Tensor | None = None  # (N, Lc)
    critic_prompt_len: int = 0

    def rows(self, idx: torch.Tensor) -> Batch:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{k: (v[idx] if isinstance(v, torch.Tensor) else v) for k, v in out.items()})

    def to(self, device: torch.device) -> Batch:
        return Batch(**{f.name: (getattr(self, f.name).to(device) if isinstance(getattr(self, f.name), torch.Tensor)
                                 else getattr(self, f.name)) for f in fields(self)})

    @property
    def size(self) -> int:
        return self.input_ids.shape[0]


def step_seed(seed: int, *parts: int) -> int:
    """A 31-bit seed derived from the run seed and (step, round, rank, ...): resumable and rank-distinct."""
    key = "|".join(str(p) for p in (seed, *parts))
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big") >> 1


def check_rl_setup(cfg: Config, world: int) -> None:
    """What an RL run needs beyond the config's own ranges, checked before anything is written: sampling at
    a temperature > 0 (greedy rollouts have no log-probs to form a ratio with; greedy evaluation is
    `train.eval_temperature = 0`), a prompt batch and minibatch that divide over the `world` processes, and
    nothing FSDP2 does not support (`fsdp.setup_problems`)."""
    checks = [
        (cfg.rollout.temperature > 0, f"rollout.temperature must be > 0 for RL training, got "
                                      f"{cfg.rollout.temperature} (greedy is for evaluation: train.eval_temperature)"),
        (cfg.rl.prompts_per_step % world == 0, f"rl.prompts_per_step = {cfg.rl.prompts_per_step} must be a "
                                               f"multiple of the {world} processes"),
        (cfg.rl.minibatch_size % world == 0, f"rl.minibatch_size = {cfg.rl.minibatch_size} must be a multiple of "
                                             f"the {world} processes"),
        *fsdp.setup_problems(cfg, world),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"config: {message}")


def progress_state(trainer_state: dict | None) -> dict:
    """The trainer's progress: step, tokens seen and `prompt_cursor` (prompts drawn from the data stream so
    far), fresh or from a checkpoint's trainer state."""
    if trainer_state is None:
        return {"step": 0, "tokens_seen": 0, "prompt_cursor": 0}
    state = dict(trainer_state["progress"])
    if "prompt_cursor" not in state:
        raise UserError("checkpoint: its progress has no prompt_cursor (written before the prompt stream); "
                        "start a fresh run")
    return state


def step_prompts(records: list[dict], state: dict, *, num: int, seed: int) -> list[dict]:
    """This process's share of the next `num` prompts of the data stream, and advance `state["prompt_cursor"]`.

    The stream is the concatenation of a fresh permutation of `records` per epoch (`data.stream_indices`), read
    contiguously: every prompt is drawn once per epoch, a resumed run continues where the checkpoint's cursor
    stopped, and a dynamic-sampling round reads on from the previous one. Every process advances the cursor by
    the same `num`, so all stay in step.
    """
    idx = stream_indices(state["prompt_cursor"], num, num_examples=len(records), seed=seed)
    state["prompt_cursor"] += num
    return [records[i] for i in idx][dist.rank() :: dist.world_size()]


def sampling_params(cfg: Config, seed: int) -> SamplingParams:
    r = cfg.rollout
    return SamplingParams(temperature=r.temperature, top_p=r.top_p, top_k=r.top_k, max_new_tokens=r.max_new_tokens,
                          n=r.num_samples, stop=tuple(r.stop), seed=seed, backend=r.backend, compile=r.compile,
                          share_prefix=None if r.share_prefix else False)


def decoder(policy, cfg: Config) -> tuple[torch.nn.Module, int]:
    """`(module, lockstep)` the sampler decodes `policy` with: under FSDP2 as `dist.rollout_params` says, a gathered
    copy (a collective; the caller drops it after the rollout) or lockstep decoding; else the bare module."""
    policy.eval()  # and it stays so: RL trains without dropout (see the module docstring)
    with torch.no_grad():
        return dist.decoding_model(policy, cfg.dist.rollout_params, cfg.dist.lockstep_sync_every)


def rollout_and_score(policy, tokenizer, records: list[dict], cfg: Config, seed: int, reward: Reward, *,
                      keep: dict | None = None) -> tuple[Batch, dict]:
    """Sample `rollout.num_samples` responses per record and score them with the configured reward plug-in
    (`reasonrl.reward`), plus DAPO's overlong shaping when on. `keep`: a dict from a caller that samples several
    rounds from the same parameters; the decoding model (`decoder`) made by the first call is kept in it and reused,
    so GRPO's dynamic sampling gathers a sharded policy once per step, not once per round (the caller drops it)."""
    prompts = [record_prompt(tokenizer, r, cfg.data.prompt_template) for r in records]
    model, lockstep = keep["decoding"] if keep else decoder(policy, cfg)
    if keep is not None:
        keep["decoding"] = (model, lockstep)
    with torch.no_grad():
        ro: Rollout = sample(model, tokenizer, prompts, sampling_params(cfg, seed), lockstep=lockstep)
        del model  # unless kept, a gathered copy is freed before the log-probs are recomputed
        old_logp = recompute_logprobs(policy, ro, cfg) if cfg.rl.recompute_old_logp else ro.logprobs
    t_score = time.perf_counter()
    lengths = ro.response_mask.sum(dim=1)
    responses = Responses.of_rollout(ro, records, prompts, lengths)
    scored = reward(responses)
    scores = scored.scores.float()
    if cfg.rl.overlong_penalty:
        scores = scores + overlong_penalty(lengths, max_len=cfg.rollout.max_new_tokens,
                                           cache_len=cfg.rl.overlong_cache)
    batch = Batch(input_ids=ro.input_ids, attention_mask=ro.attention_mask, mask=ro.response_mask,
                  old_logp=old_logp, scores=scores, correct=scored.correct, lengths=lengths,
                  prompt_len=ro.prompt_len)
    if scored.critic_context is not None and cfg.rl.algo == "ppo":  # only a critic reads it
        batch = with_critic_context(batch, tokenizer, [r["prompt"] for r in responses.records], scored.critic_context,
                                    cfg)
    info = {"num_truncated": sum(f == "length" for f in ro.finish_reasons),
            "time_score": time.perf_counter() - t_score, "reward_stats": reward_stat_sums(scored.stats, batch.size)}
    return batch, info


def critic_prompt(tokenizer, prompt: str, context: str, cfg: Config) -> str:
    """The critic's prompt text: `rl.critic_context_template` with {prompt} and {context} filled in (one pass, so
    braces inside either text stay as they are), then formatted as the policy's prompt is (`format_prompt`)."""
    values = {"prompt": prompt, "context": context}
    text = re.sub(r"\{(prompt|context)\}", lambda m: values[m.group(1)], cfg.rl.critic_context_template)
    return format_prompt(tokenizer, text, cfg.data.prompt_template)


def with_critic_context(batch: Batch, tokenizer, prompts: list[str], contexts: list[str], cfg: Config) -> Batch:
    """`batch` with the critic's own input: row i's `critic_prompt(prompts[i], contexts[i])`, left-padded to the
    longest, followed by row i's response columns unchanged (so response token t sits at critic column
    `critic_prompt_len + t` as it sits at policy column `prompt_len + t`). Pairwise-RL's critic V(x, y*, y_<t)
    (arXiv 2504.04950; notes B.3 [I] and B.5: "The critic takes an optional anchor input")."""
    assert len(prompts) == len(contexts) == batch.size, "one prompt and one critic context per response"
    ids = [tokenizer.encode(critic_prompt(tokenizer, p, c, cfg), add_special_tokens=False)
           for p, c in zip(prompts, contexts, strict=True)]
    pc = max(len(x) for x in ids)
    prompt_ids = torch.full((batch.size, pc), tokenizer.pad_token_id, dtype=batch.input_ids.dtype)
    prompt_mask = torch.zeros((batch.size, pc), dtype=batch.attention_mask.dtype)
    for i, x in enumerate(ids):
        if x:
            prompt_ids[i, pc - len(x):] = torch.tensor(x, dtype=batch.input_ids.dtype)
            prompt_mask[i, pc - len(x):] = 1
    p, device = batch.prompt_len, batch.input_ids.device
    batch.critic_input_ids = torch.cat([prompt_ids.to(device), batch.input_ids[:, p:]], dim=1)
    batch.critic_attention_mask = torch.cat([prompt_mask.to(device), batch.attention_mask[:, p:]], dim=1)
    batch.critic_prompt_len = pc
    return batch


def critic_values(critic, batch: Batch, cfg: Config) -> torch.Tensor:
    """`(N, L)` values on the policy's columns: `token_values` of the rollout, or, when the batch carries a critic
    input (`with_critic_context`), of that input mapped back: the value before response token t (critic column
    `critic_prompt_len + t`) lands on policy column `prompt_len + t`; prompt columns hold 0. Rows sharing a critic
    prompt share one pass over it (`rl.share_prompt`)."""
    if batch.critic_input_ids is None:
        return token_values(critic, batch.input_ids, batch.attention_mask, prompt_len=shareable_prompt_len(batch, cfg))
    check_critic_positions(critic, batch)
    pc = batch.critic_prompt_len
    v = token_values(critic, batch.critic_input_ids, batch.critic_attention_mask,
                     prompt_len=fsdp.shared_prompt_len(batch.critic_input_ids, batch.critic_attention_mask, pc,
                                                       cfg))  # (N, Lc)
    return torch.cat([v.new_zeros(v.shape[0], batch.prompt_len), v[:, pc:]], dim=1)  # (N, L)


def check_critic_positions(critic, batch: Batch) -> None:
    """The critic's longest input (prompt with its context + response) must fit its positions: one UserError line,
    raised on every process (the longest is gathered), so none is left waiting in a collective."""
    positions = getattr(dist.unwrap(critic).config, "max_position_embeddings", None)
    longest = max(dist.all_gather_object(int(batch.critic_attention_mask.sum(dim=1).max()) if batch.size else 0))
    if positions is not None and longest > positions:
        raise UserError(f"rl.critic_context_template: the critic's input (prompt with the reward's critic context, "
                        f"e.g. pairwise.critic_sees_anchor, + response) has {longest} tokens, but the critic has "
                        f"{positions} positions: shorten the template or turn the context off")


def recompute_logprobs(policy, ro: Rollout, cfg: Config) -> torch.Tensor:
    """`rl.recompute_old_logp`: the rollout's log-probs by teacher forcing with the policy as the update will run
    it (eval mode, sampling temperature), `rollout.batch_size` rows at a time; 0 off the response mask."""
    model, rows = dist.unwrap(policy), cfg.rollout.batch_size
    parts = [sequence_logprobs(model, ro.input_ids[i : i + rows], ro.attention_mask[i : i + rows],
                               temperature=cfg.rollout.temperature) for i in range(0, ro.input_ids.shape[0], rows)]
    return torch.where(ro.response_mask, torch.cat(parts), 0.0)  # (N, L)


def concat(batches: list[Batch], pad_id: int) -> Batch:
    """Stack batches whose prompt and response widths differ: prompts left-padded, responses right-padded."""
    if len(batches) == 1:
        return batches[0]
    assert len({b.critic_input_ids is None for b in batches}) == 1, "all batches have a critic input, or none"
    p = max(b.prompt_len for b in batches)
    pc = max(b.critic_prompt_len for b in batches)
    w = max(b.input_ids.shape[1] - b.prompt_len for b in batches)

    def pad(t: torch.Tensor, prompt_len: int, new_prompt_len: int, value) -> torch.Tensor:
        left, right = new_prompt_len - prompt_len, w - (t.shape[1] - prompt_len)
        return torch.nn.functional.pad(t, (left, right), value=value)

    out = {}
    for f in fields(Batch):
        vals = [getattr(b, f.name) for b in batches]
        critic = f.name.startswith("critic_")  # laid out around critic_prompt_len
        if f.name in ("prompt_len", "critic_prompt_len"):
            out[f.name] = pc if critic else p
        elif vals[0] is None:
            out[f.name] = None
        elif vals[0].dim() == 1:
            out[f.name] = torch.cat(vals)
        else:
            fill = pad_id if f.name.endswith("input_ids") else (False if vals[0].dtype == torch.bool else 0)
            out[f.name] = torch.cat([pad(v, b.critic_prompt_len if critic else b.prompt_len, pc if critic else p,
                                         fill) for v, b in zip(vals, batches, strict=True)])
    return Batch(**out)


def training_module(model: torch.nn.Module, cfg: Config) -> torch.nn.Module:
    """The module the update's teacher-forced passes call: with `rl.share_prompt` under DDP, the bare module. A
    shared pass is two forward calls (the prompts, then the responses attending to them) feeding one backward,
    which DDP's per-forward gradient hooks do not allow; so it runs outside DDP and the caller averages the
    gradients itself (`dist.average_gradients`, one all-reduce per bucket, what DDP would have done). Otherwise
    `model` (one process, Dion's data-parallel mode, FSDP2, or sharing off)."""
    return dist.unwrap(model) if cfg.rl.share_prompt and dist.is_ddp(model) else model


def shareable_prompt_len(batch: Batch, cfg: Config) -> int:
    """The prompt width teacher forcing may run once per distinct prompt (`rl.share_prompt`), else 0; under FSDP2
    agreed by every process (`fsdp.shared_prompt_len`)."""
    return fsdp.shared_prompt_len(batch.input_ids, batch.attention_mask, batch.prompt_len, cfg)


def global_count(x: torch.Tensor) -> float:
    return float(dist.all_reduce_sum(x.detach().float().sum().reshape(1)).item())


def minibatches(n: int, cfg: Config, seed: int) -> list[torch.Tensor]:
    """Shuffled row indices split into this process's share of `rl.minibatch_size`-sequence minibatches.

    The number of minibatches per epoch is ceil(rows of all processes / minibatch_size), the same on every
    process even when they hold different numbers of rows; a process takes `minibatch_size / world` rows per
    minibatch (more when it holds more than its share) and an empty index tensor where it has none left."""
    num = math.ceil(global_count(torch.tensor([float(n)])) / cfg.rl.minibatch_size)
    size = max(cfg.rl.minibatch_size // dist.world_size(), math.ceil(n / max(1, num)))
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(cfg.rl.ppo_epochs):
        perm = torch.randperm(n, generator=g)
        out.extend(perm[i * size : (i + 1) * size] for i in range(num))
    return out


def minibatch_rows(batch: Batch, idx: torch.Tensor) -> Batch:
    """`batch.rows(idx)`, or for an empty `idx` one row with its mask cleared: it trains on nothing but lets this
    process take part in the forward, backward and collectives of a minibatch the others have rows for."""
    if idx.numel():
        return batch.rows(idx)
    mb = batch.rows(torch.zeros(1, dtype=torch.long))
    mb.mask = torch.zeros_like(mb.mask)
    return mb


def policy_update(policy, optimizer, batch: Batch, cfg: Config, *, seed: int, ref_model=None) -> dict:
    """PPO-clip epochs over minibatches (+ positive-example NLL, + KL to a reference); returns mean stats.
    In Dion's data-parallel mode the policy is not DDP-wrapped, so gradients are local and clipping syncs the norm."""
    rl, world = cfg.rl, dist.world_size()
    local_grads = dion_data_parallel(cfg)
    model = training_module(policy, cfg)  # the module the passes run (DDP's bare one when prompts are shared)
    eval_with_checkpointing(policy)  # no dropout: on fresh data the ratio to the sampler's log-probs is 1
    acc: dict[str, list[float]] = {}
    skipped = 0
    for idx in minibatches(batch.size, cfg, seed):
        mb = minibatch_rows(batch, idx)
        num_tokens = global_count(mb.mask)
        num_seqs = global_count(mb.mask.any(dim=1))
        p = shareable_prompt_len(mb, cfg)
        logp, entropy = sequence_logprobs(model, mb.input_ids, mb.attention_mask, prompt_len=p,
                                          temperature=cfg.rollout.temperature, return_entropy=True)
        loss, stats = policy_loss(logp, mb.old_logp, mb.advantages, mb.mask, clip_low=rl.clip_low,
                                  clip_high=rl.clip_high, dual_clip=rl.dual_clip or None, agg=rl.loss_agg,
                                  num_tokens=num_tokens, num_seqs=num_seqs)
        stats = {k: float(v) for k, v in stats.items()}
        if rl.pos_nll_coef > 0:
            num_pos = global_count(mb.mask & mb.correct[:, None])
            nll = positive_nll(logp, mb.mask, mb.correct, num_tokens=num_pos if num_pos > 0 else None)
            loss = loss + rl.pos_nll_coef * nll
            stats["pos_nll"] = float(nll.detach())
        if ref_model is not None and rl.kl_coef > 0 and not rl.kl_in_reward:
            ref_logp = reference_logprobs(ref_model, mb, cfg)
            kl = aggregate(KL_ESTIMATORS[rl.kl_estimator](logp, ref_logp), mb.mask, agg="token-mean",
                           num_tokens=num_tokens)
            loss = loss + rl.kl_coef * kl
            stats["kl"] = float(kl.detach()) * world
        stats["entropy"] = float(aggregate(entropy.detach(), mb.mask, agg="token-mean", num_tokens=num_tokens)) * world
        ok = dist.all_true(bool(torch.isfinite(loss.detach()).all()))
        if ok:
            (loss * world).backward()
            if model is not policy:
                dist.average_gradients(model)
            stats["grad_norm"] = clip_grad_synced(policy, cfg.train.max_grad_norm, local_grads=local_grads)
            ok = math.isfinite(stats["grad_norm"])
        if ok:
            optimizer.step()
        else:
            skipped += 1
        optimizer.zero_grad(set_to_none=True)
        stats["policy_loss"] = float(loss.detach()) * world
        for k, v in stats.items():
            acc.setdefault(k, []).append(v)
    out = {k: sum(v) / len(v) for k, v in acc.items()}
    out["skipped_updates"] = skipped
    return out


def critic_update(critic, optimizer, batch: Batch, cfg: Config, *, seed: int) -> dict:
    """Value regression on `batch.returns` over minibatches (values from `critic_values`: the critic's own input
    when the batch has one); returns mean value loss / explained variance."""
    world = dist.world_size()
    model = training_module(critic, cfg)
    eval_with_checkpointing(critic)  # no dropout, as in the policy update
    acc: dict[str, list[float]] = {}
    for idx in minibatches(batch.size, cfg, seed):
        mb = minibatch_rows(batch, idx)
        num_tokens = global_count(mb.mask)
        values = critic_values(model, mb, cfg)
        loss, stats = value_loss(values, mb.old_values, mb.returns, mb.mask, clip=cfg.rl.value_clip or None,
                                 agg="token-mean", num_tokens=num_tokens)
        if dist.all_true(bool(torch.isfinite(loss.detach()).all())):
            (loss * world).backward()
            if model is not critic:
                dist.average_gradients(model)
            if math.isfinite(clip_grad(critic, cfg.train.max_grad_norm)):
                optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        acc.setdefault("value_loss", []).append(float(loss.detach()) * world)
        acc.setdefault("explained_var", []).append(float(stats["explained_var"]))
    return {k: sum(v) / len(v) for k, v in acc.items()}


def reference_logprobs(ref_model, batch: Batch, cfg: Config) -> torch.Tensor:
    """Per-token log-probs of the rollout under the frozen reference model (for the KL penalty in the reward). With
    LoRA the reference is the policy itself, run with its adapters off (`fsdp.reference_model`)."""
    with torch.no_grad(), adapters_off(ref_model):
        return sequence_logprobs(ref_model, batch.input_ids, batch.attention_mask,
                                 prompt_len=shareable_prompt_len(batch, cfg),
                                 temperature=max(cfg.rollout.temperature, 1e-6))
