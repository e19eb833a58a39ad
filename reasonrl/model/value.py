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
from transformers import AutoModelForTokenClassification, PreTrainedModel

from reasonrl.errors import UserError
from reasonrl.model.logprobs import position_ids, shared_prompt_logits


def value_model_from_policy(policy: PreTrainedModel) -> PreTrainedModel:
    config = copy.deepcopy(policy.config)
    config.num_labels = 1
    config.classifier_dropout = 0.0
    critic = AutoModelForTokenClassification.from_config(config, dtype=torch.float32)
    critic.base_model.load_state_dict(policy.base_model.state_dict())
    torch.nn.init.zeros_(critic.score.weight)
    if critic.score.bias is not None:
        torch.nn.init.zeros_(critic.score.bias)
    return critic.to(next(policy.parameters()).device)


def load_value_model(path: str | Path) -> PreTrainedModel:
    p = Path(path)
    if not (p / "config.json").is_file():
        raise UserError(f"rl.critic_path: {p} is not a saved critic (no config.json)")
    try:
        return AutoModelForTokenClassification.from_pretrained(p, num_labels=1, classifier_dropout=0.0,
                                                               local_files_only=True)
    except (OSError, ValueError, SafetensorError) as e:  # SafetensorError: truncated or corrupt weights
        raise UserError(f"rl.critic_path: {p}: cannot load: {(str(e).splitlines() or [type(e).__name__])[0]}") \
            from None


def token_values(critic: torch.nn.Module, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                 prompt_len: int = 0) -> torch.Tensor:
    """`(N, L)` float32 values; position t holds V(input_ids[<t]), position 0 holds 0.

    With `prompt_len = P > 0`, rows with identical prompts share one pass over them (`shared_prompt_logits`)
    and positions < P hold 0 (no response token is there)."""
    shared = shared_prompt_logits(critic, input_ids, attention_mask, prompt_len) if prompt_len else None
    if shared is not None:
        v = shared[..., 0].float()  # (N, L - P): values before tokens P..L-1
        return torch.cat([v.new_zeros(v.shape[0], prompt_len), v], dim=1)
    out = critic(input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids(attention_mask))
    v = out.logits[..., 0].float()  # (N, L): value after reading token t
    return torch.cat([v.new_zeros(v.shape[0], 1), v[:, :-1]], dim=1)
