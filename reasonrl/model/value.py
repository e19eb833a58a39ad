"""The critic: the policy's architecture with a scalar head (`AutoModelForTokenClassification`, one label).

Initialised from the policy's backbone with a zero head (so initial values are 0), or loaded from a saved
critic directory. `token_values` aligns values with the PPO convention: `values[:, t]` is V of the state
before token t, i.e. the head's output at position t-1.
"""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from safetensors import SafetensorError
from transformers import AutoConfig, AutoModelForTokenClassification, PreTrainedModel

from reasonrl import dist
from reasonrl.errors import UserError
from reasonrl.model.logprobs import position_ids, shared_prompt_logits


def value_model_from_policy(policy: PreTrainedModel) -> PreTrainedModel:
    """A critic with the policy's backbone weights and a zero head (initial values 0). For a policy with LoRA
    adapters, whose base is frozen, the critic's backbone holds the policy's base Parameter objects themselves: policy,
    reference and critic keep one copy of the base between them (and `.to(device)` moves it once). Under FSDP2 each
    model is sharded on its own, so each gets its own shards of that base (`train/fsdp.py` says why FSDP2's
    grouping cannot share them): build the critic from the policy before the policy is sharded."""
    from reasonrl.model import lora

    assert not dist.is_sharded(policy), "build the critic before sharding the policy: it starts from its whole weights"
    config = copy.deepcopy(policy.config)
    config.num_labels = 1
    config.classifier_dropout = 0.0
    critic = AutoModelForTokenClassification.from_config(config, dtype=torch.float32)
    if lora.has_lora(policy):
        shared = lora.base_parameters(policy.base_model)  # the base under plain names, adapters left out
        for name in [n for n, _ in critic.base_model.named_parameters()]:
            dist.set_tensor(critic.base_model, name, shared[name])
    else:
        critic.base_model.load_state_dict(policy.base_model.state_dict())
    torch.nn.init.zeros_(critic.score.weight)
    if critic.score.bias is not None:
        torch.nn.init.zeros_(critic.score.bias)
    return critic.to(next(policy.parameters()).device)


def load_value_model(path: str | Path) -> PreTrainedModel:
    """A saved critic; a LoRA critic's adapter directory loads as its base with the adapter (and the trained value
    head) merged in."""
    from reasonrl.model import lora

    p = Path(path)
    if not lora.is_model_dir(p):
        raise UserError(f"rl.critic_path: {p} is not a saved critic (no config.json)")

    def from_pretrained(d: Path):  # a saved critic, or a LoRA critic's base: the causal LM it started from
        config = AutoConfig.from_pretrained(d, local_files_only=True)
        config.num_labels, config.classifier_dropout = 1, 0.0
        return AutoModelForTokenClassification.from_pretrained(d, config=config, local_files_only=True)

    try:
        return lora.load_merged(p, from_pretrained) if lora.is_adapter_dir(p) else from_pretrained(p)
    except (OSError, ValueError, SafetensorError) as e:  # SafetensorError: truncated or corrupt weights
        raise UserError(f"rl.critic_path: {p}: cannot load: {(str(e).splitlines() or [type(e).__name__])[0]}") \
            from None


def build_critic(policy: PreTrainedModel, cfg, resume_from: Path | None) -> PreTrainedModel:
    """The PPO critic of a run: from its checkpoint when resuming, else `rl.critic_path`, else the policy's backbone.
    With `model.lora_r > 0` it gets adapters of its own (verl's critic LoRA) over a frozen backbone, shared with the
    policy when it starts from the policy, and a fully trained value head (`modules_to_save`); with
    `model.gradient_checkpointing` it recomputes its blocks in the backward pass, as the policy does."""
    from reasonrl.model.setup import prepare_for_training

    m = cfg.model
    if resume_from is not None and not m.lora_r:
        critic = load_value_model(resume_from / "critic")
    elif cfg.rl.critic_path:
        critic = load_value_model(cfg.rl.critic_path)
    else:
        critic = value_model_from_policy(policy)
    return prepare_for_training(critic, cfg, base=cfg.rl.critic_path or m.path, modules_to_save=["score"],
                                adapter_dir=resume_from / "critic" if resume_from is not None else None)


def token_values(critic: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                 prompt_len: int = 0) -> torch.Tensor:
    """`(N, L)` float32 values; position t holds V(input_ids[<t]), position 0 holds 0.

    With `prompt_len = P > 0`, rows with identical prompts share one pass over them (`shared_prompt_logits`)
    and positions < P hold 0 (no response token is there)."""
    shared = shared_prompt_logits(critic, input_ids, attention_mask, prompt_len) if prompt_len else None
    if shared is not None:
        v = shared[..., 0].float()  # (N, L - P): values before tokens P..L-1
        return torch.cat([v.new_zeros(v.shape[0], prompt_len), v], dim=1)
    out = critic(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask),
                 use_cache=False)
    v = out.logits[..., 0].float()  # (N, L): value after reading token t
    return torch.cat([v.new_zeros(v.shape[0], 1), v[:, :-1]], dim=1)
