"""RL under FSDP2 on several processes (`dist.strategy = "fsdp2"`): what differs from DDP, in one place.

Under FSDP2 every forward pass of a sharded model all-gathers its layers, a collective: every process must call
each sharded model (policy, critic, reference) as often as the others, whatever its rows. The RL spine already
does so for teacher-forced passes (minibatch counts come from global row counts, a process short of rows trains
on a masked stand-in); what this module adds:

- rollouts (`dist.decoding_model`, used by `rl.rollout_and_score` and the held-out evaluation): decoding reaches
  different lengths on different processes, so the policy decodes from a gathered copy (no collectives while
  decoding) or in lockstep (`dist.rollout_params`);
- shared prompts (`shared_prompt_len`): a pass that shares its prompts makes two forward calls, one that does
  not makes one, so every process shares or none does;
- the reference model (`reference_model`): sharded too, frozen (and on resume the initial policy, not the
  checkpoint's);
- dynamic sampling: a process that holds its share keeps sampling with the others (`grpo.collect`);
- optimizer states: sharded, saved per process (`rl_checkpoint.save`);
- LoRA (`model.lora_r`): the reference is the sharded policy run with its adapters off; the gathered copy carries
  the adapters (`dist.gathered_replica`); checkpoints hold the adapters gathered whole, in peft's format. The PPO
  critic's frozen backbone is, on one process, the policy's base itself (`value.value_model_from_policy`: the same
  Parameter objects); `fully_shard` replaces each model's parameters by shards of its own, so once both are
  sharded each process holds two 1/n shards of the base, equal and frozen (tests/train/test_rl_fsdp2.py): with a
  critic, 2 processes hold as much of the base each as one process holds whole; GRPO holds one shard.
  One set of shards through FSDP2's grouping (`fully_shard([policy_layer_i, critic_layer_i])`, which does make a
  shared Parameter one FSDPParam) does not work with torch 2.13 (tried, 2 gloo processes): (a) two roots (policy,
  critic) over shared grouped layers fail on the second model's first forward, "FSDP state has already been
  lazily initialized for model.layers.0" (the first root claims every state under it), and a grouped root
  `fully_shard([policy, critic])` fails with "FSDP requires a single root module"; (b) one container root over
  both (a forward that dispatches) computes the right gradients, but a group reshards after forward only once all
  its modules have run, never in a pass of one model: every layer stays gathered until the pass ends and all are
  gathered again when its backward starts, a whole unsharded base at the peak (separate sharding holds one layer).
  What would share the shards: one module tree, the critic being the policy's backbone with a second peft adapter
  ("critic") active and the value head on the policy's root (prototyped: one set of shards, both adapters' and the
  head's gradients equal one process's within 1e-7); not done: the critic's passes, checkpoints, resume and the
  gathered copy would all change.

On one process, or under DDP, these functions do what the trainers did before, except that a resumed run's
reference model is now the initial policy under every strategy (it was the checkpoint's policy).
"""

from __future__ import annotations

import copy

import torch

from reasonrl import dist
from reasonrl.config import Config
from reasonrl.model.logprobs import prompts_repeat
from reasonrl.model.lora import has_lora
from reasonrl.model.setup import load_or_build


def sharded(cfg: Config) -> bool:
    """Several processes under FSDP2: the models are sharded."""
    return dist.is_dist() and cfg.dist.strategy == "fsdp2"


def setup_problems(cfg: Config, world: int) -> list[tuple[bool, str]]:
    """`(ok, message)` checks for what stays unsupported under FSDP2 on `world` processes (`rl.check_rl_setup`)."""
    if world == 1 or cfg.dist.strategy != "fsdp2":
        return []
    return [
        (cfg.rollout.backend == "hf", "rollout.backend = vllm is not supported under dist.strategy = fsdp2 (the vLLM "
                                      "engine reloads the whole policy from one process); use ddp or backend = hf"),
        (not (cfg.rollout.compile and cfg.dist.rollout_params == "lockstep"),
         "rollout.compile has no effect with dist.rollout_params = lockstep (lockstep decodes through the sharded "
         "model's forward, not the compiled step): set rollout.compile = false or rollout_params = gathered"),
    ]


def shared_prompt_len(input_ids: torch.Tensor, attention_mask: torch.Tensor, prompt_len: int, cfg: Config) -> int:
    """The prompt width a teacher-forced pass may run once per distinct prompt (`rl.share_prompt`), else 0. A
    pass shares only where a prompt repeats (`prompts_repeat`); under FSDP2 the two forward calls of a shared
    pass must be made everywhere or nowhere, so the processes agree (one all-reduce) and share only if all can."""
    if not cfg.rl.share_prompt:
        return 0
    if sharded(cfg):
        return prompt_len if dist.all_true(prompts_repeat(input_ids, attention_mask, prompt_len)) else 0
    return prompt_len


def reference_model(policy: torch.nn.Module, cfg: Config, device: torch.device, *, resumed: bool
                    ) -> torch.nn.Module | None:
    """The frozen initial policy the KL terms read (None when `rl.kl_coef = 0`): under FSDP2 sharded like the
    policy (no gradients, no optimizer state), whole otherwise. A copy of `policy` (call before it is wrapped),
    except when `resumed`: the policy then holds the checkpoint's weights, and the reference is loaded as the run
    first loaded its policy (`load_or_build`), so a resumed run keeps the KL to where it started. With LoRA the
    reference is the policy with its adapters off (`rl.reference_logprobs`): its frozen base is the initial policy
    whether resumed or not, and sharded when the policy is."""
    if cfg.rl.kl_coef <= 0:
        return None
    if has_lora(policy):  # the policy itself, run with its adapters off (`lora.adapters_off`): no second copy
        return policy
    ref = load_or_build(cfg)[0] if resumed else copy.deepcopy(policy)
    return dist.wrap_frozen(ref.eval().requires_grad_(False).to(device), cfg.dist.strategy)
